/* fuzz_codes.c - eip_code_lookup and eip_code_rows (src/codes.c) from arbitrary bytes.
 *
 * Input: a mode byte, a 2-byte status, a table index, then the rest as code bytes (any length,
 * NULs and non-ASCII included). By mode the code is the rest as is, a table code, a table code
 * with the rest appended, or a table code with one byte replaced or cut short: near misses are
 * where a matcher goes wrong. The code is copied into a heap buffer of exactly its length, so
 * that a read past it is an ASan finding. Invariants, against a plain scan of the table:
 *  - rows() finds the code iff some row's code is exactly these bytes; it returns the first
 *    such row and *n counts them all (so they are adjacent); *n is 0 when not found;
 *  - lookup() is NULL exactly when rows() is; otherwise its code is these bytes, and it is the
 *    first row with the asked status when one exists (status > 0), else the first row of the
 *    status's class (status / 100), else the code's first row;
 *  - every row found has non-empty texts, a documented kind name and transient 0 or 1;
 *  - eip_code_at(i) is non-NULL exactly for i < count.
 */
#include "fuzz_input.h"
#include "codes.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const eip_code_info *r, const char *code, size_t len)
{
    return strlen(r->code) == len && memcmp(r->code, code, len) == 0;
}

static void check_row(const eip_code_info *r)
{
    static const char *const kinds[] = {"not_found", "auth", "permission", "config",
                                        "invalid_input", "conflict", "quota", "busy",
                                        "throttled", "backend"};
    const char *k = eip_code_kind_name(r->kind);
    size_t i;
    int known = 0;

    for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        known |= strcmp(k, kinds[i]) == 0;
    FUZZ_CHECK(known);
    FUZZ_CHECK(r->transient == 0 || r->transient == 1);
    FUZZ_CHECK(r->status >= 400 && r->status <= 599);
    FUZZ_CHECK(r->module[0] && r->message[0] && r->description_zh[0] && r->advice[0]);
    FUZZ_CHECK(r->handling_zh != NULL);
}

static void check_code(const char *code, size_t len, int status)
{
    size_t i, count = eip_code_count(), n = 12345, matches = 0;
    const eip_code_info *first = NULL, *first_status = NULL, *first_class = NULL, *rows, *best;

    for (i = 0; i < count; i++) {
        const eip_code_info *r = eip_code_at(i);
        if (!same(r, code, len))
            continue;
        matches++;
        if (!first)
            first = r;
        if (!first_status && status > 0 && r->status == status)
            first_status = r;
        if (!first_class && status > 0 && r->status / 100 == status / 100)
            first_class = r;
    }
    rows = eip_code_rows(code, len, &n);
    FUZZ_CHECK(rows == first);
    FUZZ_CHECK(n == matches);
    FUZZ_CHECK(eip_code_rows(code, len, NULL) == first);
    for (i = 0; i < n; i++) {
        FUZZ_CHECK(same(&rows[i], code, len)); /* adjacent */
        check_row(&rows[i]);
    }
    best = eip_code_lookup(code, len, status);
    FUZZ_CHECK(best == (first_status ? first_status : first_class ? first_class : first));
    if (best)
        FUZZ_CHECK(same(best, code, len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reader r = {data, size};
    uint8_t mode = fuzz_u8(&r);
    int16_t raw_status = (int16_t)(uint16_t)(fuzz_u8(&r) << 8 | fuzz_u8(&r));
    size_t index = fuzz_u8(&r), count = eip_code_count(), rest = r.left, tlen, len;
    const eip_code_info *row = eip_code_at(index % count);
    const char *tcode = row->code;
    char *buf;

    FUZZ_CHECK((eip_code_at(index) != NULL) == (index < count));
    tlen = strlen(tcode);
    /* one allocation big enough for every mode; the code is placed at its end */
    buf = malloc(tlen + rest + 1);
    if (!buf)
        return 0;
    switch (mode & 3) {
    case 0: /* the bytes as they are */
        len = rest;
        memcpy(buf, r.p, rest);
        break;
    case 1: /* a table code, exactly */
        len = tlen;
        memcpy(buf, tcode, tlen);
        break;
    case 2: /* a table code with the bytes appended */
        len = tlen + rest;
        memcpy(buf, tcode, tlen);
        memcpy(buf + tlen, r.p, rest);
        break;
    default: /* a table code with one byte replaced, or cut short */
        len = tlen;
        memcpy(buf, tcode, tlen);
        if (rest >= 2)
            buf[r.p[0] % tlen] = (char)r.p[1];
        else if (rest == 1)
            len = r.p[0] % (tlen + 1);
        break;
    }
    /* Move the code to the end of the buffer: the byte after it is past the allocation. */
    {
        size_t cap = tlen + rest + 1;
        /* status: the row's own, or any 16-bit value (negative and 0 included) */
        int status = (mode & 4) ? row->status : raw_status;

        memmove(buf + cap - len, buf, len);
        check_code(buf + cap - len, len, status);
        check_code(buf + cap - len, len, 0);
    }
    free(buf);
    return 0;
}
