/* multi.c - concurrent HTTP exchanges over one libcurl multi handle. See multi.h.
 *
 * Each slot is an eip_http_transfer (http.c): the same easy-handle setup, request preparation
 * and response capture as a session, so a request behaves the same either way.
 */
#include "multi.h"

#include "interrupt.h"

#include <curl/curl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum slot_state { SLOT_FREE, SLOT_RUNNING, SLOT_DONE };

typedef struct {
    eip_http_transfer t;
    enum slot_state state;
    eip_http_response resp; /* its token, like its body, lives in t's buffers */
    long long started_ms;   /* when it was started (CLOCK_MONOTONIC) */
    /* Its timeout ran out while its caller was away (see eip_multi.away_ms), nothing of it sent
     * yet, in an absence that took half that timeout or more: its connection could not be
     * used for that time, which its timeout was not meant for (see back_from_away). */
    int expired_away;
} slot;

/* A caller back less than this before an unsent transfer's timeout (the least time lua-eip
 * sends an attempt with: pipeline.MIN_ATTEMPT_TIME) came back too late for it. */
#define AWAY_MARGIN_MS 50

struct eip_multi {
    CURLM *cm;                  /* NULL only when it could not be made again after a fork */
    eip_http_sockets sockets;   /* every slot's connections (the multi's cache holds them) */
    int stale;                  /* the handles were dropped after a fork, not all made again yet */
    char *ca_file, *user_agent; /* copies: slots are created lazily, after the config is gone */
    int insecure;
    int limit;   /* transfers in flight (and connections per host) at most */
    int pending; /* slots RUNNING or DONE */
    int nslots;  /* slots created so far */
    slot *slots[EIP_MULTI_MAX_SLOTS];
    /* Finished transfers not yet collected, oldest first (a ring: each slot is in it once). */
    int done[EIP_MULTI_MAX_SLOTS];
    int done_head, done_count;
    /* When the transfers were last driven (drive returned to the caller; 0: never): what the
     * caller does between two calls (a batch's on_result writing to a terminal held by Ctrl-S)
     * leaves answers waiting in the sockets, which must not be judged late or slow for it. */
    long long away_ms;
};

static long long now_ms(void);
static void fail_running(eip_multi *m, CURLMcode mc);
static void catch_up(eip_multi *m);

static char *dup_or_null(const char *s)
{
    char *d;
    if (s == NULL)
        return NULL;
    d = malloc(strlen(s) + 1);
    if (d != NULL)
        strcpy(d, s);
    return d;
}

/* ---- slots ---------------------------------------------------------------------------- */

static void slot_free(slot *s)
{
    if (s == NULL)
        return;
    eip_http_transfer_cleanup(&s->t);
    free(s);
}

static slot *slot_new(eip_multi *m)
{
    eip_http_config cfg;
    slot *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    cfg.ca_file = m->ca_file;
    cfg.user_agent = m->user_agent;
    cfg.insecure = m->insecure;
    if (eip_http_transfer_init(&s->t, &cfg) != 0) {
        slot_free(s);
        return NULL;
    }
    eip_http_transfer_track(&s->t, &m->sockets);
    return s;
}

/* A free slot, creating one when all existing ones are busy; NULL at the limit or without
 * memory. Lower slots first, so a small batch keeps using the same few handles. */
static slot *slot_acquire(eip_multi *m, int *index)
{
    int i;
    if (m->pending >= m->limit)
        return NULL;
    for (i = 0; i < m->nslots; i++) {
        if (m->slots[i]->state == SLOT_FREE) {
            *index = i;
            return m->slots[i];
        }
    }
    if (m->nslots >= EIP_MULTI_MAX_SLOTS || (m->slots[m->nslots] = slot_new(m)) == NULL)
        return NULL;
    *index = m->nslots;
    return m->slots[m->nslots++];
}

/* ---- fork safety (see http.h) ---------------------------------------------------------- */

static void push_done(eip_multi *m, int index);

#define FORKED_TEXT "the process forked while this request was in flight: its answer, if any, went to the parent"

/* Lets go of every libcurl handle of a multi made before a fork (see "Fork safety" in http.h):
 * the multi handle and every slot's easy handle are abandoned, never called again (not even
 * cleaned up: that would close the numbers of connections the fork handler already closed in
 * this process, perhaps the user's files by now, or wait for a resolver thread that only exists
 * in the parent). Transfers still running at the fork are finished as failures: their answers
 * are the parent's. */
static void drop_handles(eip_multi *m)
{
    int i;
    for (i = 0; i < m->nslots; i++) {
        slot *s = m->slots[i];
        if (s->state == SLOT_RUNNING) {
            eip_http_transfer_fail(&s->t, CURLE_GOT_NOTHING, FORKED_TEXT);
            s->state = SLOT_DONE;
            push_done(m, i);
        }
        eip_http_transfer_release(&s->t);
    }
    eip_http_abandon(m->cm);
    m->cm = NULL;
    m->stale = 1;
    eip_http_sockets_reset(&m->sockets);
}

/* A multi handle (its cache sized to the limit) and a handle for each slot. 0, or -1. */
static int make_handles(eip_multi *m)
{
    eip_http_config cfg;
    int i;
    if (m->cm == NULL) {
        if ((m->cm = curl_multi_init()) == NULL)
            return -1;
        eip_multi_set_limit(m, m->limit);
    }
    cfg.ca_file = m->ca_file;
    cfg.user_agent = m->user_agent;
    cfg.insecure = m->insecure;
    for (i = 0; i < m->nslots; i++)
        if (m->slots[i]->t.curl == NULL && eip_http_transfer_renew(&m->slots[i]->t, &cfg) != 0)
            return -1;
    m->stale = 0;
    return 0;
}

/* Before any use of m's handles: in a forked child, new ones (see http.h). 0, or -1 when they
 * could not be made (out of memory: the next call tries again). */
static int check_fork(eip_multi *m)
{
    if (eip_http_sockets_forked(&m->sockets))
        drop_handles(m);
    return m->stale ? make_handles(m) : 0;
}

/* ---- requests ------------------------------------------------------------------------- */

int eip_multi_start(eip_multi *m, const eip_http_request *req, char *err, size_t errcap)
{
    int index = -1;
    CURLMcode mc;
    slot *s;
    if (check_fork(m) != 0) {
        snprintf(err, errcap, "cannot create a libcurl multi handle (out of memory)");
        return -1;
    }
    catch_up(m);
    s = slot_acquire(m, &index);
    if (s == NULL) {
        snprintf(err, errcap, m->pending >= m->limit ? "no free slot (%d transfers in flight)"
                                                     : "cannot create a libcurl handle (out of memory)",
                 m->pending);
        return -1;
    }
    /* The transfer outlives req (it runs after we return): libcurl copies the body. */
    if (eip_http_transfer_prepare(&s->t, req, &s->resp, 1) != 0) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    /* Its timeout is judged by drive, after reading what arrived (see eip_http_transfer_own_deadline). */
    eip_http_transfer_own_deadline(&s->t);
    s->started_ms = now_ms();
    s->expired_away = 0;
    mc = curl_multi_add_handle(m->cm, s->t.curl);
    if (mc != CURLM_OK) {
        eip_http_transfer_finish(&s->t, CURLE_FAILED_INIT);
        snprintf(err, errcap, "%s", curl_multi_strerror(mc));
        return -1;
    }
    s->state = SLOT_RUNNING;
    m->pending++;
    /* Sent now, as far as it can go without waiting (on a kept-alive connection, the whole
     * request): what the caller does before it drives the multi again (a batch's on_result
     * writing to a terminal held by Ctrl-S) must not hold a request back until its deadline has
     * passed, to be sent then and timed out at once, its answer lost. Finished transfers wait in
     * libcurl's queue for drive's collect. */
    {
        int running;
        mc = curl_multi_perform(m->cm, &running);
        if (mc != CURLM_OK)
            fail_running(m, mc);
        m->away_ms = now_ms();
    }
    return index;
}

/* ---- completion ----------------------------------------------------------------------- */

static void push_done(eip_multi *m, int index)
{
    m->done[(m->done_head + m->done_count) % EIP_MULTI_MAX_SLOTS] = index;
    m->done_count++;
}

/* A transfer that just finished unsent and timed out (its own deadline, before the prerequest
 * callback let it go or at drive's look: eip_http_transfer_expire; or libcurl's connect
 * timeout): was it for the time its caller was away? Its start (eip_multi_start) only begins a
 * new connection, the send waits for the next drive: a batch whose on_result blocked past the
 * timeout (a terminal held by Ctrl-S) had such requests fail, never sent, counted as attempts
 * that timed out. Their deadlines do not move (a signed request's signing place lasts its
 * timeout and a second; a call's deadline is the whole call's): the caller is told, and starts
 * the request again if it may (lua/eip/batch.lua). */
static int timed_out_away(const slot *s)
{
    const eip_http_response *r = &s->resp;
    return r->unsent && s->expired_away && (s->t.past_deadline || r->curl_code == CURLE_OPERATION_TIMEDOUT);
}

/* When an unsent transfer times out: the earlier of its own deadline and its connect timeout
 * (0: neither). */
static long long unsent_expiry(const slot *s)
{
    long long e = s->t.deadline_ms, c;
    if (s->t.connect_timeout_ms > 0) {
        c = s->started_ms + s->t.connect_timeout_ms;
        if (e == 0 || c < e)
            e = c;
    }
    return e;
}

/* Takes a transfer that ended (or is abandoned) out of the multi, then captures its answer. */
static void slot_finish(eip_multi *m, int index, CURLcode rc)
{
    slot *s = m->slots[index];
    curl_multi_remove_handle(m->cm, s->t.curl);
    eip_http_transfer_finish(&s->t, rc);
    s->resp.caller_away = timed_out_away(s);
    s->state = SLOT_DONE;
    push_done(m, index);
}

static int slot_index(const eip_multi *m, const CURL *easy)
{
    int i;
    for (i = 0; i < m->nslots; i++)
        if (m->slots[i]->t.curl == easy)
            return i;
    return -1;
}

static void collect(eip_multi *m)
{
    CURLMsg *msg;
    CURLcode rc;
    int left;
    while ((msg = curl_multi_info_read(m->cm, &left)) != NULL) {
        int index;
        if (msg->msg != CURLMSG_DONE)
            continue;
        index = slot_index(m, msg->easy_handle);
        if (index < 0 || m->slots[index]->state != SLOT_RUNNING)
            continue;
        rc = msg->data.result;
        if (eip_http_transfer_retry_stale(&m->slots[index]->t, rc)) {
            /* Its connection was stale and nothing was sent: again, on a fresh one. */
            CURL *easy = m->slots[index]->t.curl;
            curl_multi_remove_handle(m->cm, easy);
            if (curl_multi_add_handle(m->cm, easy) == CURLM_OK)
                continue;
        }
        slot_finish(m, index, rc);
    }
}

/* The multi itself failed (out of memory, say): its transfers would never finish, so every
 * running one is finished now with that failure instead of leaving the caller waiting. */
static void fail_running(eip_multi *m, CURLMcode mc)
{
    int i;
    for (i = 0; i < m->nslots; i++) {
        slot *s = m->slots[i];
        if (s->state != SLOT_RUNNING)
            continue;
        snprintf(s->t.errbuf, sizeof(s->t.errbuf), "libcurl multi: %s", curl_multi_strerror(mc));
        slot_finish(m, i, CURLE_OUT_OF_MEMORY);
    }
}

/* 64 bits: a 32-bit long of milliseconds overflows after 24.8 days of uptime. */
static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The time since the transfers were last driven leaves their low-speed windows
 * (eip_http_transfer_unwatched): each running one was not watched from the later of then and
 * its start until now. One of which nothing was sent yet, whose timeout ran out in that time
 * (or is all but out) is said to have expired away (see timed_out_away) only when the absence
 * took half its timeout or more: the few milliseconds a batch spends between two drives, many
 * times over, are no absence, and a connection that never comes (a silent TLS peer, a dead
 * host) times out as it would anyway. */
static void back_from_away(eip_multi *m, long long now)
{
    int i;
    if (m->away_ms == 0)
        return;
    for (i = 0; i < m->nslots; i++) {
        slot *s = m->slots[i];
        long long from;
        if (s->state != SLOT_RUNNING)
            continue;
        from = s->started_ms > m->away_ms ? s->started_ms : m->away_ms;
        eip_http_transfer_unwatched(&s->t, now - from);
        if (s->t.sends == 0 && now > from) {
            long long e = unsent_expiry(s);
            if (e != 0 && e > from && e <= now + AWAY_MARGIN_MS && 2 * (now - from) >= e - s->started_ms)
                s->expired_away = 1;
        }
    }
    m->away_ms = 0;
}

/* Ends the running transfers whose own deadline has passed, once what arrived has been read
 * (curl_multi_perform just ran): an answer waiting in its socket is taken, however late the
 * caller came back. Returns the nearest deadline still ahead (0: none). */
static long long expire(eip_multi *m, long long now)
{
    long long nearest = 0;
    int i;
    for (i = 0; i < m->nslots; i++) {
        slot *s = m->slots[i];
        if (s->state != SLOT_RUNNING)
            continue;
        if (eip_http_transfer_expire(&s->t, now))
            slot_finish(m, i, CURLE_ABORTED_BY_CALLBACK);
        else if (s->t.deadline_ms != 0 && (nearest == 0 || s->t.deadline_ms < nearest))
            nearest = s->t.deadline_ms;
    }
    return nearest;
}

/* What drive does first, done before a new request may go out (eip_multi_start): the caller's
 * absence left out of the low-speed windows, what arrived read (a request whose deadline passed
 * before it could go out is not sent: see on_prereq in http.c), and the transfers past their
 * deadline ended, their connections closed: an overdue signed request must not stay open at the
 * server beside the new ones (five in flight). */
static void catch_up(eip_multi *m)
{
    int running;
    CURLMcode mc;
    if (m->pending == 0)
        return;
    back_from_away(m, now_ms());
    mc = curl_multi_perform(m->cm, &running);
    if (mc != CURLM_OK) {
        fail_running(m, mc);
        return;
    }
    collect(m);
    expire(m, now_ms());
}

/* Runs transfers until one finishes or timeout_ms passes. curl_multi_poll caps its own wait
 * at libcurl's next timer, and drive at the nearest transfer deadline, so transfer timeouts
 * fire on time whatever timeout_ms is. */
static void drive(eip_multi *m, long timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    int interrupts = eip_interrupts(); /* a new Ctrl-C ends the wait: the caller decides */
    back_from_away(m, end - timeout_ms);
    for (;;) {
        int running;
        long long left, now, nearest;
        CURLMcode mc;
        mc = curl_multi_perform(m->cm, &running);
        if (mc != CURLM_OK) {
            fail_running(m, mc);
            break;
        }
        collect(m);
        now = now_ms();
        nearest = expire(m, now);
        left = end - now;
        if (m->done_count > 0 || left <= 0 || eip_interrupts() != interrupts)
            break;
        if (nearest != 0 && nearest - now < left)
            left = nearest - now > 0 ? nearest - now : 1;
        mc = curl_multi_poll(m->cm, NULL, 0, left > INT_MAX ? INT_MAX : (int)left, NULL);
        if (mc != CURLM_OK) {
            fail_running(m, mc);
            break;
        }
    }
    m->away_ms = now_ms();
}

int eip_multi_peek(eip_multi *m, long timeout_ms, const eip_http_response **resp)
{
    int index;
    if (eip_http_sockets_forked(&m->sockets))
        drop_handles(m); /* running transfers are done now; new handles at the next start */
    if (m->done_count == 0 && m->pending > 0)
        drive(m, timeout_ms < 0 ? 0 : timeout_ms);
    if (m->done_count == 0)
        return -1;
    index = m->done[m->done_head];
    *resp = &m->slots[index]->resp;
    return index;
}

void eip_multi_pop(eip_multi *m)
{
    int index;
    if (m->done_count == 0)
        return;
    index = m->done[m->done_head];
    m->done_head = (m->done_head + 1) % EIP_MULTI_MAX_SLOTS;
    m->done_count--;
    m->pending--;
    m->slots[index]->state = SLOT_FREE; /* its response stays until started again or trimmed */
}

int eip_multi_next(eip_multi *m, long timeout_ms, const eip_http_response **resp)
{
    int index = eip_multi_peek(m, timeout_ms, resp);
    if (index >= 0)
        eip_multi_pop(m);
    return index;
}

void eip_multi_trim(eip_multi *m, int index)
{
    if (index >= 0 && index < m->nslots && m->slots[index]->state == SLOT_FREE)
        eip_http_transfer_trim(&m->slots[index]->t);
}

size_t eip_multi_buffered(const eip_multi *m)
{
    size_t total = 0;
    int i;
    for (i = 0; i < m->nslots; i++)
        total += eip_http_transfer_buffered(&m->slots[i]->t);
    return total;
}

int eip_multi_pending(const eip_multi *m)
{
    return m->pending;
}

int eip_multi_cancel(eip_multi *m, int *unsent)
{
    int i, n = 0;
    if (eip_http_sockets_forked(&m->sockets))
        drop_handles(m);
    for (i = 0; i < m->nslots; i++) {
        slot *s = m->slots[i];
        if (s->state == SLOT_RUNNING) {
            curl_multi_remove_handle(m->cm, s->t.curl);
            eip_http_transfer_finish(&s->t, CURLE_ABORTED_BY_CALLBACK);
            if (unsent != NULL && s->resp.unsent)
                unsent[n++] = i;
        }
        s->state = SLOT_FREE;
        eip_http_transfer_trim(&s->t); /* no one will read its answer */
    }
    m->pending = m->done_count = m->done_head = 0;
    return n;
}

void eip_multi_halt(eip_multi *m, int sends)
{
    int i;
    for (i = 0; i < m->nslots; i++)
        if (m->slots[i]->state == SLOT_RUNNING)
            eip_http_transfer_halt(&m->slots[i]->t, sends);
}

/* ---- life cycle ----------------------------------------------------------------------- */

int eip_multi_set_limit(eip_multi *m, int limit)
{
    if (limit < 1 || limit > EIP_MULTI_MAX_SLOTS)
        return -1;
    m->limit = limit;
    if (eip_http_sockets_forked(&m->sockets))
        drop_handles(m);
    if (m->cm == NULL)
        return 0; /* set when it is made again (after a fork) */
    /* One connection per transfer in flight, and a cache that keeps them all between batches
     * (the default cache size depends on how many handles were ever added). */
    curl_multi_setopt(m->cm, CURLMOPT_MAX_HOST_CONNECTIONS, (long)limit);
    curl_multi_setopt(m->cm, CURLMOPT_MAXCONNECTS, (long)limit);
    return 0;
}

eip_multi *eip_multi_new(const eip_http_config *cfg, char *err, size_t errcap)
{
    eip_multi *m;
    if (eip_http_global_init() != 0) {
        snprintf(err, errcap, "curl_global_init failed");
        return NULL;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL || (m->cm = curl_multi_init()) == NULL) {
        free(m);
        snprintf(err, errcap, "cannot create a libcurl multi handle (out of memory)");
        return NULL;
    }
    eip_http_sockets_init(&m->sockets);
    m->insecure = cfg->insecure;
    m->ca_file = dup_or_null(cfg->ca_file);
    m->user_agent = dup_or_null(cfg->user_agent);
    if ((cfg->ca_file != NULL && m->ca_file == NULL) || (cfg->user_agent != NULL && m->user_agent == NULL)) {
        eip_multi_free(m);
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    eip_multi_set_limit(m, 8);
    return m;
}

void eip_multi_free(eip_multi *m)
{
    int i;
    if (m == NULL)
        return;
    eip_multi_cancel(m, NULL); /* in a forked child: the inherited handles are dropped first */
    for (i = 0; i < m->nslots; i++)
        slot_free(m->slots[i]);
    curl_multi_cleanup(m->cm);
    eip_http_sockets_free(&m->sockets);
    free(m->ca_file);
    free(m->user_agent);
    free(m);
}
