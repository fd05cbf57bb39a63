/* multi.c - concurrent HTTP exchanges over one libcurl multi handle. See multi.h.
 *
 * The easy-handle setup and the response capture mirror http.c (same options, same bounds), so a
 * request behaves the same whether it goes through a session or a multi. Header lines are parsed
 * by http.c's public eip_http_parse_header_line.
 */
#include "multi.h"

#include <curl/curl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum slot_state { SLOT_FREE, SLOT_RUNNING, SLOT_DONE };

typedef struct {
    CURL *easy;
    enum slot_state state;
    struct curl_slist *headers; /* owned while the transfer runs */
    char errbuf[CURL_ERROR_SIZE];
    /* Body buffer, reused across transfers: it grows (up to the request's cap) and stays. */
    char *body;
    size_t body_len, body_alloc, body_cap;
    int truncated;
    /* Heap-allocated: it holds a 32 KiB token buffer, of which only the pages a response
     * writes to ever become resident. */
    eip_http_response *resp;
} slot;

struct eip_multi {
    CURLM *cm;
    char *ca_file, *user_agent; /* copies: slots are created lazily, after the config is gone */
    int insecure;
    int limit;   /* transfers in flight (and connections per host) at most */
    int pending; /* slots RUNNING or DONE */
    int nslots;  /* slots created so far */
    slot *slots[EIP_MULTI_MAX_SLOTS];
    /* Finished transfers not yet collected, oldest first (a ring: each slot is in it once). */
    int done[EIP_MULTI_MAX_SLOTS];
    int done_head, done_count;
};

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

static void copy_bounded(char *dst, size_t cap, const char *src)
{
    size_t len = strlen(src);
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* ---- callbacks ------------------------------------------------------------------------ */

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    slot *s = ud;
    eip_http_parse_header_line(s->resp, data, size * n);
    return size * n;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    slot *s = ud;
    size_t len = size * n, room = s->body_cap - s->body_len;
    if (len > room) {
        /* Keep what fits and abort the transfer, as http.c does: the rest would be thrown away. */
        len = room;
        s->truncated = 1;
    }
    if (s->body_len + len + 1 > s->body_alloc) {
        size_t want = s->body_alloc ? s->body_alloc : 4096;
        char *p;
        while (want < s->body_len + len + 1)
            want *= 2;
        if (want > s->body_cap + 1)
            want = s->body_cap + 1;
        p = realloc(s->body, want);
        if (p == NULL)
            return 0;
        s->body = p;
        s->body_alloc = want;
    }
    memcpy(s->body + s->body_len, data, len);
    s->body_len += len;
    s->body[s->body_len] = '\0';
    return s->truncated ? 0 : size * n;
}

/* ---- slots ---------------------------------------------------------------------------- */

static void slot_free(slot *s)
{
    if (s == NULL)
        return;
    curl_easy_cleanup(s->easy);
    curl_slist_free_all(s->headers);
    free(s->body);
    free(s->resp);
    free(s);
}

/* The options every request of the slot shares: set once, not per request. */
static void slot_configure(const eip_multi *m, slot *s)
{
    CURL *c = s->easy;
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    /* Never follow a redirect with a signed request; speak http(s) only (as http.c). */
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, m->insecure ? 0L : 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, m->insecure ? 0L : 2L);
    if (m->ca_file != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, m->ca_file);
    if (m->user_agent != NULL)
        curl_easy_setopt(c, CURLOPT_USERAGENT, m->user_agent);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
}

static slot *slot_new(const eip_multi *m)
{
    slot *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->resp = malloc(sizeof(*s->resp));
    s->easy = curl_easy_init();
    if (s->resp == NULL || s->easy == NULL) {
        slot_free(s);
        return NULL;
    }
    slot_configure(m, s);
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

/* ---- requests ------------------------------------------------------------------------- */

static void set_method(CURL *c, const eip_http_request *req)
{
    /* The handle is reused across methods: HTTPGET resets any previous POST state. */
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
    if (strcmp(req->method, "GET") == 0)
        return;
    if (req->body != NULL || strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0) {
        /* COPYPOSTFIELDS: the transfer outlives the caller's string. The size comes first. */
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
    }
    if (strcmp(req->method, "POST") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
}

/* The request's headers plus "Expect:" (no 100-continue round trip), as http.c sends them. */
static struct curl_slist *build_headers(const eip_http_request *req)
{
    struct curl_slist *list = NULL, *next;
    size_t i;
    for (i = 0; i <= req->nheaders; i++) {
        next = curl_slist_append(list, i < req->nheaders ? req->headers[i] : "Expect:");
        if (next == NULL) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = next;
    }
    return list;
}

/* Clears what a response reads rather than all 33 KiB of it (see http.c). */
static void reset_response(eip_http_response *r)
{
    r->status = 0;
    r->request_id[0] = r->retry_after[0] = r->content_type[0] = '\0';
    r->location[0] = r->subject_token[0] = r->curl_error[0] = '\0';
    r->body = NULL;
    r->body_len = 0;
    r->truncated = 0;
    r->curl_code = 0;
    r->elapsed = 0;
    r->new_connections = 0;
}

static void slot_reset(slot *s, const eip_http_request *req)
{
    reset_response(s->resp);
    s->body_len = 0;
    s->truncated = 0;
    s->errbuf[0] = '\0';
    s->body_cap = req->body_cap ? req->body_cap : EIP_HTTP_DEFAULT_BODY_CAP;
    if (s->body)
        s->body[0] = '\0';
}

static void set_request(slot *s, const eip_http_request *req)
{
    CURL *c = s->easy;
    curl_easy_setopt(c, CURLOPT_URL, req->url); /* string options are copied by libcurl */
    set_method(c, req);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, req->low_speed_time_s);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, req->low_speed_limit);
}

int eip_multi_start(eip_multi *m, const eip_http_request *req, char *err, size_t errcap)
{
    int index = -1;
    CURLMcode mc;
    slot *s = slot_acquire(m, &index);
    if (s == NULL) {
        snprintf(err, errcap, m->pending >= m->limit ? "no free slot (%d transfers in flight)"
                                                     : "cannot create a libcurl handle (out of memory)",
                 m->pending);
        return -1;
    }
    slot_reset(s, req);
    s->headers = build_headers(req);
    if (s->headers == NULL) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    set_request(s, req);
    mc = curl_multi_add_handle(m->cm, s->easy);
    if (mc != CURLM_OK) {
        curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, NULL);
        curl_slist_free_all(s->headers);
        s->headers = NULL;
        snprintf(err, errcap, "%s", curl_multi_strerror(mc));
        return -1;
    }
    s->state = SLOT_RUNNING;
    m->pending++;
    return index;
}

/* ---- completion ----------------------------------------------------------------------- */

static void push_done(eip_multi *m, int index)
{
    m->done[(m->done_head + m->done_count) % EIP_MULTI_MAX_SLOTS] = index;
    m->done_count++;
}

/* Removes a running transfer from the multi; the header list must not outlive it. */
static void slot_detach(eip_multi *m, slot *s)
{
    curl_multi_remove_handle(m->cm, s->easy);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(s->headers);
    s->headers = NULL;
}

static void slot_finish(eip_multi *m, int index, CURLcode rc)
{
    slot *s = m->slots[index];
    eip_http_response *r = s->resp;
    long status = 0, connects = 0;
    curl_off_t us = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(s->easy, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(s->easy, CURLINFO_TOTAL_TIME_T, &us);
    slot_detach(m, s);
    r->status = status;
    r->new_connections = connects;
    r->elapsed = (double)us / 1e6;
    r->body = s->body;
    r->body_len = s->body_len;
    r->truncated = s->truncated;
    /* A write "error" we caused ourselves at the cap is a truncated answer, not a failure. */
    r->curl_code = (rc == CURLE_WRITE_ERROR && s->truncated) ? 0 : (int)rc;
    if (r->curl_code != 0)
        copy_bounded(r->curl_error, sizeof(r->curl_error), s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
    s->state = SLOT_DONE;
    push_done(m, index);
}

static int slot_index(const eip_multi *m, const CURL *easy)
{
    int i;
    for (i = 0; i < m->nslots; i++)
        if (m->slots[i]->easy == easy)
            return i;
    return -1;
}

static void collect(eip_multi *m)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->cm, &left)) != NULL) {
        int index;
        if (msg->msg != CURLMSG_DONE)
            continue;
        index = slot_index(m, msg->easy_handle);
        if (index >= 0 && m->slots[index]->state == SLOT_RUNNING)
            slot_finish(m, index, msg->data.result);
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
        snprintf(s->errbuf, sizeof(s->errbuf), "libcurl multi: %s", curl_multi_strerror(mc));
        slot_finish(m, i, CURLE_OUT_OF_MEMORY);
    }
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs transfers until one finishes or timeout_ms passes. curl_multi_poll caps its own wait
 * at libcurl's next timer, so transfer timeouts fire on time whatever timeout_ms is. */
static void drive(eip_multi *m, long timeout_ms)
{
    long end = now_ms() + timeout_ms;
    for (;;) {
        int running;
        long left;
        CURLMcode mc = curl_multi_perform(m->cm, &running);
        if (mc != CURLM_OK) {
            fail_running(m, mc);
            return;
        }
        collect(m);
        left = end - now_ms();
        if (m->done_count > 0 || left <= 0)
            return;
        mc = curl_multi_poll(m->cm, NULL, 0, left > INT_MAX ? INT_MAX : (int)left, NULL);
        if (mc != CURLM_OK) {
            fail_running(m, mc);
            return;
        }
    }
}

int eip_multi_next(eip_multi *m, long timeout_ms, const eip_http_response **resp)
{
    int index;
    if (m->done_count == 0 && m->pending > 0)
        drive(m, timeout_ms < 0 ? 0 : timeout_ms);
    if (m->done_count == 0)
        return -1;
    index = m->done[m->done_head];
    m->done_head = (m->done_head + 1) % EIP_MULTI_MAX_SLOTS;
    m->done_count--;
    m->pending--;
    m->slots[index]->state = SLOT_FREE; /* its response stays until it is started again */
    *resp = m->slots[index]->resp;
    return index;
}

int eip_multi_pending(const eip_multi *m)
{
    return m->pending;
}

void eip_multi_cancel(eip_multi *m)
{
    int i;
    for (i = 0; i < m->nslots; i++) {
        slot *s = m->slots[i];
        if (s->state == SLOT_RUNNING)
            slot_detach(m, s);
        s->state = SLOT_FREE;
    }
    m->pending = m->done_count = m->done_head = 0;
}

/* ---- life cycle ----------------------------------------------------------------------- */

int eip_multi_set_limit(eip_multi *m, int limit)
{
    if (limit < 1 || limit > EIP_MULTI_MAX_SLOTS)
        return -1;
    m->limit = limit;
    /* One connection per transfer in flight, and a cache that keeps them all between batches
     * (the default cache size depends on how many handles were ever added). */
    curl_multi_setopt(m->cm, CURLMOPT_MAX_HOST_CONNECTIONS, (long)limit);
    curl_multi_setopt(m->cm, CURLMOPT_MAXCONNECTS, (long)limit);
    return 0;
}

eip_multi *eip_multi_new(const eip_http_config *cfg, char *err, size_t errcap)
{
    eip_multi *m;
    /* An easy handle first: it runs curl_global_init if nothing did yet (libcurl >= 7.84
     * does that itself, thread-safely), before the multi handle needs it. */
    CURL *probe = curl_easy_init();
    if (probe == NULL) {
        snprintf(err, errcap, "cannot initialise libcurl");
        return NULL;
    }
    curl_easy_cleanup(probe);
    m = calloc(1, sizeof(*m));
    if (m == NULL || (m->cm = curl_multi_init()) == NULL) {
        free(m);
        snprintf(err, errcap, "cannot create a libcurl multi handle (out of memory)");
        return NULL;
    }
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
    eip_multi_cancel(m);
    for (i = 0; i < m->nslots; i++)
        slot_free(m->slots[i]);
    curl_multi_cleanup(m->cm);
    free(m->ca_file);
    free(m->user_agent);
    free(m);
}
