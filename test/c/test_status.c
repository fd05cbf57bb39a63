/* test_status.c - C tests for the static HTTP status table (src/status.c).
 *
 * Each seed's list of codes is written out here again, read off the seed documents, rather
 * than derived from the table: the table is checked against the seeds, not against itself.
 */
#include "status.h"
#include "ctest.h"

#include <limits.h>
#include <stdlib.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define SALL (EIP_SEED_000_EIP | EIP_SEED_001_CCI | EIP_SEED_003_NAT | EIP_SEED_004_EVS)

/* 000 EIP DeleteSharedBandwidth: note there is no 402. */
static const int seed000[] = {204, 400, 401, 403, 404, 405, 406, 407, 408, 409,
                              500, 501, 502, 503, 504};
/* 001 CCI */
static const int seed001[] = {100, 101, 200, 201, 202, 203, 204, 205, 206, 300, 301,
                              302, 303, 304, 305, 306, 400, 401, 402, 403, 404, 405,
                              406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416,
                              417, 422, 429, 500, 501, 502, 503, 504, 505};
/* 003 NAT */
static const int seed003[] = {200, 201, 204, 400, 401, 403, 404, 405, 406, 407, 408,
                              409, 500, 501, 502, 503, 504};
/* 004 EVS */
static const int seed004[] = {200, 201, 202, 204, 400, 401, 403, 404, 405, 406, 407,
                              408, 409, 413, 415, 500, 501, 502, 503, 504};

static const struct {
    const int *codes;
    size_t n;
    unsigned bit;
} seeds[] = {
    {seed000, NELEM(seed000), EIP_SEED_000_EIP},
    {seed001, NELEM(seed001), EIP_SEED_001_CCI},
    {seed003, NELEM(seed003), EIP_SEED_003_NAT},
    {seed004, NELEM(seed004), EIP_SEED_004_EVS},
};

static int in_list(const int *codes, size_t n, int code)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (codes[i] == code)
            return 1;
    return 0;
}

/* By first digit: what eip.status(code).class says. */
static const char *const class_names[] = {"unknown", "informational", "success", "redirect",
                                          "client_error", "server_error"};

static int non_empty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* Every code of every seed is in the static table with the right class, class name and bit.
 * (Whether to retry is not the table's to say: the Lua retry policy decides.) */
static void test_seed_codes(void)
{
    size_t s, i;
    eip_status_info scratch;

    for (s = 0; s < NELEM(seeds); s++) {
        for (i = 0; i < seeds[s].n; i++) {
            int code = seeds[s].codes[i];
            const eip_status_info *e;

            scratch.code = -12345;
            e = eip_status_lookup(code, &scratch);
            CHECK(e != NULL && e != &scratch, "code %d should be a static entry", code);
            if (e == NULL || e == &scratch)
                continue;
            CHECK(scratch.code == -12345, "lookup of %d must not touch scratch", code);
            CHECK(e->code == code, "lookup(%d) gave %d", code, e->code);
            CHECK((int)e->klass == code / 100, "code %d class %d", code, (int)e->klass);
            CHECK_STR(eip_status_class_name(e->klass), class_names[code / 100]);
            CHECK(e->seeds & seeds[s].bit, "code %d lacks seed bit 0x%x", code, seeds[s].bit);
        }
    }
}

/* Each entry's bits are exactly the seeds that list it, and the table is their union. */
static void test_bits_exact(void)
{
    size_t i, s, n = eip_status_count();
    size_t union_n = 0;

    for (i = 0; i < n; i++) {
        const eip_status_info *e = eip_status_at(i);
        unsigned want = 0;

        for (s = 0; s < NELEM(seeds); s++)
            if (in_list(seeds[s].codes, seeds[s].n, e->code))
                want |= seeds[s].bit;
        CHECK(e->seeds == want, "code %d seeds 0x%x, want 0x%x", e->code, e->seeds, want);
    }
    /* CCI's list is the union of all four; check that claim, then the table's size. */
    for (s = 0; s < NELEM(seeds); s++)
        for (i = 0; i < seeds[s].n; i++)
            union_n += !in_list(seed001, NELEM(seed001), seeds[s].codes[i]);
    CHECK(union_n == 0, "%zu codes outside CCI's list", union_n);
    CHECK(n == NELEM(seed001), "table has %zu entries, union has %zu", n, NELEM(seed001));
    CHECK(eip_status_at(n) == NULL, "eip_status_at past the end must be NULL");
    CHECK(eip_status_at((size_t)-1) == NULL, "eip_status_at(SIZE_MAX) must be NULL");
}

static void check_entry_strings(const eip_status_info *e)
{
    CHECK(non_empty(e->reason), "code %d reason", e->code);
    CHECK(non_empty(e->description), "code %d description", e->code);
    CHECK(non_empty(e->description_zh), "code %d description_zh", e->code);
    CHECK(non_empty(e->advice), "code %d advice", e->code);
    CHECK(e->seed_name == NULL ||
              (non_empty(e->seed_name) && strcmp(e->seed_name, e->reason) != 0),
          "code %d seed_name must be NULL or differ from reason", e->code);
    CHECK(e->description_zh && strchr(e->description_zh, '\n') == NULL,
          "code %d description_zh must be one line", e->code);
    CHECK(e->seeds != 0 && (e->seeds & ~(unsigned)SALL) == 0, "code %d seeds 0x%x", e->code,
          e->seeds);
}

/* Sorted, no duplicates, strings present, and lookup finds each entry itself. */
static void test_table_shape(void)
{
    size_t i, n = eip_status_count();

    for (i = 0; i < n; i++) {
        const eip_status_info *e = eip_status_at(i);

        CHECK(e != NULL, "entry %zu", i);
        if (!e)
            return;
        if (i > 0)
            CHECK(eip_status_at(i - 1)->code < e->code, "entries %zu/%zu out of order or duplicate",
                  i - 1, i);
        check_entry_strings(e);
        CHECK(eip_status_lookup(e->code, NULL) == e, "lookup(%d) is not entry %zu", e->code, i);
    }
}

static void check_names(int code, const char *reason, const char *seed_name)
{
    const eip_status_info *e = eip_status_lookup(code, NULL);

    CHECK_STR(e->reason, reason);
    if (seed_name)
        CHECK_STR(e->seed_name, seed_name);
    else
        CHECK(e->seed_name == NULL, "code %d seed_name \"%s\" should be NULL", code, e->seed_name);
}

static void test_names(void)
{
    check_names(100, "Continue", NULL);
    check_names(200, "OK", NULL);
    check_names(204, "No Content", "NoContent");
    check_names(306, "Unused", NULL);
    check_names(400, "Bad Request", "BadRequest");
    check_names(404, "Not Found", "NotFound");
    check_names(408, "Request Timeout", "Request Time-out");
    check_names(409, "Conflict", NULL);
    check_names(413, "Content Too Large", "overLimit");
    check_names(414, "URI Too Long", "Request-URI Too Large");
    check_names(415, "Unsupported Media Type", "badMediaType");
    check_names(416, "Range Not Satisfiable", "Requested range not satisfiable");
    check_names(422, "Unprocessable Content", "UnprocessableEntity");
    check_names(429, "Too Many Requests", "TooManyRequests");
    check_names(503, "Service Unavailable", "ServiceUnavailable");
    check_names(504, "Gateway Timeout", "ServerTimeout");
    check_names(505, "HTTP Version Not Supported", "HTTP Version not supported");
}

/* Chinese text comes from the preferred source, verbatim. */
static void test_description_zh(void)
{
    /* seed 000 (no final "。", unlike the status page and 003) */
    CHECK_STR(eip_status_lookup(204, NULL)->description_zh, "DELETE操作正常返回");
    CHECK_STR(eip_status_lookup(503, NULL)->description_zh, "请求未完成。系统暂时异常");
    CHECK_STR(eip_status_lookup(404, NULL)->description_zh, "服务器无法找到被请求的页面");
    /* EIP status page: 200 and 201 are not in seed 000 */
    CHECK_STR(eip_status_lookup(200, NULL)->description_zh, "GET、PUT、POST操作正常返回");
    CHECK_STR(eip_status_lookup(201, NULL)->description_zh,
              "OpenStack Neutron API的POST操作正常返回");
    /* 001 only, two paragraphs joined */
    CHECK_STR(eip_status_lookup(101, NULL)->description_zh,
              "切换协议。只能切换到更高级的协议。例如，切换到HTTP的新版本协议。");
    /* 001 + 004: EVS has no Chinese text, so CCI's */
    CHECK_STR(eip_status_lookup(415, NULL)->description_zh, "服务器无法处理请求附带的媒体格式。");
}

static void test_advice(void)
{
    const char *a401 = eip_status_lookup(401, NULL)->advice;
    const char *a404 = eip_status_lookup(404, NULL)->advice;
    const char *a409 = eip_status_lookup(409, NULL)->advice;

    CHECK(strstr(a401, "5 failures") && strstr(a401, "5 minutes") && strstr(a401, "lock"),
          "401 advice must warn about the AK/SK lock: %s", a401);
    CHECK(strstr(a404, "already deleted") && strstr(a404, "VPC.0306") && strstr(a404, "APIGW.0101") &&
              strstr(a404, "Do not retry"),
          "404 advice: only VPC.0306 says the bandwidth is gone: %s", a404);
    CHECK(strstr(a409, "VPC.0512") != NULL, "409 advice must name VPC.0512: %s", a409);
}

static void check_fallback(int code, const char *reason, eip_status_class klass)
{
    eip_status_info scratch;
    const eip_status_info *e = eip_status_lookup(code, &scratch);

    CHECK(e == &scratch, "code %d should use scratch", code);
    CHECK(e->code == code, "fallback code %d kept as %d", code, e->code);
    CHECK_STR(e->reason, reason);
    CHECK(e->klass == klass, "code %d class %d", code, (int)e->klass);
    CHECK_STR(eip_status_class_name(e->klass), class_names[klass]);
    CHECK(e->seeds == 0, "code %d seeds 0x%x", code, e->seeds);
    CHECK(e->seed_name == NULL, "code %d seed_name", code);
    CHECK_STR(e->description_zh, "");
    CHECK(non_empty(e->description) && non_empty(e->advice), "code %d texts", code);
}

static void test_fallbacks(void)
{
    eip_status_info scratch;

    check_fallback(418, "Unknown Client Error", EIP_CLASS_CLIENT_ERROR);
    check_fallback(451, "Unavailable For Legal Reasons", EIP_CLASS_CLIENT_ERROR);
    /* Registered codes no seed lists: their own reason phrase, the class's advice. */
    check_fallback(103, "Early Hints", EIP_CLASS_INFORMATIONAL);
    check_fallback(207, "Multi-Status", EIP_CLASS_SUCCESS);
    check_fallback(307, "Temporary Redirect", EIP_CLASS_REDIRECT);
    check_fallback(308, "Permanent Redirect", EIP_CLASS_REDIRECT);
    check_fallback(421, "Misdirected Request", EIP_CLASS_CLIENT_ERROR);
    check_fallback(511, "Network Authentication Required", EIP_CLASS_SERVER_ERROR);
    {
        const eip_status_info *e = eip_status_lookup(207, &scratch);
        CHECK(strstr(e->advice, "only on 204") != NULL && strstr(e->advice, "Treat as success") == NULL,
              "an unknown 2xx is no delete's success: %s", e->advice);
        e = eip_status_lookup(308, &scratch);
        CHECK(strstr(e->description, "Unregistered") == NULL, "308 is registered: %s", e->description);
    }
    check_fallback(599, "Unknown Server Error", EIP_CLASS_SERVER_ERROR);
    check_fallback(520, "Unknown Server Error", EIP_CLASS_SERVER_ERROR);
    check_fallback(199, "Unknown Informational", EIP_CLASS_INFORMATIONAL);
    check_fallback(299, "Unknown Success", EIP_CLASS_SUCCESS);
    check_fallback(399, "Unknown Redirect", EIP_CLASS_REDIRECT);
    check_fallback(99, "Unknown Status", EIP_CLASS_UNKNOWN);
    check_fallback(600, "Unknown Status", EIP_CLASS_UNKNOWN);
    check_fallback(-1, "Unknown Status", EIP_CLASS_UNKNOWN);
    check_fallback(0, "Unknown Status", EIP_CLASS_UNKNOWN);
    check_fallback(INT_MIN, "Unknown Status", EIP_CLASS_UNKNOWN);
    check_fallback(INT_MAX, "Unknown Status", EIP_CLASS_UNKNOWN);
    /* A later lookup into the same scratch overwrites it completely. */
    eip_status_lookup(599, &scratch);
    eip_status_lookup(418, &scratch);
    CHECK(scratch.code == 418 && scratch.klass == EIP_CLASS_CLIENT_ERROR &&
              strcmp(scratch.reason, "Unknown Client Error") == 0 &&
              strstr(scratch.advice, "Retry") == NULL,
          "scratch reuse");
    /* Contract broken (NULL scratch), but still never NULL. */
    CHECK(eip_status_lookup(418, NULL) != NULL, "NULL scratch must not give NULL");
    CHECK(eip_status_lookup(418, NULL)->klass == EIP_CLASS_CLIENT_ERROR, "NULL scratch class");
}

static void test_class_names(void)
{
    CHECK_STR(eip_status_class_name(EIP_CLASS_INFORMATIONAL), "informational");
    CHECK_STR(eip_status_class_name(EIP_CLASS_SUCCESS), "success");
    CHECK_STR(eip_status_class_name(EIP_CLASS_REDIRECT), "redirect");
    CHECK_STR(eip_status_class_name(EIP_CLASS_CLIENT_ERROR), "client_error");
    CHECK_STR(eip_status_class_name(EIP_CLASS_SERVER_ERROR), "server_error");
    CHECK_STR(eip_status_class_name(EIP_CLASS_UNKNOWN), "unknown");
    CHECK_STR(eip_status_class_name((eip_status_class)42), "unknown");
}

/* Run seeds_string into a heap buffer of exactly cap bytes (so ASan/valgrind see any
 * overflow) and compare; cap 0 must leave the buffer alone. */
static void check_seeds_string(unsigned bits, size_t cap, const char *want)
{
    char *buf = malloc(cap ? cap : 1);
    const char *got;

    CHECK(buf != NULL, "malloc");
    if (!buf)
        return;
    buf[0] = 'X';
    got = eip_status_seeds_string(bits, buf, cap);
    CHECK(got == buf, "seeds_string must return buf (cap %zu)", cap);
    if (cap == 0)
        CHECK(buf[0] == 'X', "cap 0 must write nothing");
    else
        CHECK_STR(buf, want);
    free(buf);
}

static void test_seeds_string(void)
{
    check_seeds_string(SALL, 16, "000,001,003,004");
    check_seeds_string(SALL, 64, "000,001,003,004");
    check_seeds_string(0, 8, "");
    check_seeds_string(EIP_SEED_001_CCI | EIP_SEED_004_EVS, 8, "001,004");
    check_seeds_string(EIP_SEED_003_NAT, 4, "003");
    check_seeds_string(0x10u | EIP_SEED_000_EIP, 8, "000");
    check_seeds_string(0xF0u, 8, "");
    /* truncation: at most cap bytes including the NUL, a prefix of the full string */
    check_seeds_string(SALL, 0, NULL);
    check_seeds_string(SALL, 1, "");
    check_seeds_string(SALL, 4, "000");
    check_seeds_string(SALL, 5, "000,");
    check_seeds_string(SALL, 15, "000,001,003,00");
    check_seeds_string(0, 0, NULL);
    check_seeds_string(0, 1, "");
    CHECK(eip_status_seeds_string(SALL, NULL, 0) == NULL, "NULL buffer, cap 0");
}

int main(void)
{
    test_seed_codes();
    test_bits_exact();
    test_table_shape();
    test_names();
    test_description_zh();
    test_advice();
    test_fallbacks();
    test_class_names();
    test_seeds_string();
    return CTEST_END("status");
}
