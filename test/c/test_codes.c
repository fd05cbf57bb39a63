/* test_codes.c - C tests for the static error-code table (src/codes.c).
 *
 * The table's shape is checked against itself (grouping, order, fields); what it must contain
 * is written out here again: the codes of the EIP error-code page with their statuses, read
 * off the page, and the gateway codes. (spec/codes_spec.lua checks every field of every row
 * against a copy of the page.)
 */
#include "codes.h"
#include "ctest.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const eip_code_info *find(const char *code, int status)
{
    return eip_code_lookup(code, code ? strlen(code) : 0, status);
}

static size_t rows_of(const char *code)
{
    size_t n = 99;
    eip_code_rows(code, strlen(code), &n);
    return n;
}

static int non_empty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* "VPC" -> 0, "EIP" -> 1, "APIGW" -> 2, "APIG" -> 3, else -1; *num gets the 4 digits. */
static int prefix_rank(const char *code, int *num)
{
    static const char *const prefixes[] = {"VPC.", "EIP.", "APIGW.", "APIG."};
    size_t i, k;

    for (i = 0; i < NELEM(prefixes); i++) {
        size_t pl = strlen(prefixes[i]);
        if (strncmp(code, prefixes[i], pl) != 0 || strlen(code) != pl + 4)
            continue;
        for (k = pl; k < pl + 4; k++)
            if (code[k] < '0' || code[k] > '9')
                return -1;
        *num = atoi(code + pl);
        return (int)i;
    }
    return -1;
}

/* Every (code, status) pair of the EIP page, one per row once "500409" and "404/500" are
 * split, in the page's order; and the gateway's. */
static const struct {
    const char *code;
    int status;
} documented[] = {
    {"VPC.0002", 400}, {"VPC.0003", 404}, {"VPC.0004", 400}, {"VPC.0009", 401},
    {"VPC.0007", 400}, {"VPC.0008", 401}, {"VPC.2701", 403}, {"VPC.0010", 403},
    {"VPC.2201", 403}, {"VPC.0014", 400}, {"VPC.0011", 400}, {"VPC.0304", 500},
    {"VPC.0304", 409},
    /* create EIP */
    {"VPC.0301", 400}, {"VPC.0501", 400}, {"VPC.0502", 403}, {"VPC.0503", 500},
    {"VPC.0504", 500}, {"VPC.0508", 500}, {"VPC.0510", 409}, {"VPC.0511", 409},
    {"VPC.0514", 409}, {"VPC.0521", 409}, {"VPC.0522", 409}, {"VPC.0532", 409},
    {"VPC.0011", 400}, {"VPC.0012", 404}, {"VPC.0531", 400}, {"EIP.7901", 400},
    /* show EIP, list EIPs */
    {"VPC.0501", 400}, {"VPC.0504", 404}, {"VPC.0514", 500}, {"VPC.0501", 400},
    /* delete EIP */
    {"VPC.0501", 400}, {"VPC.0504", 404}, {"VPC.0512", 409}, {"VPC.0513", 500},
    {"VPC.0516", 500}, {"VPC.0517", 409}, {"VPC.0518", 500}, {"VPC.0525", 409},
    /* update EIP */
    {"VPC.0501", 400}, {"VPC.0504", 404}, {"VPC.0509", 500}, {"VPC.0510", 409},
    {"VPC.0511", 409}, {"VPC.0512", 409}, {"VPC.0514", 404}, {"VPC.0514", 500},
    /* show bandwidth, list bandwidths, update bandwidth */
    {"VPC.0301", 400}, {"VPC.0306", 404}, {"VPC.0302", 500},
    {"VPC.0301", 400}, {"VPC.0306", 404}, {"VPC.0302", 500},
    {"VPC.0301", 400}, {"VPC.0302", 500}, {"VPC.0305", 500},
    /* create shared bandwidth, add/remove EIPs, quotas */
    {"VPC.0310", 400}, {"VPC.0301", 400}, {"VPC.0323", 400}, {"VPC.1207", 400},
    /* API gateway */
    {"APIGW.0101", 404}, {"APIGW.0301", 401}, {"APIGW.0308", 429},
    {"APIG.0101", 404}, {"APIG.0301", 401}, {"APIG.0308", 429},
};

/* Every documented pair is found with its status, and the table has nothing else. */
static void test_documented(void)
{
    size_t i, j, rows = 0;

    CHECK(NELEM(documented) == 68, "documented pairs %zu", NELEM(documented));
    CHECK(eip_code_count() == NELEM(documented), "table has %zu rows, the documents %zu",
          eip_code_count(), NELEM(documented));
    for (i = 0; i < NELEM(documented); i++) {
        const eip_code_info *e = find(documented[i].code, documented[i].status);
        CHECK(e != NULL && strcmp(e->code, documented[i].code) == 0 &&
                  e->status == documented[i].status,
              "%s %d not found", documented[i].code, documented[i].status);
    }
    /* Row counts per (code, status) agree, so the table is exactly the documented rows. */
    for (i = 0; i < eip_code_count(); i++) {
        const eip_code_info *r = eip_code_at(i);
        size_t want = 0, have = 0;
        for (j = 0; j < NELEM(documented); j++)
            want += strcmp(documented[j].code, r->code) == 0 && documented[j].status == r->status;
        for (j = 0; j < eip_code_count(); j++)
            have += strcmp(eip_code_at(j)->code, r->code) == 0 && eip_code_at(j)->status == r->status;
        CHECK(want == have, "%s %d: %zu rows, documented %zu", r->code, r->status, have, want);
        rows++;
    }
    CHECK(rows == 68, "rows %zu", rows);
}

static void check_row_fields(const eip_code_info *r)
{
    int num = 0;
    int gateway = strcmp(r->module, "API gateway") == 0;

    CHECK(prefix_rank(r->code, &num) >= 0, "code \"%s\" is not PREFIX.NNNN", r->code);
    CHECK(r->status >= 400 && r->status <= 599, "%s status %d", r->code, r->status);
    CHECK(non_empty(r->module) && non_empty(r->message) && non_empty(r->description_zh) &&
              non_empty(r->advice),
          "%s %d: empty text", r->code, r->status);
    CHECK(r->handling_zh != NULL && (gateway ? r->handling_zh[0] == '\0' : r->handling_zh[0] != '\0'),
          "%s %d handling_zh", r->code, r->status);
    CHECK(gateway == (strncmp(r->code, "APIG", 4) == 0), "%s module %s", r->code, r->module);
    CHECK(strcmp(eip_code_kind_name(r->kind), "unknown") != 0, "%s kind %d", r->code, (int)r->kind);
    CHECK(r->transient == 0 || r->transient == 1, "%s transient %d", r->code, r->transient);
    CHECK(strchr(r->advice, '\n') == NULL && strchr(r->message, '\n') == NULL &&
              strchr(r->advice, '|') == NULL,
          "%s: one line, no '|' in advice", r->code);
}

/* Codes ordered by prefix then number, each code's rows adjacent; eip_code_rows and the
 * status-less lookup give the group's first row. */
static void test_table_shape(void)
{
    size_t i, n = eip_code_count(), codes = 0;

    for (i = 0; i < n; i++) {
        const eip_code_info *r = eip_code_at(i), *prev = i ? eip_code_at(i - 1) : NULL;
        size_t k;

        CHECK(r != NULL, "row %zu", i);
        if (!r)
            return;
        check_row_fields(r);
        if (!prev || strcmp(prev->code, r->code) != 0) {
            int pn = 0, rn = 0;
            codes++;
            if (prev) {
                int pr = prefix_rank(prev->code, &pn), rr = prefix_rank(r->code, &rn);
                CHECK(pr < rr || (pr == rr && pn < rn), "%s after %s: out of order", r->code,
                      prev->code);
            }
            CHECK(eip_code_rows(r->code, strlen(r->code), &k) == r, "rows(%s) is row %zu",
                  r->code, i);
            CHECK(find(r->code, 0) == r, "lookup(%s) without status is row %zu", r->code, i);
        }
        /* (code, status, module) is unique */
        for (k = 0; k < i; k++) {
            const eip_code_info *o = eip_code_at(k);
            CHECK(!(strcmp(o->code, r->code) == 0 && o->status == r->status &&
                    strcmp(o->module, r->module) == 0),
                  "%s %d %s twice", r->code, r->status, r->module);
        }
    }
    CHECK(codes == 46, "distinct codes %zu", codes);
    CHECK(eip_code_at(n) == NULL && eip_code_at(SIZE_MAX) == NULL, "at() past the end");
}

/* Every row is reachable: looking up its (code, status) gives the first row with both. */
static void test_every_row_found(void)
{
    size_t i, j;

    for (i = 0; i < eip_code_count(); i++) {
        const eip_code_info *r = eip_code_at(i), *first = NULL, *got;
        for (j = 0; j < eip_code_count() && !first; j++)
            if (strcmp(eip_code_at(j)->code, r->code) == 0 && eip_code_at(j)->status == r->status)
                first = eip_code_at(j);
        got = find(r->code, r->status);
        CHECK(got == first, "lookup(%s, %d) is not the first such row", r->code, r->status);
    }
}

static void check_variant(const char *code, int status, int want_status, const char *module,
                          const char *message, const char *kind)
{
    const eip_code_info *e = find(code, status);

    CHECK(e != NULL, "%s %d not found", code, status);
    if (!e)
        return;
    CHECK(e->status == want_status, "%s %d: status %d, want %d", code, status, e->status,
          want_status);
    CHECK_STR(e->module, module);
    CHECK_STR(e->message, message);
    CHECK_STR(eip_code_kind_name(e->kind), kind);
}

static void test_variants(void)
{
    /* the same code, another API, another status and message */
    check_variant("VPC.0504", 404, 404, "show EIP", "Floating IP could not be found.", "not_found");
    check_variant("VPC.0504", 500, 500, "create EIP", "FloatIp is null.", "backend");
    check_variant("VPC.0504", 0, 500, "create EIP", "FloatIp is null.", "backend");
    /* a status it is not documented with: its first row of that class (a 4xx reads as the
     * 404, not as the 500 that comes first), else its first row */
    check_variant("VPC.0504", 409, 404, "show EIP", "Floating IP could not be found.", "not_found");
    check_variant("VPC.0504", 429, 404, "show EIP", "Floating IP could not be found.", "not_found");
    check_variant("VPC.0504", 503, 500, "create EIP", "FloatIp is null.", "backend");
    check_variant("VPC.0504", 302, 500, "create EIP", "FloatIp is null.", "backend");
    /* "500409": one row of the page, two statuses, two kinds */
    check_variant("VPC.0304", 409, 409, "common",
                  "createBandwidth error.NO QUOTAS for shareBandwidthIP!Query routers fail.",
                  "conflict");
    check_variant("VPC.0304", 500, 500, "common",
                  "createBandwidth error.NO QUOTAS for shareBandwidthIP!Query routers fail.",
                  "backend");
    check_variant("VPC.0304", 400, 409, "common",
                  "createBandwidth error.NO QUOTAS for shareBandwidthIP!Query routers fail.",
                  "conflict");
    check_variant("VPC.0304", 502, 500, "common",
                  "createBandwidth error.NO QUOTAS for shareBandwidthIP!Query routers fail.",
                  "backend");
    /* "404/500", after a 409 and a 500 of other APIs */
    check_variant("VPC.0514", 409, 409, "create EIP", "No more IP addresses available on network.",
                  "quota");
    check_variant("VPC.0514", 500, 500, "show EIP", "Neutron Error.", "backend");
    check_variant("VPC.0514", 404, 404, "update EIP", "Neutron Error.", "backend");
    check_variant("VPC.0514", 418, 409, "create EIP", "No more IP addresses available on network.",
                  "quota");
    /* a 5xx it is not documented with reads as its first 500, not as its first row (the 409) */
    check_variant("VPC.0514", 502, 500, "show EIP", "Neutron Error.", "backend");
    check_variant("VPC.0514", 503, 500, "show EIP", "Neutron Error.", "backend");
    check_variant("VPC.0514", 504, 500, "show EIP", "Neutron Error.", "backend");
    /* no row of the class at all: the first row, whatever its class */
    check_variant("VPC.0306", 500, 404, "show bandwidth", "No Eip bandwidth exist with id.",
                  "not_found");
    /* the bandwidth codes */
    check_variant("VPC.0306", 404, 404, "show bandwidth", "No Eip bandwidth exist with id.",
                  "not_found");
    check_variant("VPC.0306", 500, 404, "show bandwidth", "No Eip bandwidth exist with id.",
                  "not_found");
    check_variant("VPC.0301", 400, 400, "create EIP", "Bandwidth name or share_type is invalid.",
                  "invalid_input");
    check_variant("VPC.0302", 500, 500, "show bandwidth", "Neutron Error.", "backend");
    check_variant("VPC.0323", 400, 400, "add or remove EIPs of a shared bandwidth",
                  "publicIp can not be operate with this bandwidth", "conflict");
    check_variant("VPC.0011", 400, 400, "common", "EnterpriseProjectId is invalid", "invalid_input");
    /* gateway, both prefixes */
    check_variant("APIGW.0101", 404, 404, "API gateway",
                  "The API does not exist or has not been published in the environment.", "config");
    check_variant("APIG.0101", 404, 404, "API gateway",
                  "The API does not exist or has not been published in the environment.", "config");
    check_variant("APIG.0301", 401, 401, "API gateway", "Incorrect IAM authentication information.",
                  "auth");
    check_variant("APIGW.0308", 429, 429, "API gateway",
                  "The throttling threshold has been reached: policy user over "
                  "ratelimit,limit:XX,time:1 second",
                  "throttled");

    CHECK(rows_of("VPC.0301") == 5 && rows_of("VPC.0501") == 5 && rows_of("VPC.0504") == 4 &&
              rows_of("VPC.0514") == 4 && rows_of("VPC.0302") == 3 && rows_of("VPC.0304") == 2 &&
              rows_of("VPC.0306") == 2 && rows_of("VPC.0011") == 2 && rows_of("VPC.0512") == 2 &&
              rows_of("VPC.0004") == 1 && rows_of("APIG.0308") == 1,
          "rows per code");
}

/* transient is set exactly where the documentation says "try again later", and advice says
 * so; the pool-exhausted codes are not (see codes.c). */
static void test_transient(void)
{
    size_t i, n = 0;

    for (i = 0; i < eip_code_count(); i++) {
        const eip_code_info *r = eip_code_at(i);
        int want = (strcmp(r->code, "VPC.0004") == 0 && r->status == 400) ||
                   (strcmp(r->code, "VPC.0512") == 0 && r->status == 409) ||
                   strcmp(r->code, "APIGW.0308") == 0 || strcmp(r->code, "APIG.0308") == 0;
        CHECK(r->transient == want, "%s %d %s: transient %d", r->code, r->status, r->module,
              r->transient);
        CHECK(!r->transient || strncmp(r->advice, "Transient:", 10) == 0,
              "%s: transient advice starts with \"Transient:\"", r->code);
        n += (size_t)r->transient;
    }
    CHECK(n == 5, "transient rows %zu", n);
    CHECK(!find("VPC.0514", 409)->transient && !find("VPC.0532", 409)->transient,
          "pool exhausted is not transient");
    CHECK(strstr(find("VPC.0514", 409)->advice, "later") != NULL, "0514 advice keeps \"later\"");
}

static void test_advice(void)
{
    const char *a0306 = find("VPC.0306", 404)->advice;
    const char *a0007 = find("VPC.0007", 400)->advice;
    const char *a0301 = find("APIGW.0301", 401)->advice;
    const char *a0101 = find("APIG.0101", 404)->advice;
    const char *a0308 = find("APIG.0308", 429)->advice;

    CHECK(strstr(a0306, "already deleted") && strstr(a0306, "missing_ok"), "0306: %s", a0306);
    CHECK(strstr(a0007, "project_id") && strstr(a0007, "region"), "0007: %s", a0007);
    CHECK(strstr(a0301, "5 minutes") && strstr(a0301, "lock"), "0301: %s", a0301);
    CHECK(strstr(a0101, "never count this 404 as deleted") != NULL, "0101: %s", a0101);
    CHECK(strstr(a0308, "2 to 5 s") != NULL, "0308: %s", a0308);
    CHECK(strstr(find("VPC.0525", 409)->advice, "unsubscribe") != NULL, "0525: unsubscribe");
}

static void test_kind_names(void)
{
    static const char *const names[] = {"not_found", "auth", "permission", "config",
                                         "invalid_input", "conflict", "quota", "busy",
                                         "throttled", "backend"};
    size_t i;

    for (i = 0; i < NELEM(names); i++)
        CHECK_STR(eip_code_kind_name((eip_code_kind)(EIP_KIND_NOT_FOUND + (int)i)), names[i]);
    CHECK_STR(eip_code_kind_name((eip_code_kind)0), "unknown");
    CHECK_STR(eip_code_kind_name((eip_code_kind)42), "unknown");
    CHECK_STR(eip_code_kind_name((eip_code_kind)-1), "unknown");
}

/* Look a buffer of exactly len heap bytes up (no NUL after it: ASan and valgrind see any read
 * past len) and expect nothing. */
static void check_unknown_bytes(const char *bytes, size_t len, const char *what)
{
    char *buf = malloc(len ? len : 1);
    size_t n = 7;

    CHECK(buf != NULL, "malloc");
    if (!buf)
        return;
    memcpy(buf, bytes, len);
    CHECK(eip_code_lookup(buf, len, 0) == NULL, "%s: lookup", what);
    CHECK(eip_code_lookup(buf, len, 404) == NULL, "%s: lookup 404", what);
    CHECK(eip_code_rows(buf, len, &n) == NULL && n == 0, "%s: rows", what);
    free(buf);
}

static void test_hostile_input(void)
{
    const size_t big = 10 * 1024;
    char *ten_kb = malloc(big);
    size_t n = 7;

    /* NULL and empty */
    CHECK(eip_code_lookup(NULL, 0, 0) == NULL && eip_code_lookup(NULL, 8, 404) == NULL, "NULL");
    CHECK(eip_code_rows(NULL, 8, &n) == NULL && n == 0, "NULL rows");
    CHECK(eip_code_rows("VPC.0306", 8, NULL) != NULL, "rows with n NULL");
    CHECK(eip_code_lookup("", 0, 0) == NULL && eip_code_lookup("VPC.0306", 0, 404) == NULL,
          "empty");
    /* near misses */
    check_unknown_bytes("VPC.030", 7, "prefix of a code");
    check_unknown_bytes("VPC.03066", 9, "code plus a digit");
    check_unknown_bytes("VPC.0306\0", 9, "embedded NUL");
    check_unknown_bytes("VPC.0306 ", 9, "trailing space");
    check_unknown_bytes("vpc.0306", 8, "lower case");
    check_unknown_bytes("VPC.0001", 8, "undocumented VPC code");
    check_unknown_bytes("APIGW.0302", 10, "undocumented gateway code");
    /* non-ASCII: full-width digits, Chinese, raw high bytes */
    check_unknown_bytes("VPC.\xef\xbc\x90\xef\xbc\x93\xef\xbc\x90\xef\xbc\x96", 16, "full-width");
    check_unknown_bytes("带宽对象不存在", strlen("带宽对象不存在"), "Chinese");
    check_unknown_bytes("\x80\xff\xfe\x00\x01VPC.0306", 13, "high bytes");
    /* 10 KB: of one letter, and a real code followed by 10 KB of noise */
    CHECK(ten_kb != NULL, "malloc 10 KB");
    if (ten_kb) {
        size_t i;

        memset(ten_kb, 'A', big);
        check_unknown_bytes(ten_kb, big, "10 KB of A");
        memcpy(ten_kb, "VPC.0306", 8);
        for (i = 8; i < big; i++)
            ten_kb[i] = (char)(i * 131u);
        check_unknown_bytes(ten_kb, big, "code then 10 KB");
        /* the first 8 bytes alone are the code: only len decides */
        CHECK(eip_code_lookup(ten_kb, 8, 404) == find("VPC.0306", 404), "len 8 of 10 KB");
        free(ten_kb);
    }
    /* any status: negative, huge, unlisted -> the first row, never NULL */
    CHECK(find("VPC.0306", -1) == find("VPC.0306", 0), "status -1");
    CHECK(find("VPC.0306", INT_MIN) == find("VPC.0306", 0), "status INT_MIN");
    CHECK(find("VPC.0306", INT_MAX) == find("VPC.0306", 0), "status INT_MAX");
}

int main(void)
{
    test_documented();
    test_table_shape();
    test_every_row_found();
    test_variants();
    test_transient();
    test_advice();
    test_kind_names();
    test_hostile_input();
    return CTEST_END("codes");
}
