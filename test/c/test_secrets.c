/* test_secrets.c - the set of secrets' windows (src/secrets.c): every piece of 8 bytes or more
 * found and merged, nothing else (checked against a brute-force search over random secrets and
 * texts made of their pieces, repetitive ones included); a growing set; only len bytes read. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/secrets.h"
#include "ctest.h"

/* The ranges of text as "from-to,from-to" (half-open, 0-based), or "" when none: counted first
 * (out NULL), then written into a block of exactly that many, as core.secret_ranges does. */
static const char *ranges_of(const eip_secrets *x, const char *text)
{
    static char buf[512];
    size_t len = strlen(text), n, i, at = 0, counted = eip_secrets_scan(x, text, len, NULL);
    eip_range *out = malloc((counted ? counted : 1) * sizeof *out);
    buf[0] = '\0';
    if (out == NULL)
        return "(oom)";
    n = eip_secrets_scan(x, text, len, out);
    if (n != counted)
        return "(count differs)";
    for (i = 0; i < n && at < sizeof buf - 32; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%zu-%zu", i ? "," : "", out[i].from, out[i].to);
    free(out);
    return buf;
}


/* Is text[a..b) inside secret s (n bytes)? */
static int inside(const char *s, size_t n, const char *t, size_t m)
{
    size_t i;
    for (i = 0; i + m <= n; i++)
        if (memcmp(s + i, t, m) == 0)
            return 1;
    return 0;
}

/* Random secrets over a small alphabet (so that they repeat themselves and each other) and texts
 * made of their pieces (some in hex) and other bytes: a byte is reported exactly when an 8-byte
 * window of the text that holds it is inside a secret, or 16 hex digits that hold it write 8
 * bytes that are. Returns the number of wrong texts. */
static int fuzz(unsigned long seed, int rounds)
{
    int round, wrong = 0;
    for (round = 0; round < rounds; round++) {
        char sec[3][40], text[200];
        size_t sl[3], len = 0, n, i, k, a;
        int ns, alpha, q;
        eip_secrets *x;
        eip_range out[EIP_SECRETS_MAX_RANGES(200)];
        char want[200], got[200];
        seed = seed * 1103515245ul + 12345ul;
        ns = 1 + (int)((seed >> 16) % 3);
        alpha = 2 + (int)((seed >> 20) % 3);
        for (q = 0; q < ns; q++) {
            seed = seed * 1103515245ul + 12345ul;
            sl[q] = 8 + (seed >> 16) % 25;
            for (i = 0; i < sl[q]; i++) {
                seed = seed * 1103515245ul + 12345ul;
                sec[q][i] = (char)('a' + (seed >> 16) % (unsigned long)alpha);
            }
        }
        while (len < 120) {
            seed = seed * 1103515245ul + 12345ul;
            if ((seed >> 16) % 3 == 0) {
                text[len++] = (char)('a' + (seed >> 20) % (unsigned long)(alpha + 1));
            } else {
                size_t from, to;
                int hex = (seed >> 24) % 3 == 0; /* the piece in hex, in one case or the other */
                q = (int)((seed >> 18) % (unsigned long)ns);
                seed = seed * 1103515245ul + 12345ul;
                from = (seed >> 16) % sl[q];
                to = from + (seed >> 8) % (sl[q] - from + 1);
                if (len + (hex ? 2 : 1) * (to - from) >= sizeof text)
                    break;
                for (i = from; hex && i < to; i++, len += 2)
                    snprintf(text + len, 3, (seed >> 28) % 2 ? "%02x" : "%02X", (unsigned char)sec[q][i]);
                if (!hex) {
                    memcpy(text + len, sec[q] + from, to - from);
                    len += to - from;
                }
            }
        }
        x = eip_secrets_new((size_t)ns);
        for (q = 0; q < ns; q++)
            eip_secrets_add(x, sec[q], sl[q]);
        n = eip_secrets_scan(x, text, len, out);
        if (eip_secrets_scan(x, text, len, NULL) != n)
            wrong++; /* counting alone must give what writing gives */
        memset(want, 0, sizeof want);
        memset(got, 0, sizeof got);
        for (a = 0; a + 8 <= len; a++) {
            char bytes[8];
            for (q = 0; q < ns; q++)
                if (inside(sec[q], sl[q], text + a, 8))
                    memset(want + a, 1, 8);
            for (k = 0; k < 16 && a + 16 <= len && isxdigit((unsigned char)text[a + k]); k++)
                if (k % 2 == 1)
                    bytes[k / 2] = (char)strtol((char[]){text[a + k - 1], text[a + k], '\0'}, NULL, 16);
            for (q = 0; q < ns && k == 16; q++)
                if (inside(sec[q], sl[q], bytes, 8))
                    memset(want + a, 1, 16);
        }
        for (k = 0; k < n; k++) {
            if (k > 0 && out[k].from <= out[k - 1].to)
                wrong++; /* not merged */
            memset(got + out[k].from, 1, out[k].to - out[k].from);
        }
        if (memcmp(want, got, len) != 0)
            wrong++;
        eip_secrets_free(x);
    }
    return wrong;
}

/* The forms a server may echo a secret in (eip_secrets_add): every one found, wherever the
 * secret starts in an encoded text, and the same text of another secret not. The base64 texts
 * are those of "" / "a" / "ab" + secret + "tail" (so the secret starts at each of the three
 * places of a group), made by `printf '%s' ... | base64 -w0`. */
static void test_forms(void)
{
    static const char secret[] = "MIIEtok+Ab/cd=QWxyz_SecretTok3n-9876543210zz";
    static const char *const found[] = {
        "TUlJRXRvaytBYi9jZD1RV3h5el9TZWNyZXRUb2szbi05ODc2NTQzMjEwenp0YWls",
        "YU1JSUV0b2srQWIvY2Q9UVd4eXpfU2VjcmV0VG9rM24tOTg3NjU0MzIxMHp6dGFpbA==",
        "YWJNSUlFdG9rK0FiL2NkPVFXeHl6X1NlY3JldFRvazNuLTk4NzY1NDMyMTB6enRhaWw=",
        "YWJNSUlFdG9rK0FiL2NkPVFXeHl6X1NlY3JldFRvazNuLTk4NzY1NDMyMTB6enRhaWw", /* URL-safe: the same */
        "YU1JSUV0b2srQWIvY2Q9UVd4eXpfU2VjcmV0VG9rM24tOTg3NjU0MzIxMHp6dGFpbA", /* no '+' or '/' here */
        "miietok+ab/cd=qwxyz_secrettok3n-9876543210zz",
        "MIIETOK+AB/CD=QWXYZ_SECRETTOK3N-9876543210ZZ",
    };
    /* base64 of "xMIIEtok-Ab_cd": '+' and '/' of the standard form read '-' and '_' URL-safe */
    static const char url_safe[] = "eE1JSUV0b2stQWJfY2Q";
    eip_secrets *x = eip_secrets_new(2), *other = eip_secrets_new(1);
    size_t i;
    CHECK(x != NULL && other != NULL, "allocated");
    if (x == NULL || other == NULL)
        return;
    CHECK(eip_secrets_add(x, secret, sizeof secret - 1) == 0, "added");
    CHECK(eip_secrets_add(x, "shortpw", 7) == 0, "a short one");
    CHECK(eip_secrets_add(other, "another-secret-of-44-bytes-xxxxxxxxxxxxxxxxx", 44) == 0, "another");
    for (i = 0; i < sizeof found / sizeof found[0]; i++) {
        CHECK(eip_secrets_any(x, found[i], strlen(found[i])), "form %zu found: %s", i, found[i]);
        CHECK(!eip_secrets_any(other, found[i], strlen(found[i])), "form %zu not another's", i);
    }
    {
        eip_secrets *y = eip_secrets_new(1);
        CHECK(y != NULL && eip_secrets_add(y, "xMIIEtok+Ab/cd", 14) == 0, "a secret with '+' and '/'");
        CHECK(y != NULL && eip_secrets_any(y, url_safe, strlen(url_safe)), "its URL-safe base64 found");
        eip_secrets_free(y);
    }
    /* A case form's windows of letters alone are not kept: the lower case of "Password@2024"
     * holds the word "password", which server texts use. Its own bytes and mixed windows are. */
    {
        eip_secrets *pw = eip_secrets_new(1);
        CHECK(pw != NULL && eip_secrets_add(pw, "Password@2024", 13) == 0, "a password");
        CHECK_STR(ranges_of(pw, "The username or password is wrong."), "");
        CHECK_STR(ranges_of(pw, "THE PASSWORD HAS EXPIRED"), "");
        CHECK_STR(ranges_of(pw, "echo password@2024"), "6-18"); /* ("p": in "password" only) */
        CHECK_STR(ranges_of(pw, "echo PASSWORD@2024"), "6-18");
        CHECK_STR(ranges_of(pw, "echo Password@20"), "5-16");
        eip_secrets_free(pw);
        /* a longer run of letters is no word: every window of its case forms stands */
        pw = eip_secrets_new(3);
        CHECK(pw != NULL && eip_secrets_add(pw, "correcthorsebattery2024", 23) == 0 &&
                  eip_secrets_add(pw, "examplepassphrase", 17) == 0 &&
                  eip_secrets_add(pw, "MYCLOUDPASSWORD#99", 18) == 0,
              "passphrases");
        CHECK_STR(ranges_of(pw, "Invalid login: CORRECTHORSEBATTERY2024"), "15-38");
        CHECK_STR(ranges_of(pw, "EXAMPLEPASSPHRASE"), "0-17");
        CHECK_STR(ranges_of(pw, "mycloudpassword#99"), "0-18");
        eip_secrets_free(pw);
        /* a secret that is one word of 8 letters: its case forms are all there is to find */
        pw = eip_secrets_new(1);
        CHECK(pw != NULL && eip_secrets_add(pw, "Sunshine", 8) == 0, "an 8-letter password");
        CHECK_STR(ranges_of(pw, "user password sunshine rejected"), "14-22");
        CHECK_STR(ranges_of(pw, "SUNSHINE"), "0-8");
        eip_secrets_free(pw);
    }
    /* a short secret is one only whole: no form of it (upper case, base64) */
    CHECK_STR(ranges_of(x, "SHORTPW"), "");
    CHECK_STR(ranges_of(x, "c2hvcnRwdw=="), "");
    /* in hex, either case, from any digit: 16 digits (8 bytes of the secret) or more, never 8
     * (4 bytes, which a request id of 32 digits would match by chance now and then) */
    CHECK_STR(ranges_of(x, "4d494945746f6b2b41622f63643d515778797a5f536563726574546f6b336e"), "0-62");
    CHECK_STR(ranges_of(x, "bad token 4D494945746F6B2B41622F63643D515778797A5F536563726574546F6B336E2D..."),
              "10-74");
    CHECK_STR(ranges_of(x, "id 1234d494945746f6b2b4 end"), "6-22"); /* (from an odd digit of the run) */
    CHECK_STR(ranges_of(x, "id 94945746f6b2b4162 end"), "4-20");   /* its start cut off within a byte */
    CHECK_STR(ranges_of(x, "id 494945746f6b2b4 end"), "");         /* 15 digits: 7.5 bytes */
    CHECK_STR(ranges_of(x, "id 4d494945 746f6b2b end"), "");       /* not with separators */
    CHECK_STR(ranges_of(x, "9f86d081884c7d659a2feaa0c55ad0154d494945746f6b2b"), "32-48"); /* after others */
    {
        eip_secrets *u = eip_secrets_new(1); /* "пароль-Secret": not ASCII's high halves alone */
        CHECK(u != NULL && eip_secrets_add(u, "\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c-Secret", 19) == 0,
              "a UTF-8 password");
        CHECK_STR(ranges_of(u, "pw D0BFD0B0D180D0BED0BBD18C2D536563726574"), "3-41");
        CHECK_STR(ranges_of(u, "pw 0bfd0b0d180d0bed0bb?"), "4-22"); /* from its 2nd byte */
        eip_secrets_free(u);
    }
    CHECK_STR(ranges_of(x, "73686f72747077"), "");                   /* a short secret's: no */
    CHECK_STR(ranges_of(x, "req 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"), "");
    /* the whole base64 text but its last group of the secret's bytes, which holds "tail" too */
    CHECK_STR(ranges_of(x, found[0]), "0-56");
    eip_secrets_free(x);
    eip_secrets_free(other);
}

/* The base64 of p[0..n) (standard alphabet; no padding needed here) into out. */
static size_t base64_of(const unsigned char *p, size_t n, char *out)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i, o = 0;
    for (i = 0; i + 3 <= n; i += 3) {
        out[o++] = b64[p[i] >> 2];
        out[o++] = b64[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
        out[o++] = b64[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
        out[o++] = b64[p[i + 2] & 63];
    }
    return o;
}

/* Is every 8-byte window of t[from..to) found, alone, and in hex (16 digits, either case, inside
 * a run of hex digits that starts an odd digit before them)? Returns how many were not. */
static size_t windows_missed(const eip_secrets *x, const unsigned char *t, size_t from, size_t to)
{
    size_t i, missed = 0;
    for (i = from; i + 8 <= to; i++) {
        char hex[32];
        int k;
        if (!eip_secrets_any(x, (const char *)t + i, 8))
            missed++;
        memcpy(hex, "=abc", 4); /* (an odd number of digits before: the run's parity differs) */
        for (k = 0; k < 8; k++)
            snprintf(hex + 4 + 2 * k, 3, i % 2 ? "%02X" : "%02x", t[i + (size_t)k]);
        hex[20] = '=';
        if (!eip_secrets_any(x, hex, 21))
            missed++;
    }
    return missed;
}

/* A set that grows through many rehashes (its table and its filter made anew each time): after
 * each secret added, every window of every secret so far is still found, in every form it is
 * indexed in (its bytes, lower and upper case, base64 and URL-safe base64 from each of the three
 * places in a group, all of them in hex too), and a window of 8 NUL bytes once a secret holds one.
 * Secrets of every byte value, some longer than EIP_SECRETS_DERIVED_MAX, and short ones between
 * them; no 8 letters in a row (a case form's word of 8 letters is left out on purpose). */
static void test_growing(void)
{
    enum { COUNT = 40, MAXLEN = 700 };
    static unsigned char sec[COUNT][MAXLEN];
    static size_t len[COUNT];
    eip_secrets *x = eip_secrets_new(COUNT), *shorts = eip_secrets_new(2);
    unsigned long r = 99;
    size_t q, missed = 0, checked = 0;
    CHECK(x != NULL && shorts != NULL, "allocated");
    if (x == NULL || shorts == NULL)
        return;
    /* only short secrets: no table at all, a text of 8 bytes or more holds none */
    CHECK(eip_secrets_add(shorts, "abc", 3) == 0 && eip_secrets_add(shorts, "\0\0\0\0\0\0\0", 7) == 0, "shorts");
    CHECK_STR(ranges_of(shorts, "abcabcabc"), "");
    CHECK(!eip_secrets_any(shorts, "\0\0\0\0\0\0\0\0", 8), "8 NUL bytes: not a short secret's");
    CHECK(eip_secrets_any(shorts, "\0\0\0\0\0\0\0", 7), "the short one, whole");
    eip_secrets_free(shorts);
    /* a secret of NUL bytes alone: its one window is no slot's (0 marks empty ones) */
    shorts = eip_secrets_new(1);
    CHECK(shorts != NULL && eip_secrets_add(shorts, "\0\0\0\0\0\0\0\0\0", 9) == 0, "NUL bytes");
    CHECK(shorts != NULL && eip_secrets_any(shorts, "ab\0\0\0\0\0\0\0\0", 10), "8 of them found");
    CHECK(shorts != NULL && eip_secrets_any(shorts, "0000000000000000", 16), "in hex too");
    eip_secrets_free(shorts);
    for (q = 0; q < COUNT; q++) {
        size_t i, p;
        r = r * 1103515245ul + 12345ul;
        len[q] = q == 7 ? 40 : q % 9 == 4 ? 1 + (r >> 16) % 7 : 8 + (r >> 16) % (q % 5 == 0 ? MAXLEN - 8 : 120);
        for (i = 0; i < len[q]; i++) {
            r = r * 1103515245ul + 12345ul;
            switch ((r >> 16) % 4) {
            case 0: /* any byte */
                sec[q][i] = (unsigned char)(r >> 20);
                break;
            case 1:
                sec[q][i] = (unsigned char)('a' + (r >> 20) % 26);
                break;
            case 2:
                sec[q][i] = (unsigned char)('A' + (r >> 20) % 26);
                break;
            default:
                sec[q][i] = (unsigned char)("0123456789+/-_=.%~"[(r >> 20) % 18]);
            }
            if (i % 7 == 6 && isalpha(sec[q][i]))
                sec[q][i] = (unsigned char)('0' + i % 10);
        }
        if (q == 7) /* a run of NUL bytes: the zero window */
            memset(sec[q] + 3, 0, 9);
        CHECK(eip_secrets_add(x, (const char *)sec[q], len[q]) == 0, "secret %zu added", q);
        /* (this one, and every 8th time every secret so far: the table was made anew meanwhile) */
        for (p = q % 8 == 7 || q + 1 == COUNT ? 0 : q; p <= q; p++) {
            unsigned char form[MAXLEN + 4];
            char b64[(MAXLEN + 4) / 3 * 4 + 4];
            size_t n = len[p] < 512 ? len[p] : 512, k, m;
            if (len[p] < 8)
                continue;
            missed += windows_missed(x, sec[p], 0, len[p]);
            for (k = 0; k < 2; k++) {
                for (i = 0; i < n; i++)
                    form[i] = (unsigned char)(k == 0 ? tolower(sec[p][i]) : toupper(sec[p][i]));
                missed += windows_missed(x, form, 0, n);
            }
            for (k = 0; k < 3; k++) { /* the secret k bytes into a group: "xy"[0..k) before it */
                memcpy(form, "xy", k);
                memcpy(form + k, sec[p], n);
                m = base64_of(form, k + n, b64);
                missed += windows_missed(x, (const unsigned char *)b64, k == 0 ? 0 : k + 1, m);
                for (i = 0; i < m; i++)
                    b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
                missed += windows_missed(x, (const unsigned char *)b64, k == 0 ? 0 : k + 1, m);
            }
            checked++;
        }
    }
    CHECK(missed == 0 && checked > 120, "%zu windows missed (%zu secrets checked)", missed, checked);
    CHECK(eip_secrets_any(x, "\0\0\0\0\0\0\0\0", 8), "the zero window");
    CHECK(eip_secrets_any(x, "0000000000000000", 16), "the zero window in hex");
    eip_secrets_free(x);
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
    CHECK_STR(ranges_of(x, "x cret-012 y"), "2-10");       /* 8 bytes from its middle */
    CHECK_STR(ranges_of(x, "id 23456789"), "3-11");        /* its last 8 bytes */
    CHECK_STR(ranges_of(x, "id 3456789"), "");
    CHECK_STR(ranges_of(x, "x cret-01234 y"), "2-12");     /* from its middle */
    CHECK_STR(ranges_of(x, "\0\0\0\0\0\0\0\0"), "");      /* 8 NUL bytes: in no secret yet */
    CHECK_STR(ranges_of(x, "short"), "0-5");               /* a short one: the whole text */
    CHECK_STR(ranges_of(x, "shorts"), "");
    CHECK_STR(ranges_of(x, "secret-0"), "0-8");
    CHECK_STR(ranges_of(empty, "secret-0123456789"), "");
    CHECK(eip_secrets_any(x, "a secret-0123456789 b", 21), "any");
    CHECK(!eip_secrets_any(x, "a secret-012345678", 9), "only len bytes are read");
    CHECK(!eip_secrets_any(empty, "anything", 8), "an empty index finds nothing");
    /* Counting (out NULL) goes on past the first piece, writes nothing, and merges as writing
     * does: what core.secret_ranges sizes its block by instead of the text's length. */
    CHECK(eip_secrets_scan(x, "a secret-0123456789 b secret-0123456789 c cret-012", 50, NULL) == 3,
          "three pieces counted");
    CHECK(eip_secrets_scan(x, "secret-0123456789secret-0123456789", 34, NULL) == 1, "touching: one");
    CHECK(eip_secrets_scan(x, "nothing here at all", 19, NULL) == 0, "none");
    CHECK(eip_secrets_scan(x, "short", 5, NULL) == 1, "a short one, whole");

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
    test_forms();
    test_growing();
    CHECK(fuzz(1, 3000) == 0 && fuzz(7, 3000) == 0, "random secrets and texts: exactly the pieces found");
    eip_secrets_free(big);
    eip_secrets_free(x);
    eip_secrets_free(empty);
    eip_secrets_free(NULL);
    return CTEST_END("secrets");
}
