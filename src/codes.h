/* codes.h - the Huawei Cloud error-code table for lua-eip, beside the status table.
 *
 * An HTTP status says little ("400"); the code in the body says what happened ("VPC.0306": the
 * bandwidth does not exist). This table holds every row of the EIP API reference's error-code
 * page and the API gateway codes the client meets, with what a script or operator should do.
 *
 * A code can appear in several rows: the same code is documented by several APIs, with another
 * status or message each (VPC.0504 is 404 "Floating IP could not be found." when showing an
 * EIP, 500 "FloatIp is null." when creating one). A row therefore holds one (code, status) pair
 * and the API it belongs to; the rows of one code are adjacent in the table.
 */
#ifndef EIP_CODES_H
#define EIP_CODES_H

#include <stddef.h>

/* What kind of failure a code reports: what a caller does about it. Kept small on purpose;
 * the names (eip_code_kind_name) are part of the Lua API. */
typedef enum {
    EIP_KIND_NOT_FOUND = 1, /* "not_found": the resource named does not exist (VPC.0306) */
    EIP_KIND_AUTH,          /* "auth": the token or the AK/SK signature is wrong or expired */
    EIP_KIND_PERMISSION,    /* "permission": authenticated, but not allowed: IAM policy, or
                               the account's state (arrears, frozen, restricted, real name) */
    EIP_KIND_CONFIG,        /* "config": the request went to the wrong place: endpoint, path,
                               method, or a project that is not the credentials' one */
    EIP_KIND_INVALID_INPUT, /* "invalid_input": a parameter or the body is invalid */
    EIP_KIND_CONFLICT,      /* "conflict": the resource's state refuses it (bound, in use,
                               prepaid): change that state first */
    EIP_KIND_QUOTA,         /* "quota": a quota or a pool of addresses is used up */
    EIP_KIND_BUSY,          /* "busy": the resource is in transition; the same request works
                               later */
    EIP_KIND_THROTTLED,     /* "throttled": the caller's rate limit was hit */
    EIP_KIND_BACKEND        /* "backend": the service failed inside (Neutron, internal error) */
} eip_code_kind;

typedef struct {
    const char *code;           /* "VPC.0306" */
    int status;                 /* one HTTP status (the page's "500409" is two rows) */
    const char *module;         /* the API the row belongs to, in English: "show bandwidth",
                                   "common", "API gateway", ... */
    const char *message;        /* the English message as documented, byte for byte */
    const char *description_zh; /* the documented Chinese description (UTF-8) */
    const char *handling_zh;    /* the documented Chinese handling (处理措施); "" for the
                                   gateway rows, whose page is not copied here */
    eip_code_kind kind;
    int transient;              /* 1: the documentation says the same request works later */
    const char *advice;         /* what a script/operator should do, in English */
} eip_code_info;

/* The best row for a code: the first row of that code whose status is `status`, else its
 * first row of the same class (status / 100: a 503 takes a 500 row, a 429 a 404 or 409 row),
 * else the code's first row. status <= 0 asks for the first row. The code is matched exactly
 * (case and length: len bytes, which may include NULs). NULL for a code in no row, a NULL code
 * or len 0. */
const eip_code_info *eip_code_lookup(const char *code, size_t len, int status);

/* All rows of a code: returns its first row and sets *n to how many rows follow it, itself
 * included (the rows are adjacent). NULL and *n = 0 for a code in no row. n may be NULL. */
const eip_code_info *eip_code_rows(const char *code, size_t len, size_t *n);

/* "not_found", "auth", ... as listed above; "unknown" for any other value. */
const char *eip_code_kind_name(eip_code_kind kind);

/* Iterate the table's rows, in table order (for tests, docs and the Lua binding). */
size_t eip_code_count(void);
const eip_code_info *eip_code_at(size_t i);

#endif
