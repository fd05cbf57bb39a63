/* fuzz_header_line.c - eip_http_parse_header_line (src/http.c) over hostile header lines.
 *
 * The input is split into lines at '\n' (kept, as libcurl delivers them) and fed one by one to
 * a single response, like the header callback of one exchange. Each line is copied into a heap
 * block of exactly its size, so ASan flags any read past the line: the parser gets no NUL.
 *
 * Invariants, checked after every line against an independent model of the rules in http.h:
 *  - a line starting with "HTTP/" clears the five captured headers;
 *  - a line "Name: value" with Name one of the five (any case) stores value with leading
 *    SP/HT and trailing CR/LF/SP/HT removed, truncated to its array size - 1 (256 bytes, or
 *    EIP_HTTP_TOKEN_MAX for X-Subject-Token), then a NUL; every other line changes nothing;
 *  - every captured value stays NUL-terminated inside its array;
 *  - no other byte of the response struct ever changes.
 */
#include "fuzz_input.h"
#include "http.h"

#include <stddef.h>
#include <string.h>

#define NFIELDS 5

static const struct {
    const char *name; /* lower case */
    size_t off, cap;
} FIELDS[NFIELDS] = {
    {"x-request-id", offsetof(eip_http_response, request_id), EIP_HTTP_HEADER_VALUE_MAX},
    {"retry-after", offsetof(eip_http_response, retry_after), EIP_HTTP_HEADER_VALUE_MAX},
    {"content-type", offsetof(eip_http_response, content_type), EIP_HTTP_HEADER_VALUE_MAX},
    {"location", offsetof(eip_http_response, location), EIP_HTTP_HEADER_VALUE_MAX},
    {"x-subject-token", offsetof(eip_http_response, subject_token), EIP_HTTP_TOKEN_MAX},
};

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

/* The model: applies one line to the expected state. */
static void model_line(eip_http_response *m, const char *line, size_t len)
{
    size_t colon, b, e, i, n;
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        for (i = 0; i < NFIELDS; i++)
            field(m, (int)i)[0] = '\0';
        return;
    }
    for (colon = 0; colon < len && line[colon] != ':'; colon++)
        ;
    if (colon == len)
        return;
    for (i = 0; i < NFIELDS; i++) {
        if (!same_name_ci(line, colon, FIELDS[i].name))
            continue;
        for (b = colon + 1; b < len && (line[b] == ' ' || line[b] == '\t'); b++)
            ;
        for (e = len; e > b && strchr("\r\n \t", line[e - 1]) && line[e - 1] != '\0'; e--)
            ;
        n = e - b < FIELDS[i].cap - 1 ? e - b : FIELDS[i].cap - 1;
        memcpy(field(m, (int)i), line + b, n);
        field(m, (int)i)[n] = '\0';
        return;
    }
}

/* Garbage after each NUL would be legitimate but is never compared: only the C string and
 * its terminator matter to callers, so the comparison stops at the first NUL. */
static void check_state(eip_http_response *r, eip_http_response *m, const eip_http_response *orig)
{
    eip_http_response a, b;
    int i;

    /* memcpy, not assignment: a struct assignment need not copy padding bytes. */
    memcpy(&a, r, sizeof(a));
    memcpy(&b, orig, sizeof(b));
    for (i = 0; i < NFIELDS; i++) {
        const char *got = field(r, i), *want = field(m, i);
        FUZZ_CHECK(memchr(got, '\0', FIELDS[i].cap) != NULL);
        FUZZ_CHECK(strcmp(got, want) == 0);
        memset(field(&a, i), 0, FIELDS[i].cap);
        memset(field(&b, i), 0, FIELDS[i].cap);
    }
    FUZZ_CHECK(memcmp(&a, &b, sizeof(a)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eip_http_response r, m, orig;
    size_t start = 0, i;

    /* A recognisable pattern everywhere, so a stray write anywhere in the struct shows. */
    memset(&r, 0xA5, sizeof(r));
    for (i = 0; i < NFIELDS; i++)
        strcpy(field(&r, (int)i), "previous");
    memcpy(&orig, &r, sizeof(r));
    memcpy(&m, &r, sizeof(r));
    while (start < size) {
        const uint8_t *nl = memchr(data + start, '\n', size - start);
        size_t len = nl ? (size_t)(nl - (data + start)) + 1 : size - start;
        char *line = malloc(len ? len : 1);
        if (!line)
            return 0;
        memcpy(line, data + start, len);
        eip_http_parse_header_line(&r, line, len);
        model_line(&m, line, len);
        free(line);
        check_state(&r, &m, &orig);
        start += len;
    }
    return 0;
}
