/* test_secrets.c - the index of secrets' windows (src/secrets.c): every piece found, extended
 * as far as it matches, merged, nothing else; a growing index; out-of-bounds never read. */
#include <stdlib.h>
#include <string.h>

#include "../../src/secrets.h"
#include "ctest.h"

/* The ranges of text as "from-to,from-to" (half-open, 0-based), or "" when none. */
static const char *ranges_of(const eip_secrets *x, const char *text)
{
    static char buf[512];
    size_t len = strlen(text), n, i, at = 0;
    eip_range *out = malloc(EIP_SECRETS_MAX_RANGES(len) * sizeof *out);
    buf[0] = '\0';
    if (out == NULL)
        return "(oom)";
    n = eip_secrets_scan(x, text, len, out);
    for (i = 0; i < n && at < sizeof buf - 32; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%zu-%zu", i ? "," : "", out[i].from, out[i].to);
    free(out);
    return buf;
}

int main(void)
{
    const char *secret = "secret-0123456789"; /* 17 bytes */
    eip_secrets *x = eip_secrets_new(4), *empty = eip_secrets_new(0), *big;
    char *text, *value;
    size_t i, misses = 0, found = 0, n;

    CHECK(x != NULL && empty != NULL, "allocated");
    CHECK(eip_secrets_add(x, secret, strlen(secret)) == 0, "added");
    CHECK(eip_secrets_add(x, "", 0) == 0, "an empty value is ignored");
    CHECK(eip_secrets_add(x, "short", 5) == 0, "a short one");

    CHECK_STR(ranges_of(x, "nothing here at all"), "");
    CHECK_STR(ranges_of(x, "id secret-0123456789 end"), "3-20");
    CHECK_STR(ranges_of(x, "id secret-0123456789"), "3-20");
    CHECK_STR(ranges_of(x, "secret-0123456789secret-0123456789"), "0-34");
    CHECK_STR(ranges_of(x, "id secret-01 cut"), "3-12");   /* its first 8 bytes and more */
    CHECK_STR(ranges_of(x, "id secret- cut"), "");         /* 7 bytes: not a piece */
    CHECK_STR(ranges_of(x, "id 23456789"), "3-11");        /* its last 8 bytes */
    CHECK_STR(ranges_of(x, "id 3456789"), "");
    CHECK_STR(ranges_of(x, "x cret-01234 y"), "2-12");     /* from its middle */
    CHECK_STR(ranges_of(x, "short"), "0-5");               /* a short one: the whole text */
    CHECK_STR(ranges_of(x, "shorts"), "");
    CHECK_STR(ranges_of(x, "secret-0"), "0-8");
    CHECK_STR(ranges_of(empty, "secret-0123456789"), "");
    CHECK(eip_secrets_any(x, "a secret-0123456789 b", 21), "any");
    CHECK(!eip_secrets_any(x, "a secret-012345678", 9), "only len bytes are read");
    CHECK(!eip_secrets_any(empty, "anything", 8), "an empty index finds nothing");

    /* A full index refuses more. */
    CHECK(eip_secrets_add(x, "another-secret", 14) == 0, "third");
    CHECK(eip_secrets_add(x, "4th-SECRET", 10) == 0, "fourth");
    CHECK(eip_secrets_add(x, "one-too-many-secret", 19) == -1, "max_secrets");
    CHECK_STR(ranges_of(x, "one-too-many-secret"), "");
    CHECK_STR(ranges_of(x, "secret-0123456789another-secret"), "0-31"); /* touching: merged */

    /* Many long secrets (the table grows): every 11-byte piece of each found, wherever it
     * starts, and nothing in text made of other bytes. */
    big = eip_secrets_new(9);
    value = malloc(9 * 4000);
    text = malloc(64);
    CHECK(big != NULL && value != NULL && text != NULL, "allocated");
    if (big != NULL && value != NULL && text != NULL) {
        unsigned long r = 12345;
        for (i = 0; i < 9 * 4000; i++) {
            r = r * 1103515245ul + 12345ul;
            value[i] = (char)('A' + (r >> 16) % 26);
        }
        for (i = 0; i < 9; i++)
            CHECK(eip_secrets_add(big, value + i * 4000, 4000) == 0, "secret %zu", i);
        for (i = 0; i + 11 <= 9 * 4000; i += 7) {
            if (i % 4000 > 4000 - 11)
                continue; /* across two secrets */
            memcpy(text, "> ", 2);
            memcpy(text + 2, value + i, 11);
            memcpy(text + 13, " <", 3);
            n = strlen(text);
            if (strcmp(ranges_of(big, text), "2-13") == 0)
                found++;
            else
                misses++;
            (void)n;
        }
        CHECK(misses == 0 && found > 5000, "%zu pieces found, %zu missed", found, misses);
        memset(text, '1', 63);
        text[63] = '\0';
        CHECK_STR(ranges_of(big, text), "");
    }
    free(value);
    free(text);
    eip_secrets_free(big);
    eip_secrets_free(x);
    eip_secrets_free(empty);
    eip_secrets_free(NULL);
    return CTEST_END("secrets");
}
