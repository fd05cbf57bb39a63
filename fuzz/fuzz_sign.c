/* fuzz_sign.c - eip_sign (src/sign.c) with fuzzed method, path, query, headers, body, AK, SK.
 *
 * Input layout (fuzz_input.h reader; missing bytes read as zero):
 *   flags, limit (only when flags & 8), 14 date digits, nquery % 13, nheaders % 13,
 *   chunks: method, path, body, ak, sk, then nquery x (name, value), nheaders x (name, value)
 * flags: 1 add "Host: h", 2 add a well-formed X-Sdk-Date made of the 14 digits (a date and time
 * that exist, its fields folded into their ranges; with 16 the digits as they come, which may
 * be none: month 13, 24 o'clock), 4 pass empty chunks as NULL pointers, 8 use `limit`
 * (64..319 bytes) for the output buffers.
 * Every argument lives in its own heap block of exactly its size, so ASan flags any read past it.
 *
 * Invariants:
 *  - the outcome is exactly what the rules in sign.h say: OK when the method is a token of
 *    1..32 chars, the AK a token without ',', the SK non-empty, every header name a token and
 *    unique case-insensitively, no value with CR/LF/NUL, a non-blank Host and a
 *    YYYYMMDDTHHMMSSZ X-Sdk-Date (a date and time that exist) are present, unless the buffer
 *    limit is hit (ENOMEM);
 *  - on failure the Authorization buffer is empty and err names a reason;
 *  - on success the Authorization is "SDK-HMAC-SHA256 Access=<ak>, SignedHeaders=<names>,
 *    Signature=<64 hex>", the names lower-case, strictly sorted, one per header; the canonical
 *    request has METHOD, a canonical URI ending in '/', an encoded query of nquery pairs, one
 *    "name:trimmed value" line per header in SignedHeaders order, a blank line, SignedHeaders,
 *    and the SHA-256 of the body (X-Sdk-Content-Sha256's trimmed value instead, unless empty);
 *    the Signature equals an HMAC-SHA256 computed here directly
 *    with libcrypto over "SDK-HMAC-SHA256\n<date>\n<hex sha256(canonical)>";
 *  - signing the same input with the header and query lists reversed, without asking for the
 *    canonical request, gives byte-identical results (or, after ENOMEM with a small limit, OK
 *    or ENOMEM: the canonical buffer is then the library's own, with the default limit);
 *  - with the default limit, an eip_signer gives what eip_sign gives, also when it signs the
 *    input a second time, with a later date, and reversed (its kept headers reused or not).
 */
#include "fuzz_input.h"
#include "sign.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <string.h>

#define MAXN 12      /* query parameters and headers, each */
#define NBLOCKS 64   /* heap blocks per input */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    void *block[NBLOCKS];
    int n;
} arena;

/* An exact-size copy (plus the NUL when asked), or NULL for an empty chunk in NULL mode. */
static char *dup_exact(arena *a, const char *s, size_t n, int nul, int null_if_empty)
{
    size_t bytes = n + (size_t)nul;
    char *p;
    if (n == 0 && null_if_empty)
        return NULL;
    if (a->n == NBLOCKS || (p = malloc(bytes ? bytes : 1)) == NULL)
        abort(); /* not a finding: the harness itself ran out */
    memcpy(p, s, n);
    if (nul)
        p[n] = '\0';
    a->block[a->n++] = p;
    return p;
}

static void arena_free(arena *a)
{
    while (a->n)
        free(a->block[--a->n]);
}

/* ---- an independent statement of the validity rules ---- */

static int tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int token(const char *s, size_t n)
{
    size_t i;
    if (!s || n == 0)
        return 0;
    for (i = 0; i < n; i++)
        if (!tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

static int lc(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int eq_ci(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i;
    if (an != bn)
        return 0;
    for (i = 0; i < an; i++)
        if (lc((unsigned char)a[i]) != lc((unsigned char)b[i]))
            return 0;
    return 1;
}

static int space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Unicode's White_Space beyond ASCII, in UTF-8: what str.strip and strings.TrimSpace trim too. */
static const char *const USPACE[] = {"\xC2\x85", "\xC2\xA0", "\xE1\x9A\x80", "\xE2\x80\x80", "\xE2\x80\x81",
                                     "\xE2\x80\x82", "\xE2\x80\x83", "\xE2\x80\x84", "\xE2\x80\x85",
                                     "\xE2\x80\x86", "\xE2\x80\x87", "\xE2\x80\x88", "\xE2\x80\x89",
                                     "\xE2\x80\x8A", "\xE2\x80\xA8", "\xE2\x80\xA9", "\xE2\x80\xAF",
                                     "\xE2\x81\x9F", "\xE3\x80\x80"};

static size_t uspace(const char *s, size_t n, int at_end)
{
    size_t i;
    for (i = 0; i < sizeof(USPACE) / sizeof(USPACE[0]); i++) {
        size_t k = strlen(USPACE[i]);
        if (n >= k && memcmp(at_end ? s + n - k : s, USPACE[i], k) == 0)
            return k;
    }
    return 0;
}

static void trim(const char *s, size_t n, const char **v, size_t *vn)
{
    size_t k;
    while ((k = n && space((unsigned char)*s) ? 1 : uspace(s, n, 0)) != 0) {
        s += k;
        n -= k;
    }
    while ((k = n && space((unsigned char)s[n - 1]) ? 1 : uspace(s, n, 1)) != 0)
        n -= k;
    *v = s;
    *vn = n;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    size_t i;
    for (i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* YYYYMMDDTHHMMSSZ of a date and time that exist (no month 13, 30 February, 24 o'clock). */
static int date_shape(const char *s, size_t n)
{
    size_t i;
    int y, m, d, last;
    if (n != 16)
        return 0;
    for (i = 0; i < 16; i++) {
        char c = s[i];
        if (i == 8 ? c != 'T' : i == 15 ? c != 'Z' : (c < '0' || c > '9'))
            return 0;
    }
    y = num(s, 4);
    m = num(s + 4, 2);
    d = num(s + 6, 2);
    if (m < 1 || m > 12)
        return 0;
    if (m == 2)
        last = (y % 400 == 0 || (y % 4 == 0 && y % 100 != 0)) ? 29 : 28;
    else
        last = (m == 4 || m == 6 || m == 9 || m == 11) ? 30 : 31;
    return d >= 1 && d <= last && num(s + 9, 2) <= 23 && num(s + 11, 2) <= 59 && num(s + 13, 2) <= 59;
}

static int valid_input(const eip_sign_input *in)
{
    size_t i, j, mlen, vn;
    const char *v;
    int host = 0, date = 0;

    if (!in->method)
        return 0;
    mlen = strnlen(in->method, 64);
    if (mlen > 32 || !token(in->method, mlen))
        return 0;
    if (!token(in->ak, in->ak_len) || memchr(in->ak, ',', in->ak_len) || !in->sk || !in->sk_len)
        return 0;
    for (i = 0; i < in->nheaders; i++) {
        const eip_kv *h = &in->headers[i];
        if (!token(h->name, h->name_len) || (!h->value && h->value_len))
            return 0;
        for (j = 0; j < h->value_len; j++)
            if (h->value[j] == '\r' || h->value[j] == '\n' || h->value[j] == '\0')
                return 0;
        for (j = 0; j < i; j++)
            if (eq_ci(h->name, h->name_len, in->headers[j].name, in->headers[j].name_len))
                return 0;
        if (eq_ci(h->name, h->name_len, "host", 4)) {
            trim(h->value, h->value_len, &v, &vn);
            host = vn > 0;
        }
        if (eq_ci(h->name, h->name_len, "x-sdk-date", 10))
            date = date_shape(h->value, h->value_len) ? 1 : -1;
    }
    return host && date == 1;
}

/* ---- checks of a successful result ---- */

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

static int encoded_ok(const char *s, size_t n, const char *extra)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n || !strchr("0123456789ABCDEF", s[i + 1]) || !s[i + 1] ||
                !strchr("0123456789ABCDEF", s[i + 2]) || !s[i + 2])
                return 0;
            i += 2;
        } else if (!unreserved(c) && !(c && strchr(extra, c))) {
            return 0;
        }
    }
    return 1;
}

static void to_hex(const unsigned char *md, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    int i;
    for (i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
}

static void sha256_hex(const char *s, size_t n, char hex[65])
{
    unsigned char md[32];
    SHA256((const unsigned char *)(s ? s : ""), n, md);
    to_hex(md, hex);
}

/* Splits text into lines at '\n' (at most max of them); returns the count. */
static size_t split_lines(const char *s, size_t n, const char **line, size_t *len, size_t max)
{
    size_t k = 0, start = 0, i;
    for (i = 0; i <= n && k < max; i++) {
        if (i == n || s[i] == '\n') {
            line[k] = s + start;
            len[k++] = i - start;
            start = i + 1;
        }
    }
    return k;
}

static const eip_kv *find_header(const eip_sign_input *in, const char *name, size_t n)
{
    size_t i;
    for (i = 0; i < in->nheaders; i++)
        if (eq_ci(in->headers[i].name, in->headers[i].name_len, name, n))
            return &in->headers[i];
    return NULL;
}

/* The headers that are signed: the official signers leave out names holding '_'. */
static size_t signed_count(const eip_sign_input *in)
{
    size_t i, n = 0;
    for (i = 0; i < in->nheaders; i++)
        n += memchr(in->headers[i].name, '_', in->headers[i].name_len) == NULL;
    return n;
}

/* SignedHeaders: lower-case names, strictly ascending, one per signed header. */
static void check_signed_headers(const eip_sign_input *in, const char *sh, size_t n)
{
    size_t start = 0, i, count = 0, plen = 0;
    const char *prev = NULL;
    for (i = 0; i <= n; i++) {
        size_t j, len;
        if (i < n && sh[i] != ';')
            continue;
        len = i - start;
        FUZZ_CHECK(len > 0 && find_header(in, sh + start, len) != NULL);
        FUZZ_CHECK(memchr(sh + start, '_', len) == NULL);
        for (j = 0; j < len; j++)
            FUZZ_CHECK(sh[start + j] == lc((unsigned char)sh[start + j]));
        if (prev) {
            int cmp = memcmp(prev, sh + start, plen < len ? plen : len);
            FUZZ_CHECK(cmp < 0 || (cmp == 0 && plen < len));
        }
        prev = sh + start;
        plen = len;
        count++;
        start = i + 1;
    }
    FUZZ_CHECK(count == signed_count(in));
}

static void check_canonical(const eip_sign_input *in, const eip_buf *canon, const char *sh,
                            size_t shlen)
{
    const char *line[MAXN + 8], *cur = sh, *pv;
    size_t len[MAXN + 8], k, i, ns = signed_count(in), nl = ns + 6, left = shlen, pn;
    const eip_kv *payload = find_header(in, "x-sdk-content-sha256", 20);

    k = split_lines(canon->data, canon->len, line, len, MAXN + 8);
    FUZZ_CHECK(k == nl);
    FUZZ_CHECK(len[0] == strlen(in->method) && memcmp(line[0], in->method, len[0]) == 0);
    FUZZ_CHECK(len[1] > 0 && line[1][len[1] - 1] == '/' && encoded_ok(line[1], len[1], "/"));
    FUZZ_CHECK(encoded_ok(line[2], len[2], "=&"));
    for (i = 0, k = 0; i < len[2]; i++)
        k += line[2][i] == '=';
    FUZZ_CHECK(k == in->nquery);
    for (i = 0; i < ns; i++) {
        const char *l = line[3 + i], *colon = memchr(l, ':', len[3 + i]), *v;
        const eip_kv *h;
        const char *semi = memchr(cur, ';', left);
        size_t vn, nlen = semi ? (size_t)(semi - cur) : left;
        FUZZ_CHECK(colon != NULL);
        /* the i-th line names the i-th SignedHeaders entry */
        FUZZ_CHECK((size_t)(colon - l) == nlen && memcmp(l, cur, nlen) == 0);
        cur += semi ? nlen + 1 : nlen;
        left -= semi ? nlen + 1 : nlen;
        h = find_header(in, l, nlen);
        FUZZ_CHECK(h != NULL);
        trim(h->value, h->value_len, &v, &vn);
        FUZZ_CHECK((size_t)(l + len[3 + i] - colon - 1) == vn && (vn == 0 || memcmp(colon + 1, v, vn) == 0));
    }
    FUZZ_CHECK(len[nl - 3] == 0);
    FUZZ_CHECK(len[nl - 2] == shlen && memcmp(line[nl - 2], sh, shlen) == 0);
    /* X-Sdk-Content-Sha256 (UNSIGNED-PAYLOAD, or any other value but an empty one) signs its
     * trimmed value instead of the body's hash. */
    pn = 0;
    if (payload != NULL)
        trim(payload->value, payload->value_len, &pv, &pn);
    if (pn > 0) {
        FUZZ_CHECK(len[nl - 1] == pn && memcmp(line[nl - 1], pv, pn) == 0);
    } else {
        char hex[65];
        sha256_hex(in->body, in->body_len, hex);
        FUZZ_CHECK(len[nl - 1] == 64 && memcmp(line[nl - 1], hex, 64) == 0);
    }
}

static void check_success(const eip_sign_input *in, const eip_buf *auth, const eip_buf *canon)
{
    static const char pre[] = "SDK-HMAC-SHA256 Access=", mid[] = ", SignedHeaders=",
                      sig[] = ", Signature=";
    const char *a = auth->data, *sh, *end;
    const eip_kv *date = find_header(in, "x-sdk-date", 10);
    char sts[128], hex[65];
    unsigned char md[32];
    unsigned int mdlen = 0;
    size_t shlen, n;

    FUZZ_CHECK(a && strlen(a) == auth->len);
    FUZZ_CHECK(strncmp(a, pre, sizeof(pre) - 1) == 0);
    a += sizeof(pre) - 1;
    FUZZ_CHECK(memcmp(a, in->ak, in->ak_len) == 0);
    a += in->ak_len;
    FUZZ_CHECK(strncmp(a, mid, sizeof(mid) - 1) == 0);
    sh = a + sizeof(mid) - 1;
    end = strstr(sh, sig);
    FUZZ_CHECK(end != NULL);
    shlen = (size_t)(end - sh);
    check_signed_headers(in, sh, shlen);
    end += sizeof(sig) - 1;
    FUZZ_CHECK(strlen(end) == 64);

    check_canonical(in, canon, sh, shlen);
    sha256_hex(canon->data, canon->len, hex);
    n = (size_t)snprintf(sts, sizeof(sts), "SDK-HMAC-SHA256\n%.16s\n%s", date->value, hex);
    FUZZ_CHECK(HMAC(EVP_sha256(), in->sk, (int)in->sk_len, (const unsigned char *)sts, n, md,
                    &mdlen) != NULL && mdlen == 32);
    to_hex(md, hex);
    FUZZ_CHECK(memcmp(end, hex, 64) == 0);
}

/* ---- the target ---- */

typedef struct {
    eip_sign_input in;
    eip_kv query[MAXN], headers[MAXN + 2];
    eip_kv rquery[MAXN], rheaders[MAXN + 2];
} call;

static void read_kvs(fuzz_reader *r, arena *a, eip_kv *kv, size_t n, int nullmode)
{
    size_t i;
    for (i = 0; i < n; i++) {
        const char *s = fuzz_chunk(r, &kv[i].name_len);
        kv[i].name = dup_exact(a, s, kv[i].name_len, 0, nullmode);
        s = fuzz_chunk(r, &kv[i].value_len);
        kv[i].value = dup_exact(a, s, kv[i].value_len, 0, nullmode);
    }
}

static void read_call(fuzz_reader *r, arena *a, call *c, int flags, const char *date)
{
    size_t nq = fuzz_u8(r) % (MAXN + 1), nh = fuzz_u8(r) % (MAXN + 1), n;
    int nm = flags & 4;
    const char *s;

    memset(c, 0, sizeof(*c));
    s = fuzz_chunk(r, &n);
    c->in.method = dup_exact(a, s, n, 1, nm);
    s = fuzz_chunk(r, &c->in.path_len);
    c->in.path = dup_exact(a, s, c->in.path_len, 0, nm);
    s = fuzz_chunk(r, &c->in.body_len);
    c->in.body = dup_exact(a, s, c->in.body_len, 0, nm);
    s = fuzz_chunk(r, &c->in.ak_len);
    c->in.ak = dup_exact(a, s, c->in.ak_len, 0, nm);
    s = fuzz_chunk(r, &c->in.sk_len);
    c->in.sk = dup_exact(a, s, c->in.sk_len, 0, nm);
    read_kvs(r, a, c->query, nq, nm);
    read_kvs(r, a, c->headers, nh, nm);
    if (flags & 1)
        c->headers[nh++] = (eip_kv){dup_exact(a, "Host", 4, 0, 0), 4, dup_exact(a, "h", 1, 0, 0), 1};
    if (flags & 2)
        c->headers[nh++] =
            (eip_kv){dup_exact(a, "X-Sdk-Date", 10, 0, 0), 10, dup_exact(a, date, 16, 0, 0), 16};
    c->in.query = nq || !nm ? c->query : NULL;
    c->in.nquery = nq;
    c->in.headers = nh || !nm ? c->headers : NULL;
    c->in.nheaders = nh;
}

/* The signer s has just signed in (status st, auth and canon as eip_sign gave them); rev is in
 * with its lists reversed (auth2: eip_sign's Authorization for it). The signer keeps the last
 * headers it signed (header_cache in src/sign.c): signing in again, rev, and in with a later
 * date must give what eip_sign gives, byte for byte. */
static void check_signer_again(eip_signer *s, const eip_sign_input *in, const eip_sign_input *rev, arena *a,
                               eip_sign_status st, const eip_buf *auth, const eip_buf *canon, const eip_buf *auth2,
                               int flags)
{
    const char *serr = NULL, *sauth = NULL, *scanon = NULL, *err = NULL;
    size_t slen = 0;
    eip_sign_status again = eip_signer_sign(s, in, &sauth, &slen, &scanon, &serr);

    FUZZ_CHECK(again == st);
    if (again == EIP_SIGN_OK)
        FUZZ_CHECK(slen == auth->len && memcmp(sauth, auth->data, slen) == 0 && strlen(scanon) == canon->len &&
                   memcmp(scanon, canon->data, canon->len) == 0);
    if (st == EIP_SIGN_OK && (flags & 2)) {
        /* The date is the last header: a later one, the other headers as they were. */
        eip_kv later_headers[MAXN + 2];
        eip_sign_input later = *in;
        eip_buf want_auth, want_canon;
        eip_sign_status want;
        memcpy(later_headers, in->headers, in->nheaders * sizeof(*later_headers));
        later_headers[in->nheaders - 1].value = dup_exact(a, "20380119T031408Z", 16, 0, 0);
        later.headers = later_headers;
        eip_buf_init(&want_auth, 0);
        eip_buf_init(&want_canon, 0);
        want = eip_sign(&later, &want_auth, &want_canon, &err);
        FUZZ_CHECK(want == EIP_SIGN_OK);
        FUZZ_CHECK(eip_signer_sign(s, &later, &sauth, &slen, &scanon, &serr) == want);
        FUZZ_CHECK(slen == want_auth.len && memcmp(sauth, want_auth.data, slen) == 0 &&
                   strlen(scanon) == want_canon.len && memcmp(scanon, want_canon.data, want_canon.len) == 0);
        eip_buf_free(&want_auth);
        eip_buf_free(&want_canon);
    }
    again = eip_signer_sign(s, rev, &sauth, &slen, NULL, &serr);
    FUZZ_CHECK(again == st);
    if (again == EIP_SIGN_OK)
        FUZZ_CHECK(slen == auth2->len && memcmp(sauth, auth2->data, slen) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reader r = {data, size};
    arena a = {{0}, 0};
    int flags = fuzz_u8(&r);
    size_t limit = (flags & 8) ? 64 + (size_t)fuzz_u8(&r) : 0, i;
    char date[17];
    call c;
    eip_buf auth, canon, auth2;
    const char *err = (const char *)1;
    eip_sign_status st, st2;
    eip_sign_input rev;

    for (i = 0; i < 16; i++)
        date[i] = i == 8 ? 'T' : i == 15 ? 'Z' : (char)('0' + fuzz_u8(&r) % 10);
    date[16] = '\0';
    if (!(flags & 16)) {
        /* month 01-12, day 01-28, hour 00-23, minute and second 00-59: a date that exists */
        static const int at[] = {4, 6, 9, 11, 13}, span[] = {12, 28, 24, 60, 60}, base[] = {1, 1, 0, 0, 0};
        for (i = 0; i < 5; i++) {
            int v = base[i] + ((date[at[i]] - '0') * 10 + (date[at[i] + 1] - '0')) % span[i];
            date[at[i]] = (char)('0' + v / 10);
            date[at[i] + 1] = (char)('0' + v % 10);
        }
    }
    read_call(&r, &a, &c, flags, date);

    eip_buf_init(&auth, limit);
    eip_buf_init(&canon, limit);
    st = eip_sign(&c.in, &auth, &canon, &err);
    if (st == EIP_SIGN_OK) {
        FUZZ_CHECK(err == NULL && valid_input(&c.in));
        check_success(&c.in, &auth, &canon);
    } else {
        FUZZ_CHECK(err != NULL && err[0] != '\0');
        FUZZ_CHECK(auth.len == 0 && (!auth.data || auth.data[0] == '\0'));
        /* Inputs here are far below the default 1 MiB limit, so running out of room needs a
         * small limit, and validation comes before any building. */
        FUZZ_CHECK(st == EIP_SIGN_EINVAL ? !valid_input(&c.in)
                                         : st == EIP_SIGN_ENOMEM && limit != 0 && valid_input(&c.in));
    }

    /* The same request with both lists reversed and no canonical buffer. */
    rev = c.in;
    for (i = 0; i < c.in.nquery; i++)
        c.rquery[i] = c.query[c.in.nquery - 1 - i];
    for (i = 0; i < c.in.nheaders; i++)
        c.rheaders[i] = c.headers[c.in.nheaders - 1 - i];
    rev.query = c.in.query ? c.rquery : NULL;
    rev.headers = c.in.headers ? c.rheaders : NULL;
    eip_buf_init(&auth2, limit);
    st2 = eip_sign(&rev, &auth2, NULL, NULL);
    if (st == EIP_SIGN_ENOMEM) {
        /* Without a caller buffer the canonical request gets the default limit, so only the
         * Authorization's small limit can still be hit. */
        FUZZ_CHECK(st2 == EIP_SIGN_OK || st2 == EIP_SIGN_ENOMEM);
    } else {
        FUZZ_CHECK(st2 == st);
        FUZZ_CHECK(auth2.len == auth.len && (auth.len == 0 || memcmp(auth2.data, auth.data, auth.len) == 0));
    }

    /* The same request through an eip_signer (the Lua client's way): where eip_sign had the
     * default limit, the same status, the same bytes, the same message. */
    if (limit == 0) {
        const char *serr = NULL, *sauth = NULL, *scanon = NULL;
        size_t slen = 0;
        eip_signer *s = eip_signer_new(c.in.ak, c.in.ak_len, c.in.sk, c.in.sk_len, &serr);
        if (s == NULL) {
            FUZZ_CHECK(st == EIP_SIGN_EINVAL && serr != NULL && strcmp(serr, err) == 0);
        } else {
            eip_sign_status st3 = eip_signer_sign(s, &c.in, &sauth, &slen, &scanon, &serr);
            FUZZ_CHECK(st3 == st);
            if (st3 == EIP_SIGN_OK)
                FUZZ_CHECK(slen == auth.len && memcmp(sauth, auth.data, slen) == 0 &&
                           strlen(scanon) == canon.len && memcmp(scanon, canon.data, canon.len) == 0);
            else
                FUZZ_CHECK(sauth == NULL && serr != NULL && strcmp(serr, err) == 0);
            check_signer_again(s, &c.in, &rev, &a, st, &auth, &canon, &auth2, flags);
            eip_signer_free(s);
        }
    }

    eip_buf_free(&auth);
    eip_buf_free(&canon);
    eip_buf_free(&auth2);
    arena_free(&a);
    return 0;
}
