/* fuzz_percent_encode.c - eip_sign_percent_encode (src/sign.c).
 *
 * Input: one byte choosing the output buffer's limit (default, or small enough to hit it), one
 * byte of existing buffer content, then the bytes to encode. Invariants:
 *  - success: the appended text holds only unreserved characters (A-Z a-z 0-9 - _ . ~) and
 *    "%XX" with upper-case hex; unreserved bytes are never escaped; decoding it gives the input
 *    back byte for byte; the buffer stays NUL-terminated and what was there before is kept;
 *  - failure (-1) happens exactly when the encoded text would not fit under the limit;
 *  - the buffer never grows past its limit (one byte of it is the NUL).
 */
#include "fuzz_input.h"
#include "sign.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1; /* lower-case hex is a violation too */
}

/* Decodes enc (strictly: only the two allowed forms) and compares it with the raw bytes. */
static void check_decodes_to(const char *enc, size_t n, const char *raw, size_t rawlen)
{
    size_t i = 0, j = 0;
    while (i < n) {
        unsigned char c = (unsigned char)enc[i];
        int hi, lo;
        if (c != '%') {
            FUZZ_CHECK(unreserved(c));
            FUZZ_CHECK(j < rawlen && (unsigned char)raw[j] == c);
            i++;
            j++;
            continue;
        }
        FUZZ_CHECK(i + 3 <= n); /* '%' always has its two hex digits */
        hi = hexval(enc[i + 1]);
        lo = hexval(enc[i + 2]);
        FUZZ_CHECK(hi >= 0 && lo >= 0);
        FUZZ_CHECK(j < rawlen && (unsigned char)raw[j] == (unsigned char)(hi << 4 | lo));
        FUZZ_CHECK(!unreserved((unsigned char)raw[j])); /* never escaped needlessly */
        i += 3;
        j++;
    }
    FUZZ_CHECK(j == rawlen);
}

static size_t encoded_size(const char *s, size_t n)
{
    size_t i, total = 0;
    for (i = 0; i < n; i++)
        total += unreserved((unsigned char)s[i]) ? 1 : 3;
    return total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reader r = {data, size};
    size_t limit = fuzz_u8(&r), prefix = fuzz_u8(&r) % 8, before, need;
    const char *s = (const char *)r.p;
    size_t n = r.left;
    eip_buf b;
    int rc;

    /* 0 keeps the library default (1 MiB); otherwise 2..256 bytes, to reach the limit. */
    eip_buf_init(&b, limit ? limit + 1 : 0);
    if (prefix && eip_sign_percent_encode(&b, "abcdefg", prefix) != 0) {
        eip_buf_free(&b); /* did not fit: start from an empty buffer instead */
        prefix = 0;
    }
    before = b.len;
    FUZZ_CHECK(before == prefix);
    need = encoded_size(s, n);
    rc = eip_sign_percent_encode(&b, n == 0 && (limit & 1) ? NULL : s, n); /* NULL, 0 is allowed */
    FUZZ_CHECK(b.cap <= (b.limit ? b.limit : EIP_BUF_DEFAULT_LIMIT));
    FUZZ_CHECK(b.len < (b.limit ? b.limit : EIP_BUF_DEFAULT_LIMIT));
    FUZZ_CHECK(!b.data || b.data[b.len] == '\0'); /* also after a partial append */
    if (rc == 0) {
        FUZZ_CHECK(b.len == before + need);
        if (b.data) {
            FUZZ_CHECK(b.data[b.len] == '\0');
            FUZZ_CHECK(memcmp(b.data, "abcdefg", before) == 0);
            check_decodes_to(b.data + before, b.len - before, s, n);
        } else {
            FUZZ_CHECK(b.len == 0);
        }
    } else {
        FUZZ_CHECK(rc == -1);
        FUZZ_CHECK(before + need + 1 > (b.limit ? b.limit : EIP_BUF_DEFAULT_LIMIT));
    }
    eip_buf_free(&b);
    return 0;
}
