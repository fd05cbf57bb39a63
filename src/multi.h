/* multi.h - concurrent HTTP exchanges over one libcurl multi handle.
 *
 * A multi owns a CURLM and up to EIP_MULTI_MAX_SLOTS "slots", each one reused easy handle with
 * its own body buffer and response. The multi's connection cache is shared by every slot, so
 * successive batches reuse the same keep-alive connections. The caller decides what to send and
 * when (signing, retries, backoff are the Lua layer's business): it starts requests on free slots
 * and collects finished ones one at a time.
 *
 * Requests and responses are the eip_http_* structs of http.h, with the same meaning and bounds.
 */
#ifndef EIP_MULTI_H
#define EIP_MULTI_H

#include "http.h"

#define EIP_MULTI_MAX_SLOTS 64

typedef struct eip_multi eip_multi;

/* NULL when libcurl cannot be initialised (err says why). Copies what it keeps of cfg. */
eip_multi *eip_multi_new(const eip_http_config *cfg, char *err, size_t errcap);

/* Aborts every transfer in flight and frees everything. NULL is accepted. */
void eip_multi_free(eip_multi *m);

/* At most `limit` (1..EIP_MULTI_MAX_SLOTS) transfers in flight and connections per host. */
int eip_multi_set_limit(eip_multi *m, int limit);

/* Starts req on a free slot; everything in req is copied (it may go away on return).
 * Returns the slot number (0-based), or -1 when no slot is free (limit reached) or memory ran
 * out (err then says which). */
int eip_multi_start(eip_multi *m, const eip_http_request *req, char *err, size_t errcap);

/* Drives the transfers for up to timeout_ms (0: only what is ready now) until one finishes.
 * Returns its slot number and points *resp at its response (valid, body included, until that
 * slot is started again or trimmed, or the multi freed), or -1 when none finished in time.
 * Never blocks when nothing is in flight. */
int eip_multi_next(eip_multi *m, long timeout_ms, const eip_http_response **resp);

/* eip_multi_next in two steps: the finished transfer it would return, left in place (the same
 * one again until popped), then eip_multi_pop to take it. The Lua binding pops only once the
 * response is in a Lua table: a failed allocation must not lose an answer. */
int eip_multi_peek(eip_multi *m, long timeout_ms, const eip_http_response **resp);
void eip_multi_pop(eip_multi *m);

/* Once the answer of slot `index` (returned by eip_multi_next, or peeked then popped) has been
 * handed over: eip_http_transfer_trim of that slot, so that a large answer's buffer does not
 * stay for the multi's life (its response's body and token are then invalid). A slot started
 * again meanwhile is left alone. eip_multi_buffered: the bytes every slot's answer buffers hold
 * (tests). */
void eip_multi_trim(eip_multi *m, int index);
size_t eip_multi_buffered(const eip_multi *m);

/* Transfers started and not yet collected with eip_multi_next. */
int eip_multi_pending(const eip_multi *m);

/* Aborts every transfer in flight and forgets finished ones not yet collected. The multi stays
 * usable; connections of aborted transfers are closed, idle ones stay cached. unsent (NULL, or
 * room for EIP_MULTI_MAX_SLOTS): the indexes of the aborted transfers of which nothing had been
 * written to a connection (still connecting, in a TLS handshake or a proxy's tunnel, or waiting
 * for a connection); returns how many. */
int eip_multi_cancel(eip_multi *m, int *unsent);

/* The caller sends nothing more (a batch stopped): each transfer in flight runs to its answer,
 * but is not sent again when its kept-alive connection dies unanswered (eip_http_transfer_halt):
 * that attempt ends as the reset it was; with `sends` (a stop or an abort), one not sent yet never goes
 * out (unsent, held_back). Transfers started later are not affected. */
void eip_multi_halt(eip_multi *m, int sends);

#endif
