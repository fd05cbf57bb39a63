/* test_http.c - C tests for the libcurl side of the core (src/http.c, src/multi.c) that need
 * no server: libcurl's one-time process init from many threads at once, the capture of
 * response headers, X-Subject-Token above all (heap buffer, whole, bounded, reused), and the
 * status lines the transport contract accepts, known by their place in the answer.
 * Exchanges over the wire are covered by the specs (spec/core_spec.lua,
 * spec/transport_conformance_spec.lua).
 */
#include "http.h"
#include "multi.h"
#include "ctest.h"

#include <pthread.h>
#include <stdlib.h>

#define NTHREADS 8

/* Each thread races to be the first to open a session and a multi: the init must run once
 * and every thread must see it done (ASan, UBSan and valgrind watch the same run). */
static void *open_handles(void *arg)
{
    static const eip_http_config cfg = {NULL, 0, "test_http"};
    char err[128];
    eip_http *h;
    eip_multi *m;
    int *ok = arg;

    *ok = eip_http_global_init() == 0;
    h = eip_http_new(&cfg, err, sizeof(err));
    m = eip_multi_new(&cfg, err, sizeof(err));
    *ok = *ok && h != NULL && m != NULL;
    eip_http_free(h);
    eip_multi_free(m);
    return NULL;
}

static void test_global_init_threads(void)
{
    pthread_t th[NTHREADS];
    int ok[NTHREADS] = {0}, started[NTHREADS] = {0};
    int i;

    for (i = 0; i < NTHREADS; i++)
        started[i] = pthread_create(&th[i], NULL, open_handles, &ok[i]) == 0;
    for (i = 0; i < NTHREADS; i++) {
        CHECK(started[i], "thread %d did not start", i);
        if (started[i])
            pthread_join(th[i], NULL);
        CHECK(ok[i], "thread %d could not open a session and a multi", i);
    }
    /* Later calls answer from the once-run init. */
    CHECK(eip_http_global_init() == 0, "global init after the threads");
    CHECK(eip_http_global_init() == 0, "global init again");
}

/* Feeds one header line, as libcurl would (CRLF included). */
static int feed(eip_http_transfer *t, const char *line)
{
    return eip_http_parse_header_line(t, line, strlen(line));
}

/* "X-Subject-Token: " + n bytes of a pattern + CRLF, on the heap; the value is in *value. */
static char *token_line(size_t n, const char **value)
{
    static const char prefix[] = "X-Subject-Token: ";
    char *line = malloc(sizeof(prefix) - 1 + n + 3);
    size_t i;
    if (line == NULL)
        return NULL;
    memcpy(line, prefix, sizeof(prefix) - 1);
    for (i = 0; i < n; i++)
        line[sizeof(prefix) - 1 + i] = (char)('A' + i % 26);
    memcpy(line + sizeof(prefix) - 1 + n, "\r\n", 3);
    *value = line + sizeof(prefix) - 1;
    return line;
}

static int token_is(const eip_http_response *r, const char *value, size_t n)
{
    return r->subject_token != NULL && r->subject_token_len == n &&
           memcmp(r->subject_token, value, n) == 0 && r->subject_token[n] == '\0';
}

/* An answer without the header allocates nothing; the first token does. */
static void test_token_lazy(void)
{
    eip_http_transfer t;
    eip_http_response r;

    memset(&t, 0, sizeof(t));
    memset(&r, 0, sizeof(r));
    t.resp = &r;
    CHECK(feed(&t, "HTTP/1.1 204 No Content\r\n") == 0, "status line");
    CHECK(feed(&t, "X-Request-Id: abc\r\n") == 0, "request id");
    CHECK(feed(&t, "X-Subject-Token:   \r\n") == 0, "empty token");
    CHECK(r.subject_token == NULL && r.subject_token_len == 0, "an empty token is absent");
    CHECK(t.token == NULL && t.token_alloc == 0, "no token, no buffer");
    CHECK_STR(r.request_id, "abc");
    CHECK(feed(&t, "x-SUBJECT-token: \t MIItoken \r\n") == 0, "token");
    CHECK(token_is(&r, "MIItoken", 8), "token trimmed, any case of the name");
    CHECK(t.token != NULL && t.token_alloc == 4096, "first token: one 4 KiB buffer, got %zu",
          t.token_alloc);
    eip_http_transfer_cleanup(&t);
    CHECK(t.token == NULL, "cleanup releases the token buffer");
}

/* Tokens of every size up to the bound come whole; the buffer grows only for a longer one
 * and is reused otherwise; a new status line forgets the token but keeps the buffer. Each
 * token comes in an interim answer (103), so that the next status line follows its blank
 * line, as in one exchange. */
static void test_token_sizes(void)
{
    static const size_t sizes[] = {1, 4095, 4096, 10000, 32767, 32768, 65536,
                                   EIP_HTTP_TOKEN_MAX - 1};
    eip_http_transfer t;
    eip_http_response r;
    const char *value;
    char *line, *buf;
    size_t i;

    memset(&t, 0, sizeof(t));
    memset(&r, 0, sizeof(r));
    t.resp = &r;
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        line = token_line(sizes[i], &value);
        CHECK(line != NULL, "malloc");
        if (line == NULL)
            break;
        CHECK(feed(&t, "HTTP/1.1 103 Early Hints\r\n") == 0, "status");
        CHECK(r.subject_token == NULL, "a status line forgets the token");
        CHECK(feed(&t, line) == 0, "token of %zu bytes", sizes[i]);
        CHECK(token_is(&r, value, sizes[i]), "token of %zu bytes captured whole", sizes[i]);
        CHECK(feed(&t, "\r\n") == 0, "end of the interim head");
        CHECK(t.token_alloc > sizes[i] && t.token_alloc <= EIP_HTTP_TOKEN_MAX,
              "buffer %zu for %zu bytes", t.token_alloc, sizes[i]);
        free(line);
    }
    CHECK(t.token_alloc == EIP_HTTP_TOKEN_MAX, "largest token: buffer at the bound, %zu",
          t.token_alloc);
    /* Reuse: a smaller token after the largest does not reallocate. */
    buf = t.token;
    CHECK(feed(&t, "HTTP/1.1 201 Created\r\n") == 0 && r.subject_token == NULL, "final status line");
    CHECK(feed(&t, "X-Subject-Token: short\r\n") == 0, "short token");
    CHECK(t.token == buf && t.token_alloc == EIP_HTTP_TOKEN_MAX, "buffer reused");
    CHECK(token_is(&r, "short", 5), "short token after a long one");
    eip_http_transfer_cleanup(&t);
}

/* A body grows its buffer from 4 KiB in powers of two, each time into a new block (the old one
 * wiped and freed, as realloc would not wipe it): every byte kept so far comes along, in order;
 * the next answer reuses the buffer; a trim frees it only over EIP_HTTP_BODY_KEEP_MAX. */
static void test_body_growth(void)
{
    eip_http_transfer t;
    eip_http_response r;
    char chunk[3000];
    size_t i, j, taken = 0, ok = 1;

    memset(&t, 0, sizeof(t));
    memset(&r, 0, sizeof(r));
    t.resp = &r;
    t.body_cap = EIP_HTTP_DEFAULT_BODY_CAP;
    for (i = 0; i < 40; i++) { /* 120000 bytes: 4 KiB to 128 KiB, six moves */
        for (j = 0; j < sizeof(chunk); j++)
            chunk[j] = (char)('a' + (i * sizeof(chunk) + j) % 23);
        taken += eip_http_take_body(&t, chunk, sizeof(chunk)) == 0;
    }
    CHECK(taken == 40, "%zu chunks of 40 taken", taken);
    CHECK(t.body_len == 40 * sizeof(chunk) && t.body_alloc == (size_t)128 << 10, "120000 bytes in %zu",
          t.body_alloc);
    for (i = 0; i < t.body_len; i++)
        ok = ok && t.body[i] == (char)('a' + i % 23);
    CHECK(ok && t.body[t.body_len] == '\0', "the body whole after its moves");
    eip_http_transfer_trim(&t);
    CHECK(t.body != NULL && t.body_alloc == (size_t)128 << 10, "kept: under EIP_HTTP_BODY_KEEP_MAX");
    t.body_len = 0;
    CHECK(eip_http_take_body(&t, "{}", 2) == 0 && t.body_alloc == (size_t)128 << 10 && strcmp(t.body, "{}") == 0,
          "the next answer reuses the buffer");
    eip_http_transfer_cleanup(&t);
    CHECK(t.body == NULL && t.body_alloc == 0, "cleanup releases the body buffer");
}

/* At the bound and beyond (libcurl refuses such lines, a direct caller could send them) the
 * token is dropped, never cut; the buffer is neither grown past the bound nor freed. */
static void test_token_over_bound(void)
{
    eip_http_transfer t;
    eip_http_response r;
    const char *value;
    char *line;

    memset(&t, 0, sizeof(t));
    memset(&r, 0, sizeof(r));
    t.resp = &r;
    CHECK(feed(&t, "HTTP/1.1 201 Created\r\n") == 0, "status line");
    CHECK(feed(&t, "X-Subject-Token: first\r\n") == 0, "first token");
    line = token_line(EIP_HTTP_TOKEN_MAX, &value);
    CHECK(line != NULL, "malloc");
    if (line != NULL) {
        CHECK(feed(&t, line) == 0, "over-long token");
        CHECK(r.subject_token == NULL && r.subject_token_len == 0, "over-long token dropped");
        CHECK(t.token_alloc == 4096, "buffer not grown for a dropped token: %zu", t.token_alloc);
        free(line);
    }
    line = token_line(3 * EIP_HTTP_TOKEN_MAX, &value);
    if (line != NULL) {
        CHECK(feed(&t, line) == 0 && r.subject_token == NULL, "far longer token dropped");
        free(line);
    }
    eip_http_transfer_cleanup(&t);
}

/* A token goes back on the wire in a header line: one holding a byte outside visible ASCII
 * (0x21-0x7E) once its surrounding blanks are gone is not captured (absent, no buffer made for
 * it), so that the Lua layer reports an answer without a token rather than the header check a
 * raw error. Every visible byte is kept. */
static void test_token_bytes(void)
{
    static const char *const hostile[] = {
        "X-Subject-Token: abc\rdef\r\n", "X-Subject-Token: abc def\r\n", "X-Subject-Token: abc\tdef\r\n",
        "X-Subject-Token: a\x01b\r\n", "X-Subject-Token: a\x1b[31mred\r\n", "X-Subject-Token: a\x7f\r\n",
        "X-Subject-Token: caf\xc3\xa9\r\n", "X-Subject-Token: \xff\r\n", "X-Subject-Token: abc\r\r\ndef\r\n",
    };
    static const char visible[] = "X-Subject-Token: !\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~\r\n";
    eip_http_transfer t;
    eip_http_response r;
    char line[64];
    size_t i;
    int c;

    memset(&t, 0, sizeof(t));
    memset(&r, 0, sizeof(r));
    t.resp = &r;
    CHECK(feed(&t, "HTTP/1.1 201 Created\r\n") == 0, "status line");
    for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        CHECK(feed(&t, hostile[i]) == 0, "hostile token %zu: no failure", i);
        CHECK(r.subject_token == NULL && r.subject_token_len == 0, "hostile token %zu not captured", i);
    }
    CHECK(t.token == NULL && t.token_alloc == 0, "no buffer made for a refused token");
    for (c = 0; c < 256; c++) {
        if (c == '\n' || c == '\r' || c == ' ' || c == '\t')
            continue; /* line ends and blanks around the value are trimmed, as for every header */
        snprintf(line, sizeof(line), "X-Subject-Token: ab%ccd\r\n", c); /* 24 bytes, a NUL too */
        CHECK(eip_http_parse_header_line(&t, line, 24) == 0, "byte %d", c);
        CHECK((r.subject_token != NULL) == (c >= 0x21 && c <= 0x7e), "byte %d: captured %d", c,
              r.subject_token != NULL);
    }
    CHECK(feed(&t, visible) == 0, "every visible byte");
    CHECK(token_is(&r, visible + 17, strlen(visible) - 19), "every visible byte kept");
    /* A good token then a hostile one in the same head: the last one counts, and it is none. */
    CHECK(feed(&t, "X-Subject-Token: good\r\n") == 0 && token_is(&r, "good", 4), "good token");
    CHECK(feed(&t, hostile[0]) == 0 && r.subject_token == NULL, "then a hostile one: absent");
    eip_http_transfer_cleanup(&t);
}

/* The fixed-size headers stay bounded, and lines without a colon or of other names are
 * ignored; none of them touches the token. */
static void test_fixed_headers(void)
{
    eip_http_transfer t;
    eip_http_response r;
    char line[600];

    memset(&t, 0, sizeof(t));
    memset(&r, 0, sizeof(r));
    t.resp = &r;
    CHECK(feed(&t, "HTTP/1.1 100 Continue\r\n") == 0, "interim answer");
    memcpy(line, "Retry-After: ", 13);
    memset(line + 13, '7', 400);
    memcpy(line + 413, "\r\n", 3);
    CHECK(feed(&t, line) == 0, "long Retry-After");
    CHECK(strlen(r.retry_after) == EIP_HTTP_HEADER_VALUE_MAX - 1 &&
              strcmp(r.retry_after + EIP_HTTP_HEADER_VALUE_MAX - 5, "7...") == 0,
          "Retry-After cut to %d bytes, the cut marked", EIP_HTTP_HEADER_VALUE_MAX - 1);
    CHECK(feed(&t, "Content-Type: application/json\r\n") == 0, "content type");
    CHECK(feed(&t, "Location: https://example.invalid/\r\n") == 0, "location");
    CHECK(feed(&t, "date:  Sun, 06 Nov 1994 08:49:37 GMT \r\n") == 0, "date");
    CHECK(feed(&t, "no colon here\r\n") == 0 && feed(&t, "X-Subject-Tokens: x\r\n") == 0,
          "ignored lines");
    CHECK(feed(&t, "\r\n") == 0, "end of head");
    CHECK_STR(r.content_type, "application/json");
    CHECK_STR(r.location, "https://example.invalid/");
    CHECK_STR(r.date, "Sun, 06 Nov 1994 08:49:37 GMT");
    CHECK(r.subject_token == NULL && t.token == NULL, "no token from other names");
    CHECK(feed(&t, "HTTP/1.1 204 No Content\r\n") == 0, "final answer");
    CHECK(r.retry_after[0] == '\0' && r.content_type[0] == '\0' && r.location[0] == '\0' && r.date[0] == '\0',
          "a status line clears the captured headers");
    eip_http_transfer_cleanup(&t);
}

/* The contract's status line, by eip_http_status_code: HTTP/1.0 or HTTP/1.1, one or more SP,
 * three digits 100-599, then the line end or SP. */
static void test_status_code(void)
{
    static const struct {
        const char *line;
        int code;
    } cases[] = {
        {"HTTP/1.1 204 No Content\r\n", 204}, {"HTTP/1.0 204\r\n", 204}, {"HTTP/1.1 204\n", 204},
        {"HTTP/1.1 204 \r\n", 204}, {"HTTP/1.1   409  spaced\r\n", 409}, {"HTTP/1.1 599 x\r\n", 599}, {"HTTP/1.1 600 x\r\n", 0}, {"HTTP/1.1 999\r\n", 0},
        {"HTTP/1.1 100 Continue\r\n", 100}, {"HTTP/1.1 101 Switching Protocols\r\n", 101},
        {"HTTP/1.1 204", 204}, {"HTTP/1.1 200 \r\r\n", 200},
        {"http/1.1 500 Internal Server Error\r\n", 0}, {"Http/1.1 404\r\n", 0}, {"HTTP/x 503\r\n", 0},
        {"HTTP/a.1 404\r\n", 0}, {"HTTP/+1.1 404\r\n", 0}, {"HTTP/-1.1 404\r\n", 0},
        {"HTTP/2 204\r\n", 0}, {"HTTP/2 4294967500 x\r\n", 0}, {"HTTP/2 20\r\n", 0},
        {"HTTP/2 -404\r\n", 0}, {"HTTP/2 2040\r\n", 0}, {"HTTP/20 204\r\n", 0}, {"HTTP/2.0 204\r\n", 0},
        {"HTTP/3 204\r\n", 0}, {"HTTP/1.2 204\r\n", 0}, {"HTTP/0.9 204\r\n", 0}, {"HTTP/1 204\r\n", 0},
        {"HTTP/1.1\r\n", 0}, {"HTTP/1.1 \r\n", 0}, {"HTTP/1.1 2040\r\n", 0}, {"HTTP/1.1 0204\r\n", 0},
        {"HTTP/1.1 099 x\r\n", 0}, {"HTTP/1.1 20\r\n", 0}, {"HTTP/1.1 +204\r\n", 0},
        {"HTTP/1.1 204x\r\n", 0}, {"HTTP/1.1 204;x\r\n", 0}, {"HTTP/1.1 204\t\r\n", 0},
        {"HTTP/1.1\t204\r\n", 0}, {"HTTP/1.1 \t204\r\n", 0}, {"HTTP/1.1 204\r\r\n", 0},
        {"HTTP/1.1204\r\n", 0}, {" HTTP/1.1 204\r\n", 0}, {"HTTP/1.1 1O4\r\n", 0}, {"", 0}, {"\r\n", 0},
    };
    size_t i;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK(eip_http_status_code(cases[i].line, strlen(cases[i].line)) == cases[i].code, "\"%s\": want %d",
              cases[i].line, cases[i].code);
}

/* A zeroed transfer with its response, ready for feed(). */
static void fresh(eip_http_transfer *t, eip_http_response *r)
{
    memset(t, 0, sizeof(*t));
    memset(r, 0, sizeof(*r));
    t->resp = r;
}

/* Status lines are known by their place: the first line, and the first after an interim
 * head's blank line. Each must be the contract's (a 101 neither); a refused one aborts the
 * transfer with t->refused set, for eip_http_transfer_finish to report as code 1. */
static void test_status_lines(void)
{
    static const char *const refused[] = {
        "http/1.1 500 Internal Server Error\r\n", "HTTP/2 204\r\n", "HTTP/2 4294967500 x\r\n",
        "HTTP/1.1 204x\r\n", "X-Request-Id: no status line\r\n", "HTTP/1.1 101 Switching Protocols\r\n",
    };
    eip_http_transfer t;
    eip_http_response r;
    size_t i;

    for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        int after_interim;
        for (after_interim = 0; after_interim < 2; after_interim++) {
            fresh(&t, &r);
            if (after_interim) {
                CHECK(feed(&t, "HTTP/1.1 100 Continue\r\n") == 0 && feed(&t, "X-Request-Id: interim\r\n") == 0 &&
                          feed(&t, "\r\n") == 0, "interim answer");
                CHECK_STR(r.request_id, "interim");
            }
            CHECK(feed(&t, refused[i]) == -1 && t.refused != NULL, "\"%s\" refused (after an interim answer: %d)",
                  refused[i], after_interim);
            CHECK(t.oom == NULL, "a refusal is no out-of-memory");
        }
    }
    fresh(&t, &r);
    feed(&t, "HTTP/1.1 101 Switching Protocols\r\n");
    CHECK(t.refused != NULL && strstr(t.refused, "101") != NULL, "a 101 says so: %s", t.refused ? t.refused : "");

    /* After an interim answer, a lowercase final status line: refused, never taken for a
     * header of the interim answer (the C core once knew status lines by "HTTP/" alone). */
    fresh(&t, &r);
    CHECK(feed(&t, "HTTP/1.1 100 Continue\r\n") == 0 && feed(&t, "X-Request-Id: interim\r\n") == 0 &&
              feed(&t, "\r\n") == 0, "interim answer");
    CHECK(feed(&t, "http/1.1 204 No Content\r\n") == -1 && t.refused != NULL, "lowercase final refused");

    /* Inside a head, a line starting with HTTP/ is a header like any other: it clears nothing. */
    fresh(&t, &r);
    CHECK(feed(&t, "HTTP/1.1 200 OK\r\n") == 0 && feed(&t, "X-Request-Id: kept\r\n") == 0, "final head");
    CHECK(feed(&t, "HTTP/1.1 500: x\r\n") == 0 && feed(&t, "HTTP/1.1 500 x\r\n") == 0, "HTTP/ header lines");
    CHECK_STR(r.request_id, "kept");
    /* LF-only blank line; then chunked trailers: captured, and never status lines. */
    CHECK(feed(&t, "\n") == 0, "end of the final head");
    CHECK(feed(&t, "HTTP/1.1 500 Trailer\r\n") == 0 && t.refused == NULL, "a trailer is no status line");
    CHECK(feed(&t, "X-Request-Id: trailer\r\n") == 0, "a captured trailer");
    CHECK_STR(r.request_id, "trailer");

    /* Several interim answers, then the final one, with LF-only lines and a head ended by a
     * line that starts with CR (as libcurl ends it). */
    fresh(&t, &r);
    CHECK(feed(&t, "HTTP/1.1 100 Continue\n") == 0 && feed(&t, "\n") == 0, "100");
    CHECK(feed(&t, "HTTP/1.0 103  Early Hints\r\n") == 0 && feed(&t, "Location: /early\r\n") == 0 &&
              feed(&t, "\r\n") == 0, "103");
    CHECK_STR(r.location, "/early");
    CHECK(feed(&t, "HTTP/1.1 204\r\n") == 0 && r.location[0] == '\0', "the final status line clears the 103's");
    CHECK(feed(&t, "X-Request-Id: final\r\n") == 0 && feed(&t, "\r\n") == 0, "final head");
    CHECK_STR(r.request_id, "final");
    CHECK(t.refused == NULL, "nothing refused");
    eip_http_transfer_cleanup(&t);
}

/* A final head's Transfer-Encoding: chunked and identity pass, any other coding is refused with
 * 61 (not an interim head's, nor a 204's or 304's), and a sixth identity over the head's lines. */
static void test_transfer_encoding(void)
{
    eip_http_transfer t;
    eip_http_response r;
    static const char *const passed[] = {"Transfer-Encoding: chunked\r\n", "transfer-encoding:IDENTITY , Chunked\r\n",
                                         "Transfer-Encoding:\r\n", "Transfer-Encoding: ,\r\n",
                                         "X-Transfer-Encoding: gzip\r\n"};
    static const char *const refused[] = {"Transfer-Encoding: none\r\n", "Transfer-Encoding: gzip, chunked\r\n",
                                          "TRANSFER-ENCODING: chunked;q=1\r\n", "Transfer-Encoding:\tfoo\t\r\n"};
    size_t i;
    for (i = 0; i < sizeof(passed) / sizeof(passed[0]); i++) {
        fresh(&t, &r);
        CHECK(feed(&t, "HTTP/1.1 500 X\r\n") == 0 && feed(&t, passed[i]) == 0 && t.refused == NULL, "passed: %s",
              passed[i]);
    }
    for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        fresh(&t, &r);
        CHECK(feed(&t, "HTTP/1.1 500 X\r\n") == 0 && feed(&t, refused[i]) == -1 && t.refused_code == 61 &&
                  t.refused != NULL && strncmp(t.refused, "Unrecognized transfer encoding: ", 32) == 0,
              "refused: %s", refused[i]);
    }
    fresh(&t, &r);
    CHECK(feed(&t, "HTTP/1.1 500 X\r\n") == 0 && feed(&t, "Transfer-Encoding: gzip\r\n") == -1, "gzip");
    CHECK_STR(t.refused, "Unrecognized transfer encoding: gzip");
    /* Not a head with a body: an interim answer, a 204, a 304. */
    fresh(&t, &r);
    CHECK(feed(&t, "HTTP/1.1 100 Continue\r\n") == 0 && feed(&t, "Transfer-Encoding: foo\r\n") == 0 &&
              feed(&t, "\r\n") == 0, "an interim head");
    CHECK(feed(&t, "HTTP/1.1 204 No Content\r\n") == 0 && feed(&t, "Transfer-Encoding: foo\r\n") == 0 &&
              t.refused == NULL, "a 204");
    fresh(&t, &r);
    CHECK(feed(&t, "HTTP/1.1 304 Not Modified\r\n") == 0 && feed(&t, "Transfer-Encoding: foo\r\n") == 0, "a 304");
    /* Five identity codings over two lines pass; a sixth is refused. */
    fresh(&t, &r);
    CHECK(feed(&t, "HTTP/1.1 500 X\r\n") == 0 &&
              feed(&t, "Transfer-Encoding: identity, identity, identity\r\n") == 0 &&
              feed(&t, "Transfer-Encoding: identity,identity\r\n") == 0 && t.refused == NULL, "five");
    CHECK(feed(&t, "Transfer-Encoding: identity\r\n") == -1 && t.refused_code == 61, "a sixth");
    CHECK_STR(t.refused, "Reject response due to more than 5 content encodings");
    /* A long unknown coding is quoted in 64 bytes at most, the cut marked. */
    fresh(&t, &r);
    CHECK(feed(&t, "HTTP/1.1 500 X\r\n") == 0 &&
              feed(&t, "Transfer-Encoding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n") == -1 &&
              strlen(t.refused) == 32 + 64 + 3 && strcmp(t.refused + 32 + 63, "a...") == 0, "capped");
    eip_http_transfer_cleanup(&t);
}

/* A DELETE to a port nothing listens on, with these header lines (never sent: the tests only
 * prepare it). */
static void delete_request(eip_http_request *req, const char *url, const char *const *headers, size_t n)
{
    memset(req, 0, sizeof(*req));
    req->method = "DELETE";
    req->url = url;
    req->timeout_ms = req->connect_timeout_ms = 1000;
    req->headers = headers;
    req->nheaders = n;
}

/* eip_http_transfer_prepare readies the callback for a new answer: whatever the last one left,
 * the first line of the next is its status line, and no refusal is carried over. */
static void test_status_state_reset(void)
{
    static const eip_http_config cfg = {NULL, 0, "test_http"};
    static const char *const lines[] = {"Accept: application/json"};
    eip_http_request req;
    eip_http_response resp;
    eip_http_transfer t;

    CHECK(eip_http_global_init() == 0 && eip_http_transfer_init(&t, &cfg) == 0, "transfer");
    delete_request(&req, "http://127.0.0.1:9/x", lines, 1);
    CHECK(eip_http_transfer_prepare(&t, &req, &resp, 0) == 0, "prepare");
    CHECK(feed(&t, "HTTP/1.1 200 OK\r\n") == 0 && feed(&t, "\r\n") == 0, "an answer");
    CHECK(feed(&t, "http/1.1 200 OK\r\n") == 0, "a trailer");
    CHECK(eip_http_transfer_prepare(&t, &req, &resp, 0) == 0, "prepare again");
    CHECK(feed(&t, "http/1.1 200 OK\r\n") == -1 && t.refused != NULL, "a status line again");
    CHECK(eip_http_transfer_prepare(&t, &req, &resp, 0) == 0 && t.refused == NULL, "the refusal is forgotten");
    CHECK(feed(&t, "HTTP/1.1 204 No Content\r\n") == 0, "a status line again");
    eip_http_transfer_cleanup(&t);
}

/* The request's lines, then "Expect:", and nothing more: what the handle's list holds. */
static int list_is(const eip_http_transfer *t, const char *const *lines, size_t n)
{
    const struct curl_slist *l = t->headers;
    size_t i;
    for (i = 0; i < n; i++, l = l->next)
        if (l == NULL || strcmp(l->data, lines[i]) != 0)
            return 0;
    return l != NULL && strcmp(l->data, "Expect:") == 0 && l->next == NULL;
}

/* A chunked answer's trailer line is captured (an X-Subject-Token there is the token), and its
 * bytes are wiped from the line buffer the transfer keeps across requests; so are those of a
 * line the answer broke off, when the next request is prepared. */
static int holds(const char *buf, size_t n, const char *needle)
{
    size_t k = strlen(needle), i;
    for (i = 0; buf != NULL && i + k <= n; i++)
        if (memcmp(buf + i, needle, k) == 0)
            return 1;
    return 0;
}

static void test_trailer_wiped(void)
{
    static const eip_http_config cfg = {NULL, 0, "test_http"};
    static const char *const lines[] = {"Accept: application/json"};
    static const char secret[] = "MIItrailerTOKENsecret0123456789";
    eip_http_request req;
    eip_http_response resp;
    eip_http_transfer t;
    /* (the bytes the line took: those past it were never written) */
    const size_t line_len = strlen("X-Subject-Token: ") + strlen(secret);
    char body[256];

    CHECK(eip_http_global_init() == 0 && eip_http_transfer_init(&t, &cfg) == 0, "transfer");
    delete_request(&req, "http://127.0.0.1:9/x", lines, 1);
    CHECK(eip_http_transfer_prepare(&t, &req, &resp, 0) == 0, "prepare");
    CHECK(feed(&t, "HTTP/1.1 201 Created\r\n") == 0 && feed(&t, "Transfer-Encoding: chunked\r\n") == 0 &&
              feed(&t, "\r\n") == 0, "chunked head");
    snprintf(body, sizeof body, "2\r\n{}\r\n0\r\nX-Subject-Token: %s\r\n\r\n", secret);
    CHECK(eip_http_take_body(&t, body, strlen(body)) == 0, "body and trailer taken");
    CHECK(resp.subject_token != NULL && strcmp(resp.subject_token, secret) == 0, "the trailer's token captured");
    CHECK(t.ck_line != NULL && !holds(t.ck_line, line_len, secret), "the trailer line wiped");

    CHECK(eip_http_transfer_prepare(&t, &req, &resp, 0) == 0, "prepare again");
    CHECK(feed(&t, "HTTP/1.1 201 Created\r\n") == 0 && feed(&t, "Transfer-Encoding: chunked\r\n") == 0 &&
              feed(&t, "\r\n") == 0, "chunked head");
    snprintf(body, sizeof body, "0\r\nX-Subject-Token: %s", secret);
    CHECK(eip_http_take_body(&t, body, strlen(body)) == 0, "a trailer broken off");
    CHECK(holds(t.ck_line, line_len, secret), "(held while the line may go on)");
    CHECK(eip_http_transfer_prepare(&t, &req, &resp, 0) == 0, "the next request");
    CHECK(!holds(t.ck_line, line_len, secret), "the broken-off line wiped");
    eip_http_transfer_cleanup(&t);
}

/* The header list is the transfer's own (nodes and bytes): a request whose lines changed gets
 * them copied over the previous ones, a longer one grows the bytes, an impossible one fails
 * with an out-of-memory answer and leaves no list behind. */
static void test_request_headers(void)
{
    static const eip_http_config cfg = {NULL, 0, "test_http"};
    static const char *const a[] = {"Content-Type: application/json", "X-Auth-Token: t"};
    static const char *const b[] = {"Content-Type: application/json", "Accept: application/json",
                                    "Host: 127.0.0.1:9", "X-Sdk-Date: 20261124T023138Z",
                                    "Authorization: SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature=00"};
    const char *many[EIP_HTTP_MAX_HEADERS + 1];
    eip_http_request req;
    eip_http_response resp;
    eip_http_transfer t;
    char *big = malloc(EIP_HTTP_HEADER_BYTES_MAX);
    size_t i;

    CHECK(eip_http_global_init() == 0 && eip_http_transfer_init(&t, &cfg) == 0, "transfer");
    delete_request(&req, "http://127.0.0.1:9/x", a, 2);
    CHECK(eip_http_transfer_prepare(&t, &req, &resp, 0) == 0 && list_is(&t, a, 2), "first list");
    CHECK(eip_http_transfer_prepare(&t, &req, &resp, 0) == 0 && list_is(&t, a, 2), "the same lines again");
    req.headers = b;
    req.nheaders = 5;
    CHECK(eip_http_transfer_prepare(&t, &req, &resp, 0) == 0 && list_is(&t, b, 5), "more, longer lines");
    req.nheaders = 1;
    CHECK(eip_http_transfer_prepare(&t, &req, &resp, 0) == 0 && list_is(&t, b, 1), "fewer lines");
    req.nheaders = 0;
    CHECK(eip_http_transfer_prepare(&t, &req, &resp, 0) == 0 && list_is(&t, b, 0), "no line");
    for (i = 0; i <= EIP_HTTP_MAX_HEADERS; i++)
        many[i] = "X-A: 1";
    req.headers = many;
    req.nheaders = EIP_HTTP_MAX_HEADERS;
    CHECK(eip_http_transfer_prepare(&t, &req, &resp, 0) == 0 && list_is(&t, many, EIP_HTTP_MAX_HEADERS),
          "the most lines");
    req.nheaders = EIP_HTTP_MAX_HEADERS + 1;
    CHECK(eip_http_transfer_prepare(&t, &req, &resp, 0) == -1 && resp.curl_code == CURLE_OUT_OF_MEMORY &&
              t.headers == NULL, "one line too many");
    if (big != NULL) {
        memset(big, 'v', EIP_HTTP_HEADER_BYTES_MAX - 1);
        memcpy(big, "X-Big: ", 7);
        big[EIP_HTTP_HEADER_BYTES_MAX - 1] = '\0';
        many[0] = big;
        req.nheaders = 1;
        CHECK(eip_http_transfer_prepare(&t, &req, &resp, 0) == -1 && resp.curl_code == CURLE_OUT_OF_MEMORY,
              "over the byte bound");
        big[EIP_HTTP_HEADER_BYTES_MAX - 16] = '\0';
        CHECK(eip_http_transfer_prepare(&t, &req, &resp, 0) == 0 && list_is(&t, many, 1), "just under it");
    }
    req.headers = a;
    req.nheaders = 2;
    CHECK(eip_http_transfer_prepare(&t, &req, &resp, 0) == 0 && list_is(&t, a, 2), "back to the first");
    free(big);
    eip_http_transfer_cleanup(&t);
}

/* The URL a prepared handle will request: t->url's when the handle takes it from there
 * (CURLOPT_CURLU), else the string it was given. want_curlu: which of the two it should be. */
static void check_url(eip_http_transfer *t, eip_http_request *req, const char *url, int want_curlu)
{
    eip_http_response resp;
    char *got = NULL;
    req->url = url;
    CHECK(eip_http_transfer_prepare(t, req, &resp, 0) == 0, "prepare %s", url);
    CHECK(t->curlu == want_curlu, "%s: %s", url, want_curlu ? "set from the parsed URL" : "set as a string");
    if (t->curlu) {
        CHECK(curl_url_get(t->url, CURLUPART_URL, &got, 0) == CURLUE_OK, "get %s", url);
        CHECK_STR(got, url);
        curl_free(got);
    }
}

/* A URL under the "scheme://authority" of the one before, with a plain path and query, only
 * replaces those in the parsed URL: it must read back as given. Anything libcurl would
 * normalise (escapes, dot segments, a fragment), a new authority or an unparsable URL is given
 * to libcurl as a string, as every URL once was; the next plain one is fast again. */
static void test_url_reuse(void)
{
    static const eip_http_config cfg = {NULL, 0, "test_http"};
    static const char *const lines[] = {"Accept: application/json"};
    eip_http_request req;
    eip_http_transfer t;
    char long_url[3000];

    CHECK(eip_http_global_init() == 0 && eip_http_transfer_init(&t, &cfg) == 0, "transfer");
    delete_request(&req, NULL, lines, 1);
    check_url(&t, &req, "http://127.0.0.1:9/v2.0/p/bandwidths/bw-1", 0); /* the first: parsed whole */
    check_url(&t, &req, "http://127.0.0.1:9/v2.0/p/bandwidths/bw-2", 1);
    check_url(&t, &req, "http://127.0.0.1:9/v1/p/bandwidths?limit=10&marker=bw-2", 1);
    check_url(&t, &req, "http://127.0.0.1:9/v2.0/p/bandwidths/bw-3", 1); /* the query is gone again */
    check_url(&t, &req, "http://127.0.0.1:9/v1/p/bandwidths?marker=a%2Fb", 0); /* libcurl would lower-case it */
    check_url(&t, &req, "http://127.0.0.1:9/v1/p/a/../b", 0);
    check_url(&t, &req, "http://127.0.0.1:9/v1/p/./b", 0);
    check_url(&t, &req, "http://127.0.0.1:9/v1/p/b#frag", 0);
    check_url(&t, &req, "http://127.0.0.1:9/v1/p/b?", 0);
    check_url(&t, &req, "http://127.0.0.1:9/v1/p/b c", 0);
    check_url(&t, &req, "http://127.0.0.1:9", 0);
    check_url(&t, &req, "http://127.0.0.1:9/v1/p/b", 1);
    check_url(&t, &req, "http://127.0.0.1:99/v1/p/b", 0); /* another authority */
    check_url(&t, &req, "http://127.0.0.1:99/v1/p/c", 1);
    check_url(&t, &req, "https://127.0.0.1:99/v1/p/c", 0);
    check_url(&t, &req, "http://[::1]:99/v1/p/c", 0);
    check_url(&t, &req, "http://[::1]:99/v1/p/d", 1);
    check_url(&t, &req, "http://127.0.0.1:99/v1/p/e", 0);
    memset(long_url, 'a', sizeof(long_url) - 1);
    long_url[sizeof(long_url) - 1] = '\0';
    memcpy(long_url, "http://127.0.0.1:99/", 20);
    check_url(&t, &req, long_url, 0); /* a path longer than the copy the fast path makes */
    check_url(&t, &req, "no scheme at all", 0);
    check_url(&t, &req, "http://127.0.0.1:99/v1/p/f", 0); /* after an unparsable one, parsed again */
    check_url(&t, &req, "http://127.0.0.1:99/v1/p/g", 1);
    eip_http_transfer_cleanup(&t);
}

/* The host a server's certificate must name, noted with each URL parsed (on_ssl_ctx in http.c
 * has OpenSSL check it on each new TLS connection): as libcurl's own check reads it, kept for
 * the URLs under the same base, and none after a URL that could not be parsed (its TLS
 * connection then fails). */
static void check_tls_host(eip_http_transfer *t, eip_http_request *req, const char *url, const char *host, int ip)
{
    eip_http_response resp;
    req->url = url;
    CHECK(eip_http_transfer_prepare(t, req, &resp, 0) == 0, "prepare %s", url);
    CHECK_STR(t->tls_host, host);
    CHECK(t->tls_ip == ip, "%s: %s", url, ip ? "an IP address" : "a name");
}

static void test_tls_host(void)
{
    static const eip_http_config cfg = {NULL, 0, "test_http"}, insecure = {NULL, 1, "test_http"};
    static const char *const lines[] = {"Accept: application/json"};
    eip_http_request req;
    eip_http_transfer t;

    CHECK(eip_http_global_init() == 0 && eip_http_transfer_init(&t, &cfg) == 0, "transfer");
    /* (this machine's libcurl is the OpenSSL one: the names are checked) */
    CHECK(t.checks_names == 1, "libcurl's backend: %s", curl_version_info(CURLVERSION_NOW)->ssl_version);
    delete_request(&req, NULL, lines, 1);
    check_tls_host(&t, &req, "https://localhost:9/v2.0/p/bandwidths/bw-1", "localhost", 0);
    check_tls_host(&t, &req, "https://localhost:9/v2.0/p/bandwidths/bw-2", "localhost", 0); /* (the base kept) */
    check_tls_host(&t, &req, "https://Vpc.MyHuaweiCloud.com./v1/p", "Vpc.MyHuaweiCloud.com", 0);
    check_tls_host(&t, &req, "https://127.0.0.1:9/v1/p", "127.0.0.1", 1);
    check_tls_host(&t, &req, "https://[::1]:9/v1/p", "::1", 1);
    check_tls_host(&t, &req, "https://[2001:db8::1]/v1/p?marker=a%2Fb", "2001:db8::1", 1);
    check_tls_host(&t, &req, "https://[fe80::1%25eth0]:9/v1/p", "fe80::1", 1);
    check_tls_host(&t, &req, "no scheme at all", "", 0);
    check_tls_host(&t, &req, "https://api.example.test/v1/p", "api.example.test", 0);
    eip_http_transfer_cleanup(&t);

    CHECK(eip_http_transfer_init(&t, &insecure) == 0 && t.checks_names == 0, "insecure: nothing to check");
    eip_http_transfer_cleanup(&t);

    CHECK(eip_http_same_openssl("OpenSSL/3.0.19", "3.0.19"), "the same OpenSSL");
    CHECK(!eip_http_same_openssl("OpenSSL/3.0.19", "3.0.1"), "another version: another library");
    CHECK(!eip_http_same_openssl("OpenSSL/3.0.1", "3.0.19"), "another version: another library");
    CHECK(!eip_http_same_openssl("OpenSSL/1.1.1w", "3.0.19"), "OpenSSL 1.1");
    CHECK(!eip_http_same_openssl("GnuTLS/3.7.9", "3.0.19"), "GnuTLS");
    CHECK(!eip_http_same_openssl("(OpenSSL/3.0.19) GnuTLS/3.7.9", "3.0.19"), "OpenSSL built in, not chosen");
    CHECK(!eip_http_same_openssl("LibreSSL/3.8.2", "3.8.2"), "LibreSSL");
    CHECK(!eip_http_same_openssl(NULL, "3.0.19"), "libcurl without TLS");
    CHECK(!eip_http_same_openssl("OpenSSL/", ""), "no version");
}

int main(void)
{
    test_global_init_threads();
    test_token_lazy();
    test_token_sizes();
    test_token_over_bound();
    test_body_growth();
    test_token_bytes();
    test_fixed_headers();
    test_status_code();
    test_status_lines();
    test_status_state_reset();
    test_transfer_encoding();
    test_trailer_wiped();
    test_request_headers();
    test_url_reuse();
    test_tls_host();
    return CTEST_END("http");
}
