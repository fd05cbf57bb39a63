/* fuzz_header_line.c - eip_http_parse_header_line (src/http.c) over hostile header lines.
 *
 * The input is split into lines at '\n' (kept, as libcurl delivers them) and fed one by one to
 * a single transfer, like the header callback of one exchange, after an interim status line
 * the harness feeds first (so that the input's first lines are headers, and its status lines
 * come after blank lines). Each line is copied into a heap block of exactly its size, so ASan
 * flags any read past the line: the parser gets no NUL.
 *
 * Invariants, checked after every line against an independent model of the rules in http.h:
 *  - status lines are known by their place: the first line after the blank line (a line
 *    starting with CR or LF) that ends an interim head; after the final head's blank line come
 *    trailers, never a status line;
 *  - a status line the contract accepts (HTTP/1.0 or HTTP/1.1, SP..., three digits 100-599,
 *    then the line end or SP; not 101) clears the six captured headers and returns 0; any
 *    other is refused: -1, t->refused set, nothing else changed, and no line follows (libcurl
 *    aborts the transfer);
 *  - a Transfer-Encoding line of the final head of an answer with a body (not 204 or 304)
 *    that names a coding other than chunked and identity, or a sixth identity, is refused
 *    the same way;
 *  - a line "Name: value" with Name one of the six (any case) stores value with leading
 *    SP/HT and trailing CR/LF/SP/HT removed: the five fixed ones whole up to 255 bytes, a
 *    longer one cut to 252 and "..." (the cut marked), then a NUL, the last line's value (an
 *    empty one clears it), but Retry-After's every value, joined with ", " and the whole cut
 *    the same way (an empty one adds nothing); X-IAM-Trace-Id the same
 *    way into the request id, only while that is empty; X-Subject-Token whole and
 *    NUL-terminated in the transfer's token buffer, or not at all when empty or of
 *    EIP_HTTP_TOKEN_MAX bytes or more (never cut); every other line changes nothing;
 *  - the token buffer is allocated only by a captured token, never exceeds EIP_HTTP_TOKEN_MAX
 *    and is not reallocated for a token that fits it;
 *  - every captured value stays NUL-terminated inside its array;
 *  - no other byte of the response struct ever changes.
 * The transfer is released at the end of each input, so LeakSanitizer sees a lost buffer.
 */
#include "fuzz_input.h"
#include "http.h"

#include <stddef.h>
#include <string.h>

#define NFIELDS 5

static const struct {
    const char *name; /* lower case */
    size_t off;       /* of a char[EIP_HTTP_HEADER_VALUE_MAX] in eip_http_response */
} FIELDS[NFIELDS] = {
    {"x-request-id", offsetof(eip_http_response, request_id)},
    {"retry-after", offsetof(eip_http_response, retry_after)},
    {"content-type", offsetof(eip_http_response, content_type)},
    {"location", offsetof(eip_http_response, location)},
    {"date", offsetof(eip_http_response, date)},
};

/* The expected state: the five fixed fields in a response, the token apart. */
typedef struct {
    int head;          /* 0: a status line is next; 1: in an interim head; 2: in the final one;
                        * 3: trailers */
    int refuse;        /* the last line given is refused (a status line, a transfer coding) */
    int status;        /* the final answer's status (0 before one) */
    int codings;       /* identity codings named by the final head's Transfer-Encoding lines */
    eip_http_response r;
    int has_token;
    int token_line;    /* the last line given was an X-Subject-Token line */
    size_t token_len;
    const char *token; /* into the line that set it, which the caller keeps alive */
} model;

static char *field(eip_http_response *r, int i)
{
    return (char *)r + FIELDS[i].off;
}

static int same_name_ci(const char *s, size_t n, const char *lower_name)
{
    size_t i;
    if (strlen(lower_name) != n)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (c != (unsigned char)lower_name[i])
            return 0;
    }
    return 1;
}

/* The contract's status code of a line (its end included), or 0: written apart from
 * eip_http_status_code, as a walk over the line. */
static int model_status(const char *l, size_t len)
{
    static const char prefix[] = "HTTP/1.";
    size_t n = len, k, spaces = 0;
    int code = 0, d;
    if (n > 0 && l[n - 1] == '\n')
        n--;
    if (n > 0 && l[n - 1] == '\r')
        n--;
    for (k = 0; k < 7; k++)
        if (k >= n || l[k] != prefix[k])
            return 0;
    if (k >= n || (l[k] != '0' && l[k] != '1'))
        return 0;
    for (k++; k < n && l[k] == ' '; k++)
        spaces++;
    if (spaces == 0)
        return 0;
    for (d = 0; d < 3; d++, k++) {
        if (k >= n || l[k] < '0' || l[k] > '9')
            return 0;
        code = code * 10 + (l[k] - '0');
    }
    if (code < 100 || code > 599 || (k < n && l[k] != ' '))
        return 0;
    return code;
}

/* A value as capture_header stores it: up to 255 bytes; a longer one cut to 252, then "...". */
static void model_store(char *dst, const char *v, size_t n)
{
    if (n < EIP_HTTP_HEADER_VALUE_MAX) {
        memcpy(dst, v, n);
        dst[n] = '\0';
        return;
    }
    memcpy(dst, v, EIP_HTTP_HEADER_VALUE_MAX - 4);
    memcpy(dst + EIP_HTTP_HEADER_VALUE_MAX - 4, "...", 4);
}

/* Retry-After's values are all kept (RFC 9110 5.3's combining): after the ones kept, ", " and
 * the value (an empty value adds nothing), the whole cut as model_store cuts one value. */
static void model_append(char *dst, const char *v, size_t n)
{
    char joined[2 * EIP_HTTP_HEADER_VALUE_MAX + 2];
    size_t cur = strlen(dst), take = n < EIP_HTTP_HEADER_VALUE_MAX ? n : EIP_HTTP_HEADER_VALUE_MAX;
    if (n == 0)
        return;
    if (cur == 0) {
        model_store(dst, v, n);
        return;
    }
    memcpy(joined, dst, cur);
    memcpy(joined + cur, ", ", 2);
    memcpy(joined + cur + 2, v, take); /* (more than fits is cut the same: only 252 bytes stay) */
    model_store(dst, joined, cur + 2 + take);
}

/* A Transfer-Encoding line of the final head (name already matched), value line[b..len): is it
 * refused? Its codings, split at ',', blanks around each removed: any but chunked and identity
 * is, and so is the sixth identity of the head (m->codings counts them). */
static int model_refuses_codings(model *m, const char *line, size_t b, size_t len)
{
    size_t p = b;
    while (p <= len) {
        size_t q = p, a, z;
        while (q < len && line[q] != ',')
            q++;
        for (a = p; a < q && (line[a] == ' ' || line[a] == '\t'); a++)
            ;
        for (z = q; z > a && strchr(" \t\r\n", line[z - 1]) && line[z - 1] != '\0'; z--)
            ;
        if (z - a == 8 && same_name_ci(line + a, 8, "identity")) {
            if (++m->codings > 5)
                return 1;
        } else if (z > a && !(z - a == 7 && same_name_ci(line + a, 7, "chunked"))) {
            return 1;
        }
        p = q + 1;
    }
    return 0;
}

/* The model: applies one line to the expected state. */
static void model_line(model *m, const char *line, size_t len)
{
    size_t colon, b, e, i;
    m->token_line = 0;
    m->refuse = 0;
    if (m->head == 0) {
        int code = model_status(line, len);
        if (code == 0 || code == 101) {
            m->refuse = 1;
            return;
        }
        for (i = 0; i < NFIELDS; i++)
            field(&m->r, (int)i)[0] = '\0';
        m->has_token = 0;
        m->head = code < 200 ? 1 : 2;
        m->status = code < 200 ? 0 : code;
        m->codings = 0;
        return;
    }
    if (m->head < 3 && len > 0 && (line[0] == '\r' || line[0] == '\n')) {
        m->head = m->head == 1 ? 0 : 3;
        return;
    }
    for (colon = 0; colon < len && line[colon] != ':'; colon++)
        ;
    if (colon == len)
        return;
    for (b = colon + 1; b < len && (line[b] == ' ' || line[b] == '\t'); b++)
        ;
    for (e = len; e > b && strchr("\r\n \t", line[e - 1]) && line[e - 1] != '\0'; e--)
        ;
    /* The final head's Transfer-Encoding of an answer with a body: only chunked and identity
     * (at most five identity) are read; any other is refused before anything is captured. */
    if (m->head == 2 && m->status != 204 && m->status != 304 && same_name_ci(line, colon, "transfer-encoding") &&
        model_refuses_codings(m, line, colon + 1, len)) {
        m->refuse = 1;
        return;
    }
    if (same_name_ci(line, colon, "x-subject-token")) {
        m->token_line = 1;
        m->has_token = e > b && e - b < EIP_HTTP_TOKEN_MAX;
        for (i = b; m->has_token && i < e; i++) /* visible ASCII only, as capture_token keeps */
            if ((unsigned char)line[i] < 0x21 || (unsigned char)line[i] > 0x7e)
                m->has_token = 0;
        m->token = line + b;
        m->token_len = e - b;
        return;
    }
    /* IAM's request id: into request_id only while no X-Request-Id filled it */
    if (same_name_ci(line, colon, "x-iam-trace-id")) {
        if (field(&m->r, 0)[0] == '\0')
            model_store(field(&m->r, 0), line + b, e - b);
        return;
    }
    for (i = 0; i < NFIELDS; i++) {
        if (!same_name_ci(line, colon, FIELDS[i].name))
            continue;
        if (i == 1) /* retry-after */
            model_append(field(&m->r, (int)i), line + b, e - b);
        else
            model_store(field(&m->r, (int)i), line + b, e - b);
        return;
    }
}

static void check_token(const eip_http_transfer *t, const eip_http_response *r, const model *m)
{
    FUZZ_CHECK(t->token_alloc <= EIP_HTTP_TOKEN_MAX);
    FUZZ_CHECK((t->token == NULL) == (t->token_alloc == 0));
    if (!m->has_token) {
        FUZZ_CHECK(r->subject_token == NULL && r->subject_token_len == 0);
        return;
    }
    FUZZ_CHECK(r->subject_token == t->token && r->subject_token_len == m->token_len);
    FUZZ_CHECK(t->token_alloc > m->token_len);
    FUZZ_CHECK(memcmp(r->subject_token, m->token, m->token_len) == 0);
    FUZZ_CHECK(r->subject_token[m->token_len] == '\0');
}

/* Garbage after each NUL would be legitimate but is never compared: only the C string and
 * its terminator matter to callers, so the comparison stops at the first NUL. */
static void check_state(const eip_http_transfer *t, eip_http_response *r, model *m,
                        const eip_http_response *orig)
{
    eip_http_response a, b;
    int i;

    check_token(t, r, m);
    /* memcpy, not assignment: a struct assignment need not copy padding bytes. */
    memcpy(&a, r, sizeof(a));
    memcpy(&b, orig, sizeof(b));
    for (i = 0; i < NFIELDS; i++) {
        const char *got = field(r, i), *want = field(&m->r, i);
        FUZZ_CHECK(memchr(got, '\0', EIP_HTTP_HEADER_VALUE_MAX) != NULL);
        FUZZ_CHECK(strcmp(got, want) == 0);
        memset(field(&a, i), 0, EIP_HTTP_HEADER_VALUE_MAX);
        memset(field(&b, i), 0, EIP_HTTP_HEADER_VALUE_MAX);
    }
    a.subject_token = b.subject_token = NULL;
    a.subject_token_len = b.subject_token_len = 0;
    FUZZ_CHECK(memcmp(&a, &b, sizeof(a)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eip_http_transfer t;
    eip_http_response r, orig;
    model m;
    char *held = NULL; /* the line the model's token points into */
    size_t start = 0, i;

    /* A recognisable pattern everywhere, so a stray write anywhere in the struct shows. */
    memset(&r, 0xA5, sizeof(r));
    for (i = 0; i < NFIELDS; i++)
        strcpy(field(&r, (int)i), "previous");
    r.subject_token = NULL;
    r.subject_token_len = 0;
    memcpy(&orig, &r, sizeof(r));
    memset(&m, 0, sizeof(m));
    memcpy(&m.r, &r, sizeof(r));
    memset(&t, 0, sizeof(t));
    t.resp = &r;
    /* An interim answer first: the input's first lines are its headers. */
    FUZZ_CHECK(eip_http_parse_header_line(&t, "HTTP/1.1 100 Continue\r\n", 23) == 0 && t.refused == NULL);
    model_line(&m, "HTTP/1.1 100 Continue\r\n", 23);
    check_state(&t, &r, &m, &orig);
    while (start < size) {
        const uint8_t *nl = memchr(data + start, '\n', size - start);
        size_t len = nl ? (size_t)(nl - (data + start)) + 1 : size - start;
        size_t alloc_before = t.token_alloc;
        char *line = malloc(len ? len : 1);
        if (!line)
            break;
        memcpy(line, data + start, len);
        model_line(&m, line, len);
        FUZZ_CHECK(eip_http_parse_header_line(&t, line, len) == (m.refuse ? -1 : 0));
        FUZZ_CHECK((t.refused != NULL) == m.refuse);
        FUZZ_CHECK(!m.refuse || strlen(t.refused) < 200); /* (a coding is quoted in 64 bytes) */
        /* Grown only for a captured token longer than the buffer holds. */
        FUZZ_CHECK(t.token_alloc == alloc_before ||
                   (m.token_line && m.has_token && m.token_len + 1 > alloc_before));
        check_state(&t, &r, &m, &orig);
        if (m.token_line || !m.has_token) { /* the line the model points into, if any, changed */
            free(held);
            held = NULL;
        }
        if (m.token_line && m.has_token)
            held = line;
        else
            free(line);
        start += len;
        if (m.refuse)
            break; /* libcurl aborts the transfer: no line follows */
    }
    free(held);
    eip_http_transfer_cleanup(&t);
    return 0;
}
