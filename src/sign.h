/* sign.h - SDK-HMAC-SHA256 request signing (Huawei Cloud AK/SK), OpenSSL libcrypto.
 *
 * Pure functions over caller-supplied bytes: no Lua, no libcurl, no globals, so the same
 * code serves the Lua binding, the C tests and the fuzz targets.
 */
#ifndef EIP_SIGN_H
#define EIP_SIGN_H

#include <stddef.h>

typedef struct {
    const char *name;  /* header name as given (any case); lower-cased when signed */
    size_t name_len;
    const char *value; /* value; leading/trailing spaces trimmed when signed */
    size_t value_len;
} eip_kv;

typedef struct {
    const char *method;      /* "DELETE" */
    const char *path;        /* raw path as sent, e.g. "/v2.0/p/bandwidths/b" (not yet percent-encoded) */
    size_t path_len;
    const eip_kv *query;     /* query parameters (raw, not encoded), any order; may be NULL */
    size_t nquery;
    const eip_kv *headers;   /* headers to sign: must include Host and X-Sdk-Date */
    size_t nheaders;
    const char *body;        /* may be NULL when body_len == 0 */
    size_t body_len;
    const char *ak;
    size_t ak_len;
    const char *sk;
    size_t sk_len;
} eip_sign_input;

/* Growable, bounded byte buffer used for outputs. */
typedef struct {
    char *data;  /* NUL-terminated while len < cap */
    size_t len;
    size_t cap;
    size_t limit; /* hard upper bound on cap; 0 means EIP_BUF_DEFAULT_LIMIT */
} eip_buf;

#define EIP_BUF_DEFAULT_LIMIT (1u << 20)

void eip_buf_init(eip_buf *b, size_t limit);
void eip_buf_free(eip_buf *b);

typedef enum {
    EIP_SIGN_OK = 0,
    EIP_SIGN_EINVAL = 1,   /* a required input missing or malformed (e.g. no X-Sdk-Date / Host) */
    EIP_SIGN_ENOMEM = 2,   /* allocation failed or a buffer would exceed its limit */
    EIP_SIGN_ECRYPTO = 3   /* libcrypto failure */
} eip_sign_status;

/* Compute the Authorization header value:
 *   "SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=<names>, Signature=<hex>"
 * into *authorization (reset first). If canonical is not NULL, the canonical request is
 * written there too (for debugging; it holds no secret). On error, *err (if not NULL)
 * points at a static English message naming what is wrong; it never contains input bytes. */
eip_sign_status eip_sign(const eip_sign_input *in, eip_buf *authorization, eip_buf *canonical,
                         const char **err);

/* A signer for one AK/SK pair: what every signature with the pair shares, made once (the
 * SHA-256 implementation fetched, the HMAC key blocks absorbed, the digest context and the
 * output buffers allocated), so that a signature allocates nothing once the buffers have grown
 * to fit. The SK itself is not kept. Not for concurrent use from several threads. */
typedef struct eip_signer eip_signer;

/* NULL when the pair cannot sign (an AK that is not a token or holds ',', an empty SK) or
 * out of memory; *err (if not NULL) then points at a static message naming no key byte. */
eip_signer *eip_signer_new(const char *ak, size_t ak_len, const char *sk, size_t sk_len, const char **err);

/* Frees the signer; libcrypto wipes the HMAC states. NULL is accepted. */
void eip_signer_free(eip_signer *s);

/* eip_sign with the signer's pair (in->ak and in->sk are not read): the same checks, the same
 * bytes. *authorization (NUL-terminated, *authorization_len bytes) and *canonical (if not
 * NULL) point into the signer's buffers, valid until its next call. */
eip_sign_status eip_signer_sign(eip_signer *s, const eip_sign_input *in, const char **authorization,
                                size_t *authorization_len, const char **canonical, const char **err);

/* Percent-encode per the signer (unreserved A-Z a-z 0-9 - _ . ~ kept, everything else %XX
 * upper-case hex) appending to out. Returns 0, or -1 when out's limit would be exceeded. */
int eip_sign_percent_encode(eip_buf *out, const char *s, size_t len);

/* Canonical URI of a raw path: each segment percent-encoded, always ending in '/'. */
int eip_sign_canonical_uri(eip_buf *out, const char *path, size_t len);

/* Lower-case hex SHA-256 of data into hex[65] (NUL-terminated). Returns 0 or -1. */
int eip_sha256_hex(const void *data, size_t len, char hex[65]);

/* X-Sdk-Date for a Unix time: "YYYYMMDDTHHMMSSZ" into out[17]. */
void eip_sign_format_date(long long unix_seconds, char out[17]);

#endif
