/* status.h - the HTTP status table for lua-eip, built from the four seed documents.
 *
 * Every code that appears in any seed (their union: 100-101, 200-206, 300-306, 400-417,
 * 422, 429, 500-505) has a static entry; any other code gets a class-based entry built
 * on the fly (first digit), so a lookup never fails.
 */
#ifndef EIP_STATUS_H
#define EIP_STATUS_H

#include <stddef.h>

typedef enum {
    EIP_CLASS_INFORMATIONAL = 1, /* 1xx */
    EIP_CLASS_SUCCESS = 2,       /* 2xx */
    EIP_CLASS_REDIRECT = 3,      /* 3xx */
    EIP_CLASS_CLIENT_ERROR = 4,  /* 4xx */
    EIP_CLASS_SERVER_ERROR = 5,  /* 5xx */
    EIP_CLASS_UNKNOWN = 0        /* outside 100..599 */
} eip_status_class;

/* Seed documents an entry comes from, as bit flags. */
#define EIP_SEED_000_EIP 0x1u /* EIP DeleteSharedBandwidth: the authority for this client */
#define EIP_SEED_001_CCI 0x2u
#define EIP_SEED_003_NAT 0x4u
#define EIP_SEED_004_EVS 0x8u

/* Facts about a status, and advice for a person. Whether to retry is not among them: it
 * depends on more than the status (the body's error code, the transport's failure), so the
 * Lua retry policy alone decides it (lua/eip/retry.lua). */
typedef struct {
    int code;
    const char *reason;          /* standard reason phrase: "Not Found" */
    const char *seed_name;       /* name a seed uses when it differs ("NotFound", "overLimit"), or NULL */
    const char *description;     /* English description */
    const char *description_zh;  /* the seed's own Chinese text (UTF-8) */
    eip_status_class klass;
    const char *advice;          /* what a script/operator should do, one sentence */
    unsigned seeds;              /* EIP_SEED_* bits; 0 for class-based fallback entries */
} eip_status_info;

/* Look a code up. Never returns NULL: codes in no table are described in *scratch
 * (class-based) and scratch is returned. scratch must outlive the use of the result. */
const eip_status_info *eip_status_lookup(int code, eip_status_info *scratch);

/* "informational", "success", "redirect", "client_error", "server_error", "unknown" */
const char *eip_status_class_name(eip_status_class klass);

/* Iterate the static table (for tests, docs and `eip status`). */
size_t eip_status_count(void);
const eip_status_info *eip_status_at(size_t i);

/* Comma-separated seed list for an entry's bits, e.g. "000,001,003,004"; "" for none.
 * Writes at most cap bytes including the NUL; returns buf. */
const char *eip_status_seeds_string(unsigned seeds, char *buf, size_t cap);

#endif
