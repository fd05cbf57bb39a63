/* interrupt.h - Ctrl-C (SIGINT), SIGTERM and SIGHUP as a count the caller polls, instead of a
 * signal that kills the process (or raises "interrupted!" in the middle of a Lua call) with
 * requests in flight whose outcome nobody would report.
 *
 * The eip command catches them during a batch: the first one stops new requests, the second
 * aborts those in flight. Waits (eip_multi_next, core.sleep) return early when one arrives.
 * While catching, SIGPIPE is ignored: a write to a reader that went away fails with EPIPE.
 */
#ifndef EIP_INTERRUPT_H
#define EIP_INTERRUPT_H

/* on != 0: install the handlers (no SA_RESTART, so blocking waits wake up), ignore SIGPIPE and
 * reset the count; a signal ignored when this is called (nohup's SIGHUP, a background job's
 * SIGINT) is left ignored. on == 0: restore the handlers that were there before. 0, or -1 when
 * sigaction failed (then nothing is changed). */
int eip_interrupt_catch(int on);

/* Signals received since the handlers were installed (0 when not catching). */
int eip_interrupts(void);

/* The number of the last signal received (SIGINT, SIGTERM or SIGHUP), or 0. */
int eip_interrupt_signal(void);

/* How many signals abort a single request in flight (http.c's sessions): 2 unless set (the
 * first stops sending, the second aborts, as a batch does); 1 for reads that may as well end at
 * once (a show, a list). Reset to 2 when catching begins. */
void eip_interrupt_abort_at(int n);

/* Should a single request in flight be aborted now (catching, and that many signals came)? */
int eip_interrupt_aborting(void);

/* Are signals being caught (eip_interrupt_catch(1))? */
int eip_interrupt_catching(void);

#endif
