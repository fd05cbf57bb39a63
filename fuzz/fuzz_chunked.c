/* fuzz_chunked.c - eip_http_take_body (src/http.c) over hostile chunked bodies.
 *
 * The C core decodes chunked bodies itself (libcurl's decoding is off, so that bytes after a
 * body's end are seen), reading the framing byte for byte as libcurl 7.88 does. The input: a
 * byte choosing the body cap, a byte seeding how the body is cut into pieces, then the body as
 * it came on the wire. It is given to a transfer whose final head said chunked twice: whole in
 * one call, and in pieces of 1 to 16 bytes (as reads may cut it anywhere), each piece copied
 * into a heap block of exactly its size, so ASan flags any read past it.
 *
 * Invariants:
 *  - where the input is cut changes nothing: the same result of the last call, the same body
 *    (bytes and length), truncation, state, refusal, leftovers and captured request id;
 *  - the body kept never exceeds the cap and stays NUL-terminated;
 *  - a call that ends the transfer (-1) says why: the cap reached (truncated), a trailer
 *    refused (refused set), or out of memory; and no piece is given after it (libcurl aborts);
 *  - leftovers are noted only after the body's end;
 *  - a refused trailer is 43 ("Failed reading the chunked-encoded stream") or 56 (too large).
 * Each transfer is released at the end, so LeakSanitizer sees a lost buffer.
 */
#include "fuzz_input.h"
#include "http.h"

#include <string.h>

typedef struct {
    int rc;
    eip_http_transfer t;
    eip_http_response r;
} run;

static void head(eip_http_transfer *t, eip_http_response *r, size_t cap)
{
    static const char *const lines[] = {"HTTP/1.1 404 Not Found\r\n", "Transfer-Encoding: chunked\r\n",
                                        "X-Request-Id: from-the-head\r\n", "\r\n"};
    size_t i;
    memset(t, 0, sizeof(*t));
    memset(r, 0, sizeof(*r));
    t->resp = r;
    t->sock_fd = -1;
    t->body_cap = cap;
    for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        FUZZ_CHECK(eip_http_parse_header_line(t, lines[i], strlen(lines[i])) == 0);
    FUZZ_CHECK(t->chunked);
}

/* Gives data to the transfer in pieces: whole when seed is 0, else of 1-16 bytes by seed. */
static void feed(run *out, const char *data, size_t size, size_t cap, unsigned seed)
{
    size_t at = 0;
    unsigned x = seed * 2654435761u + 1;
    head(&out->t, &out->r, cap);
    out->rc = 0;
    while (at < size && out->rc == 0) {
        size_t n = size - at;
        char *piece;
        if (seed != 0) {
            x = x * 1103515245u + 12345u;
            if (n > 1 + ((x >> 16) & 15))
                n = 1 + ((x >> 16) & 15);
        }
        piece = malloc(n);
        if (piece == NULL)
            abort();
        memcpy(piece, data + at, n);
        out->rc = eip_http_take_body(&out->t, piece, n);
        free(piece);
        at += n;
        FUZZ_CHECK(out->t.body_len <= cap);
        FUZZ_CHECK(out->t.body == NULL || out->t.body[out->t.body_len] == '\0');
        FUZZ_CHECK(!out->t.ck_leftover || out->t.ck_state == EIP_CK_DONE);
    }
    if (out->rc != 0)
        FUZZ_CHECK(out->t.truncated || out->t.refused != NULL || out->t.oom != NULL);
    if (out->t.refused != NULL)
        FUZZ_CHECK((out->t.refused_code == 43 &&
                    strcmp(out->t.refused, "Failed reading the chunked-encoded stream") == 0) ||
                   out->t.refused_code == 56);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reader in = {data, size};
    /* caps from 1 byte to 64 KiB, and bodies that stay under them */
    size_t cap = 1 + (size_t)fuzz_u8(&in) * 257;
    unsigned seed = 1 + fuzz_u8(&in);
    static run whole, cut;
    feed(&whole, (const char *)in.p, in.left, cap, 0);
    feed(&cut, (const char *)in.p, in.left, cap, seed);
    FUZZ_CHECK(whole.rc == cut.rc);
    FUZZ_CHECK(whole.t.body_len == cut.t.body_len);
    FUZZ_CHECK(whole.t.body_len == 0 || memcmp(whole.t.body, cut.t.body, whole.t.body_len) == 0);
    FUZZ_CHECK(whole.t.truncated == cut.t.truncated);
    FUZZ_CHECK(whole.t.ck_state == cut.t.ck_state);
    FUZZ_CHECK(whole.t.ck_leftover == cut.t.ck_leftover);
    FUZZ_CHECK(whole.t.refused_code == cut.t.refused_code);
    FUZZ_CHECK(strcmp(whole.r.request_id, cut.r.request_id) == 0);
    FUZZ_CHECK(whole.t.trailer_bytes == cut.t.trailer_bytes);
    eip_http_transfer_cleanup(&whole.t);
    eip_http_transfer_cleanup(&cut.t);
    return 0;
}
