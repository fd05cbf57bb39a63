/* fuzz_status.c - eip_status_lookup and friends (src/status.c) from arbitrary ints.
 *
 * Input: a 4-byte code (any int, negative and huge included), a table index, a seed bit set and
 * an output capacity. Invariants:
 *  - lookup never returns NULL, with or without scratch; the entry's code is the code asked
 *    for (only the shared template of the NULL-scratch fallback may say 0, with its class's
 *    reason where a registered code's own is in the scratch);
 *  - the class is the code's first digit for 100..599 and "unknown" otherwise, and its name is
 *    one of the six documented ones; every text field is a non-empty string (description_zh
 *    may be "" for fallbacks only);
 *  - a code found in the static table comes back as that table entry (seeds != 0) and is not
 *    written to scratch; any other code gets seeds == 0;
 *  - eip_status_at(i) is non-NULL exactly for i < count, and looking its code up returns it;
 *  - eip_status_seeds_string writes at most cap bytes, always NUL-terminated when cap > 0,
 *    and only ever "000", "001", "003", "004" joined by ','.
 */
#include "fuzz_input.h"
#include "status.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int in_table(int code)
{
    size_t i, n = eip_status_count();
    for (i = 0; i < n; i++)
        if (eip_status_at(i)->code == code)
            return 1;
    return 0;
}

static void check_text(const char *s)
{
    FUZZ_CHECK(s != NULL && s[0] != '\0');
}

static void check_entry(const eip_status_info *s, int code)
{
    static const char *const class_names[] = {"unknown", "informational", "success", "redirect",
                                              "client_error", "server_error"};
    eip_status_class want = (code >= 100 && code <= 599) ? (eip_status_class)(code / 100)
                                                         : EIP_CLASS_UNKNOWN;
    FUZZ_CHECK(s != NULL);
    FUZZ_CHECK(s->klass == want);
    FUZZ_CHECK(strcmp(eip_status_class_name(s->klass), class_names[want]) == 0);
    check_text(s->reason);
    check_text(s->description);
    /* Only the seeds give Chinese text: class-based fallbacks carry "". */
    FUZZ_CHECK(s->description_zh != NULL && (s->seeds == 0 || s->description_zh[0] != '\0'));
    check_text(s->advice);
    FUZZ_CHECK(s->seed_name == NULL || s->seed_name[0] != '\0');
    FUZZ_CHECK((s->seeds != 0) == in_table(code));
}

static void check_lookup(int code)
{
    eip_status_info scratch;
    const eip_status_info *s, *t;

    memset(&scratch, 0xA5, sizeof(scratch));
    s = eip_status_lookup(code, &scratch);
    check_entry(s, code);
    FUZZ_CHECK(s->code == code);
    FUZZ_CHECK(in_table(code) ? s != &scratch : s == &scratch);
    t = eip_status_lookup(code, NULL);
    FUZZ_CHECK(t != NULL && t->klass == s->klass && t->advice == s->advice);
    FUZZ_CHECK(t->code == code || (t->code == 0 && !in_table(code)));
    /* (the shared template has its class's reason: a registered code outside the table, 506,
     * gets its own only in a scratch) */
    FUZZ_CHECK(strcmp(t->reason, s->reason) == 0 || t->code == 0);
}

static void check_index(size_t i)
{
    const eip_status_info *e = eip_status_at(i), *s;
    eip_status_info scratch;
    FUZZ_CHECK((e != NULL) == (i < eip_status_count()));
    if (!e)
        return;
    s = eip_status_lookup(e->code, &scratch);
    FUZZ_CHECK(s == e);
    check_entry(e, e->code);
}

static void check_seeds(unsigned seeds, size_t cap)
{
    char buf[40];
    size_t i, len;
    const char *p;

    memset(buf, '#', sizeof(buf));
    FUZZ_CHECK(eip_status_seeds_string(seeds, buf, cap) == buf);
    for (i = cap; i < sizeof(buf); i++)
        FUZZ_CHECK(buf[i] == '#'); /* nothing written past cap */
    if (cap == 0)
        return;
    len = strnlen(buf, cap);
    FUZZ_CHECK(len < cap);
    /* Every complete element is one of the four names; a cut one is a prefix of one. */
    for (p = buf; *p;) {
        size_t n = strcspn(p, ",");
        FUZZ_CHECK(n <= 3);
        FUZZ_CHECK(strncmp(p, "000", n) == 0 || strncmp(p, "001", n) == 0 ||
                   strncmp(p, "003", n) == 0 || strncmp(p, "004", n) == 0);
        p += n;
        if (*p == ',')
            p++;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reader r = {data, size};
    uint32_t raw = 0;
    int32_t code;
    int i;

    for (i = 0; i < 4; i++)
        raw = raw << 8 | fuzz_u8(&r);
    memcpy(&code, &raw, sizeof(code)); /* every bit pattern, INT_MIN and -1 included */
    check_lookup(code);
    /* Small codes are where the table is: fold the same bytes into 0..999 as well. */
    check_lookup((int)(raw % 1000));
    check_index(fuzz_u8(&r));
    check_seeds(fuzz_u8(&r), fuzz_u8(&r) % 33);
    return 0;
}
