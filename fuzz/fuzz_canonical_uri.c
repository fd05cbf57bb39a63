/* fuzz_canonical_uri.c - eip_sign_canonical_uri (src/sign.c) over arbitrary raw paths.
 *
 * Input: one byte choosing the buffer limit, then the raw path (an empty one is passed as NULL
 * when the limit byte is odd). Invariants on success:
 *  - the result is never empty and always ends with '/';
 *  - it holds only unreserved characters, '/', and "%XX" upper-case escapes;
 *  - it has exactly as many '/' as the path, plus one when the path is empty or does not end
 *    with '/';
 *  - decoding it gives the path back, followed by the added '/' if any (segments are
 *    encoded, separators kept);
 * and on failure (-1) the result could not have fit under the limit. The buffer never grows
 * past its limit and stays NUL-terminated.
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
    return -1;
}

/* Decodes uri, checking each byte of it against want (the path plus any added '/'). */
static void check_decodes_to(const char *uri, size_t n, const char *path, size_t plen, int added)
{
    size_t i = 0, j = 0, wlen = plen + (size_t)added;
    while (i < n) {
        unsigned char c = (unsigned char)uri[i], want;
        FUZZ_CHECK(j < wlen);
        want = j < plen ? (unsigned char)path[j] : '/';
        if (c == '%') {
            int hi, lo;
            FUZZ_CHECK(i + 3 <= n);
            hi = hexval(uri[i + 1]);
            lo = hexval(uri[i + 2]);
            FUZZ_CHECK(hi >= 0 && lo >= 0);
            FUZZ_CHECK(want == (unsigned char)(hi << 4 | lo));
            FUZZ_CHECK(want != '/' && !unreserved(want));
            i += 3;
        } else {
            FUZZ_CHECK(c == '/' || unreserved(c));
            FUZZ_CHECK(want == c);
            i++;
        }
        j++;
    }
    FUZZ_CHECK(j == wlen);
}

static size_t count_slashes(const char *s, size_t n)
{
    size_t i, k = 0;
    for (i = 0; i < n; i++)
        k += s[i] == '/';
    return k;
}

static size_t expected_size(const char *s, size_t n, int added)
{
    size_t i, total = (size_t)added;
    for (i = 0; i < n; i++)
        total += (s[i] == '/' || unreserved((unsigned char)s[i])) ? 1 : 3;
    return total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reader r = {data, size};
    size_t limit = fuzz_u8(&r), max;
    const char *path = (const char *)r.p;
    size_t n = r.left;
    int added = n == 0 || path[n - 1] != '/';
    eip_buf b;
    int rc;

    eip_buf_init(&b, limit ? limit + 1 : 0);
    max = b.limit ? b.limit : EIP_BUF_DEFAULT_LIMIT;
    /* sign.h allows NULL with length 0: take that branch on odd limits. */
    rc = eip_sign_canonical_uri(&b, n == 0 && (limit & 1) ? NULL : path, n);
    FUZZ_CHECK(b.cap <= max && b.len < max);
    FUZZ_CHECK(!b.data || b.data[b.len] == '\0');
    if (rc == 0) {
        FUZZ_CHECK(b.data && b.len > 0 && b.data[b.len - 1] == '/');
        FUZZ_CHECK(b.len == expected_size(path, n, added));
        FUZZ_CHECK(count_slashes(b.data, b.len) == count_slashes(path, n) + (size_t)added);
        check_decodes_to(b.data, b.len, path, n, added);
    } else {
        FUZZ_CHECK(rc == -1);
        FUZZ_CHECK(expected_size(path, n, added) + 1 > max);
    }
    eip_buf_free(&b);
    return 0;
}
