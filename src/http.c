/* http.c - one HTTP exchange over a reused libcurl easy handle. See http.h. */
#include "http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct eip_http {
    CURL *curl;
    char errbuf[CURL_ERROR_SIZE];
    /* Body buffer, reused across requests: it grows (up to the request's cap) and stays. */
    char *body;
    size_t body_len, body_alloc, body_cap;
    int truncated;
    eip_http_response *resp; /* the response being filled by the callbacks */
};

static int global_ready;

/* curl_global_init is reference-counted and, since 7.84, thread-safe; calling it once per
 * process from the first session is enough and keeps luaopen cheap. */
static int ensure_global_init(void)
{
    if (!global_ready && curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK)
        global_ready = 1;
    return global_ready;
}

const char *eip_http_backend_version(void)
{
    return curl_version();
}

static void copy_bounded(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* Only the headers a caller can act on are kept; each is truncated to a fixed size so a
 * hostile server cannot make us store more than a few hundred bytes of headers. */
static void capture_header(eip_http_response *r, const char *line, size_t len)
{
    static const struct {
        const char *name;
        size_t off, cap;
    } wanted[] = {
        {"x-request-id", offsetof(eip_http_response, request_id), EIP_HTTP_HEADER_VALUE_MAX},
        {"retry-after", offsetof(eip_http_response, retry_after), EIP_HTTP_HEADER_VALUE_MAX},
        {"content-type", offsetof(eip_http_response, content_type), EIP_HTTP_HEADER_VALUE_MAX},
        {"location", offsetof(eip_http_response, location), EIP_HTTP_HEADER_VALUE_MAX},
        {"x-subject-token", offsetof(eip_http_response, subject_token), EIP_HTTP_TOKEN_MAX},
    };
    const char *colon = memchr(line, ':', len);
    size_t i, nlen;
    if (colon == NULL)
        return;
    nlen = (size_t)(colon - line);
    for (i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
        if (strlen(wanted[i].name) == nlen && strncasecmp(line, wanted[i].name, nlen) == 0) {
            const char *v = colon + 1, *end = line + len;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
                end--;
            copy_bounded((char *)r + wanted[i].off, wanted[i].cap, v, (size_t)(end - v));
            return;
        }
    }
}

void eip_http_parse_header_line(eip_http_response *r, const char *line, size_t len)
{
    /* A new status line starts a new response (1xx interim answers come first): forget
     * what the previous one said. */
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        r->request_id[0] = r->retry_after[0] = '\0';
        r->content_type[0] = r->location[0] = r->subject_token[0] = '\0';
    } else {
        capture_header(r, line, len);
    }
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    eip_http *h = ud;
    size_t len = size * n;
    eip_http_parse_header_line(h->resp, data, len);
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    eip_http *h = ud;
    size_t len = size * n, room = h->body_cap - h->body_len;
    if (len > room) {
        /* Keep what fits, then abort the transfer: reading the rest would only cost time
         * and bandwidth for bytes we would throw away. */
        len = room;
        h->truncated = 1;
    }
    if (h->body_len + len + 1 > h->body_alloc) {
        size_t want = h->body_alloc ? h->body_alloc : 4096;
        char *p;
        while (want < h->body_len + len + 1)
            want *= 2;
        if (want > h->body_cap + 1)
            want = h->body_cap + 1;
        p = realloc(h->body, want);
        if (p == NULL)
            return 0;
        h->body = p;
        h->body_alloc = want;
    }
    memcpy(h->body + h->body_len, data, len);
    h->body_len += len;
    h->body[h->body_len] = '\0';
    return h->truncated ? 0 : size * n;
}

eip_http *eip_http_new(const eip_http_config *cfg, char *err, size_t errcap)
{
    eip_http *h;
    if (!ensure_global_init()) {
        snprintf(err, errcap, "curl_global_init failed");
        return NULL;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL || (h->curl = curl_easy_init()) == NULL) {
        free(h);
        snprintf(err, errcap, "cannot create a libcurl handle (out of memory)");
        return NULL;
    }
    curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, h->errbuf);
    /* Signals are unsafe in a library (and inside nginx workers); threaded DNS makes
     * timeouts work without them. */
    curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
    /* A signed request must never wander to another host, so 3xx answers are returned to
     * the caller as they are. Only http and https are ever spoken. */
    curl_easy_setopt(h->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h->curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h->curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h->curl, CURLOPT_SSL_VERIFYPEER, cfg->insecure ? 0L : 1L);
    curl_easy_setopt(h->curl, CURLOPT_SSL_VERIFYHOST, cfg->insecure ? 0L : 2L);
    if (cfg->ca_file != NULL)
        curl_easy_setopt(h->curl, CURLOPT_CAINFO, cfg->ca_file);
    if (cfg->user_agent != NULL)
        curl_easy_setopt(h->curl, CURLOPT_USERAGENT, cfg->user_agent);
    curl_easy_setopt(h->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h->curl, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, h);
    return h;
}

void eip_http_free(eip_http *h)
{
    if (h == NULL)
        return;
    curl_easy_cleanup(h->curl);
    free(h->body);
    free(h);
}

static void set_method(CURL *c, const eip_http_request *req)
{
    /* The handle is reused across methods: HTTPGET resets any previous POST state. */
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
    if (strcmp(req->method, "GET") == 0)
        return;
    if (req->body != NULL || strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    }
    if (strcmp(req->method, "POST") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
}

/* Builds the header list; also disables "Expect: 100-continue", which would add a round
 * trip to every POST for no benefit with bodies this small. */
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

static void finish_response(eip_http *h, CURLcode rc, eip_http_response *resp)
{
    long status = 0, connects = 0;
    curl_off_t us = 0;
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h->curl, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(h->curl, CURLINFO_TOTAL_TIME_T, &us);
    resp->status = status;
    resp->new_connections = connects;
    resp->elapsed = (double)us / 1e6;
    resp->body = h->body;
    resp->body_len = h->body_len;
    resp->truncated = h->truncated;
    /* A write "error" we caused ourselves at the cap is a truncated answer, not a failure. */
    resp->curl_code = (rc == CURLE_WRITE_ERROR && h->truncated) ? 0 : (int)rc;
    if (resp->curl_code != 0) {
        const char *detail = h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc);
        copy_bounded(resp->curl_error, sizeof(resp->curl_error), detail, strlen(detail));
    }
}

/* The response holds a 32 KiB token buffer: clear what is read rather than every byte, so a
 * call costs no more than it must. */
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

int eip_http_perform(eip_http *h, const eip_http_request *req, eip_http_response *resp)
{
    struct curl_slist *headers;
    CURLcode rc;
    reset_response(resp);
    h->resp = resp;
    h->body_len = 0;
    h->truncated = 0;
    h->errbuf[0] = '\0';
    h->body_cap = req->body_cap ? req->body_cap : EIP_HTTP_DEFAULT_BODY_CAP;
    if (h->body)
        h->body[0] = '\0';
    headers = build_headers(req);
    if (headers == NULL) {
        resp->curl_code = CURLE_OUT_OF_MEMORY;
        copy_bounded(resp->curl_error, sizeof(resp->curl_error), "out of memory", 13);
        return -1;
    }
    curl_easy_setopt(h->curl, CURLOPT_URL, req->url);
    set_method(h->curl, req);
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
    curl_easy_setopt(h->curl, CURLOPT_LOW_SPEED_TIME, req->low_speed_time_s);
    curl_easy_setopt(h->curl, CURLOPT_LOW_SPEED_LIMIT, req->low_speed_limit);
    rc = curl_easy_perform(h->curl);
    /* The list must outlive the transfer only; never leave a dangling pointer in the handle. */
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(headers);
    finish_response(h, rc, resp);
    h->resp = NULL;
    return resp->curl_code == 0 ? 0 : -1;
}
