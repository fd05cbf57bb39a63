/* http.h - one HTTP exchange over a reused libcurl easy handle.
 *
 * A session owns one CURL easy handle for its whole life, so consecutive requests share a
 * keep-alive connection. Everything a response can make us store is bounded: the body by
 * body_cap, X-Subject-Token by EIP_HTTP_TOKEN_MAX, every other captured header by a small
 * fixed array.
 */
#ifndef EIP_HTTP_H
#define EIP_HTTP_H

#include <stddef.h>
#include <sys/types.h>

#include <curl/curl.h>

/* CURLOPT_PROTOCOLS_STR and CURLOPT_REDIR_PROTOCOLS_STR (http.c) are 7.85.0's; older libcurl
 * only has the bitmask options, deprecated since. Refuse to build rather than fail at run
 * time with CURLE_UNKNOWN_OPTION on every request. */
#if !defined(LIBCURL_VERSION_NUM) || LIBCURL_VERSION_NUM < 0x075500
#error "lua-eip needs libcurl >= 7.85.0 (CURLOPT_PROTOCOLS_STR): install a newer libcurl development package"
#endif

#define EIP_HTTP_DEFAULT_BODY_CAP ((size_t)1 << 20) /* 1 MiB */
#define EIP_HTTP_HEADER_VALUE_MAX 256                /* captured header values, truncated beyond */
#define EIP_HTTP_ERROR_MAX 256                       /* >= CURL_ERROR_SIZE */
/* X-Subject-Token, NUL included. IAM tokens run to kilobytes and must be captured whole (a cut
 * token is useless), so the bound is the longest header line libcurl accepts at all: any
 * token libcurl delivers fits. The buffer is on the heap, allocated only by an answer that
 * carries a token (IAM logins; never a delete), so the request path keeps a small stack. */
#define EIP_HTTP_TOKEN_MAX ((size_t)CURL_MAX_HTTP_HEADER) /* 100 KiB */
/* The buffers a transfer keeps between answers, at most: a larger one, grown for one answer (a
 * body up to its cap, a token of tens of KiB), is freed once that answer has been handed over
 * (eip_http_transfer_trim), so that a session or the 64 slots of a multi do not hold a cap's
 * worth each for their whole life. Answers below these sizes (every delete, every usual token)
 * reuse their buffers without allocating. */
#define EIP_HTTP_BODY_KEEP_MAX ((size_t)256 << 10)  /* 256 KiB */
#define EIP_HTTP_TOKEN_KEEP_MAX ((size_t)16 << 10)  /* 16 KiB */
/* Header lines of one request, and their bytes (NULs included): far beyond any request the
 * library makes (a few lines, a token of kilobytes), a bound on what a caller can make us copy. */
#define EIP_HTTP_MAX_HEADERS 64
#define EIP_HTTP_HEADER_BYTES_MAX ((size_t)4 << 20) /* 4 MiB */
/* Bytes of all chunked trailer lines of one answer, line ends included: more fails (56), as a
 * head past libcurl's 300 KiB does (eip.transport's LIMITS.trailer_block). */
#define EIP_HTTP_TRAILER_BLOCK ((size_t)300 << 10)

typedef struct eip_http eip_http;

/* Fork safety. A process that forks (nginx's master into its workers, after init_by_lua made
 * a client and a call; a script calling fork) leaves each child a copy of every libcurl handle
 * and a copy of the file descriptor of every connection those handles keep alive: used from
 * two processes, one connection carries both processes' requests, and each reads answers meant
 * for the other. So a child never lets libcurl touch an inherited handle again:
 *
 * - The connections' sockets are opened and closed through callbacks (CURLOPT_OPENSOCKETFUNCTION,
 *   CURLOPT_CLOSESOCKETFUNCTION) that keep each, with the device and inode fstat gave it, in an
 *   eip_http_sockets; every set is in a process-wide registry. A pthread_atfork child handler
 *   runs in the child before fork returns there (its only thread: async-signal-safe calls only,
 *   fstat and close) and closes the child's copy of every recorded socket that is still the one
 *   recorded (a number the user's code in the parent closed and reused is left alone), then
 *   bumps the fork generation. The child holds none of the parent's connections from then on,
 *   even a worker that never calls libcurl (no copy of its keeps a connection open after the
 *   parent closed it, nor in CLOSE_WAIT after the server did), and nothing is ever sent or read
 *   on them: no request, no TLS close_notify.
 * - Every handle remembers the generation it was made in (comparing it costs no system call).
 *   The first use of an inherited one in the child, or its freeing there (a worker's garbage
 *   collector, close), abandons its libcurl handles: never called again, not even
 *   curl_easy_cleanup or curl_multi_cleanup, which would close the connections' descriptor
 *   NUMBERS (by then perhaps the user's files: daemons close what they do not know and open
 *   their own) and, over TLS, call SSL_read and SSL_shutdown on them, or wait for a resolver
 *   thread that only exists in the parent. They stay reachable in a process-wide list (leak
 *   checkers see them as reachable), one per inherited handle per fork, and new handles are made.
 *   A multi's transfers running at the fork end in the child as failures: their answers are the
 *   parent's.
 * - The prepare and parent handlers take and release the registry's lock around the fork, and
 *   the callbacks open, record, forget and close sockets under it: a fork in one thread while
 *   another (another Lua state) opens or closes a connection leaves the child a consistent
 *   registry, every socket in it. What libcurl itself holds at that moment in the other thread
 *   (OpenSSL's or the resolver's locks, a half-written request) is still copied into the child
 *   as it stood, as with any fork of a threaded process (POSIX allows only async-signal-safe
 *   calls in such a child): the child never touches the inherited handles, but its new ones
 *   share libcurl's and OpenSSL's process-wide state. Fork only single-threaded, or from the
 *   thread that uses libcurl, as nginx's master does.
 *
 * Not covered: descriptors libcurl opens without the callback (a multi's wake-up socketpair, a
 * resolver thread's) stay open in the child as copies, never used; they are local, not
 * connections. A fork that runs no pthread_atfork handlers (vfork, posix_spawn, a raw clone)
 * execs or exits at once and needs none. */
struct eip_http_socket; /* one tracked socket: its number and identity (http.c) */
typedef struct eip_http_sockets {
    struct eip_http_socket *v;
    size_t n, alloc;
    unsigned long generation; /* the fork generation the owner's handles were made in */
    struct eip_http_sockets *prev, *next; /* the registry (http.c) */
    /* The last peer address libcurl named, as text and as read (family 0: none yet): the same
     * text for every request to one endpoint, read once (http.c's ends_named) */
    char peer_text[48];
    unsigned char peer_bytes[16];
    int peer_family;
} eip_http_sockets;

/* The number of forks between this process and the first process that loaded the core (0
 * there): a pthread_atfork child handler increments it, registered once (eip_http_watch_forks,
 * which eip_http_global_init and luaopen call). 0, or -1 when the handlers could not be
 * registered (eip_http_global_init then fails: forks would go unnoticed). */
unsigned long eip_http_fork_generation(void);
int eip_http_watch_forks(void);

/* An empty set, of the current generation, in the registry (eip_http_sockets_free takes it out:
 * every set that is initialised must be freed). */
void eip_http_sockets_init(eip_http_sockets *s);
/* Has the process forked since s's generation (its handles were made in an ancestor)? */
int eip_http_sockets_forked(const eip_http_sockets *s);
/* After the owner abandoned its inherited handles: the set, emptied by the fork, is of the
 * current generation. */
void eip_http_sockets_reset(eip_http_sockets *s);
void eip_http_sockets_free(eip_http_sockets *s);

/* Keeps a libcurl handle (easy or multi) that must never be called again reachable for the
 * process's life (see "Fork safety"). Never fails: without memory for its list entry, the handle
 * is lost instead, still never called. */
void eip_http_abandon(void *handle);

typedef struct {
    const char *ca_file;  /* NULL: the system trust store */
    int insecure;         /* 1: skip TLS peer and host verification (explicit opt-out only) */
    const char *user_agent;
} eip_http_config;

typedef struct {
    const char *method;              /* "DELETE", "GET", "POST" */
    const char *url;                 /* absolute http(s) URL, already validated */
    const char *const *headers;      /* "Name: value" lines, no CR/LF */
    size_t nheaders;
    const char *body;                /* NULL or body_len bytes */
    size_t body_len;
    long timeout_ms;                 /* whole exchange, > 0 */
    long connect_timeout_ms;         /* > 0 */
    long low_speed_time_s;           /* abort when < low_speed_limit bytes/s for this long; 0: off */
    long low_speed_limit;            /* bytes per second */
    size_t body_cap;                 /* 0: EIP_HTTP_DEFAULT_BODY_CAP */
    /* The proxy, as decided in Lua (lua/eip/proxy.lua): NULL goes direct, and libcurl never
     * reads the environment (http_proxy, ALL_PROXY, no_proxy) on its own; else "http://host:port"
     * (https URLs through a CONNECT tunnel, http ones in absolute form), with Basic credentials
     * when proxy_user is not NULL. */
    const char *proxy;
    const char *proxy_user;
    const char *proxy_password;
    /* Never sent again by the transport itself (a kept-alive connection that died before any
     * answer fails, 52 or 55, as for a method that is not idempotent): each send of a signed
     * request is one more signature the gateway checks, and may refuse. */
    int no_resend;
} eip_http_request;

typedef struct {
    long status;                     /* 0 when no response status was received */
    char request_id[EIP_HTTP_HEADER_VALUE_MAX];
    char retry_after[EIP_HTTP_HEADER_VALUE_MAX];
    char content_type[EIP_HTTP_HEADER_VALUE_MAX];
    char location[EIP_HTTP_HEADER_VALUE_MAX];
    char date[EIP_HTTP_HEADER_VALUE_MAX]; /* Date: the server's clock, for a Retry-After date */
    /* X-Subject-Token (IAM): NULL unless the answer carried a non-empty one of visible ASCII
     * only; else whole and NUL-terminated, in the transfer's token buffer, valid until the next
     * request (or trim). */
    const char *subject_token;
    size_t subject_token_len;
    char *body;                      /* owned by the transfer; valid until the next request */
    size_t body_len;
    int truncated;                   /* the body exceeded body_cap: the rest was not read */
    int curl_code;                   /* CURLcode; 0 on a complete exchange */
    char curl_error[EIP_HTTP_ERROR_MAX]; /* libcurl's detail text, "" when none */
    double elapsed;                  /* seconds, as measured by libcurl */
    long new_connections;            /* connections opened for this request (0 = reused) */
    /* The proxy's own answer that ended the exchange (a CONNECT answered non-2xx, or a 407 to
     * a plain-http request: curl_code 56), 0 otherwise. Never the API's status. */
    long proxy_status;
    /* The request was sent on a kept-alive connection that died before any answer, then sent
     * again on another (libcurl does so by itself): the first send may have been carried out.
     * Only idempotent methods are sent again; a POST fails instead (curl_code 52). Needs
     * libcurl 7.80 (CURLOPT_PREREQFUNCTION); older ones resend without saying so. */
    int resent;
    /* A caught interrupt (Ctrl-C, SIGTERM, SIGHUP: interrupt.h, eip_interrupt_aborting) aborted
     * the request in flight (curl_code 42): the server may or may not have acted on it. Sessions
     * only. */
    int interrupted;
    /* On failure only: the request never went out (the prerequest callback, called before a
     * request is written to a connection, never let it go: a name that did not resolve, a
     * connect or TLS handshake that failed or timed out, a refused tunnel, a timeout before
     * sending), so the server cannot have acted on it. 0 when it may have gone out, wholly or
     * in part, and always without CURLOPT_PREREQFUNCTION (libcurl before 7.80: unknown). */
    int unsent;
    /* A multi's transfer only (multi.c): unsent, and timed out only because its caller was away
     * (between two calls that drive the multi: a batch's on_result or cancel) while its
     * connection was being made: watched, it would have had time left. The caller may start it
     * again as if it had never been started. */
    int caller_away;
    /* Unsent because its caller stopped before it could go out (eip_http_transfer_halt with
     * sends: a batch's stop or abort while its connection was being made). */
    int held_back;
} eip_http_response;

/* One reusable easy handle with its bounded buffers: a session is one of these, and each
 * slot of a multi (multi.c) is another, so both set up, send and capture identically. */
typedef struct {
    CURL *curl;
    char errbuf[CURL_ERROR_SIZE];
    /* Body buffer, reused across requests: it grows (up to the request's cap) and stays, up
     * to EIP_HTTP_BODY_KEEP_MAX (see eip_http_transfer_trim). */
    char *body;
    size_t body_len, body_alloc, body_cap;
    int truncated;
    /* X-Subject-Token buffer: NULL until an answer carries the header, then grown as needed
     * (up to EIP_HTTP_TOKEN_MAX) and reused, so no request ever allocates for it again
     * unless a longer token comes (or one over EIP_HTTP_TOKEN_KEEP_MAX was trimmed). */
    char *token;
    size_t token_alloc;
    const char *oom;            /* NULL, or what a callback could not allocate (it aborted) */
    /* Where the header callback stands in the answer, from the lines libcurl hands it (see
     * eip_http_parse_header_line): 0 before the first line of a head (its status line), then
     * inside an interim (1xx) head, inside the final head, or past it (chunked trailers).
     * Zero for each request (eip_http_transfer_prepare) and each send of it. */
    int head;
    /* NULL, or why the callback refused a line of the answer (it aborted): a status line the
     * contract does not accept (reported as code 1), or a final head's Transfer-Encoding that
     * is not chunked or identity, or holds more than 5 codings (61, as the cosocket transport
     * says it; refused_code), or chunked trailers past EIP_HTTP_TRAILER_BLOCK (56);
     * refused_text holds a text made for the answer. */
    const char *refused;
    int refused_code;
    char refused_text[128];
    /* The final answer's status code (0 before its status line), and the non-chunked transfer
     * codings its head has named so far. */
    int final_status, codings;
    /* The final head's Content-Length so far (length_seen: one was read): another value in
     * it is refused (see check_content_length). */
    int length_seen;
    long long length;
    /* Without TLS (ls_plain), on the socket the request went out on (sock_fd, below): the
     * kernel's count of the bytes it had received before the answer (rx_base_ok: known;
     * rx_exact: every one of them read by then, none left for libcurl to take as the answer),
     * and the bytes of the heads handed to the header callback since: bytes beyond an answer
     * without a body, which libcurl 7.88 drops unseen, mark the connection as not to be reused
     * (see head_ended in http.c). */
    unsigned long long rx_base, head_bytes;
    int rx_base_ok, rx_exact;
    /* Bytes of the chunked trailer lines so far, line ends included: libcurl 7.88 keeps each in
     * its header store, so an endless stream of them would grow the memory until the timeout. */
    size_t trailer_bytes;
    /* A chunked body, decoded here (see dechunk in http.c): libcurl's own decoding is off
     * (CURLOPT_HTTP_TRANSFER_DECODING), so it hands on_body the bytes as they came, framing,
     * trailers and any bytes after the last chunk included, while it still reads and checks the
     * framing itself. chunked: the final head named chunked as libcurl reads it; ck_state, the
     * size being read (ck_digits of it so far) or the data left of the chunk (ck_left), and the
     * trailer line so far (ck_line, CK_LINE_MAX bytes allocated at the first one, kept).
     * stored_header: a header line was stored before (libcurl's header store: a folded trailer
     * needs one). The socket the request went out on (sock_fd, -1: none known; sock_ino), marked
     * not to be used again when bytes follow the last chunk. */
    int chunked, ck_state, ck_digits, stored_header, ck_leftover;
    unsigned long long ck_left;
    char *ck_line;
    size_t ck_line_len;
    long sock_fd;
    ino_t sock_ino;
    /* The low-speed check of the current request (see on_progress in http.c): its limit and
     * window (0: off), where the window started (CLOCK_MONOTONIC, ms) and the bytes received
     * (head and body) before it, and whether it aborted the transfer. With the kernel's count
     * (tcpbytes.h), on a connection without TLS (ls_plain): the socket to read it from (-1:
     * none), and its count when the window started (or, in the window the request went out in,
     * when it went out). */
    long ls_limit, ls_time_s;
    long long ls_start_ms, ls_base;
    int too_slow, progress_on, ls_plain;
    long ls_fd;
    unsigned long long ls_tcp_base;
    /* The request's own deadline (CLOCK_MONOTONIC, ms; 0: none), across its sends, and whether
     * on_progress aborted the transfer past it: libcurl 7.88 checks its timeouts only between
     * reads, and reading a proxy's refusal of CONNECT with a body that never ends it never gets
     * there (timeout and connect_timeout passed, the call held as long as the proxy likes). */
    long long deadline_ms;
    int past_deadline;
    /* The deadline is the caller's to judge (a multi's transfer: eip_http_transfer_own_deadline):
     * neither libcurl's timeout nor on_progress ends the transfer for it. */
    int deadline_by_caller;
    /* A session's transfer (not a multi's, whose caller aborts it) ends at a second caught
     * interrupt (interrupt.h: eip_interrupt_aborting), as a batch's transfers do: a process that
     * catches them (the eip command) has no other way to stop a single request whose server
     * trickles its answer. */
    int abort_on_interrupt, interrupted;
    /* A proxy refused the tunnel (CONNECT answered non-2xx): on_progress aborts at once, as the
     * cosocket transport closes the connection then, rather than read the refusal's body. */
    int connect_refused;
    /* The current request is a HEAD: its answers have no body (their Transfer-Encoding is not read). */
    int head_request;
    /* The last request's header lines, then "Expect:", kept for reuse: a list whose nodes and
     * bytes are ours (libcurl only reads CURLOPT_HTTPHEADER while a transfer runs), so a request
     * whose lines changed (a signed one: its date and signature) copies them over the old ones
     * instead of allocating a node and a string per line. headers is NULL until the first
     * request, else &header_nodes[0]; header_bytes is allocated to fit and kept. */
    struct curl_slist *headers;
    struct curl_slist header_nodes[EIP_HTTP_MAX_HEADERS + 1];
    char *header_bytes;
    size_t header_bytes_alloc;
    eip_http_response *resp;    /* the response the callbacks fill */
    /* Sends of the current request (the prerequest callback counts them), whether a second
     * one is forbidden (a method that is not idempotent), and whether one was refused. */
    int sends, resend_forbidden, resend_refused;
    int no_resend; /* the request's own no_resend (a signed one), which forbids it too */
    /* The prerequest callback is set on the handle (libcurl 7.80 and later): only then does
     * sends == 0 say that nothing of the request went out (eip_http_response.unsent). */
    int counts_sends;
    /* The prerequest callback aborted the transfer before sending: its reused connection had
     * received something while idle (see on_prereq in http.c); and whether the handle is set to
     * take a fresh connection (until the next request). */
    int stale, fresh;
    /* The current send went out on a reused connection (the prerequest callback found it used
     * before); and whether the request was already sent again by the caller (see
     * eip_http_transfer_retry_stale). */
    int reused_send, own_resend;
    /* libcurl was about to send the request again by itself (a kept-alive connection died
     * before any answer): aborted, and sent again by eip_http_transfer_retry_stale within the
     * time the request has left (libcurl 7.88's own resend ran up to a second past it). */
    int libcurl_resend;
    /* The caller stopped sending (eip_http_transfer_halt: a stopped batch; or a caught interrupt,
     * interrupt.h: the first Ctrl-C stops sending): the request is not sent again, by libcurl or
     * by eip_http_transfer_retry_stale; a send that died unanswered is the attempt's failure. */
    int halted;
    /* ... and nothing is to go out at all, not even a first send (eip_http_transfer_halt with
     * sends: a batch's stop or abort); held_back: the prerequest callback kept its first send back. */
    int halted_sends, held_back;
    int answered; /* a line of an answer (an interim 1xx too) came for the current request */
    /* The proxy the handle is set to (copies of the last request's; NULL: direct), so that a
     * client sending through the same proxy (or none) sets no option again. */
    char *proxy, *proxy_user, *proxy_password;
    int proxy_unsure;           /* a proxy option could not be set: the handle's are not those */
    int tunnel;                 /* the current request goes through a CONNECT tunnel */
    /* What the handle's options were last set to, so that a request like the last one sets
     * none of them again: the method, when it was sent without a body (method_bodiless; a
     * request with a body always sets it), and the limits (-1: not set yet). */
    char method[16];
    int method_bodiless;
    long timeout_ms, connect_timeout_ms, low_speed_time_s, low_speed_limit;
    /* The URL parsed once per "scheme://authority" (see set_url in http.c): NULL until a URL
     * parsed; base is a copy of the scheme and authority it was parsed from; curlu: the handle
     * takes its URL from url (CURLOPT_CURLU) rather than from a string. */
    CURLU *url;
    char *url_base;
    size_t url_base_len;
    int curlu;
    /* The URL's host as a server's certificate must name it (see on_ssl_ctx in http.c): noted
     * with each URL parsed (a new base), its brackets and a trailing dot removed; "" when it
     * could not be (its TLS connections then fail, 60). tls_ip: an IP address, else a name. */
    char tls_host[256];
    int tls_ip;
    /* OpenSSL checks the certificate's names as the contract says (on_ssl_ctx): verification on
     * and libcurl on the OpenSSL the core links; else libcurl's own check alone. */
    int checks_names;
    /* Where the handle's connection sockets are kept (see eip_http_sockets), NULL: untracked
     * (libcurl opens and closes them itself). */
    eip_http_sockets *sockets;
} eip_http_transfer;

/* libcurl's process-wide init, done once whatever the number of threads and Lua states:
 * every constructor that creates libcurl handles (eip_http_new, eip_multi_new) calls it
 * first, so no handle ever relies on libcurl's implicit init. 0, or -1 when it failed. */
int eip_http_global_init(void);

/* Creates the easy handle with the options every request shares. 0, or -1 (out of memory).
 * libcurl must be initialised (eip_http_global_init) before. */
int eip_http_transfer_init(eip_http_transfer *t, const eip_http_config *cfg);
void eip_http_transfer_cleanup(eip_http_transfer *t);

/* Keeps the sockets of t's connections in s from now on (set before the first request). */
void eip_http_transfer_track(eip_http_transfer *t, eip_http_sockets *s);

/* Lets go of t's easy handle and of everything set on it (URL, header list, proxy, method,
 * limits), keeping the answer buffers and the tracking: the handle is abandoned
 * (eip_http_abandon), never called again (an inherited handle in a forked child). Then
 * eip_http_transfer_renew makes a new handle, set up as eip_http_transfer_init does, tracked in
 * the same set: 0, or -1 (out of memory; t->curl stays NULL, and renew may be called again). */
void eip_http_transfer_release(eip_http_transfer *t);
int eip_http_transfer_renew(eip_http_transfer *t, const eip_http_config *cfg);

/* Fills t's response as a failure with curl_code `code` and `text`, without libcurl (a
 * transfer that cannot run, or was abandoned). */
void eip_http_transfer_fail(eip_http_transfer *t, int code, const char *text);

/* Readies t for req, to fill resp. copy_body: libcurl copies the body (for transfers that
 * outlive the caller's request, as in a multi). 0, or -1 when out of memory (resp says so).
 * Trims t first (eip_http_transfer_trim), in case the last answer was not. */
int eip_http_transfer_prepare(eip_http_transfer *t, const eip_http_request *req,
                              eip_http_response *resp, int copy_body);

/* After the transfer ended with rc (and left any multi handle): fills the response. */
void eip_http_transfer_finish(eip_http_transfer *t, CURLcode rc);

/* For a multi's transfer, after eip_http_transfer_prepare: its deadline (t->deadline_ms, the
 * request's timeout from now exactly; 0: none) is the caller's to judge, after it has read what
 * arrived (eip_http_transfer_expire). libcurl checks its timeout before it reads: a multi whose
 * caller spent longer than the timeout elsewhere (a batch's on_result writing to a stalled
 * terminal) timed out answers that had arrived in time. */
void eip_http_transfer_own_deadline(eip_http_transfer *t);

/* Whether t's own deadline (see above) has passed at `now_ms`; when it has, marks t as ended by
 * it: the caller finishes it with CURLE_ABORTED_BY_CALLBACK (reported as a timeout, 28). */
int eip_http_transfer_expire(eip_http_transfer *t, long long now_ms);

/* t was not driven for `ms` (its caller was elsewhere): its low-speed window leaves that time
 * out, so the bytes that waited in the socket meanwhile are not judged slow. (Its deadline does
 * not move: a signed request's signing place lasts its timeout and a second, and the client's
 * deadline is the whole call's.) */
void eip_http_transfer_unwatched(eip_http_transfer *t, long long ms);

/* Once the last answer has been handed over (copied out of the response): frees the body
 * buffer when over EIP_HTTP_BODY_KEEP_MAX bytes and the token buffer when over
 * EIP_HTTP_TOKEN_KEEP_MAX (the response t->resp, if any, then points at neither); smaller
 * buffers stay for the next answer. Never while the transfer runs. */
void eip_http_transfer_trim(eip_http_transfer *t);

/* Bytes held by t's answer buffers (body and token), for tests and diagnostics. */
size_t eip_http_transfer_buffered(const eip_http_transfer *t);

/* NULL when libcurl cannot be initialised. Copies what it keeps of cfg. */
eip_http *eip_http_new(const eip_http_config *cfg, char *err, size_t errcap);
void eip_http_free(eip_http *h);

/* Performs the request. Returns 0 when a response was received, complete or truncated
 * (look at resp->status), -1 on a transport failure (resp->curl_code / curl_error say why).
 * resp is overwritten; its body and token pointers stay valid until the next call or
 * eip_http_free. The first request in a process forked since the session was made (or last
 * used) makes a new handle and connections (see "Fork safety" above); eip_http_free there
 * abandons the inherited handle rather than cleaning it up. */
int eip_http_perform(eip_http *h, const eip_http_request *req, eip_http_response *resp);

/* After a transfer ended with rc: when the prerequest callback aborted it because its reused
 * connection had received something while idle (nothing was sent), or when its one send on a
 * reused connection died without a byte of answer and libcurl did not send it again (see
 * "Resends" in http.c), sets it to go out again on a fresh connection and returns 1 (the caller
 * performs it, or adds it to its multi, again); otherwise 0. At most once per request each. */
int eip_http_transfer_retry_stale(eip_http_transfer *t, int rc);

/* The caller has stopped sending (a batch stopped: nothing more is to go out): t's request, in
 * flight, runs to its answer, but is not sent again if its kept-alive connection dies
 * unanswered (see "Resends" in http.c): that attempt ends as the reset it was (curl_code 52, not
 * unsent). A caught interrupt (eip_interrupts() > 0) does the same by itself. With `sends`
 * (a batch's stop or abort), not even its first send goes out if it has not yet: it ends
 * unsent, held_back.
 * Until the next request (eip_http_transfer_prepare). */
void eip_http_transfer_halt(eip_http_transfer *t, int sends);

/* eip_http_transfer_trim of the session's transfer: call it once the last response is no
 * longer needed (its body and token pointers are then invalid). eip_http_buffered: what its
 * buffers hold, in bytes (tests). */
void eip_http_trim(eip_http *h);
size_t eip_http_buffered(const eip_http *h);

/* One raw header line as libcurl delivers it (CRLF included, not NUL-terminated), into
 * t->resp. Status lines are known by their place, not their bytes: the first line of the
 * answer, and the first line after the blank line that ends an interim (1xx) head, are status
 * lines; the lines after the final head's blank line are chunked trailers. A status line must
 * be what the transport contract accepts ("HTTP/1.0" or "HTTP/1.1", one or more SP, three
 * digits 100-599, then the line end or SP) and not 101; it clears the captured headers. Any
 * other line: a wanted header is copied, anything else is ignored. X-Subject-Token goes to t's
 * token buffer, whole; an empty value, one of EIP_HTTP_TOKEN_MAX bytes or more (libcurl never
 * delivers one: it refuses such lines), or one holding a byte outside 0x21-0x7E (after the
 * leading and trailing blanks are removed) is not captured at all. A final head (not 204 or
 * 304, nor one answering a HEAD) whose Transfer-Encoding names a coding other than chunked or identity, or more than five
 * that are not chunked, is refused as the cosocket transport refuses it (61): libcurl would
 * read an empty body under an unknown coding, or decode gzip, and take "none" for identity.
 * 0; or -1 when a line is refused (t->refused says why; eip_http_transfer_finish reports code
 * 1 for a status line, keeping nothing of the answer, or 61) or the token buffer could not be
 * allocated (t->oom says so). Public
 * so that tests and the fuzz target can drive it without a network: a zeroed transfer with
 * only resp set is enough (it expects a status line first), released with
 * eip_http_transfer_cleanup. */
int eip_http_parse_header_line(eip_http_transfer *t, const char *line, size_t len);

/* What the body callback does with the next len bytes of an answer's body as libcurl hands them
 * over: kept, up to t->body_cap (more sets t->truncated); when the final head named chunked
 * (t->chunked), decoded first as libcurl 7.88 reads the framing, its trailers read as the header
 * callback reads headers, and bytes after its end noted (t->ck_leftover) and the connection
 * they came on marked not to be used again. 0; or -1 when the transfer is to end: the cap
 * reached, a trailer refused (t->refused), out of memory (t->oom). t->ck_state is EIP_CK_DONE
 * once the chunked body ended, EIP_CK_BROKEN at framing libcurl refuses (it fails the transfer
 * itself). Public so that the fuzz target can drive it as parse_header_line is driven. */
int eip_http_take_body(eip_http_transfer *t, const char *data, size_t len);
enum { EIP_CK_HEX, EIP_CK_LF, EIP_CK_DATA, EIP_CK_POSTLF, EIP_CK_TRAILER, EIP_CK_TRAILER_CR, EIP_CK_TRAILER_POSTCR,
       EIP_CK_STOP, EIP_CK_DONE, EIP_CK_BROKEN };

/* The code of a status line the transport contract accepts, line[0..len) with or without its
 * line end ("HTTP/1.0" or "HTTP/1.1", one or more SP, three digits 100-599, then the end of
 * the line or SP and a reason phrase, possibly empty); 0 for any other line. */
int eip_http_status_code(const char *line, size_t len);

/* Is libcurl's TLS backend the OpenSSL the core links? curl_ssl: curl_version_info's ssl_version
 * ("OpenSSL/3.0.19"; "GnuTLS/3.7.9", or "(OpenSSL/3.0.19) GnuTLS/3.7.9" for a backend not chosen,
 * NULL without TLS); openssl: OpenSSL_version(OPENSSL_VERSION_STRING) ("3.0.19"). 1 when
 * curl_ssl is exactly "OpenSSL/" and openssl, as libcurl writes it for the libssl it runs on:
 * only then is the SSL_CTX it hands CURLOPT_SSL_CTX_FUNCTION's callback one the core may set
 * up (see on_ssl_ctx in http.c). Public for the tests. */
int eip_http_same_openssl(const char *curl_ssl, const char *openssl);

/* "curl 7.88.1 / OpenSSL 3.0.x": for diagnostics. */
const char *eip_http_backend_version(void);

#endif
