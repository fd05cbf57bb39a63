/* sign.c - SDK-HMAC-SHA256 request signing (Huawei Cloud AK/SK), OpenSSL libcrypto.
 *
 * CanonicalRequest = METHOD \n CanonicalURI \n CanonicalQuery \n CanonicalHeaders \n
 *                    SignedHeaders \n HexSHA256(body)
 * StringToSign     = "SDK-HMAC-SHA256" \n X-Sdk-Date \n HexSHA256(CanonicalRequest)
 * Signature        = HexHMAC-SHA256(SK, StringToSign)
 *
 * Every input is treated as untrusted bytes: all lengths are explicit, every buffer is an
 * eip_buf with a hard limit, and there is no global or static mutable state (fuzz-friendly).
 */
#include "sign.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Checked before any other OpenSSL header, so that an old one gets this message first
 * instead of a cascade of errors from headers that predate what we use. EVP_MD_fetch and
 * EVP_MD_free (eip_sign) are OpenSSL 3.0's; LibreSSL reports 2.0.0 here and lacks them too. */
#include <openssl/opensslv.h>
#if !defined(OPENSSL_VERSION_NUMBER) || OPENSSL_VERSION_NUMBER < 0x30000000L || defined(LIBRESSL_VERSION_NUMBER)
#error "lua-eip needs OpenSSL >= 3.0 (EVP_MD_fetch): install a newer OpenSSL development package"
#endif

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define ALGORITHM "SDK-HMAC-SHA256"
#define SDK_DATE_LEN 16 /* YYYYMMDDTHHMMSSZ */
#define METHOD_MAX 32   /* longer "methods" are rejected rather than scanned without bound */
#define SMALL_SORT 16   /* header/query counts sorted without a heap allocation */

static const char HEX_UPPER[] = "0123456789ABCDEF";

/* ---------- eip_buf ---------- */

void eip_buf_init(eip_buf *b, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit;
}

void eip_buf_free(eip_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

static size_t buf_limit(const eip_buf *b)
{
    return b->limit ? b->limit : EIP_BUF_DEFAULT_LIMIT;
}

static void buf_reset(eip_buf *b)
{
    b->len = 0;
    if (b->data && b->cap)
        b->data[0] = '\0';
}

/* Make room for n more bytes plus a NUL. One byte is always kept for the NUL so that the
 * outputs can be handed to C string APIs; the usable size is therefore limit - 1. A buffer
 * grows by a new block, the old one wiped before it is freed (the header cache holds the
 * X-Security-Token line, which realloc would leave in the heap when it moves a block); growth
 * is rare, the buffers kept from request to request. */
static int buf_reserve(eip_buf *b, size_t n)
{
    size_t limit = buf_limit(b), need, cap;
    char *p;

    if (n >= limit || b->len >= limit - n)
        return -1;
    need = b->len + n + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 64;
    if (cap > limit)
        cap = limit;
    while (cap < need)
        cap = cap > limit / 2 ? limit : cap * 2; /* doubling, never past the limit */
    p = malloc(cap);
    if (!p)
        return -1;
    if (b->data) {
        memcpy(p, b->data, b->len);
        p[b->len] = '\0';
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

static int buf_add(eip_buf *b, const char *s, size_t n)
{
    /* With room already (the NUL included; cap never exceeds the limit), no reservation: a
     * canonical request is made of some forty small appends. */
    if (!(b->cap != 0 && n < b->cap - b->len) && buf_reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int buf_adds(eip_buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

static int buf_addc(eip_buf *b, char c)
{
    return buf_add(b, &c, 1);
}

/* ---------- character classes ---------- */

/* By byte: bit 1, RFC 3986 unreserved (A-Z a-z 0-9 - . _ ~); bit 2, RFC 9110 token character
 * (those, and !#$%&'*+^`|); bit 4, '/'. One load per byte instead of a chain of comparisons. */
static const unsigned char CHAR_CLASS[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 2, 0, 2, 2, 2, 2, 2, 0, 0, 2, 2, 0, 3, 3, 4,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0,
    0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 2, 3,
    2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 2, 0, 3, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

#define CLASS_UNRESERVED 1
#define CLASS_TCHAR 2
#define CLASS_SLASH 4

static int is_unreserved(unsigned char c)
{
    return CHAR_CLASS[c] & CLASS_UNRESERVED;
}

/* RFC 9110 token characters: what a header name or a method may consist of. Anything else
 * (':', space, CR, LF, NUL, ...) would make the canonical request ambiguous or the request
 * itself malformed, so it is rejected instead of being signed. */
static int is_tchar(unsigned char c)
{
    return (CHAR_CLASS[c] & CLASS_TCHAR) != 0;
}

static int is_token(const char *s, size_t n)
{
    size_t i;
    if (n == 0)
        return 0;
    for (i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

/* ASCII-only so that the result never depends on the process locale. */
static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* The official signers trim header values with str.strip (Python) and strings.TrimSpace (Go);
 * for the ASCII range both trim space, tab, CR, LF, VT and FF. CR and LF never get here
 * (values holding them are rejected), but trimming the same set keeps the rule identical to
 * the reference. (Python also trims 0x1C-0x1F, Go does not: those are kept, as Go does.) */
static int is_trim_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Both also trim Unicode's White_Space beyond ASCII: U+0085, U+00A0, U+1680, U+2000-U+200A,
 * U+2028, U+2029, U+202F, U+205F and U+3000. The gateway verifies as they sign: a value that
 * ends in a no-break space (pasted) signed with it was refused. The length of the UTF-8 form
 * of one of them that s[0..n) is, else 0. */
static size_t unicode_space_len(const unsigned char *s, size_t n)
{
    if (n == 2 && s[0] == 0xC2)
        return s[1] == 0x85 || s[1] == 0xA0 ? 2 : 0;
    if (n != 3)
        return 0;
    if (s[0] == 0xE1)
        return s[1] == 0x9A && s[2] == 0x80 ? 3 : 0;
    if (s[0] == 0xE2 && s[1] == 0x80)
        return (s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF ? 3 : 0;
    if (s[0] == 0xE2)
        return s[1] == 0x81 && s[2] == 0x9F ? 3 : 0;
    return s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80 ? 3 : 0;
}

/* The length of the trimmed space (ASCII or Unicode, as above) s[0..n) starts (at_end = 0) or
 * ends (at_end = 1) with, else 0. */
static size_t trim_space_len(const char *s, size_t n, int at_end)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t k;
    if (n == 0)
        return 0;
    if (is_trim_space(at_end ? u[n - 1] : u[0]))
        return 1;
    for (k = 2; k <= 3 && k <= n; k++)
        if (unicode_space_len(at_end ? u + n - k : u, k) == k)
            return k;
    return 0;
}

/* ---------- public helpers ---------- */

/* Appends s, each byte whose CHAR_CLASS has a bit of `keep` as it is and every other one as
 * %XX, into room reserved once for the worst case (every byte escaped): one bound check
 * instead of one per byte. -1, with nothing written, when the worst case would pass the limit
 * (the caller then appends byte by byte, to find whether the real case fits). */
static int encode_in_room(eip_buf *out, const char *s, size_t len, unsigned char keep)
{
    size_t i;
    char *d;

    if (len > (SIZE_MAX - 1) / 3 || buf_reserve(out, 3 * len) != 0)
        return -1;
    d = out->data + out->len;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (CHAR_CLASS[c] & keep) {
            *d++ = (char)c;
        } else {
            *d++ = '%';
            *d++ = HEX_UPPER[c >> 4];
            *d++ = HEX_UPPER[c & 15];
        }
    }
    out->len = (size_t)(d - out->data);
    out->data[out->len] = '\0';
    return 0;
}

int eip_sign_percent_encode(eip_buf *out, const char *s, size_t len)
{
    size_t i;
    char esc[3];

    if (!s && len)
        return -1;
    if (encode_in_room(out, s, len, CLASS_UNRESERVED) == 0)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c)) {
            if (buf_addc(out, (char)c) != 0)
                return -1;
            continue;
        }
        esc[0] = '%';
        esc[1] = HEX_UPPER[c >> 4];
        esc[2] = HEX_UPPER[c & 15];
        if (buf_add(out, esc, 3) != 0)
            return -1;
    }
    return 0;
}

int eip_sign_canonical_uri(eip_buf *out, const char *path, size_t len)
{
    size_t i, start = 0;

    if (!path && len)
        return -1;
    if (!path)
        path = ""; /* NULL + 0 is undefined behaviour in C, even for a zero offset */
    /* Split on every '/', encode each segment (a '/' inside a segment cannot exist in a raw
     * path: it IS a separator, exactly as the official signer splits it). That is: every '/'
     * kept, every other byte as eip_sign_percent_encode writes it, in one pass; segment by
     * segment when the worst case would pass the limit. */
    if (encode_in_room(out, path, len, CLASS_UNRESERVED | CLASS_SLASH) != 0) {
        for (i = 0; i <= len; i++) {
            if (i < len && path[i] != '/')
                continue;
            if (eip_sign_percent_encode(out, path + start, i - start) != 0)
                return -1;
            if (i < len && buf_addc(out, '/') != 0)
                return -1;
            start = i + 1;
        }
    }
    if (out->len == 0 || out->data[out->len - 1] != '/')
        return buf_addc(out, '/');
    return 0;
}

/* Each byte's two lower-case hex digits: one copy per byte instead of two lookups. */
static const char HEX_PAIRS[513] = "000102030405060708090a0b0c0d0e0f"
    "101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f"
    "303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f"
    "505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f"
    "707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f"
    "909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
    "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
    "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeef"
    "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

static void to_hex(const unsigned char *md, size_t n, char *hex)
{
    size_t i;
    for (i = 0; i < n; i++)
        memcpy(hex + 2 * i, HEX_PAIRS + 2 * md[i], 2);
    hex[2 * n] = '\0';
}

/* The hex SHA-256 of "", the body hash of every bodiless request (DELETE, GET). */
static const char EMPTY_SHA256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/* Hex SHA-256 with a given digest object, and a context to reuse when work is not NULL. */
static int sha256_hex_md(const EVP_MD *md_alg, EVP_MD_CTX *work, const void *data, size_t len,
                         char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    hex[0] = '\0';
    if (!data && len)
        return -1;
    if (len == 0) {
        memcpy(hex, EMPTY_SHA256, sizeof(EMPTY_SHA256));
        return 0;
    }
    if (work != NULL) {
        if (EVP_DigestInit_ex(work, md_alg, NULL) != 1 || EVP_DigestUpdate(work, data, len) != 1 ||
            EVP_DigestFinal_ex(work, md, &mdlen) != 1 || mdlen != 32)
            return -1;
    } else if (EVP_Digest(data, len, md, &mdlen, md_alg, NULL) != 1 || mdlen != 32) {
        return -1;
    }
    to_hex(md, 32, hex);
    return 0;
}

int eip_sha256_hex(const void *data, size_t len, char hex[65])
{
    return sha256_hex_md(EVP_sha256(), NULL, data, len, hex);
}

/* Days since 1970-01-01 -> proleptic Gregorian y/m/d, counting in 400-year eras that start
 * on March 1st so the leap day falls at the end of each year. */
static void civil_from_days(long long days, long long *y, int *m, int *d)
{
    long long z = days + 719468; /* shift the epoch to 0000-03-01 */
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;                                /* [0, 146096] */
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);         /* [0, 365] */
    long long mp = (5 * doy + 2) / 153;                              /* [0, 11], from March */

    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static void put_digits(char *out, long long v, int n)
{
    while (n-- > 0) {
        out[n] = (char)('0' + v % 10);
        v /= 10;
    }
}

void eip_sign_format_date(long long unix_seconds, char out[17])
{
    /* The format has a 4-digit year and no sign, so times are clamped to
     * 1970-01-01T00:00:00Z .. 9999-12-31T23:59:59Z (this also keeps the arithmetic far from
     * overflow for any long long). */
    const long long max = 253402300799LL;
    long long t = unix_seconds < 0 ? 0 : (unix_seconds > max ? max : unix_seconds);
    long long days = t / 86400, secs = t % 86400, y;
    int m, d;

    civil_from_days(days, &y, &m, &d);
    put_digits(out, y, 4);
    put_digits(out + 4, m, 2);
    put_digits(out + 6, d, 2);
    out[8] = 'T';
    put_digits(out + 9, secs / 3600, 2);
    put_digits(out + 11, secs / 60 % 60, 2);
    put_digits(out + 13, secs % 60, 2);
    out[15] = 'Z';
    out[16] = '\0';
}

/* ---------- signing ---------- */

/* What the digests of a signature use. eip_sign makes one per signature; an eip_signer keeps
 * one for all of its signatures, with the HMAC key blocks already absorbed. */
typedef struct {
    /* SHA-256 fetched once: OpenSSL 3 looks the algorithm up again on every EVP_sha256()
     * digest, a third of a small digest's cost, and a signature takes four. */
    const EVP_MD *sha256;
    EVP_MD_CTX *work;  /* NULL: EVP_Digest makes a context per digest */
    /* NULL, or SHA-256 after (SK ^ ipad) and after (SK ^ opad): HMAC then starts from a copy
     * instead of hashing the key block again (a third of the HMAC's blocks). */
    EVP_MD_CTX *inner, *outer;
} crypto;

/* What a signer keeps of the last headers it signed, and what it made of them. A client sends
 * the same headers on every request (its content type and Accept, Host, the project, a
 * security token): only X-Sdk-Date's value changes. A request whose headers are the kept ones
 * byte for byte (the same names in the same order with the same values, the date's value
 * aside) takes its canonical header lines and SignedHeaders list from here: its headers are
 * not checked, sorted and lowered again, only its date is. */
typedef struct {
    int valid;
    size_t n;             /* in->nheaders */
    size_t date_at;       /* the index of X-Sdk-Date in in->headers */
    size_t payload_at;    /* that of X-Sdk-Content-Sha256, or in->nheaders when there is none */
    /* Per header, in the input's order: its name's and its value's length (a size_t each, 0
     * for the date's value), then the name and the value (the date's left out). */
    eip_buf seen;
    /* The canonical header lines (lines_len bytes, the date's value at date_off), then the
     * SignedHeaders list. */
    eip_buf made;
    size_t lines_len, date_off;
} header_cache;

typedef struct {
    const eip_sign_input *in;
    const crypto *cr;
    const header_cache *cache; /* non-NULL: the headers are the cache's (see header_cache) */
    const char *ak;       /* the AK (in->ak, or the signer's) */
    size_t ak_len;
    const eip_kv **hdr;   /* headers sorted by lower-case name */
    const eip_kv **qry;   /* query sorted by key, then value */
    const eip_kv *date;   /* the X-Sdk-Date header */
    const eip_kv *payload; /* the X-Sdk-Content-Sha256 header, or NULL */
    size_t sh_off, sh_len; /* where SignedHeaders is in the canonical request */
    size_t hdr_off, hdr_len, date_off; /* where the header lines and the date's value are in it */
    const char *err;
} sign_ctx;

#define FAIL(ctx, status, msg) ((ctx)->err = (msg), (status))

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int r = n ? memcmp(a, b, n) : 0;
    if (r)
        return r;
    return an < bn ? -1 : (an > bn ? 1 : 0);
}

static int cmp_name_ci(const eip_kv *a, const eip_kv *b)
{
    size_t i, n = a->name_len < b->name_len ? a->name_len : b->name_len;
    for (i = 0; i < n; i++) {
        unsigned char x = lower((unsigned char)a->name[i]);
        unsigned char y = lower((unsigned char)b->name[i]);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return a->name_len < b->name_len ? -1 : (a->name_len > b->name_len ? 1 : 0);
}

static int qsort_header(const void *a, const void *b)
{
    return cmp_name_ci(*(const eip_kv *const *)a, *(const eip_kv *const *)b);
}

/* Raw (unencoded) bytes, as the official signers sort the raw keys before encoding them;
 * ties on the key are broken by the value so that repeated keys sort deterministically. */
static int qsort_query(const void *a, const void *b)
{
    const eip_kv *x = *(const eip_kv *const *)a, *y = *(const eip_kv *const *)b;
    int r = cmp_bytes(x->name, x->name_len, y->name, y->name_len);
    return r ? r : cmp_bytes(x->value, x->value_len, y->value, y->value_len);
}

static int name_is(const eip_kv *kv, const char *lname)
{
    size_t i, n = strlen(lname);
    if (kv->name_len != n)
        return 0;
    for (i = 0; i < n; i++)
        if (lower((unsigned char)kv->name[i]) != (unsigned char)lname[i])
            return 0;
    return 1;
}

/* A value with CR, LF or NUL anywhere cannot be sent as one header line, so signing it would
 * only hide a header-injection attempt. */
static int value_ok(const eip_kv *kv)
{
    size_t i;
    if (!kv->value && kv->value_len)
        return 0;
    for (i = 0; i < kv->value_len; i++) {
        char c = kv->value[i];
        if (c == '\r' || c == '\n' || c == '\0')
            return 0;
    }
    return 1;
}

static void trimmed(const eip_kv *kv, const char **v, size_t *n)
{
    const char *s = kv->value;
    size_t len = kv->value_len, k;
    while ((k = trim_space_len(s, len, 0)) != 0) {
        s += k;
        len -= k;
    }
    while ((k = trim_space_len(s, len, 1)) != 0)
        len -= k;
    *v = s;
    *n = len;
}

/* The number written by the n digits at s (checked digits). */
static int digits_value(const char *s, int n)
{
    int v = 0;
    while (n-- > 0)
        v = v * 10 + (*s++ - '0');
    return v;
}

/* A date of the shape that is a date and time too: no month 13, 30 February or 24 o'clock,
 * which the official signers never sign (Go dates the request now instead, Python raises) and
 * the gateway would refuse, a refusal that counts toward the key's lock. NULL when it is, else
 * why not (a date of the right shape is told apart: "not YYYYMMDDTHHMMSSZ" misled about it). */
static const char *date_problem(const eip_kv *kv)
{
    static const char *const shape_err = "X-Sdk-Date is not YYYYMMDDTHHMMSSZ";
    static const char *const range_err = "X-Sdk-Date is no date and time that exist (YYYYMMDDTHHMMSSZ, UTC)";
    static const char shape[] = "DDDDDDDDTDDDDDDZ"; /* D = digit */
    static const int month_days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *s = kv->value;
    int year, month, day;
    size_t i;
    if (kv->value_len != SDK_DATE_LEN)
        return shape_err;
    for (i = 0; i < SDK_DATE_LEN; i++) {
        char c = s[i];
        if (shape[i] == 'D' ? (c < '0' || c > '9') : c != shape[i])
            return shape_err;
    }
    year = digits_value(s, 4);
    month = digits_value(s + 4, 2);
    day = digits_value(s + 6, 2);
    if (month < 1 || month > 12 || day < 1 || day > month_days[month - 1])
        return range_err;
    if (month == 2 && day == 29 && !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
        return range_err;
    if (digits_value(s + 9, 2) < 24 && digits_value(s + 11, 2) < 60 && digits_value(s + 13, 2) < 60)
        return NULL;
    return range_err;
}

/* Pointer arrays for sorting: on the stack when small, else on the heap. The count is
 * bounded by the caller before this is called, so n * sizeof(pointer) cannot overflow. */
static const eip_kv **sort_array(const eip_kv *kv, size_t n, const eip_kv **small)
{
    const eip_kv **p = small;
    size_t i;
    if (n > SMALL_SORT) {
        if (n > SIZE_MAX / sizeof(*p))
            return NULL;
        p = malloc(n * sizeof(*p));
        if (!p)
            return NULL;
    }
    for (i = 0; i < n; i++)
        p[i] = &kv[i];
    return p;
}

static eip_sign_status check_headers(sign_ctx *c)
{
    const eip_sign_input *in = c->in;
    const char *why;
    int host = 0;
    size_t i;

    for (i = 0; i < in->nheaders; i++) {
        const eip_kv *h = c->hdr[i];
        if (i > 0 && cmp_name_ci(c->hdr[i - 1], h) == 0)
            return FAIL(c, EIP_SIGN_EINVAL, "a header name appears twice (case-insensitively)");
        if (name_is(h, "host")) {
            const char *v;
            size_t n;
            trimmed(h, &v, &n);
            host = n > 0;
        } else if (name_is(h, "x-sdk-date")) {
            c->date = h;
        } else if (name_is(h, "x-sdk-content-sha256")) {
            c->payload = h;
        }
    }
    if (!host)
        return FAIL(c, EIP_SIGN_EINVAL, "the Host header is missing or empty");
    if (!c->date)
        return FAIL(c, EIP_SIGN_EINVAL, "the X-Sdk-Date header is missing");
    why = date_problem(c->date);
    if (why != NULL)
        return FAIL(c, EIP_SIGN_EINVAL, why);
    return EIP_SIGN_OK;
}

static eip_sign_status check_scalars(sign_ctx *c)
{
    const eip_sign_input *in = c->in;
    size_t mlen;

    if (!in->method)
        return FAIL(c, EIP_SIGN_EINVAL, "the method is missing");
    for (mlen = 0; mlen <= METHOD_MAX && in->method[mlen]; mlen++)
        ;
    if (mlen > METHOD_MAX || !is_token(in->method, mlen))
        return FAIL(c, EIP_SIGN_EINVAL, "the method is empty, too long or not a token");
    if ((!in->path && in->path_len) || (!in->body && in->body_len) ||
        (!in->query && in->nquery) || (!in->headers && in->nheaders))
        return FAIL(c, EIP_SIGN_EINVAL, "a NULL pointer was given with a non-zero length");
    return EIP_SIGN_OK;
}

/* NULL when the pair can sign, else why not (a static message that never holds key bytes). */
static const char *check_keys(const char *ak, size_t ak_len, const char *sk, size_t sk_len)
{
    /* The AK is copied into the Authorization value, where ',' or a space would split it. */
    if (!ak || !is_token(ak, ak_len) || memchr(ak, ',', ak_len))
        return "the AK is empty or holds invalid characters";
    if (!sk || sk_len == 0 || sk_len > INT_MAX)
        return "the SK is missing or too long";
    return NULL;
}

static eip_sign_status check_lists(sign_ctx *c, size_t limit)
{
    const eip_sign_input *in = c->in;
    size_t i;

    /* Each header adds at least 4 bytes ("n:\n" and ';') and each query parameter at least
     * 1 ('=') to the canonical request, so larger counts can never fit: refusing them here
     * also bounds the sort arrays. */
    if (in->nheaders > limit / 4 || in->nquery > limit)
        return FAIL(c, EIP_SIGN_ENOMEM, "too many headers or query parameters");
    for (i = 0; i < in->nquery; i++)
        if ((!in->query[i].name && in->query[i].name_len) ||
            (!in->query[i].value && in->query[i].value_len))
            return FAIL(c, EIP_SIGN_EINVAL, "a query parameter has a NULL pointer");
    /* Checked before sorting, so that the comparator only ever sees valid names. Headers that
     * are the cache's were checked when it was made. */
    for (i = 0; c->cache == NULL && i < in->nheaders; i++) {
        if (!in->headers[i].name || !is_token(in->headers[i].name, in->headers[i].name_len))
            return FAIL(c, EIP_SIGN_EINVAL, "a header name is empty or not a valid token");
        if (!value_ok(&in->headers[i]))
            return FAIL(c, EIP_SIGN_EINVAL, "a header value contains CR, LF or NUL");
    }
    return EIP_SIGN_OK;
}

static int add_lower(eip_buf *b, const char *s, size_t n)
{
    size_t i;
    if (buf_reserve(b, n) != 0)
        return -1;
    for (i = 0; i < n; i++)
        b->data[b->len + i] = (char)lower((unsigned char)s[i]);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* The official signers leave header names containing '_' out of the signature: gateways
 * (nginx among them) may drop such headers, and a signed header that never arrives would make
 * every request fail verification. */
static int is_signed(const eip_kv *h)
{
    return memchr(h->name, '_', h->name_len) == NULL;
}

static int add_signed_headers(const sign_ctx *c, eip_buf *b)
{
    size_t i;
    int first = 1;
    for (i = 0; i < c->in->nheaders; i++) {
        if (!is_signed(c->hdr[i]))
            continue;
        if (!first && buf_addc(b, ';') != 0)
            return -1;
        first = 0;
        if (add_lower(b, c->hdr[i]->name, c->hdr[i]->name_len) != 0)
            return -1;
    }
    return 0;
}

static int add_query(const sign_ctx *c, eip_buf *b)
{
    size_t i;
    for (i = 0; i < c->in->nquery; i++) {
        const eip_kv *q = c->qry[i];
        if ((i > 0 && buf_addc(b, '&') != 0) ||
            eip_sign_percent_encode(b, q->name, q->name_len) != 0 || buf_addc(b, '=') != 0 ||
            eip_sign_percent_encode(b, q->value, q->value_len) != 0)
            return -1;
    }
    return 0;
}

static int add_headers(sign_ctx *c, eip_buf *b)
{
    size_t i;
    for (i = 0; i < c->in->nheaders; i++) {
        const char *v;
        size_t n;
        if (!is_signed(c->hdr[i]))
            continue;
        trimmed(c->hdr[i], &v, &n);
        if (add_lower(b, c->hdr[i]->name, c->hdr[i]->name_len) != 0 || buf_addc(b, ':') != 0)
            return -1;
        if (c->hdr[i] == c->date)
            c->date_off = b->len;
        if (buf_add(b, v, n) != 0 || buf_addc(b, '\n') != 0)
            return -1;
    }
    return 0;
}

/* The header lines of the canonical request, and where they and the date's value are in it. */
static int add_header_lines(sign_ctx *c, eip_buf *b)
{
    const header_cache *hc = c->cache;
    c->hdr_off = b->len;
    if (hc == NULL) {
        if (add_headers(c, b) != 0)
            return -1;
    } else {
        /* The date has the fixed length date_problem checked: it takes the place of the kept one. */
        if (buf_add(b, hc->made.data, hc->lines_len) != 0)
            return -1;
        c->date_off = c->hdr_off + hc->date_off;
        memcpy(b->data + c->date_off, c->date->value, SDK_DATE_LEN);
    }
    c->hdr_len = b->len - c->hdr_off;
    return 0;
}

/* Returns 0, -1 on a buffer limit, -2 on a libcrypto failure. */
static int build_canonical(sign_ctx *c, eip_buf *b)
{
    const eip_sign_input *in = c->in;
    char body_hash[65];
    const char *hash = body_hash;
    size_t hash_len = 0;

    /* A caller that declares its body's hash (X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD for a
     * stream it will not hash, or the hex it hashed itself) signs that value instead, as it is
     * signed among the headers (trimmed): the official signers' rule, whatever the body (Go's
     * and Node.js's; Python's signs the empty body's hash when there is no body). An empty value
     * declares nothing: the body is hashed, as Python and Node.js do. */
    if (c->payload != NULL)
        trimmed(c->payload, &hash, &hash_len);
    if (hash_len == 0) {
        hash = body_hash;
        hash_len = 64;
        if (sha256_hex_md(c->cr->sha256, c->cr->work, in->body, in->body_len, body_hash) != 0)
            return -2;
    }
    if (buf_adds(b, in->method) != 0 || buf_addc(b, '\n') != 0 ||
        eip_sign_canonical_uri(b, in->path, in->path_len) != 0 || buf_addc(b, '\n') != 0 ||
        add_query(c, b) != 0 || buf_addc(b, '\n') != 0 || add_header_lines(c, b) != 0 ||
        buf_addc(b, '\n') != 0)
        return -1;
    c->sh_off = b->len; /* the Authorization value repeats this list: copied from here */
    if (c->cache != NULL) {
        if (buf_add(b, c->cache->made.data + c->cache->lines_len, c->cache->made.len - c->cache->lines_len) != 0)
            return -1;
    } else if (add_signed_headers(c, b) != 0) {
        return -1;
    }
    c->sh_len = b->len - c->sh_off;
    if (buf_addc(b, '\n') != 0 || buf_add(b, hash, hash_len) != 0)
        return -1;
    return 0;
}

/* The key block of HMAC-SHA256 (RFC 2104): the SK, hashed first when longer than a block,
 * zero-padded to 64 bytes. */
static int hmac_key(const EVP_MD *sha256, const char *sk, size_t sk_len, unsigned char key[64])
{
    unsigned int mdlen = 0;
    memset(key, 0, 64);
    if (sk_len > 64) /* long keys are hashed first, then zero-padded */
        return EVP_Digest(sk, sk_len, key, &mdlen, sha256, NULL) == 1 ? 0 : -1;
    memcpy(key, sk, sk_len);
    return 0;
}

/* Starts ctx as SHA-256 over (key ^ pad byte). The padded block is wiped before returning. */
static int hmac_start(EVP_MD_CTX *ctx, const EVP_MD *sha256, const unsigned char key[64], unsigned char byte)
{
    unsigned char pad[64];
    size_t i;
    int ok;
    for (i = 0; i < sizeof(pad); i++)
        pad[i] = (unsigned char)(key[i] ^ byte);
    ok = EVP_DigestInit_ex(ctx, sha256, NULL) == 1 && EVP_DigestUpdate(ctx, pad, sizeof(pad)) == 1;
    OPENSSL_cleanse(pad, sizeof(pad));
    return ok ? 0 : -1;
}

/* HMAC-SHA256 over the fetched digest: H((K ^ opad) || H((K ^ ipad) || msg)). OpenSSL's
 * one-shot HMAC() builds and fetches a MAC context per call, which cost as much as the rest of
 * the signature. With a signer's crypto, both key blocks were absorbed once: each signature
 * starts from copies of those states. */
static int hmac_hex(const crypto *cr, const eip_sign_input *in, const char *msg, size_t n, char hex[65])
{
    unsigned char key[64], inner[32], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, ilen = 0;
    int ok;
    EVP_MD_CTX *ctx = cr->work ? cr->work : EVP_MD_CTX_new();

    if (ctx == NULL)
        return -1;
    memset(key, 0, sizeof(key));
    if (cr->inner != NULL) {
        ok = EVP_MD_CTX_copy_ex(ctx, cr->inner) == 1;
    } else {
        ok = hmac_key(cr->sha256, in->sk, in->sk_len, key) == 0 && hmac_start(ctx, cr->sha256, key, 0x36) == 0;
    }
    ok = ok && EVP_DigestUpdate(ctx, msg, n) == 1 && EVP_DigestFinal_ex(ctx, inner, &ilen) == 1 && ilen == 32;
    if (cr->inner != NULL)
        ok = ok && EVP_MD_CTX_copy_ex(ctx, cr->outer) == 1;
    else
        ok = ok && hmac_start(ctx, cr->sha256, key, 0x5c) == 0;
    ok = ok && EVP_DigestUpdate(ctx, inner, sizeof(inner)) == 1 && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 &&
         mdlen == 32;
    if (ctx != cr->work)
        EVP_MD_CTX_free(ctx);
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(inner, sizeof(inner));
    if (!ok)
        return -1;
    to_hex(md, 32, hex);
    return 0;
}

static eip_sign_status sign_canonical(sign_ctx *c, const eip_buf *canon, eip_buf *auth)
{
    /* "SDK-HMAC-SHA256\n" + date + "\n" + 64 hex: small and fixed, so it lives on the stack */
    char sts[sizeof(ALGORITHM) + SDK_DATE_LEN + 1 + 64 + 1];
    char sig[65];
    size_t n = 0;

    memcpy(sts, ALGORITHM "\n", sizeof(ALGORITHM));
    n += sizeof(ALGORITHM);
    memcpy(sts + n, c->date->value, SDK_DATE_LEN);
    n += SDK_DATE_LEN;
    sts[n++] = '\n';
    if (sha256_hex_md(c->cr->sha256, c->cr->work, canon->data, canon->len, sts + n) != 0)
        return FAIL(c, EIP_SIGN_ECRYPTO, "SHA-256 of the canonical request failed");
    n += 64;
    if (hmac_hex(c->cr, c->in, sts, n, sig) != 0)
        return FAIL(c, EIP_SIGN_ECRYPTO, "HMAC-SHA256 failed");
    if (buf_adds(auth, ALGORITHM " Access=") != 0 ||
        buf_add(auth, c->ak, c->ak_len) != 0 || buf_adds(auth, ", SignedHeaders=") != 0 ||
        buf_add(auth, canon->data + c->sh_off, c->sh_len) != 0 || buf_adds(auth, ", Signature=") != 0 ||
        buf_add(auth, sig, 64) != 0)
        return FAIL(c, EIP_SIGN_ENOMEM, "out of memory, or the Authorization value exceeds its buffer limit");
    return EIP_SIGN_OK;
}

/* Sorts a pointer array by cmp: in place by insertion when it is short (a request's few
 * headers: no calls into qsort and its merge buffer), else with qsort. Either order is total
 * for what is sorted (names are unique, checked after; query pairs tie only when equal). */
static void sort_kv(const eip_kv **a, size_t n, int (*cmp)(const void *, const void *))
{
    size_t i, j;
    if (n > SMALL_SORT) {
        qsort(a, n, sizeof(*a), cmp);
        return;
    }
    for (i = 1; i < n; i++) {
        const eip_kv *v = a[i];
        for (j = i; j > 0 && cmp(&a[j - 1], &v) > 0; j--)
            a[j] = a[j - 1];
        a[j] = v;
    }
}

static eip_sign_status sign_sorted(sign_ctx *c, eip_buf *canon, eip_buf *auth)
{
    eip_sign_status st;
    const char *why;
    int r;

    sort_kv(c->qry, c->in->nquery, qsort_query);
    if (c->cache == NULL) {
        sort_kv(c->hdr, c->in->nheaders, qsort_header);
        st = check_headers(c);
        if (st != EIP_SIGN_OK)
            return st;
    } else {
        c->date = &c->in->headers[c->cache->date_at];
        c->payload = c->cache->payload_at < c->in->nheaders ? &c->in->headers[c->cache->payload_at] : NULL;
        why = date_problem(c->date);
        if (why != NULL)
            return FAIL(c, EIP_SIGN_EINVAL, why);
    }
    r = build_canonical(c, canon);
    if (r == -2)
        return FAIL(c, EIP_SIGN_ECRYPTO, "SHA-256 of the body failed");
    if (r != 0)
        return FAIL(c, EIP_SIGN_ENOMEM, "out of memory, or the canonical request exceeds its buffer limit");
    return sign_canonical(c, canon, auth);
}

static eip_sign_status sign_with_arrays(sign_ctx *c, eip_buf *canon, eip_buf *auth)
{
    const eip_kv *hsmall[SMALL_SORT], *qsmall[SMALL_SORT];
    eip_sign_status st = EIP_SIGN_OK;

    c->hdr = sort_array(c->in->headers, c->cache ? 0 : c->in->nheaders, hsmall);
    c->qry = sort_array(c->in->query, c->in->nquery, qsmall);
    if (!c->hdr || !c->qry)
        st = FAIL(c, EIP_SIGN_ENOMEM, "out of memory");
    else
        st = sign_sorted(c, canon, auth);
    if (c->hdr != hsmall)
        free((void *)c->hdr);
    if (c->qry != qsmall)
        free((void *)c->qry);
    return st;
}

/* Checks the request and signs it into canon and auth (both reset first). */
static eip_sign_status sign_checked(sign_ctx *c, eip_buf *canon, eip_buf *auth)
{
    eip_sign_status st;

    buf_reset(auth);
    buf_reset(canon);
    st = check_scalars(c);
    if (st == EIP_SIGN_OK)
        st = check_lists(c, buf_limit(canon));
    if (st == EIP_SIGN_OK)
        st = sign_with_arrays(c, canon, auth);
    if (st != EIP_SIGN_OK)
        buf_reset(auth);
    return st;
}

eip_sign_status eip_sign(const eip_sign_input *in, eip_buf *authorization, eip_buf *canonical,
                         const char **err)
{
    sign_ctx c;
    crypto cr;
    eip_buf local;
    eip_buf *canon = canonical;
    eip_sign_status st;
    const char *why;

    memset(&c, 0, sizeof(c));
    memset(&cr, 0, sizeof(cr));
    c.in = in;
    c.cr = &cr;
    if (!in || !authorization || authorization == canonical) {
        st = FAIL(&c, EIP_SIGN_EINVAL, "missing input or output buffer");
    } else if ((why = check_keys(in->ak, in->ak_len, in->sk, in->sk_len)) != NULL) {
        buf_reset(authorization);
        if (canon)
            buf_reset(canon);
        st = FAIL(&c, EIP_SIGN_EINVAL, why);
    } else {
        EVP_MD *fetched = NULL;
        if (!canon) {
            /* Not wanted by the caller, but needed to hash: bound it like the caller's own. */
            eip_buf_init(&local, 0);
            canon = &local;
        }
        c.ak = in->ak;
        c.ak_len = in->ak_len;
        fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
        cr.sha256 = fetched ? fetched : EVP_sha256();
        st = sign_checked(&c, canon, authorization);
        EVP_MD_free(fetched);
        if (canon == &local)
            eip_buf_free(&local);
    }
    if (err)
        *err = st == EIP_SIGN_OK ? NULL : c.err;
    return st;
}

/* ---------- signer: one AK/SK pair, many signatures ---------- */

struct eip_signer {
    char *ak;
    size_t ak_len;
    EVP_MD *fetched; /* NULL when the fetch failed and EVP_sha256() serves instead */
    crypto cr;
    eip_buf canon, auth;
    header_cache cache;
};

/* Frees a buffer that held a secret (a security token, in a header), wiped first. */
static void buf_wipe_free(eip_buf *b)
{
    if (b->data)
        OPENSSL_cleanse(b->data, b->cap);
    eip_buf_free(b);
}

/* Are in's headers the cache's (see header_cache)? */
static int cache_hit(const header_cache *hc, const eip_sign_input *in)
{
    const char *p, *end;
    size_t i;

    /* (No headers never signs: Host and X-Sdk-Date are required.) */
    if (!hc->valid || in->nheaders == 0 || in->nheaders != hc->n || !in->headers)
        return 0;
    p = hc->seen.data;
    end = p + hc->seen.len;
    for (i = 0; i < in->nheaders; i++) {
        const eip_kv *h = &in->headers[i];
        size_t lens[2], vlen = i == hc->date_at ? 0 : h->value_len;
        if ((size_t)(end - p) < sizeof(lens))
            return 0;
        memcpy(lens, p, sizeof(lens));
        p += sizeof(lens);
        if (lens[0] != h->name_len || lens[1] != vlen || (size_t)(end - p) < lens[0] + lens[1] ||
            (lens[0] && (!h->name || memcmp(p, h->name, lens[0]) != 0)))
            return 0;
        p += lens[0];
        if (vlen && (!h->value || memcmp(p, h->value, vlen) != 0))
            return 0;
        p += vlen;
    }
    return 1;
}

/* Keeps what the signature just made in canon of c's headers. When it cannot (out of memory),
 * the cache is left invalid and the next request is signed in full. */
static void cache_fill(header_cache *hc, const sign_ctx *c, const eip_buf *canon)
{
    const eip_sign_input *in = c->in;
    size_t i;

    hc->valid = 0;
    buf_reset(&hc->seen);
    buf_reset(&hc->made);
    hc->date_at = (size_t)(c->date - in->headers);
    for (i = 0; i < in->nheaders; i++) {
        const eip_kv *h = &in->headers[i];
        size_t lens[2];
        lens[0] = h->name_len;
        lens[1] = i == hc->date_at ? 0 : h->value_len;
        if (buf_add(&hc->seen, (const char *)lens, sizeof(lens)) != 0 || buf_add(&hc->seen, h->name, lens[0]) != 0 ||
            buf_add(&hc->seen, h->value, lens[1]) != 0)
            return;
    }
    if (buf_add(&hc->made, canon->data + c->hdr_off, c->hdr_len) != 0 ||
        buf_add(&hc->made, canon->data + c->sh_off, c->sh_len) != 0)
        return;
    hc->lines_len = c->hdr_len;
    hc->date_off = c->date_off - c->hdr_off;
    hc->n = in->nheaders;
    hc->payload_at = c->payload ? (size_t)(c->payload - in->headers) : in->nheaders;
    hc->valid = 1;
}

void eip_signer_free(eip_signer *s)
{
    if (s == NULL)
        return;
    /* The HMAC states are the key in all but name: EVP_MD_CTX_free wipes them. */
    EVP_MD_CTX_free(s->cr.work);
    EVP_MD_CTX_free(s->cr.inner);
    EVP_MD_CTX_free(s->cr.outer);
    EVP_MD_free(s->fetched);
    buf_wipe_free(&s->canon);
    buf_wipe_free(&s->auth);
    buf_wipe_free(&s->cache.seen);
    buf_wipe_free(&s->cache.made);
    free(s->ak);
    free(s);
}

eip_signer *eip_signer_new(const char *ak, size_t ak_len, const char *sk, size_t sk_len, const char **err)
{
    unsigned char key[64];
    eip_signer *s;
    const char *why = check_keys(ak, ak_len, sk, sk_len);
    int ok;

    if (err)
        *err = why;
    if (why != NULL)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->ak = malloc(ak_len + 1)) == NULL) {
        eip_signer_free(s);
        if (err)
            *err = "out of memory";
        return NULL;
    }
    memcpy(s->ak, ak, ak_len);
    s->ak[ak_len] = '\0';
    s->ak_len = ak_len;
    s->fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
    s->cr.sha256 = s->fetched ? s->fetched : EVP_sha256();
    s->cr.work = EVP_MD_CTX_new();
    s->cr.inner = EVP_MD_CTX_new();
    s->cr.outer = EVP_MD_CTX_new();
    ok = s->cr.work && s->cr.inner && s->cr.outer && hmac_key(s->cr.sha256, sk, sk_len, key) == 0 &&
         hmac_start(s->cr.inner, s->cr.sha256, key, 0x36) == 0 &&
         hmac_start(s->cr.outer, s->cr.sha256, key, 0x5c) == 0;
    OPENSSL_cleanse(key, sizeof(key));
    if (!ok) {
        eip_signer_free(s);
        if (err)
            *err = "libcrypto could not prepare the HMAC key";
        return NULL;
    }
    eip_buf_init(&s->canon, 0);
    eip_buf_init(&s->auth, 0);
    eip_buf_init(&s->cache.seen, 0);
    eip_buf_init(&s->cache.made, 0);
    return s;
}

eip_sign_status eip_signer_sign(eip_signer *s, const eip_sign_input *in, const char **authorization,
                                size_t *authorization_len, const char **canonical, const char **err)
{
    sign_ctx c;
    eip_sign_status st;

    memset(&c, 0, sizeof(c));
    c.in = in;
    c.cr = s ? &s->cr : NULL;
    if (!s || !in || !authorization || !authorization_len) {
        st = FAIL(&c, EIP_SIGN_EINVAL, "missing signer, input or output");
    } else {
        c.ak = s->ak;
        c.ak_len = s->ak_len;
        c.cache = cache_hit(&s->cache, in) ? &s->cache : NULL;
        st = sign_checked(&c, &s->canon, &s->auth);
        if (st == EIP_SIGN_OK && c.cache == NULL)
            cache_fill(&s->cache, &c, &s->canon);
        *authorization = st == EIP_SIGN_OK ? s->auth.data : NULL;
        *authorization_len = st == EIP_SIGN_OK ? s->auth.len : 0;
        if (canonical)
            *canonical = st == EIP_SIGN_OK ? s->canon.data : NULL;
    }
    if (err)
        *err = st == EIP_SIGN_OK ? NULL : c.err;
    return st;
}
