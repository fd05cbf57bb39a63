/* http.c - one HTTP exchange over a reused libcurl easy handle. See http.h. */
#include "http.h"
#include "interrupt.h"
#include "tcpbytes.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct eip_http {
    eip_http_transfer t;
    eip_http_sockets sockets;
    /* The configuration, kept to make the handle again in a forked child. */
    char *ca_file, *user_agent;
    int insecure;
};

static void reset_response(eip_http_response *r);

/* ---- fork safety (see "Fork safety" in http.h) ----------------------------------------- */

/* A connection's ends as the prerequest callback names them: the peer's address (4 or 16 bytes,
 * by family) and port, and the local port. */
struct ends {
    int family, local_port, peer_port;
    unsigned char peer[16];
};

struct eip_http_socket {
    int fd;
    dev_t dev; /* what fstat said when it was opened: a number closed behind our back and */
    ino_t ino; /* given to someone else (the user's file) is never taken for it */
    int used;  /* a request was sent on it: a later one reuses the connection */
    int known; /* its ends were looked up (by the prerequest callback, once it was connected) */
    struct ends ends;
    /* Without TLS, the kernel's count of bytes received (tcpbytes.h) that its last answer
     * ended at, when that answer had no body (rx_known: its bytes accounted for; see
     * head_ended), and whether more came than an answer held (dirty: never used again). */
    int rx_known, dirty;
    unsigned long long rx_mark;
};

/* The registry of every socket set, the sets' contents and the abandoned handles, under one lock
 * that the prepare handler takes before a fork (and the parent and child handlers release), so
 * that no other thread is halfway through changing them when the child's copy is made. */
static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;
static eip_http_sockets *registry;

/* Handles never to be called again, kept reachable (eip_http_abandon). */
struct abandoned {
    void *handle;
    struct abandoned *next;
};
static struct abandoned *abandoned;

/* Written only by the child handler, in the child, before fork returns there (only the forking
 * thread exists then); read by the owners of handles. */
static unsigned long fork_generation;
static pthread_once_t watch_once = PTHREAD_ONCE_INIT;
static int watch_rc = -1;

static void on_fork_prepare(void)
{
    pthread_mutex_lock(&fork_lock);
}

static void on_fork_parent(void)
{
    pthread_mutex_unlock(&fork_lock);
}

/* In the child, its only thread, before fork returns: fstat and close are async-signal-safe, and
 * the lock taken by on_fork_prepare (this very thread) keeps the sets as they stood. Each set is
 * emptied: the handles that held its sockets are abandoned at their owner's next use. */
static void on_fork_child(void)
{
    eip_http_sockets *s;
    for (s = registry; s != NULL; s = s->next) {
        size_t i;
        for (i = 0; i < s->n; i++) {
            struct stat st;
            const struct eip_http_socket *e = &s->v[i];
            if (fstat(e->fd, &st) == 0 && st.st_dev == e->dev && st.st_ino == e->ino)
                close(e->fd);
        }
        s->n = 0;
    }
    fork_generation++;
    pthread_mutex_unlock(&fork_lock);
}

static void watch_forks(void)
{
    watch_rc = pthread_atfork(on_fork_prepare, on_fork_parent, on_fork_child) == 0 ? 0 : -1;
}

int eip_http_watch_forks(void)
{
    if (pthread_once(&watch_once, watch_forks) != 0)
        return -1;
    return watch_rc;
}

unsigned long eip_http_fork_generation(void)
{
    return fork_generation;
}

void eip_http_sockets_init(eip_http_sockets *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_lock(&fork_lock);
    s->generation = fork_generation;
    s->next = registry;
    if (registry != NULL)
        registry->prev = s;
    registry = s;
    pthread_mutex_unlock(&fork_lock);
}

int eip_http_sockets_forked(const eip_http_sockets *s)
{
    return s->generation != fork_generation;
}

void eip_http_sockets_reset(eip_http_sockets *s)
{
    pthread_mutex_lock(&fork_lock);
    s->n = 0;
    s->generation = fork_generation;
    pthread_mutex_unlock(&fork_lock);
}

void eip_http_sockets_free(eip_http_sockets *s)
{
    pthread_mutex_lock(&fork_lock);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else if (registry == s)
        registry = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    pthread_mutex_unlock(&fork_lock);
    free(s->v);
    s->v = NULL;
    s->n = s->alloc = 0;
}

void eip_http_abandon(void *handle)
{
    struct abandoned *a;
    if (handle == NULL)
        return;
    if ((a = malloc(sizeof(*a))) == NULL)
        return; /* lost then: still never used */
    a->handle = handle;
    pthread_mutex_lock(&fork_lock);
    a->next = abandoned;
    abandoned = a;
    pthread_mutex_unlock(&fork_lock);
}

/* A socket that an exec does not inherit: SOCK_CLOEXEC where there is one (not macOS), else
 * FD_CLOEXEC set just after (a fork and exec by another thread in between, through posix_spawn
 * which runs no fork handlers, would let the program it runs inherit it). */
static int cloexec_socket(int family, int type, int protocol)
{
#ifdef SOCK_CLOEXEC
    return socket(family, type | SOCK_CLOEXEC, protocol);
#else
    int fd = socket(family, type, protocol);
    if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
        close(fd);
        return -1;
    }
    return fd;
#endif
}

/* CURLOPT_OPENSOCKETFUNCTION: the socket libcurl would open, kept in the set (its number taken
 * again replaces a stale entry: the set holds at most one per number). Under the lock, so that a
 * fork in another thread finds it recorded (and closes it in the child) or not yet opened.
 * CURL_SOCKET_BAD, which libcurl reports as a failed connect, when the set cannot grow. */
static curl_socket_t open_socket(void *data, curlsocktype purpose, struct curl_sockaddr *a)
{
    eip_http_sockets *s = data;
    struct stat st;
    size_t i;
    int fd = -1;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    pthread_mutex_lock(&fork_lock);
    if (s->n == s->alloc) {
        size_t want = s->alloc ? 2 * s->alloc : 8;
        struct eip_http_socket *v = realloc(s->v, want * sizeof(*v));
        if (v == NULL)
            goto out;
        s->v = v;
        s->alloc = want;
    }
    fd = cloexec_socket(a->family, a->socktype, a->protocol);
    if (fd < 0)
        goto out;
    if (fstat(fd, &st) != 0) {
        close(fd);
        fd = -1;
        goto out;
    }
    for (i = 0; i < s->n && s->v[i].fd != fd; i++)
        ;
    if (i == s->n)
        s->n++;
    s->v[i].fd = fd;
    s->v[i].dev = st.st_dev;
    s->v[i].ino = st.st_ino;
    s->v[i].used = 0;
    s->v[i].known = 0;
    s->v[i].rx_known = s->v[i].dirty = 0;
out:
    pthread_mutex_unlock(&fork_lock);
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: forgotten and closed under the lock (a child forked in between
 * would keep a copy it never closes, and the connection open after the parent closed it). Only
 * ever called in the process that opened the socket: inherited handles are never called. */
static int close_socket(void *data, curl_socket_t fd)
{
    eip_http_sockets *s = data;
    size_t i;
    int rc;
    pthread_mutex_lock(&fork_lock);
    for (i = 0; i < s->n; i++) {
        if (s->v[i].fd == fd) {
            s->v[i] = s->v[--s->n];
            break;
        }
    }
    rc = close(fd);
    pthread_mutex_unlock(&fork_lock);
    return rc;
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;
/* libcurl's TLS backend is the OpenSSL the core links (eip_http_same_openssl): on_ssl_ctx can
 * check a certificate's names. Set once, by the global init. */
static int openssl_backend;

static void url_chars_init(void);

static void global_init_once(void)
{
    url_chars_init();
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    /* (after the init: a libcurl of several backends names the one it chose only then) */
    if (global_rc == CURLE_OK) {
        openssl_backend = eip_http_same_openssl(curl_version_info(CURLVERSION_NOW)->ssl_version,
                                                OpenSSL_version(OPENSSL_VERSION_STRING));
    }
}

int eip_http_same_openssl(const char *curl_ssl, const char *openssl)
{
    static const char prefix[] = "OpenSSL/";
    return curl_ssl != NULL && openssl != NULL && openssl[0] != '\0' &&
           strncmp(curl_ssl, prefix, sizeof(prefix) - 1) == 0 && strcmp(curl_ssl + sizeof(prefix) - 1, openssl) == 0;
}

/* pthread_once rather than a flag: two Lua states in two threads may open their first
 * session at the same moment, and a plain flag would be a data race that could run the
 * init twice. Run once, its answer is kept: a failed init (out of memory, no TLS backend)
 * is not retried, and libcurl's global state is never cleaned up, because other code in the
 * process (nginx modules, other Lua modules) may share it and no one of them can know it
 * is the last user. */
int eip_http_global_init(void)
{
    if (eip_http_watch_forks() != 0)
        return -1;
    if (pthread_once(&global_once, global_init_once) != 0)
        return -1;
    return global_rc == CURLE_OK ? 0 : -1;
}

const char *eip_http_backend_version(void)
{
    return curl_version();
}

/* Frees p (n bytes; NULL accepted) wiped first: it held a secret (a header line with the token
 * or the security token, the X-Subject-Token, a body with the metadata service's AK, SK and
 * security token, the proxy's password), which free would leave in the heap. */
static void wipe_free(void *p, size_t n)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, n);
        free(p);
    }
}

/* Moves *p (*alloc bytes, the first keep of them in use) to a new block of want bytes, the old
 * one wiped and freed: what realloc does, but realloc leaves the old block's bytes in the heap
 * when it moves them. Only for growth, never per request. 0, or -1 when out of memory (*p and
 * *alloc unchanged). */
static int grow_wiped(char **p, size_t *alloc, size_t keep, size_t want)
{
    char *q = malloc(want);
    if (q == NULL)
        return -1;
    if (keep > 0)
        memcpy(q, *p, keep);
    wipe_free(*p, *alloc);
    *p = q;
    *alloc = want;
    return 0;
}

static void copy_bounded(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* A captured header value, cut to cap - 1 bytes: the cut marked "..." (its last 3 bytes), as
 * every text cut by a bound is, so that the few bytes of a secret just before it are redacted
 * (the client's clean: fewer than 8 bytes of one are found nowhere else). */
static void copy_marked(char *dst, size_t cap, const char *src, size_t len)
{
    if (len < cap) {
        copy_bounded(dst, cap, src, len);
        return;
    }
    memcpy(dst, src, cap - 4);
    memcpy(dst + cap - 4, "...", 4);
}

/* A repeated header's value after the ones dst holds, as ", value" (RFC 9110 5.3's combining of
 * field lines), the whole cut to cap - 1 bytes as copy_marked cuts one value: the first
 * cap - 4 bytes, then "...". An empty value adds nothing. */
static void append_marked(char *dst, size_t cap, const char *src, size_t len)
{
    size_t cur = strlen(dst), room, sep;

    if (len == 0)
        return;
    if (cur == 0) {
        copy_marked(dst, cap, src, len);
        return;
    }
    if (cur >= cap - 1) { /* full: one more value cuts it (a cut one is marked already) */
        memcpy(dst + cap - 4, "...", 4);
        return;
    }
    room = cap - 1 - cur;
    if (len + 2 <= room) {
        memcpy(dst + cur, ", ", 2);
        memcpy(dst + cur + 2, src, len);
        dst[cur + 2 + len] = '\0';
        return;
    }
    sep = room < 2 ? room : 2;
    memcpy(dst + cur, ", ", sep);
    memcpy(dst + cur + sep, src, room - sep);
    memcpy(dst + cap - 4, "...", 4); /* over the last bytes, NUL included */
}

/* X-Subject-Token, whole, into t's token buffer: allocated by the first token, grown in
 * powers of two from 4 KiB only when a longer one comes, kept for the next answers (up to
 * EIP_HTTP_TOKEN_KEEP_MAX: see eip_http_transfer_trim). */
static int capture_token(eip_http_transfer *t, const char *v, size_t len)
{
    eip_http_response *r = t->resp;
    size_t i;
    r->subject_token = NULL;
    r->subject_token_len = 0;
    /* Empty counts as absent, as for every captured header; a cut token would be useless:
     * none is better than a wrong one. */
    if (len == 0 || len >= EIP_HTTP_TOKEN_MAX)
        return 0;
    /* The token goes back on the wire in an X-Auth-Token line: a byte that is not visible
     * ASCII (a CR, a space, a control character, a byte over 126) would make that line
     * something else, or one the header check refuses with a raw error. Such a value is no
     * token: absent, which the caller reports as an answer without one. */
    for (i = 0; i < len; i++)
        if ((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e)
            return 0;
    if (len + 1 > t->token_alloc) {
        size_t want = 4096;
        while (want < len + 1)
            want *= 2;
        if (want > EIP_HTTP_TOKEN_MAX)
            want = EIP_HTTP_TOKEN_MAX;
        /* (the old token is not kept: this one replaces it) */
        if (grow_wiped(&t->token, &t->token_alloc, 0, want) != 0) {
            t->oom = "X-Subject-Token";
            return -1;
        }
    }
    memcpy(t->token, v, len);
    t->token[len] = '\0';
    r->subject_token = t->token;
    r->subject_token_len = len;
    return 0;
}

/* Only the headers a caller can act on are kept; each but the token is truncated to a fixed
 * size, so a hostile server cannot make us store more than a few hundred bytes of them. IAM
 * names its answers with X-IAM-Trace-Id instead of X-Request-Id: it is the request id when
 * no X-Request-Id comes (before or after it). A repeated header's last value wins, but
 * Retry-After's values are all kept, joined (LIST): taking the last, "60" then "1" waited 1 s
 * and sent again; the retry policy waits for the longest. */
static int capture_header(eip_http_transfer *t, const char *line, size_t len)
{
    enum { VALUE, LIST, TOKEN, FALLBACK };
    static const struct {
        const char *name;
        size_t len; /* strlen(name) */
        int kind; /* VALUE, LIST (every value, joined), FALLBACK (only into an empty field): a
                   * char[EIP_HTTP_HEADER_VALUE_MAX] at off in eip_http_response; TOKEN: the
                   * subject token */
        size_t off;
    } wanted[] = {
#define WANTED(name) name, sizeof(name) - 1
        {WANTED("x-request-id"), VALUE, offsetof(eip_http_response, request_id)},
        {WANTED("retry-after"), LIST, offsetof(eip_http_response, retry_after)},
        {WANTED("content-type"), VALUE, offsetof(eip_http_response, content_type)},
        {WANTED("location"), VALUE, offsetof(eip_http_response, location)},
        {WANTED("date"), VALUE, offsetof(eip_http_response, date)},
        {WANTED("x-subject-token"), TOKEN, 0},
        {WANTED("x-iam-trace-id"), FALLBACK, offsetof(eip_http_response, request_id)},
#undef WANTED
    };
    const char *colon = memchr(line, ':', len);
    size_t i, nlen;
    if (colon == NULL)
        return 0;
    nlen = (size_t)(colon - line);
    for (i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
        if (wanted[i].len == nlen && strncasecmp(line, wanted[i].name, nlen) == 0) {
            const char *v = colon + 1, *end = line + len;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
                end--;
            if (wanted[i].kind == TOKEN)
                return capture_token(t, v, (size_t)(end - v));
            if (wanted[i].kind == FALLBACK && ((char *)t->resp + wanted[i].off)[0] != '\0')
                return 0;
            if (wanted[i].kind == LIST) {
                append_marked((char *)t->resp + wanted[i].off, EIP_HTTP_HEADER_VALUE_MAX, v, (size_t)(end - v));
                return 0;
            }
            copy_marked((char *)t->resp + wanted[i].off, EIP_HTTP_HEADER_VALUE_MAX, v, (size_t)(end - v));
            return 0;
        }
    }
    return 0;
}

/* Where a transfer's header callback stands (eip_http_transfer.head). */
enum { HEAD_START, HEAD_INTERIM, HEAD_FINAL, HEAD_DONE };

/* The texts of a refused status line, the same as the cosocket transport's
 * (lua/eip/transport/http1.lua). */
static const char BAD_STATUS[] =
    "Unsupported status line in response (wanted HTTP/1.0 or HTTP/1.1, then a code 100-599)";
static const char SWITCHING[] =
    "Switching Protocols (101) answered, though no protocol upgrade was asked for";

static const char TOO_MANY_CODINGS[] = "Reject response due to more than 5 content encodings";
static const char LENGTHS_DIFFER[] = "Weird server reply: Content-Length values that differ";
static const char LENGTH_TOO_LARGE[] = "Weird server reply: Content-Length too large";
static const char TOO_LARGE_TRAILERS[] = "Too large response trailers";
static const char PROXY_407[] = "Received HTTP code 407 from proxy";
#define EIP_HTTP_CUT_HEAD "Weird server reply: the connection closed inside the response's head"

/* Refuses the answer the header callback reads (libcurl aborts the transfer, and
 * eip_http_transfer_finish reports `text` with `code`): -1. */
static int refuse(eip_http_transfer *t, const char *text, int code)
{
    t->refused = text;
    t->refused_code = code;
    return -1;
}

/* The value of `line` (len bytes) after its colon when its name is `name` (lower case, any case
 * in the line), or NULL. */
static const char *value_of_named(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    const char *colon = memchr(line, ':', len);
    if (colon == NULL || (size_t)(colon - line) != n || strncasecmp(line, name, n) != 0)
        return NULL;
    return colon + 1;
}

/* A line of a final head: when it is a Content-Length of an answer with a body (a 204's and a
 * 304's are not read), each value it lists (libcurl reads the first, blanks, an optional +,
 * digits, and ignores what follows them) must be the same as every other of the head, and fit
 * in 63 bits: an answer whose length depends on which one is read (the last, as libcurl does,
 * or the first) has no body to trust: a 404 read by one as the bandwidth's absence. An element
 * without digits is left to libcurl (the first: "Invalid Content-Length", 8). 0, or -1 with
 * t->refused set (8, as the cosocket transport refuses them). */
static int check_content_length(eip_http_transfer *t, const char *line, size_t len)
{
    const char *p = value_of_named(line, len, "content-length"), *end = line + len;
    if (p == NULL || t->final_status == 204 || t->final_status == 304)
        return 0;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *b = comma != NULL ? comma : end;
        long long n = 0;
        int digits = 0;
        while (p < b && (*p == ' ' || *p == '\t'))
            p++;
        if (p < b && *p == '+')
            p++;
        while (p < b && *p >= '0' && *p <= '9') {
            int d = *p++ - '0';
            if (n > (LLONG_MAX - d) / 10)
                return refuse(t, LENGTH_TOO_LARGE, CURLE_WEIRD_SERVER_REPLY);
            n = n * 10 + d;
            digits = 1;
        }
        if (digits) {
            if (t->length_seen && n != t->length)
                return refuse(t, LENGTHS_DIFFER, CURLE_WEIRD_SERVER_REPLY);
            t->length_seen = 1;
            t->length = n;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return 0;
}

/* A line of a final head: when it is a Transfer-Encoding of an answer with a body, each coding
 * it names must be chunked or identity, and at most five of the head's not chunked (see
 * eip_http_parse_header_line). 0, or -1 with t->refused set. */
static int check_transfer_encoding(eip_http_transfer *t, const char *line, size_t len)
{
    const char *p = value_of_named(line, len, "transfer-encoding"), *end = line + len;
    if (p == NULL || t->final_status == 204 || t->final_status == 304 || t->head_request)
        return 0;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *a = p, *b = comma != NULL ? comma : end;
        size_t n;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\r' || b[-1] == '\n'))
            b--;
        n = (size_t)(b - a);
        if (n == 8 && strncasecmp(a, "identity", 8) == 0) {
            if (++t->codings > 5)
                return refuse(t, TOO_MANY_CODINGS, CURLE_BAD_CONTENT_ENCODING);
        } else if (n == 7 && strncasecmp(a, "chunked", 7) == 0) {
            t->chunked = 1; /* as libcurl reads it: its body is decoded by dechunk */
        } else if (n > 0) {
            snprintf(t->refused_text, sizeof(t->refused_text), "Unrecognized transfer encoding: %.*s%s",
                     (int)(n > 64 ? 64 : n), a, n > 64 ? "..." : "");
            return refuse(t, t->refused_text, CURLE_BAD_CONTENT_ENCODING);
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return 0;
}

int eip_http_status_code(const char *line, size_t len)
{
    size_t i = 8, end = len;
    if (end > 0 && line[end - 1] == '\n')
        end--;
    if (end > 0 && line[end - 1] == '\r')
        end--;
    if (end < 8 || memcmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1'))
        return 0;
    while (i < end && line[i] == ' ')
        i++;
    if (i == 8 || end - i < 3 || line[i] < '1' || line[i] > '5' || line[i + 1] < '0' || line[i + 1] > '9' ||
        line[i + 2] < '0' || line[i + 2] > '9' || (end - i > 3 && line[i + 3] != ' '))
        return 0;
    return (line[i] - '0') * 100 + (line[i + 1] - '0') * 10 + (line[i + 2] - '0');
}

/* The tracked socket the current request went out on (on_prereq), or NULL. */
static struct eip_http_socket *sent_on(eip_http_transfer *t)
{
    eip_http_sockets *s = t->sockets;
    size_t i;
    if (s == NULL || t->sock_fd < 0)
        return NULL;
    for (i = 0; i < s->n; i++) {
        if (s->v[i].fd == (int)t->sock_fd && s->v[i].ino == t->sock_ino)
            return &s->v[i];
    }
    return NULL;
}

/* The blank line of the final head came. Without TLS, for an answer without a body (a 204 or
 * 304, one to HEAD, a Content-Length of 0) the answer ends here, at the kernel's count when the
 * request went out plus the heads' bytes since. Whatever came in the same read after it,
 * libcurl 7.88 drops unseen ("HTTP/1.1 204 ...\r\n\r\n{}") while keeping the connection: a
 * later answer there (a duplicate sent late) would be read as the next request's. That count
 * is noted; the next request on the connection compares the kernel's count with it before
 * sending (on_prereq): more bytes, and it never sends on it again, as the cosocket transport
 * never reuses one with bytes left after its answer; exactly as many, and nothing came since
 * the answer began, which spares that request its look for pending input. (Compared there, not
 * here, the one look at the kernel also serves the idle time between the requests.) */
static void head_ended(eip_http_transfer *t)
{
    curl_off_t length = -1;
    struct eip_http_socket *sock;
    /* (rx_exact: the count it starts from is of bytes all read before the request went out, set
     * only for a tracked socket without TLS: see idle_and_clean; else the next request looks) */
    if (!t->rx_exact)
        return;
    if (!(t->final_status == 204 || t->final_status == 304 || t->head_request ||
          (curl_easy_getinfo(t->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK && length == 0)))
        return;
    if ((sock = sent_on(t)) == NULL)
        return;
    sock->rx_mark = t->rx_base + t->head_bytes;
    sock->rx_known = 1;
}

int eip_http_parse_header_line(eip_http_transfer *t, const char *line, size_t len)
{
    eip_http_response *r = t->resp;
    int code;
    if (t->head != HEAD_DONE)
        t->head_bytes += len; /* (trailers come after the body) */
    t->answered = 1; /* a line of an answer came: libcurl will not send the request again, nor will we */
    switch (t->head) {
    case HEAD_START:
        /* The first line of a head: a new answer (1xx interim answers come first). Only what
         * the contract accepts is one; libcurl has taken the line already (and is lenient:
         * "http/1.1 500" is its HTTP/1.0 200, "HTTP/2 4294967500" its 204). */
        code = eip_http_status_code(line, len);
        if (code == 0 || code == 101) {
            t->refused = code == 0 ? BAD_STATUS : SWITCHING;
            return -1;
        }
        /* Forget what the previous answer said. The token buffer stays for reuse. */
        r->request_id[0] = r->retry_after[0] = '\0';
        r->content_type[0] = r->location[0] = r->date[0] = '\0';
        r->subject_token = NULL;
        r->subject_token_len = 0;
        t->head = code < 200 ? HEAD_INTERIM : HEAD_FINAL;
        t->final_status = code < 200 ? 0 : code;
        t->codings = t->length_seen = 0;
        if (code == 407 && t->proxy != NULL && !t->tunnel) {
            /* A plain-http request's proxy refused it: its status line says all (proxy_answer);
             * the body is not waited for (one cut short or trickled was a reset or a timeout,
             * retried with the credentials again). */
            return refuse(t, PROXY_407, CURLE_RECV_ERROR);
        }
        return 0;
    case HEAD_INTERIM:
    case HEAD_FINAL:
        /* The blank line that ends a head (libcurl ends one at any line starting with CR). */
        if (len == 0 || line[0] == '\r' || line[0] == '\n') {
            t->head = t->head == HEAD_INTERIM ? HEAD_START : HEAD_DONE;
            if (t->head == HEAD_DONE && t->rx_exact)
                head_ended(t);
            return 0;
        }
        if (t->head == HEAD_FINAL &&
            (check_transfer_encoding(t, line, len) != 0 || check_content_length(t, line, len) != 0))
            return -1;
        t->stored_header = 1;
        return capture_header(t, line, len);
    default: /* trailers of a chunked body */
        t->trailer_bytes += len;
        if (t->trailer_bytes > EIP_HTTP_TRAILER_BLOCK)
            return refuse(t, TOO_LARGE_TRAILERS, CURLE_RECV_ERROR);
        return capture_header(t, line, len);
    }
}

/* Returning less than len makes libcurl abort the transfer (CURLE_WRITE_ERROR); t->oom then
 * tells eip_http_transfer_finish to report it as the out-of-memory it is. */
static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    eip_http_transfer *t = ud;
    size_t len = size * n;
    return eip_http_parse_header_line(t, data, len) == 0 ? len : 0;
}

/* Milliseconds on a monotonic clock; the coarse one where there is one (a few ms of
 * resolution, enough for windows of seconds, and cheaper: libcurl calls on_progress many
 * times in a fast request). */
static long long now_ms(void)
{
    struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0)
#endif
        clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The low-speed check, as the cosocket transport makes it (eip.transport.http1): at the end of
 * each window of low_speed_time seconds from the request's start, the bytes received in it, the
 * head's included, must reach low_speed_limit per second of it. libcurl's own check counts body
 * bytes only: a head that trickled in above the limit read as 0 bytes/s and failed (28) where
 * the cosocket transport took the answer. libcurl's check is kept set, with a window it never
 * reaches, only for the wake-ups it schedules every second, which call this.
 * libcurl counts a head's bytes as each line is whole (CURLINFO_HEADER_SIZE): one line longer
 * than a window's due (a long X-Subject-Token on a slow link) read as nothing. Where the kernel
 * counts the socket's bytes (tcpbytes.h), a window is too slow only when neither count reached
 * the limit. That count is of the socket the request went out on (on_prereq: the one the
 * transfer's tracking knows by its ends; CURLINFO_ACTIVESOCKET names a transfer's socket only
 * once it is done), from what it was when the request went out (read there anyway: see
 * head_ended), over the whole window, as the cosocket transport counts (read first a quarter of
 * a window in and judged from then, it left out what came before: a burst that carried the
 * window, then a long line trickling in, read as too slow). Only without TLS (ls_plain): on the
 * wire each TLS record adds some 22 bytes to what it carries, and a server sending one byte per
 * record read as 23 times its rate (a slow loris then held a call to its timeout, where the
 * cosocket transport cut it). */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    eip_http_transfer *t = ud;
    long long now, got;
    (void)dltotal;
    (void)ultotal;
    (void)ulnow;
    now = now_ms();
    if (t->deadline_ms != 0 && now > t->deadline_ms && !t->deadline_by_caller) {
        t->past_deadline = 1;
        return 1;
    }
    if (t->abort_on_interrupt && eip_interrupt_aborting()) {
        t->interrupted = 1;
        return 1;
    }
    if (t->tunnel && t->head == HEAD_START) {
        long connect_code = 0;
        curl_easy_getinfo(t->curl, CURLINFO_HTTP_CONNECTCODE, &connect_code);
        if (connect_code != 0 && connect_code / 100 != 2) {
            t->connect_refused = 1;
            return 1;
        }
    }
    if (t->ls_limit <= 0 || t->ls_time_s <= 0)
        return 0;
    if (now - t->ls_start_ms < (long long)t->ls_time_s * 1000)
        return 0;
    {
        /* The head's bytes as libcurl counts them, line by line as they come: a proxy's answer
         * to CONNECT included (never handed to on_header: SUPPRESS_CONNECT_HEADERS), as the
         * cosocket transport counts the tunnel's answer. */
        long header_size = 0;
        curl_easy_getinfo(t->curl, CURLINFO_HEADER_SIZE, &header_size);
        got = (long long)dlnow + header_size;
    }
    {
        unsigned long long n = 0;
        long long due = (long long)t->ls_limit * (now - t->ls_start_ms);
        int counted = t->ls_fd >= 0 && eip_tcp_bytes_received((int)t->ls_fd, &n) == 0 && n >= t->ls_tcp_base;
        if ((got - t->ls_base) * 1000 < due && !(counted && (long long)(n - t->ls_tcp_base) * 1000 >= due)) {
            t->too_slow = 1;
            return 1;
        }
        if (counted)
            t->ls_tcp_base = n;
        else
            t->ls_fd = -1;
    }
    t->ls_start_ms = now;
    t->ls_base = got;
    return 0;
}

/* libcurl's own low-speed window: longer than any request may last (see on_progress). */
#define LS_NEVER (366L * 24 * 3600)

/* An answer's chunked decoding, before it starts (each send's). */
static void reset_chunked(eip_http_transfer *t)
{
    t->chunked = t->ck_state = t->ck_digits = t->stored_header = t->ck_leftover = 0;
    t->ck_left = 0;
    if (t->ck_line_len > 0) /* (a trailer line cut short: it may hold a secret) */
        OPENSSL_cleanse(t->ck_line, t->ck_line_len);
    t->ck_line_len = 0;
}

/* Keeps len bytes of the body, up to its cap: 0, or -1 when the transfer is to end (the cap
 * reached: t->truncated; or out of memory: t->oom). */
static int keep_body(eip_http_transfer *t, const char *data, size_t len)
{
    size_t room = t->body_cap - t->body_len;
    if (len > room) {
        /* Keep what fits, then abort the transfer: reading the rest would only cost time
         * and bandwidth for bytes we would throw away. */
        len = room;
        t->truncated = 1;
    }
    if (t->body_len + len + 1 > t->body_alloc) {
        size_t want = t->body_alloc ? t->body_alloc : 4096;
        while (want < t->body_len + len + 1)
            want *= 2;
        if (want > t->body_cap + 1)
            want = t->body_cap + 1;
        if (grow_wiped(&t->body, &t->body_alloc, t->body_len, want) != 0) {
            t->oom = "response body";
            return -1;
        }
    }
    memcpy(t->body + t->body_len, data, len);
    t->body_len += len;
    t->body[t->body_len] = '\0';
    return t->truncated ? -1 : 0;
}

/* The states of a chunked body (http.h: EIP_CK_*), libcurl 7.88's (http_chunks.c), and two of
 * ours: CK_DONE, past the line that ends it; CK_BROKEN, framing libcurl refuses (it fails the
 * transfer itself). */
enum {
    CK_HEX = EIP_CK_HEX, CK_LF = EIP_CK_LF, CK_DATA = EIP_CK_DATA, CK_POSTLF = EIP_CK_POSTLF,
    CK_TRAILER = EIP_CK_TRAILER, CK_TRAILER_CR = EIP_CK_TRAILER_CR, CK_TRAILER_POSTCR = EIP_CK_TRAILER_POSTCR,
    CK_STOP = EIP_CK_STOP, CK_DONE = EIP_CK_DONE, CK_BROKEN = EIP_CK_BROKEN
};
/* libcurl's trailer line buffer (DYN_H1_TRAILER: a line, its CRLF and a NUL), and the digits of
 * a chunk's size it reads (those of a curl_off_t). */
#define CK_LINE_MAX 4096
#define CK_DIGITS_MAX 16

static const char CHUNKED_STREAM[] = "Failed reading the chunked-encoded stream";

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A trailer line, whole (without its line end), as libcurl 7.88 would have stored it and then
 * handed it to on_header: refused (43) with a NUL byte or without a colon, or folded without a
 * header line before it (its header store's checks); then counted and captured as on_header
 * did. 0, or -1 with t->refused set. */
static int trailer_line(eip_http_transfer *t)
{
    char *line = t->ck_line;
    size_t len = t->ck_line_len;
    if (memchr(line, '\0', len) != NULL || ((line[0] == ' ' || line[0] == '\t') ? !t->stored_header
                                                                                  : memchr(line, ':', len) == NULL))
        return refuse(t, CHUNKED_STREAM, CURLE_BAD_FUNCTION_ARGUMENT);
    t->stored_header = 1;
    line[len] = '\r';
    line[len + 1] = '\n';
    return eip_http_parse_header_line(t, line, len + 2);
}

/* Bytes after the chunked body's end (in the read that ended it; libcurl 7.88 drops them unseen
 * and keeps the connection): the server and this client disagree on where its answers end, and
 * whatever comes next on that connection could be read as the next request's answer. It is
 * never used again (on_prereq), as the cosocket transport never reuses one with bytes left. */
static void leftovers(eip_http_transfer *t)
{
    struct eip_http_socket *sock = sent_on(t);
    t->ck_leftover = 1;
    if (sock != NULL)
        sock->dirty = 1;
}

/* The next bytes of a chunked body as they came: the data of its chunks kept (keep_body), its
 * trailers read (trailer_line), anything after its end marks the connection (leftovers). The
 * states follow libcurl's byte for byte, so that where libcurl sees a chunk, a trailer or the
 * end, this does too; where libcurl refuses the framing, this stops (CK_BROKEN) and libcurl
 * fails the transfer with its own error. 0, or -1 when the transfer is to end (keep_body,
 * trailer_line, out of memory). */
static int dechunk(eip_http_transfer *t, const char *p, size_t len)
{
    const char *end = p + len;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        int d, rc;
        switch (t->ck_state) {
        case CK_HEX:
            if ((d = hex_value(c)) >= 0) {
                if (t->ck_digits >= CK_DIGITS_MAX) {
                    t->ck_state = CK_BROKEN; /* "Too long hexadecimal number" */
                    break;
                }
                t->ck_left = t->ck_left * 16 + (unsigned)d;
                t->ck_digits++;
                p++;
            } else if (t->ck_digits == 0 || t->ck_left > 0x7fffffffffffffffULL) /* a curl_off_t */ {
                t->ck_state = CK_BROKEN; /* "Illegal or missing hexadecimal sequence" */
            } else {
                t->ck_state = CK_LF; /* (the byte is read there) */
            }
            break;
        case CK_LF: /* anything up to the LF: chunk extensions, libcurl skips them */
            if (c == '\n')
                t->ck_state = t->ck_left == 0 ? CK_TRAILER : CK_DATA;
            p++;
            break;
        case CK_DATA: {
            size_t piece = (size_t)(end - p);
            if ((unsigned long long)piece > t->ck_left)
                piece = (size_t)t->ck_left;
            if (keep_body(t, p, piece) != 0)
                return -1;
            t->ck_left -= piece;
            p += piece;
            if (t->ck_left == 0)
                t->ck_state = CK_POSTLF;
            break;
        }
        case CK_POSTLF: /* CRs, then the LF that ends a chunk's data */
            if (c == '\n') {
                t->ck_state = CK_HEX;
                t->ck_digits = 0;
                t->ck_left = 0;
            } else if (c != '\r') {
                t->ck_state = CK_BROKEN; /* "Malformed encoding found" */
                break;
            }
            p++;
            break;
        case CK_TRAILER:
            if (c == '\r' || c == '\n') {
                if (t->ck_line_len == 0) {
                    t->ck_state = CK_TRAILER_POSTCR; /* no trailer: the final line end */
                    break;
                }
                rc = trailer_line(t);
                /* (the line, an X-Subject-Token's say, is captured now or not at all) */
                OPENSSL_cleanse(t->ck_line, t->ck_line_len);
                t->ck_line_len = 0;
                if (rc != 0)
                    return -1;
                t->ck_state = CK_TRAILER_CR;
                if (c == '\n')
                    break; /* (read there) */
            } else {
                if (t->ck_line_len + 3 >= CK_LINE_MAX) {
                    /* libcurl's buffer takes a line and its CRLF within CK_LINE_MAX - 1 bytes */
                    t->ck_state = CK_BROKEN;
                    break;
                }
                if (t->ck_line == NULL && (t->ck_line = malloc(CK_LINE_MAX)) == NULL) {
                    t->oom = "chunked trailer";
                    return -1;
                }
                t->ck_line[t->ck_line_len++] = (char)c;
            }
            p++;
            break;
        case CK_TRAILER_CR: /* the LF after a trailer's CR */
        case CK_STOP:       /* the LF of the line that ends the body */
            if (c != '\n') {
                t->ck_state = CK_BROKEN;
                break;
            }
            t->ck_state = t->ck_state == CK_STOP ? CK_DONE : CK_TRAILER_POSTCR;
            p++;
            break;
        case CK_TRAILER_POSTCR:
            if (c != '\r' && c != '\n') {
                t->ck_state = CK_TRAILER; /* another trailer */
                break;
            }
            if (c == '\r')
                p++;
            t->ck_state = CK_STOP;
            break;
        case CK_DONE:
            leftovers(t);
            return 0;
        default: /* CK_BROKEN: libcurl fails the transfer when it reads the same bytes */
            return 0;
        }
    }
    return 0;
}

int eip_http_take_body(eip_http_transfer *t, const char *data, size_t len)
{
    return t->chunked ? dechunk(t, data, len) : keep_body(t, data, len);
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    size_t len = size * n;
    return eip_http_take_body(ud, data, len) == 0 ? len : 0;
}

#if LIBCURL_VERSION_NUM >= 0x075000 /* 7.80.0: CURLOPT_PREREQFUNCTION */
/* The ends of an address pair (a sockaddr from getsockname or getpeername), 0; -1 when it is
 * neither IPv4 nor IPv6. */
static int port_and_address(const struct sockaddr_storage *a, int *port, unsigned char *addr, int *family)
{
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)a;
        *port = ntohs(in->sin_port);
        memcpy(addr, &in->sin_addr, 4);
    } else if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
        *port = ntohs(in6->sin6_port);
        memcpy(addr, &in6->sin6_addr, 16);
    } else {
        return -1;
    }
    *family = a->ss_family;
    return 0;
}

/* The ends of connected socket fd: 0, or -1. */
static int ends_of_socket(int fd, struct ends *e)
{
    struct sockaddr_storage a;
    unsigned char local[16];
    int family;
    socklen_t len = sizeof(a);
    memset(e, 0, sizeof(*e));
    if (getsockname(fd, (struct sockaddr *)&a, &len) != 0 ||
        port_and_address(&a, &e->local_port, local, &family) != 0)
        return -1;
    len = sizeof(a);
    if (getpeername(fd, (struct sockaddr *)&a, &len) != 0 ||
        port_and_address(&a, &e->peer_port, e->peer, &e->family) != 0)
        return -1;
    return 0;
}

/* The ends libcurl names (the peer's address as text): 0, or -1 when it cannot be read. The
 * text last read is kept in s with what it reads as: a client's requests name one peer. */
static int ends_named(eip_http_sockets *s, const char *peer_ip, int peer_port, int local_port, struct ends *e)
{
    size_t len;
    memset(e, 0, sizeof(*e));
    e->local_port = local_port;
    e->peer_port = peer_port;
    if (peer_ip == NULL)
        return -1;
    len = strlen(peer_ip);
    if (s->peer_family != 0 && len < sizeof(s->peer_text) && memcmp(peer_ip, s->peer_text, len + 1) == 0) {
        e->family = s->peer_family;
        memcpy(e->peer, s->peer_bytes, sizeof(e->peer));
        return 0;
    }
    if (inet_pton(AF_INET, peer_ip, e->peer) == 1)
        e->family = AF_INET;
    else if (inet_pton(AF_INET6, peer_ip, e->peer) == 1)
        e->family = AF_INET6;
    else
        return -1;
    if (len < sizeof(s->peer_text)) {
        memcpy(s->peer_text, peer_ip, len + 1);
        memcpy(s->peer_bytes, e->peer, sizeof(s->peer_bytes));
        s->peer_family = e->family;
    }
    return 0;
}

static int same_ends(const struct ends *a, const struct ends *b)
{
    return a->family == b->family && a->local_port == b->local_port && a->peer_port == b->peer_port &&
           memcmp(a->peer, b->peer, a->family == AF_INET ? 4 : 16) == 0;
}

/* The tracked socket of the connection whose ends are e, or NULL. Each socket's ends are looked
 * up once (two system calls), when no socket known so far has them: a local port alone is not
 * enough (Linux gives one port to connections to different peers). Only the thread that owns
 * the set calls this (as it opens and closes them): no lock. */
static struct eip_http_socket *socket_at(eip_http_sockets *s, const struct ends *e)
{
    size_t i;
    for (i = 0; i < s->n; i++)
        if (s->v[i].known && same_ends(&s->v[i].ends, e))
            return &s->v[i];
    for (i = 0; i < s->n; i++) {
        if (s->v[i].known)
            continue;
        if (ends_of_socket(s->v[i].fd, &s->v[i].ends) != 0)
            continue; /* not connected yet (another transfer's): looked at again next time */
        s->v[i].known = 1;
        if (same_ends(&s->v[i].ends, e))
            return &s->v[i];
    }
    return NULL;
}

/* Has the caller stopped sending (eip_http_transfer_halt), or has an interrupt been caught since
 * the request started (the first Ctrl-C stops sending: nothing more goes out)? Latched: the
 * request is not sent again from then on. */
static int halted(eip_http_transfer *t)
{
    if (!t->halted && eip_interrupts() > 0)
        t->halted = 1;
    return t->halted;
}

/* Has fd anything to read, or an error, or its end? An idle kept-alive connection has none of
 * them: bytes there are no answer to the request about to go out (a late duplicate answer,
 * the late body of a 204, a 408 sent before closing), and a reset or a close means it is dead. */
static int pending_input(int fd)
{
    struct pollfd p;
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    return poll(&p, 1, 0) != 0;
}

/* Is a reused connection, about to be sent on, established with nothing come since its last
 * answer? Without TLS, the kernel's count of the bytes it received is this request's base
 * (rx_base), read first. After an answer without a body that began from an exact base,
 * head_ended noted where it ended: that count and the connection's state say, in one look at
 * the kernel (more bytes, or an end or a reset: it is not). Otherwise a poll says, made after
 * the count: nothing to read then, and every byte counted had been read, so the base is exact
 * (rx_exact). (Polled first, a byte come between the poll and the count would be counted as
 * read: the mark after the answer would be that much too high, and a stray of that length come
 * later taken for nothing new.) */
static int idle_and_clean(eip_http_transfer *t, struct eip_http_socket *sock)
{
    unsigned long long n = 0;
    int established = 0;
    int counted = t->ls_plain && eip_tcp_bytes_state(sock->fd, &n, &established) == 0;
    if (counted) {
        if (!established || (sock->rx_known && n > sock->rx_mark))
            return 0;
        t->rx_base = n;
        t->rx_base_ok = 1;
        if (sock->rx_known && n == sock->rx_mark) {
            t->rx_exact = 1;
            return 1;
        }
    }
    if (pending_input(sock->fd))
        return 0;
    t->rx_exact = counted;
    return 1;
}

/* Called before each send of the request, on a new or a reused connection.
 * - A reused connection that received anything while idle is not used: libcurl 7.x reads what
 *   is there as the answer to the next request (another request's 204 taken for this delete's),
 *   and within a second of a reset sends on it anyway, then again on a new connection, which
 *   would count as a resend. The transfer is aborted before anything is sent, the socket shut
 *   down (libcurl then finds it dead and closes it), and the caller runs the transfer again
 *   on a fresh connection (t->stale: see eip_http_transfer_retry_stale).
 * - libcurl sends a request again by itself when a reused connection dies before any answer,
 *   though the first send may have been carried out: refused for a method that is not
 *   idempotent (the transfer then fails, see eip_http_transfer_finish); for any other, aborted
 *   and sent again by the caller (eip_http_transfer_retry_stale), within the time the request
 *   has left (libcurl's own went up to a second past it), and said (resent); refused too once
 *   the caller has stopped sending (halted). */
static int on_prereq(void *data, char *remote_ip, char *local_ip, int remote_port, int local_port)
{
    eip_http_transfer *t = data;
    struct ends ends;
    (void)local_ip;
    /* A multi's request whose deadline passed before it could go out (its caller was away while
     * its connection was being made): not sent now, to be timed out just after, the server
     * acting on a request whose answer is lost (and a signed one outliving its signing place). */
    if (t->deadline_by_caller && t->deadline_ms != 0 && now_ms() >= t->deadline_ms) {
        t->past_deadline = 1;
        return CURL_PREREQFUNC_ABORT;
    }
    /* Its caller stopped (a batch's stop or abort), or a caught interrupt said stop (a single
     * request's first Ctrl-C: nothing more goes out), before its first send: it never goes out.
     * (A batch's requests hear of an interrupt through their batch: its stop halts them.) */
    if (t->sends == 0 && (t->halted_sends || (t->abort_on_interrupt && halted(t)))) {
        t->held_back = 1;
        return CURL_PREREQFUNC_ABORT;
    }
    /* A send after one that went out (libcurl's own resend, or the fresh connection's after a
     * stale one was found at a resend) is a resend, wherever it goes: said, or refused. */
    if (t->sends > 0) {
        if (t->resend_forbidden || halted(t)) {
            t->resend_refused = 1;
            return CURL_PREREQFUNC_ABORT;
        }
        if (!t->own_resend) {
            t->libcurl_resend = 1;
            return CURL_PREREQFUNC_ABORT;
        }
        t->resp->resent = 1;
    }
    t->sock_fd = -1; /* (this send's socket, if it is tracked; its count below, without TLS) */
    t->ls_fd = -1;
    t->rx_base_ok = t->rx_exact = 0;
    if (t->sockets != NULL && ends_named(t->sockets, remote_ip, remote_port, local_port, &ends) == 0) {
        struct eip_http_socket *sock = socket_at(t->sockets, &ends);
        if (sock != NULL) {
            t->sock_fd = sock->fd;
            t->sock_ino = sock->ino;
            t->reused_send = sock->used;
            if (sock->used && (sock->dirty || !idle_and_clean(t, sock))) {
                shutdown(sock->fd, SHUT_RDWR);
                t->stale = 1; /* nothing sent on it: not counted */
                return CURL_PREREQFUNC_ABORT;
            }
            sock->used = 1;
            /* (a new connection, without TLS: the count the answer's bytes will be added to; the
             * bytes a server sent first, unread, are taken off it: libcurl will read them as the
             * answer's, and they count among its heads' bytes) */
            if (t->ls_plain && !t->rx_base_ok) {
                unsigned long long unread = 0;
                t->rx_base_ok = eip_tcp_bytes_received(sock->fd, &t->rx_base) == 0;
                t->rx_exact = t->rx_base_ok && eip_tcp_bytes_unread(sock->fd, &unread) == 0 && unread <= t->rx_base;
                if (t->rx_exact)
                    t->rx_base -= unread;
            }
            sock->rx_known = 0;
        }
        /* the socket whose kernel count on_progress reads, from its count now, over the window
         * this send falls in (a send on another: that one's) */
        if (t->ls_start_ms != 0 && t->ls_plain) {
            t->ls_fd = sock != NULL && t->rx_base_ok ? sock->fd : -1;
            t->ls_tcp_base = t->rx_base;
        }
    }
    t->head = HEAD_START; /* a send on another connection: its answer starts anew */
    t->head_bytes = 0;
    reset_chunked(t);
    t->sends++;
    return CURL_PREREQFUNC_OK;
}
#endif

/* CURLOPT_SSL_CTX_FUNCTION: libcurl calls it for each new TLS connection, before its handshake
 * (never for a connection it reuses), with the SSL_CTX it made for that connection alone
 * (7.88: one per connection), the only TLS a transfer makes: proxies are http:// (CONNECT
 * tunnels, no TLS to the proxy). It has OpenSSL's own verification check the certificate's
 * names, as the cosocket transport checks them (the same flags): a host name against its DNS
 * entries alone, an IP address against its IP entries alone, never its common name
 * (X509_CHECK_FLAG_NEVER_CHECK_SUBJECT), and a wildcard only as a whole first label, never a
 * partial one such as "f*.example.com" (X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS: libcurl 7.88's own
 * check refuses partial wildcards too, so this only makes the refusal the handshake's). libcurl's
 * own check, made after the handshake, falls back to the common name when the certificate has no
 * subjectAltName at all; it still runs, and a certificate must pass both. A failure ends the
 * handshake, nothing sent: 60, its text made in eip_http_transfer_finish. A session libcurl
 * resumes was made by a full handshake to the same host and port (its cache's key), which
 * passed this check. The host is the current request's (t->tls_host), that of the connection
 * being made: libcurl only reuses a connection, or a TLS session, for the same host and port. */
static CURLcode on_ssl_ctx(CURL *curl, void *ssl_ctx, void *data)
{
    const eip_http_transfer *t = data;
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param((SSL_CTX *)ssl_ctx);
    (void)curl;
    if (t->tls_host[0] == '\0' || param == NULL)
        return CURLE_PEER_FAILED_VERIFICATION; /* (fails closed: "error signaled by ssl ctx callback") */
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT |
                                             X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if ((t->tls_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, t->tls_host)
                   : X509_VERIFY_PARAM_set1_host(param, t->tls_host, 0)) != 1)
        return CURLE_OUT_OF_MEMORY;
    return CURLE_OK;
}

/* Notes the host of the URL t->url was just set to, as on_ssl_ctx checks it (libcurl's own check
 * reads it so: no brackets around an IPv6 address; a trailing dot ignored; an IDN name in
 * punycode); left "" (as set_url cleared it) when it cannot. */
static void note_tls_host(eip_http_transfer *t)
{
    char *host = NULL;
    const char *h;
    size_t n;
    unsigned char addr[16];
#ifdef CURLU_PUNYCODE
    unsigned int flags = CURLU_PUNYCODE;
#else
    unsigned int flags = 0;
#endif
    if (curl_url_get(t->url, CURLUPART_HOST, &host, flags) != CURLUE_OK || host == NULL) {
        curl_free(host);
        return;
    }
    h = host;
    n = strlen(h);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') { /* (a zone id is a part of its own) */
        h++;
        n -= 2;
    } else if (n >= 2 && h[n - 1] == '.') {
        n--;
    }
    if (n > 0 && n < sizeof(t->tls_host)) {
        memcpy(t->tls_host, h, n);
        t->tls_host[n] = '\0';
        t->tls_ip = inet_pton(AF_INET, t->tls_host, addr) == 1 || inet_pton(AF_INET6, t->tls_host, addr) == 1;
    }
    curl_free(host);
}

static void track(eip_http_transfer *t)
{
    if (t->sockets == NULL)
        return;
    curl_easy_setopt(t->curl, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(t->curl, CURLOPT_OPENSOCKETDATA, t->sockets);
    curl_easy_setopt(t->curl, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
    curl_easy_setopt(t->curl, CURLOPT_CLOSESOCKETDATA, t->sockets);
}

void eip_http_transfer_track(eip_http_transfer *t, eip_http_sockets *s)
{
    t->sockets = s;
    track(t);
}

int eip_http_transfer_init(eip_http_transfer *t, const eip_http_config *cfg)
{
    memset(t, 0, sizeof(*t));
    return eip_http_transfer_renew(t, cfg);
}

int eip_http_transfer_renew(eip_http_transfer *t, const eip_http_config *cfg)
{
    CURL *c;
    if ((c = t->curl = curl_easy_init()) == NULL)
        return -1;
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, t->errbuf);
    /* Signals are unsafe in a library (and inside nginx workers); threaded DNS makes
     * timeouts work without them. */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075700 /* 7.87.0: CURLOPT_QUICK_EXIT */
    /* A transfer that timed out while its name was still being resolved ends at its timeout:
     * without this, libcurl 7.88 waits for the resolver thread as it ends the transfer (in
     * curl_easy_perform, or in the multi's loop), and a DNS server that never answers (glibc:
     * 5 s x 2 tries) held a call with timeout 1 s for 10 s, a batch that long per id (the C
     * multi's handles are made here too). The thread is detached instead and frees its own
     * data when getaddrinfo returns. The code it runs stays mapped:
     * this object, and libcurl with it, is never unloaded (pin.h). Fork: the thread exists in
     * the parent only, and an inherited handle is never cleaned up in a child (http.h). (An
     * older libcurl at run time refuses the option: the wait stays.) */
    curl_easy_setopt(c, CURLOPT_QUICK_EXIT, 1L);
#endif
    /* A signed request must never wander to another host, so 3xx answers are returned to
     * the caller as they are. Only http and https are ever spoken. */
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    /* (the string options are copied by libcurl, which may run out of memory: one not set that
     * keeps a promise, the protocols, the CA file, the proxies off, fails the handle's making;
     * libcurl's defaults in their place would speak any protocol, trust the system store beside
     * ca_file, or send the token to the environment's proxy) */
    if (curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK)
        goto refused;
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    /* HTTP/1.1 only, as the transport contract says: libcurl would otherwise take HTTP/2 from
     * any TLS server offering it (ALPN h2), and the header callback, the bounds of the head
     * and a batch's connections (multiplexed streams) would no longer be what the contract
     * and the cosocket transport promise. */
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, cfg->insecure ? 0L : 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, cfg->insecure ? 0L : 2L);
    /* The names as the contract says (on_ssl_ctx). Where that cannot be (libcurl on another TLS
     * backend, whose SSL_CTX is no OpenSSL one of ours), libcurl's own check alone: verified
     * still, a common name taken when there is no subjectAltName (the README says so). */
    t->checks_names = !cfg->insecure && openssl_backend &&
                      curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, t) == CURLE_OK &&
                      curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx) == CURLE_OK;
    if (!t->checks_names)
        curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, NULL);
    /* ca_file replaces the system store, as the cosocket transport's trusted certificate does:
     * libcurl would otherwise still look issuers up in its built-in CA directory (Debian's
     * /etc/ssl/certs), and a client restricted to a private CA would accept any public one. */
    if (cfg->ca_file != NULL && (curl_easy_setopt(c, CURLOPT_CAINFO, cfg->ca_file) != CURLE_OK ||
                                 curl_easy_setopt(c, CURLOPT_CAPATH, NULL) != CURLE_OK))
        goto refused;
    if (cfg->user_agent != NULL)
        curl_easy_setopt(c, CURLOPT_USERAGENT, cfg->user_agent);
    /* Proxies are decided in Lua and set per request (set_proxy): libcurl must never pick one
     * from the environment by itself (it would follow http_proxy or ALL_PROXY even to
     * 127.0.0.1), nor let no_proxy undo the decision. An empty string disables each. */
    if (curl_easy_setopt(c, CURLOPT_PROXY, "") != CURLE_OK || curl_easy_setopt(c, CURLOPT_NOPROXY, "") != CURLE_OK)
        goto refused;
    curl_easy_setopt(c, CURLOPT_PROXYTYPE, (long)CURLPROXY_HTTP);
    /* A proxy's answer to CONNECT is not the API's: its headers never reach the captures. */
    curl_easy_setopt(c, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
    /* A chunked body comes to on_body as it came, and is decoded there (dechunk): libcurl 7.88
     * drops bytes after its end unseen and keeps the connection. */
    curl_easy_setopt(c, CURLOPT_HTTP_TRANSFER_DECODING, 0L);
#if LIBCURL_VERSION_NUM >= 0x075000
    /* (a libcurl older at run time than its headers refuses the option: sends are not counted) */
    t->counts_sends = curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, on_prereq) == CURLE_OK;
    curl_easy_setopt(c, CURLOPT_PREREQDATA, t);
#endif
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, t);
    track(t);
    /* No request's value: the first one sets every option (see eip_http_transfer_prepare); a
     * new handle has libcurl's progress callback off. */
    t->timeout_ms = t->connect_timeout_ms = t->low_speed_time_s = t->low_speed_limit = -1;
    t->progress_on = 0;
    return 0;
refused:
    curl_easy_cleanup(c);
    t->curl = NULL;
    return -1;
}

static void forget_proxy(eip_http_transfer *t)
{
    free(t->proxy);
    free(t->proxy_user);
    if (t->proxy_password != NULL)
        wipe_free(t->proxy_password, strlen(t->proxy_password));
    t->proxy = t->proxy_user = t->proxy_password = NULL;
}

void eip_http_transfer_trim(eip_http_transfer *t)
{
    eip_http_response *r = t->resp;
    if (t->body_alloc > EIP_HTTP_BODY_KEEP_MAX) {
        if (r != NULL && r->body == t->body) {
            r->body = NULL;
            r->body_len = 0;
        }
        wipe_free(t->body, t->body_alloc);
        t->body = NULL;
        t->body_alloc = t->body_len = 0;
    }
    if (t->token_alloc > EIP_HTTP_TOKEN_KEEP_MAX) {
        if (r != NULL && r->subject_token == t->token) {
            r->subject_token = NULL;
            r->subject_token_len = 0;
        }
        wipe_free(t->token, t->token_alloc);
        t->token = NULL;
        t->token_alloc = 0;
    }
}

size_t eip_http_transfer_buffered(const eip_http_transfer *t)
{
    return t->body_alloc + t->token_alloc;
}

void eip_http_transfer_release(eip_http_transfer *t)
{
    eip_http_abandon(t->curl);
    t->curl = NULL;
    curl_url_cleanup(t->url);
    t->url = NULL;
    free(t->url_base);
    t->url_base = NULL;
    t->url_base_len = 0;
    t->curlu = 0;
    t->tls_host[0] = '\0';
    forget_proxy(t);
    t->tunnel = 0;
    t->headers = NULL; /* the nodes and bytes stay ours, set again on the next handle */
    t->method_bodiless = 0;
    t->timeout_ms = t->connect_timeout_ms = t->low_speed_time_s = t->low_speed_limit = -1;
    t->progress_on = 0;
}

void eip_http_transfer_fail(eip_http_transfer *t, int code, const char *text)
{
    eip_http_response *r = t->resp;
    if (r == NULL)
        return;
    reset_response(r);
    r->curl_code = code;
    copy_bounded(r->curl_error, sizeof(r->curl_error), text, strlen(text));
}

void eip_http_transfer_cleanup(eip_http_transfer *t)
{
    curl_easy_cleanup(t->curl);
    curl_url_cleanup(t->url);
    free(t->url_base);
    forget_proxy(t);
    wipe_free(t->header_bytes, t->header_bytes_alloc);
    wipe_free(t->body, t->body_alloc);
    wipe_free(t->token, t->token_alloc);
    wipe_free(t->ck_line, t->ck_line != NULL ? CK_LINE_MAX : 0);
    memset(t, 0, sizeof(*t));
}

static char *dup_or_null(const char *s, int *failed)
{
    char *d;
    if (s == NULL)
        return NULL;
    if ((d = malloc(strlen(s) + 1)) == NULL)
        *failed = 1;
    else
        strcpy(d, s);
    return d;
}

eip_http *eip_http_new(const eip_http_config *cfg, char *err, size_t errcap)
{
    eip_http *h;
    int failed = 0;
    if (eip_http_global_init() != 0) {
        snprintf(err, errcap, "curl_global_init failed");
        return NULL;
    }
    h = calloc(1, sizeof(*h));
    if (h != NULL) {
        eip_http_sockets_init(&h->sockets);
        h->ca_file = dup_or_null(cfg->ca_file, &failed);
        h->user_agent = dup_or_null(cfg->user_agent, &failed);
        h->insecure = cfg->insecure;
    }
    if (h == NULL || failed || eip_http_transfer_init(&h->t, cfg) != 0) {
        eip_http_free(h);
        snprintf(err, errcap, "cannot create a libcurl handle (out of memory)");
        return NULL;
    }
    eip_http_transfer_track(&h->t, &h->sockets);
    return h;
}

/* First use in a forked child (see http.h): the inherited handle is abandoned (its sockets were
 * closed in the child at the fork), and a new one takes its place. 0, or -1 when it could not be
 * made (t.curl is then NULL, and the next request tries again). */
static int renew_after_fork(eip_http *h)
{
    eip_http_config cfg;
    if (eip_http_sockets_forked(&h->sockets)) {
        eip_http_transfer_release(&h->t);
        eip_http_sockets_reset(&h->sockets);
    }
    if (h->t.curl != NULL)
        return 0;
    cfg.ca_file = h->ca_file;
    cfg.user_agent = h->user_agent;
    cfg.insecure = h->insecure;
    return eip_http_transfer_renew(&h->t, &cfg);
}

void eip_http_trim(eip_http *h)
{
    eip_http_transfer_trim(&h->t);
}

size_t eip_http_buffered(const eip_http *h)
{
    return eip_http_transfer_buffered(&h->t);
}

void eip_http_free(eip_http *h)
{
    if (h == NULL)
        return;
    if (eip_http_sockets_forked(&h->sockets))
        eip_http_transfer_release(&h->t); /* inherited: abandoned, never cleaned up (http.h) */
    eip_http_transfer_cleanup(&h->t);
    eip_http_sockets_free(&h->sockets);
    free(h->ca_file);
    free(h->user_agent);
    free(h);
}

/* Does the handle already stand as req needs: the same method, sent without a body then and
 * now? (A request with a body always sets it: libcurl keeps a pointer to it, or a copy.) */
static int same_method(const eip_http_transfer *t, const eip_http_request *req)
{
    return t->method_bodiless && req->body == NULL && strcmp(t->method, req->method) == 0;
}

/* Remembers that the handle stands as req set it, for same_method. */
static void remember_method(eip_http_transfer *t, const eip_http_request *req)
{
    size_t n = strlen(req->method);
    int bodiless = req->body == NULL && strcmp(req->method, "POST") != 0 && strcmp(req->method, "PUT") != 0;
    t->method_bodiless = bodiless && n < sizeof(t->method);
    if (t->method_bodiless)
        memcpy(t->method, req->method, n + 1);
}

/* Sets a long option unless the handle has it already (*current: what it was last set to). */
static void set_long(CURL *c, CURLoption option, long *current, long value)
{
    if (*current != value && curl_easy_setopt(c, option, value) == CURLE_OK)
        *current = value;
}

/* 0, or -1 when libcurl refused an option (out of memory for a copy): then nothing is
 * remembered, and the next request sets the method again. */
static int set_method(CURL *c, const eip_http_request *req, int copy_body)
{
    int failed = 0;
    /* The handle is reused across methods: HTTPGET resets any previous POST state. */
    failed |= curl_easy_setopt(c, CURLOPT_HTTPGET, 1L) != CURLE_OK; /* (NOBODY back to 0 too) */
    failed |= curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL) != CURLE_OK;
    if (strcmp(req->method, "GET") == 0 && req->body == NULL)
        return failed ? -1 : 0;
    /* HEAD: an answer's Content-Length says what a GET would get, and no body follows (as a
     * custom method, libcurl waited for that body until the request's timeout). */
    if (strcmp(req->method, "HEAD") == 0 && req->body == NULL) {
        failed |= curl_easy_setopt(c, CURLOPT_NOBODY, 1L) != CURLE_OK;
        return failed ? -1 : 0;
    }
    if (req->body != NULL || strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0) {
        /* The size first: COPYPOSTFIELDS reads it to know how much to copy. */
        failed |= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len) != CURLE_OK;
        failed |= curl_easy_setopt(c, copy_body ? CURLOPT_COPYPOSTFIELDS : CURLOPT_POSTFIELDS,
                                   req->body ? req->body : "") != CURLE_OK;
    }
    if (strcmp(req->method, "POST") != 0)
        failed |= curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method) != CURLE_OK;
    return failed ? -1 : 0;
}

static const char EXPECT_NONE[] = "Expect:";

/* Sets t's header list to req's lines, then "Expect:" (which disables "Expect: 100-continue":
 * a round trip added to every POST for no benefit with bodies this small). The lines are copied
 * into t's own bytes, grown to fit and kept; the nodes are t's. 0, or -1 when there are too
 * many lines or bytes, or no memory (the list is then left empty). */
static int set_headers(eip_http_transfer *t, const eip_http_request *req)
{
    size_t i, total = sizeof(EXPECT_NONE), n = req->nheaders;
    char *p;
    if (n > EIP_HTTP_MAX_HEADERS)
        return -1;
    for (i = 0; i < n; i++) {
        total += strlen(req->headers[i]) + 1;
        if (total > EIP_HTTP_HEADER_BYTES_MAX)
            return -1;
    }
    if (total > t->header_bytes_alloc) {
        size_t want = t->header_bytes_alloc ? t->header_bytes_alloc : 512;
        while (want < total)
            want *= 2; /* total <= 4 MiB: no overflow */
        /* (the old lines are not kept: req's are written over them) */
        if (grow_wiped(&t->header_bytes, &t->header_bytes_alloc, 0, want) != 0)
            return -1;
    }
    p = t->header_bytes;
    for (i = 0; i <= n; i++) {
        const char *line = i < n ? req->headers[i] : EXPECT_NONE;
        size_t len = strlen(line) + 1;
        memcpy(p, line, len);
        t->header_nodes[i].data = p;
        t->header_nodes[i].next = i < n ? &t->header_nodes[i + 1] : NULL;
        p += len;
    }
    t->headers = t->header_nodes;
    return 0;
}

/* Does list hold exactly req's header lines (then "Expect:")? Comparing costs far less than
 * the allocations of building the list again. */
static int same_headers(const struct curl_slist *list, const eip_http_request *req)
{
    size_t i;
    for (i = 0; i < req->nheaders; i++, list = list->next)
        if (list == NULL || strcmp(list->data, req->headers[i]) != 0)
            return 0;
    return list != NULL && strcmp(list->data, EXPECT_NONE) == 0 && list->next == NULL;
}

/* Forgets what an answer said: its status, captured headers and body. The response holds over
 * a kilobyte of header arrays: each array's first byte is cleared rather than every byte, so a
 * call costs no more than it must. */
static void clear_answer(eip_http_response *r)
{
    r->status = 0;
    r->request_id[0] = r->retry_after[0] = r->content_type[0] = r->location[0] = r->date[0] = '\0';
    r->subject_token = NULL;
    r->subject_token_len = 0;
    r->body_len = 0;
    r->truncated = 0;
}

static void reset_response(eip_http_response *r)
{
    clear_answer(r);
    r->curl_error[0] = '\0';
    r->body = NULL;
    r->curl_code = 0;
    r->elapsed = 0;
    r->new_connections = 0;
    r->proxy_status = 0;
    r->resent = 0;
    r->interrupted = 0;
    r->unsent = 0;
    r->caller_away = r->held_back = 0;
}

/* GET, HEAD, PUT, DELETE, OPTIONS: a second send does what the first did (RFC 9110, 9.2.2). */
static int idempotent(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "DELETE") == 0 || strcmp(method, "PUT") == 0 ||
           strcmp(method, "HEAD") == 0 || strcmp(method, "OPTIONS") == 0;
}

static int same_string(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static char *copy_string(const char *s, int *failed)
{
    char *d;
    if (s == NULL)
        return NULL;
    d = malloc(strlen(s) + 1);
    if (d == NULL)
        *failed = 1;
    else
        strcpy(d, s);
    return d;
}

/* Points the handle at req's proxy, or at none. Only a change costs setopt calls (libcurl
 * copies every string option): a client sends through the same proxy, or none, every time.
 * 0, or -1 when out of memory (the handle is then left going direct). */
static int set_proxy(eip_http_transfer *t, const eip_http_request *req)
{
    CURL *c = t->curl;
    int failed = 0;
    /* https always through a CONNECT tunnel: the proxy never sees the request itself. */
    t->tunnel = req->proxy != NULL && strncasecmp(req->url, "https:", 6) == 0;
    if (t->proxy_unsure || !same_string(t->proxy, req->proxy) || !same_string(t->proxy_user, req->proxy_user)
        || !same_string(t->proxy_password, req->proxy_password)) {
        forget_proxy(t);
        t->proxy = copy_string(req->proxy, &failed);
        t->proxy_user = copy_string(req->proxy_user, &failed);
        t->proxy_password = copy_string(req->proxy_password, &failed);
        if (failed)
            forget_proxy(t);
        /* (libcurl copies each string, and may run out of memory: its old value is gone then,
         * and one left unset is libcurl's default, the environment's http_proxy. The request
         * fails, not sent; the next one sets them all again.) */
        failed |= curl_easy_setopt(c, CURLOPT_PROXY, t->proxy ? t->proxy : "") != CURLE_OK;
        failed |= curl_easy_setopt(c, CURLOPT_PROXYUSERNAME, t->proxy_user) != CURLE_OK;
        failed |= curl_easy_setopt(c, CURLOPT_PROXYPASSWORD, t->proxy_password) != CURLE_OK;
        curl_easy_setopt(c, CURLOPT_PROXYAUTH, (long)CURLAUTH_BASIC);
        t->proxy_unsure = failed;
    }
    if (t->proxy != NULL)
        curl_easy_setopt(c, CURLOPT_HTTPPROXYTUNNEL, (long)t->tunnel);
    return failed ? -1 : 0;
}

/* A proxy's own refusal is never taken for the API's answer: a CONNECT answered non-2xx
 * (libcurl fails with 56, "CONNECT tunnel failed, response N"), or a 407 to a plain-http
 * request, which libcurl returns as the status (the EIP API never answers 407). Either becomes
 * a failure with proxy_status set, and nothing of the proxy's answer is kept. */
static void proxy_answer(eip_http_transfer *t, eip_http_response *resp)
{
    long connect_code = 0;
    if (!t->tunnel && t->final_status == 407) {
        /* (whatever became of the rest: the head is not read past its status line) */
        resp->proxy_status = 407;
        resp->curl_code = CURLE_RECV_ERROR;
        snprintf(resp->curl_error, sizeof(resp->curl_error), "%s", PROXY_407);
    } else if (resp->curl_code != 0) {
        curl_easy_getinfo(t->curl, CURLINFO_HTTP_CONNECTCODE, &connect_code);
        if (!t->tunnel || connect_code == 0 || connect_code / 100 == 2)
            return;
        resp->proxy_status = connect_code;
    } else {
        return;
    }
    clear_answer(resp);
}

/* A failure to make a connection (a name, a refusal, a TLS handshake, a proxy's refusal of the
 * tunnel) after the request went out on a reused connection, which needed none: the connection
 * made to send it again after that one died unanswered (libcurl connects before the prerequest
 * callback sees the resend). */
static int reconnect_failed(const eip_http_transfer *t, CURLcode rc)
{
    int connecting = rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_COULDNT_RESOLVE_HOST ||
                     rc == CURLE_COULDNT_CONNECT || rc == CURLE_SSL_CONNECT_ERROR ||
                     rc == CURLE_PEER_FAILED_VERIFICATION || (rc == CURLE_ABORTED_BY_CALLBACK && t->connect_refused);
    if (!(t->sends == 1 && t->reused_send && !t->answered))
        return 0;
    if (!connecting && rc == CURLE_RECV_ERROR && t->tunnel) {
        long connect_code = 0;
        curl_easy_getinfo(t->curl, CURLINFO_HTTP_CONNECTCODE, &connect_code);
        connecting = connect_code != 0 && connect_code / 100 != 2; /* libcurl read the refusal itself */
    }
    return connecting;
}

/* Why a request is not sent again by the transport (see eip_http_request's no_resend). */
static const char *not_again(const eip_http_transfer *t)
{
    return t->no_resend          ? "it is signed, and each send is a signature the gateway checks"
           : t->resend_forbidden ? "its method is not idempotent"
                                 : "the caller stopped sending (a caught Ctrl-C, or its batch stopped)";
}

/* Did OpenSSL's verification fail on the names on_ssl_ctx set (libcurl's text for it)? */
static int name_mismatch(const char *errbuf)
{
    return strcmp(errbuf, "SSL certificate problem: hostname mismatch") == 0 ||
           strcmp(errbuf, "SSL certificate problem: IP address mismatch") == 0;
}

/* A request that could not go out for want of a file descriptor (the process at its limit:
 * ulimit -n, an nginx worker's worker_rlimit_nofile) fails as libcurl saw it: a host that does
 * not resolve (its resolver thread or socket), a connection or a CA file that could not be
 * opened. Said, after libcurl's text, when a descriptor cannot be had now either. */
static void say_no_descriptor(eip_http_response *resp)
{
    static const char process[] = " (no file descriptor free: the process is at its limit, EMFILE)";
    static const char whole_system[] = " (no file descriptor free: the system is at its limit, ENFILE)";
    const char *note;
    size_t n, len;
    int fd, code = resp->curl_code;
    if (code != CURLE_FAILED_INIT && code != CURLE_COULDNT_RESOLVE_PROXY && code != CURLE_COULDNT_RESOLVE_HOST &&
        code != CURLE_COULDNT_CONNECT && code != CURLE_SSL_CONNECT_ERROR && code != CURLE_SSL_CACERT_BADFILE)
        return;
    fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return;
    }
    if (errno != EMFILE && errno != ENFILE)
        return;
    note = errno == EMFILE ? process : whole_system;
    len = strlen(note) + 1;
    n = strlen(resp->curl_error);
    if (n + len <= sizeof(resp->curl_error))
        memcpy(resp->curl_error + n, note, len);
}

void eip_http_transfer_finish(eip_http_transfer *t, CURLcode rc)
{
    eip_http_response *resp = t->resp;
    long status = 0, connects = 0;
    curl_off_t us = 0;
    int lost;
    /* The header list stays with the handle (set in it, owned by t) for the next request to
     * reuse when its headers are the same, as they are on every token-authenticated call. */
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(t->curl, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(t->curl, CURLINFO_TOTAL_TIME_T, &us);
    resp->status = status;
    resp->new_connections = connects;
    resp->elapsed = (double)us / 1e6;
    resp->body = t->body;
    resp->body_len = t->body_len;
    resp->truncated = t->truncated;
    /* A write "error" we caused ourselves at the cap is a truncated answer, not a failure;
     * one caused by a failed allocation is an out-of-memory, whatever libcurl calls it. */
    resp->curl_code = (rc == CURLE_WRITE_ERROR && t->truncated) ? 0 : (int)rc;
    /* Its first send went out: the failure to send it again does not make it unsent. */
    lost = reconnect_failed(t, rc);
    if (lost && !t->resend_forbidden && !t->halted)
        resp->resent = 1;
    if (lost && (t->resend_forbidden || t->halted)) {
        /* Sent once, its connection died unanswered: what libcurl says when it does not send
         * again (it tried: the new connection failed, and would have been refused anyway); not
         * the proxy's refusal of the new tunnel, which came after the request went out. */
        resp->curl_code = CURLE_GOT_NOTHING;
        snprintf(resp->curl_error, sizeof(resp->curl_error),
                 "Empty reply from server (a kept-alive connection died before any answer; "
                 "not sent again: %s)", not_again(t));
        clear_answer(resp);
        return;
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK && t->too_slow) {
        resp->curl_code = CURLE_OPERATION_TIMEDOUT;
        snprintf(resp->curl_error, sizeof(resp->curl_error),
                 "Operation too slow. Less than %ld bytes/sec transferred the last %ld seconds", t->ls_limit,
                 t->ls_time_s);
    } else if (rc == CURLE_ABORTED_BY_CALLBACK && t->held_back) {
        resp->held_back = 1;
        snprintf(resp->curl_error, sizeof(resp->curl_error), t->halted_sends
                 ? "Not sent: its caller stopped sending before it could go out"
                 : "Not sent: an interrupt (Ctrl-C, SIGTERM or SIGHUP) said stop before it could go out");
    } else if (rc == CURLE_ABORTED_BY_CALLBACK && t->past_deadline) {
        resp->curl_code = CURLE_OPERATION_TIMEDOUT;
        snprintf(resp->curl_error, sizeof(resp->curl_error), t->sends == 0
                 ? "Operation timed out before the request was sent (the request's timeout passed)"
                 : "Operation timed out (the request's timeout passed)");
    } else if (rc == CURLE_ABORTED_BY_CALLBACK && t->interrupted) {
        resp->interrupted = 1;
        snprintf(resp->curl_error, sizeof(resp->curl_error),
                 "Aborted while in flight by an interrupt (Ctrl-C, SIGTERM or SIGHUP)");
    } else if (rc == CURLE_ABORTED_BY_CALLBACK && t->connect_refused) {
        long connect_code = 0;
        curl_easy_getinfo(t->curl, CURLINFO_HTTP_CONNECTCODE, &connect_code);
        resp->curl_code = CURLE_RECV_ERROR; /* as libcurl says it once it has read the refusal */
        snprintf(resp->curl_error, sizeof(resp->curl_error), "CONNECT tunnel failed, response %ld", connect_code);
    } else if (rc == CURLE_ABORTED_BY_CALLBACK && t->libcurl_resend) {
        /* No time was left to send it again (eip_http_transfer_retry_stale). */
        resp->curl_code = CURLE_GOT_NOTHING;
        snprintf(resp->curl_error, sizeof(resp->curl_error),
                 "Empty reply from server (a kept-alive connection died before any answer; no time left to "
                 "send it again)");
    } else if (rc != CURLE_OK && t->resend_refused) {
        /* What libcurl says when it does not send again: the connection died unanswered (the
         * prerequest callback refused the resend, 42; or the caller stopped before it: 52, 55,
         * 56, see eip_http_transfer_retry_stale). */
        resp->curl_code = CURLE_GOT_NOTHING;
        snprintf(resp->curl_error, sizeof(resp->curl_error),
                 "Empty reply from server (a kept-alive connection died before any answer; "
                 "not sent again: %s)", not_again(t));
    } else if (rc == CURLE_PEER_FAILED_VERIFICATION && name_mismatch(t->errbuf)) {
        /* (on_ssl_ctx's check, said as libcurl says its own) */
        snprintf(resp->curl_error, sizeof(resp->curl_error),
                 "SSL: no alternative certificate subject name matches target host name '%.180s'", t->tls_host);
    } else if (rc == CURLE_WRITE_ERROR && t->refused != NULL) {
        /* A line the contract does not accept (the header callback aborted): a status line (1),
         * a Transfer-Encoding (61). */
        resp->curl_code = t->refused_code != 0 ? t->refused_code : CURLE_UNSUPPORTED_PROTOCOL;
        copy_bounded(resp->curl_error, sizeof(resp->curl_error), t->refused, strlen(t->refused));
    } else if (rc == CURLE_WRITE_ERROR && t->oom != NULL) {
        resp->curl_code = CURLE_OUT_OF_MEMORY;
        snprintf(resp->curl_error, sizeof(resp->curl_error), "out of memory (%s)", t->oom);
    } else if (rc == CURLE_OUT_OF_MEMORY && t->errbuf[0] == '\0') {
        /* libcurl refuses a header line of CURL_MAX_HTTP_HEADER bytes or more with this code
         * and no text of its own; say so, as it is far likelier than a real shortage. */
        snprintf(resp->curl_error, sizeof(resp->curl_error),
                 "Out of memory, or a response header line of %d bytes or more (libcurl's limit)",
                 (int)CURL_MAX_HTTP_HEADER);
    } else if (resp->curl_code != 0) {
        const char *detail = t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc);
        copy_bounded(resp->curl_error, sizeof(resp->curl_error), detail, strlen(detail));
    }
    /* The body kept is the one libcurl read, to the byte (a chunked one decoded whole here, as
     * libcurl decoded it for its count): else this client read the answer otherwise than libcurl
     * did (a chunked body taken for a plain one, or the reverse), and its answer is not taken.
     * (Nothing kept of a plain body: nothing was handed over to count, a 204's case.) */
    if (rc == CURLE_OK && !t->head_request && (t->body_len > 0 || t->chunked)) {
        curl_off_t got = -1;
        curl_easy_getinfo(t->curl, CURLINFO_SIZE_DOWNLOAD_T, &got);
        /* (libcurl takes a body the connection closed just before its last LF: CK_STOP) */
        if (got != (curl_off_t)t->body_len || (t->chunked && t->ck_state != CK_DONE && t->ck_state != CK_STOP)) {
            resp->curl_code = CURLE_RECV_ERROR;
            snprintf(resp->curl_error, sizeof(resp->curl_error),
                     "Malformed encoding found in the body (read as %lld bytes here, %lld by libcurl)",
                     (long long)t->body_len, (long long)got);
        }
    }
    /* The connection closed inside a head, which libcurl 7.88 takes as the answer so far (a
     * line it drops unseen, one with a NUL byte, included): inside an interim head, no answer
     * came (an empty reply, as after a whole interim head); inside the final one, the answer is
     * unusable whatever its status line said (a 204 cut short is no delete done), as the
     * cosocket transport reads both (eip.transport.http1). */
    if (rc == CURLE_OK && t->head == HEAD_INTERIM) {
        clear_answer(resp);
        resp->curl_code = CURLE_GOT_NOTHING;
        snprintf(resp->curl_error, sizeof(resp->curl_error), "Empty reply from server");
    } else if (rc == CURLE_OK && t->head == HEAD_FINAL) {
        resp->curl_code = CURLE_WEIRD_SERVER_REPLY;
        snprintf(resp->curl_error, sizeof(resp->curl_error), "%s", EIP_HTTP_CUT_HEAD);
    }
    /* A failure before any final head (inside or after an interim one: a timeout, a limit): no
     * answer came, and the interim one's status and headers are not the answer's, as the
     * cosocket transport reads it (libcurl reports the interim status). */
    if (resp->curl_code != 0 && resp->status >= 100 && resp->status < 200)
        clear_answer(resp);
    /* Not an HTTP/1.x answer the contract accepts (refused above, or by libcurl itself:
     * "Received HTTP/0.9 when not allowed", "Unsupported HTTP version"): nothing of it is kept,
     * not even the status of an interim answer before it. */
    if (resp->curl_code == CURLE_UNSUPPORTED_PROTOCOL)
        clear_answer(resp);
    if (t->proxy != NULL)
        proxy_answer(t, resp);
    /* The prerequest callback never let it go: nothing of it was written to a connection. */
    resp->unsent = resp->curl_code != 0 && t->counts_sends && t->sends == 0;
    if (resp->unsent)
        say_no_descriptor(resp);
}

/* Path and query bytes that libcurl's URL parser leaves as they are: unreserved characters,
 * '/', and in the query '=' and '&'. Anything else ('%' escapes, which libcurl would lower-case
 * when set as a part; a '#'; spaces) takes the whole-URL path. URL_CHAR says what each byte is:
 * URL_PLAIN, plain in either; URL_QUERY_PLAIN, plain in a query. Filled once, by the global
 * init, which comes before any transfer. */
enum { URL_PLAIN = 1, URL_QUERY_PLAIN = 2 };
static unsigned char URL_CHAR[256];

static void url_chars_init(void)
{
    int c;
    for (c = 0; c < 256; c++) {
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '.' || c == '_' || c == '~' || c == '/';
        URL_CHAR[c] = (unsigned char)(plain ? URL_PLAIN | URL_QUERY_PLAIN : (c == '=' || c == '&') ? URL_QUERY_PLAIN : 0);
    }
}

/* Copies the path or query s[0..n) into out (NUL-terminated) when every byte is plain and, for
 * the path, it starts with '/' and holds no dot segment ("/." anywhere: libcurl would remove
 * "/./" and "/../" from a whole URL). 0, or -1 to take the whole-URL path. */
static int plain_part(const char *s, size_t n, int query, char *out, size_t cap)
{
    size_t i;
    unsigned char want = query ? URL_QUERY_PLAIN : URL_PLAIN;
    if (n >= cap || (!query && (n == 0 || s[0] != '/')))
        return -1;
    for (i = 0; i < n; i++)
        if (!(URL_CHAR[(unsigned char)s[i]] & want))
            return -1;
    if (!query) {
        const char *dot = memchr(s, '.', n);
        for (; dot != NULL; dot = memchr(dot + 1, '.', n - (size_t)(dot + 1 - s)))
            if (dot[-1] == '/') /* (s[0] is '/', so a dot has a byte before it) */
                return -1;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

#define URL_PART_MAX 2048 /* longer paths or queries take the whole-URL path */

/* Under the base t->url was parsed from, with a plain path and query: sets them on t->url and
 * points the handle at it. 0, or -1 to take the whole-URL path. */
static int set_url_parts(eip_http_transfer *t, const char *url, size_t base_len)
{
    char path[URL_PART_MAX], query[URL_PART_MAX];
    const char *rest = url + base_len, *q = strchr(rest, '?');
    size_t path_len = q ? (size_t)(q - rest) : strlen(rest);
    int has_query = q != NULL;

    if (plain_part(rest, path_len, 0, path, sizeof(path)) != 0 ||
        (has_query && (q[1] == '\0' || plain_part(q + 1, strlen(q + 1), 1, query, sizeof(query)) != 0)))
        return -1;
    if (curl_url_set(t->url, CURLUPART_PATH, path, 0) != CURLUE_OK ||
        curl_url_set(t->url, CURLUPART_QUERY, has_query ? query : NULL, 0) != CURLUE_OK)
        return -1;
    /* The string too, though t->url takes precedence (CURLOPT_CURLU's rule): libcurl reports
     * and logs it, and without it would print one from t->url for every request. */
    if (curl_easy_setopt(t->curl, CURLOPT_URL, url) != CURLE_OK)
        return -1;
    if (!t->curlu && curl_easy_setopt(t->curl, CURLOPT_CURLU, t->url) != CURLE_OK)
        return -1;
    t->curlu = 1;
    return 0;
}

/* The length of url's "scheme://authority", or 0 when it has none. */
static size_t url_base_length(const char *url)
{
    const char *p = strstr(url, "://");
    if (p == NULL)
        return 0;
    p += 3;
    p += strcspn(p, "/?#");
    return (size_t)(p - url);
}

/* Points the handle at req's URL. A client sends to one endpoint, so URLs share their
 * "scheme://authority": the first is parsed whole into t->url (libcurl's URL API); each later
 * one under it whose path and query need no normalising (plain_part) only replaces the path
 * and the query there (CURLOPT_CURLU). libcurl then parses no URL string per request: it would
 * take about 10k instructions, a tenth of a request. Any other URL is given to libcurl as a
 * string, as before, so what it accepts, refuses and sends is libcurl's own in every case. */
static CURLcode set_url(eip_http_transfer *t, const char *url)
{
    size_t base_len = url_base_length(url);
    CURLcode rc;
    if (t->url_base != NULL && base_len == t->url_base_len && memcmp(url, t->url_base, base_len) == 0 &&
        set_url_parts(t, url, base_len) == 0)
        return CURLE_OK;
    if (t->curlu) {
        curl_easy_setopt(t->curl, CURLOPT_CURLU, NULL);
        t->curlu = 0;
    }
    /* String options are copied by libcurl. One it refuses (over 8 MiB, no memory) leaves the
     * last URL in place: the request fails here, not with the last exchange's status. */
    rc = curl_easy_setopt(t->curl, CURLOPT_URL, url);
    if (rc != CURLE_OK)
        return rc;
    /* Parsed for the next URL under the same base (an unparsable one leaves no base), and its
     * host noted for the certificate's check (one that could not be parsed: none, to fail). */
    free(t->url_base);
    t->url_base = NULL;
    t->tls_host[0] = '\0';
    t->tls_ip = 0;
    if (base_len == 0 || (t->url == NULL && (t->url = curl_url()) == NULL) ||
        curl_url_set(t->url, CURLUPART_URL, url, 0) != CURLUE_OK)
        return CURLE_OK;
    note_tls_host(t);
    if (curl_url_set(t->url, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK || (t->url_base = malloc(base_len + 1)) == NULL)
        return CURLE_OK;
    memcpy(t->url_base, url, base_len);
    t->url_base[base_len] = '\0';
    t->url_base_len = base_len;
    return CURLE_OK;
}

int eip_http_transfer_prepare(eip_http_transfer *t, const eip_http_request *req,
                              eip_http_response *resp, int copy_body)
{
    CURL *c = t->curl;
    long long now;
    t->resp = NULL;
    eip_http_transfer_trim(t); /* a large answer before this one was not trimmed yet */
    reset_response(resp);
    t->resp = resp;
    t->body_len = 0;
    t->truncated = 0;
    t->oom = t->refused = NULL;
    t->refused_code = t->final_status = t->codings = t->length_seen = 0;
    t->trailer_bytes = 0;
    reset_chunked(t);
    t->sock_fd = -1;
    t->rx_base_ok = t->rx_exact = 0;
    t->head = HEAD_START;
    t->sends = t->resend_refused = t->stale = t->reused_send = t->own_resend = t->answered = 0;
    t->libcurl_resend = t->halted = t->halted_sends = t->held_back = 0;
    if (t->fresh) {
        curl_easy_setopt(t->curl, CURLOPT_FRESH_CONNECT, 0L);
        t->fresh = 0;
    }
    t->no_resend = req->no_resend != 0;
    t->resend_forbidden = !idempotent(req->method) || t->no_resend;
    t->errbuf[0] = '\0';
    t->body_cap = req->body_cap ? req->body_cap : EIP_HTTP_DEFAULT_BODY_CAP;
    if (t->body)
        t->body[0] = '\0';
    if (!same_headers(t->headers, req)) {
        /* Set once: the nodes stay where they are, only their lines change. */
        if (t->headers == NULL)
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, t->header_nodes);
        if (set_headers(t, req) != 0) {
            t->headers = NULL;
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
            resp->curl_code = CURLE_OUT_OF_MEMORY;
            static const char why[] = "out of memory, or request headers over 64 lines or 4 MiB";
            copy_bounded(resp->curl_error, sizeof(resp->curl_error), why, sizeof(why) - 1);
            return -1;
        }
    }
    if (set_proxy(t, req) != 0) {
        resp->curl_code = CURLE_OUT_OF_MEMORY;
        copy_bounded(resp->curl_error, sizeof(resp->curl_error), "out of memory", 13);
        return -1;
    }
    {
        CURLcode rc = set_url(t, req->url);
        if (rc != CURLE_OK) {
            static const char why[] = "the URL was refused (over 8 MiB, or out of memory)";
            resp->curl_code = (int)rc;
            copy_bounded(resp->curl_error, sizeof(resp->curl_error), why, sizeof(why) - 1);
            return -1;
        }
    }
    /* Options stay set on the handle: only what differs from the last request is set again
     * (a client's requests are alike: the same method, the same limits). */
    if (!same_method(t, req)) {
        t->method_bodiless = 0;
        /* (refused, libcurl out of memory copying the method or the body: the handle is left a
         * GET, which must not go out as the request asked for; set again at the next request) */
        if (set_method(c, req, copy_body) != 0) {
            static const char why[] = "out of memory (the request's method or body)";
            resp->curl_code = CURLE_OUT_OF_MEMORY;
            copy_bounded(resp->curl_error, sizeof(resp->curl_error), why, sizeof(why) - 1);
            return -1;
        }
        remember_method(t, req);
    }
    set_long(c, CURLOPT_TIMEOUT_MS, &t->timeout_ms, req->timeout_ms);
    set_long(c, CURLOPT_CONNECTTIMEOUT_MS, &t->connect_timeout_ms, req->connect_timeout_ms);
    t->head_request = req->method != NULL && strcmp(req->method, "HEAD") == 0;
    t->ls_limit = req->low_speed_limit;
    t->ls_time_s = req->low_speed_time_s;
    now = now_ms();
    t->ls_start_ms = t->ls_limit > 0 && t->ls_time_s > 0 ? now : 0;
    t->ls_base = 0;
    t->ls_fd = -1;
    /* (no TLS: an http URL, direct or through an http proxy; see on_progress) */
    t->ls_plain = req->url != NULL && strncasecmp(req->url, "http://", 7) == 0 &&
                  (req->proxy == NULL || strncasecmp(req->proxy, "http://", 7) == 0);
    t->too_slow = 0;
    /* (a few ms after libcurl's own: this one is the backstop, for where libcurl does not look) */
    t->deadline_ms = req->timeout_ms > 0 ? now + req->timeout_ms + 5 : 0;
    t->past_deadline = t->connect_refused = t->interrupted = t->deadline_by_caller = 0;
    if (t->ls_start_ms != 0) {
        set_long(c, CURLOPT_LOW_SPEED_TIME, &t->low_speed_time_s, LS_NEVER);
        set_long(c, CURLOPT_LOW_SPEED_LIMIT, &t->low_speed_limit, req->low_speed_limit);
    } else {
        set_long(c, CURLOPT_LOW_SPEED_TIME, &t->low_speed_time_s, 0);
        set_long(c, CURLOPT_LOW_SPEED_LIMIT, &t->low_speed_limit, 0);
    }
    if (t->progress_on != (t->ls_start_ms != 0 || t->deadline_ms != 0)) {
        t->progress_on = t->ls_start_ms != 0 || t->deadline_ms != 0;
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, t->progress_on ? 0L : 1L);
    }
    return 0;
}

/* Resends. libcurl sends a request again by itself when its reused connection died before a
 * byte of the answer (HTTP allows it for an idempotent method; on_prereq says it, or refuses it
 * for another), but at most five times in a handle's life: 7.88 counts them per handle and
 * resets the count only when it gives up, so a session whose server closes idle connections a
 * moment after each answer saw every sixth such delete fail with 55 or 56 where the cosocket
 * transport sends it again. What libcurl would have sent again, and did not, is sent again here,
 * once, on a fresh connection. Neither sends it again once the caller has stopped sending (a
 * stopped batch: eip_http_transfer_halt; a caught Ctrl-C): a DELETE whose connection died
 * unanswered after the user said stop was deleted by its resend; it ends as the reset it was. */
static int died_unanswered(const eip_http_transfer *t, int rc)
{
    return (rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING) && t->sends == 1
           && t->reused_send && !t->answered && t->body_len == 0 && !t->resend_forbidden && !t->own_resend;
}

/* What is left of the request's timeout after the transfer that just ended (ms; the handle's
 * limit when none is set), so that sending again never gives a request more time than it has. */
static long time_left(eip_http_transfer *t)
{
    curl_off_t us = 0;
    if (t->deadline_by_caller) {
        long long left = t->deadline_ms - now_ms();
        return t->deadline_ms == 0 ? LONG_MAX : left > LONG_MAX ? LONG_MAX : (long)left;
    }
    if (t->timeout_ms <= 0)
        return LONG_MAX;
    curl_easy_getinfo(t->curl, CURLINFO_TOTAL_TIME_T, &us);
    return t->timeout_ms - (long)(us / 1000);
}

void eip_http_transfer_own_deadline(eip_http_transfer *t)
{
    t->deadline_by_caller = 1;
    if (t->deadline_ms != 0)
        t->deadline_ms -= 5; /* (prepare's backstop slack: the caller judges it exactly) */
    set_long(t->curl, CURLOPT_TIMEOUT_MS, &t->timeout_ms, 0);
}

int eip_http_transfer_expire(eip_http_transfer *t, long long now)
{
    if (!t->deadline_by_caller || t->deadline_ms == 0 || now < t->deadline_ms)
        return 0;
    t->past_deadline = 1;
    return 1;
}

void eip_http_transfer_unwatched(eip_http_transfer *t, long long ms)
{
    if (ms <= 0)
        return;
    if (t->ls_start_ms != 0)
        t->ls_start_ms += ms;
}

void eip_http_transfer_halt(eip_http_transfer *t, int sends)
{
    t->halted = 1;
    if (sends)
        t->halted_sends = 1;
}

int eip_http_transfer_retry_stale(eip_http_transfer *t, int rc)
{
    long left;
    if (died_unanswered(t, rc) || (rc == CURLE_ABORTED_BY_CALLBACK && t->libcurl_resend)) {
        if (halted(t)) {
            /* The caller stopped meanwhile (a caught Ctrl-C, a stopped batch): what went out is
             * not sent again, after the caller said stop. The attempt ends as the reset it was
             * (it may have been carried out: not unsent), said as a refused resend. */
            t->libcurl_resend = 0;
            t->resend_refused = 1;
            return 0;
        }
        left = time_left(t);
        if (left <= 0)
            return 0; /* no time for another send: the failure stands */
        t->own_resend = 1; /* the send that follows is a resend: on_prereq says so (sends > 0) */
        t->libcurl_resend = 0;
    } else if (rc != CURLE_ABORTED_BY_CALLBACK || !t->stale) {
        return 0;
    } else if (t->sends > 0 && halted(t)) {
        /* (its fresh send would be a resend: refused, as above) */
        t->stale = 0;
        t->resend_refused = 1;
        return 0;
    } else {
        left = time_left(t);
        if (left <= 0)
            left = 1; /* it times out at once (28), nothing sent */
    }
    if (left != LONG_MAX && !t->deadline_by_caller) {
        /* The request's deadline holds across its sends (the cosocket transport has one too). */
        long connect = t->connect_timeout_ms;
        set_long(t->curl, CURLOPT_TIMEOUT_MS, &t->timeout_ms, left);
        if (connect > left)
            set_long(t->curl, CURLOPT_CONNECTTIMEOUT_MS, &t->connect_timeout_ms, left);
    }
    /* Nothing was sent on the stale connection: the request goes out on a fresh one. Its sends
     * before (a first send on a connection that then died, when libcurl's resend found the
     * stale one) still count: the fresh send is a resend then, said or refused as any. */
    t->stale = 0;
    t->head = HEAD_START;
    t->errbuf[0] = '\0';
    curl_easy_setopt(t->curl, CURLOPT_FRESH_CONNECT, 1L);
    t->fresh = 1; /* until the next request (eip_http_transfer_prepare) */
    return 1;
}

int eip_http_perform(eip_http *h, const eip_http_request *req, eip_http_response *resp)
{
    CURLcode rc;
    /* One comparison per request; a system call or two only in a child's first request. */
    if ((eip_http_sockets_forked(&h->sockets) || h->t.curl == NULL) && renew_after_fork(h) != 0) {
        h->t.resp = resp;
        eip_http_transfer_fail(&h->t, CURLE_OUT_OF_MEMORY, "out of memory (a new libcurl handle, after a fork)");
        resp->unsent = 1;
        h->t.resp = NULL;
        return -1;
    }
    h->t.abort_on_interrupt = eip_interrupt_catching(); /* (no check per progress call otherwise) */
    if (eip_http_transfer_prepare(&h->t, req, resp, 0) != 0) {
        h->t.resp = NULL; /* the caller's: never touched after this call */
        resp->unsent = 1; /* (refused before libcurl had the request: nothing of it went out) */
        return -1;
    }
    rc = curl_easy_perform(h->t.curl);
    if (eip_http_transfer_retry_stale(&h->t, rc))
        rc = curl_easy_perform(h->t.curl);
    eip_http_transfer_finish(&h->t, rc);
    h->t.resp = NULL;
    return resp->curl_code == 0 ? 0 : -1;
}
