/* interrupt.h - Ctrl-C (SIGINT) as a count the caller polls, instead of a signal that kills the
 * process or raises "interrupted!" in the middle of a Lua call.
 *
 * The eip command catches SIGINT during a batch: the first one stops new requests, the second
 * aborts those in flight. Waits (eip_multi_next, core.sleep) return early when one arrives.
 */
#ifndef EIP_INTERRUPT_H
#define EIP_INTERRUPT_H

/* on != 0: install the handler (no SA_RESTART, so blocking waits wake up) and reset the count;
 * on == 0: restore the handler that was there before. 0, or -1 when sigaction failed. */
int eip_interrupt_catch(int on);

/* SIGINTs received since the handler was installed (0 when not catching). */
int eip_interrupts(void);

#endif
