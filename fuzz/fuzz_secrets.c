/* fuzz_secrets.c - the set of secrets' windows (src/secrets.c) against a brute-force model.
 *
 * The input: a byte giving how many secrets (0-7), each secret a chunk (fuzz_input.h), the
 * rest the text. Invariants, for the index of those secrets:
 *  - eip_secrets_scan reports exactly the bytes of the text that lie in an 8-byte window equal
 *    to 8 consecutive bytes of a secret, or of one of its forms (a secret of 8 bytes or more):
 *    lower case, upper case (ASCII; not where a longer secret holds a word of 8 letters), and base64,
 *    standard and URL-safe, as it reads starting at
 *    each of the three places of a group (the characters that depend on the secret's bytes
 *    alone); the model computes those forms on its own, with a bit accumulator;
 *  - and the bytes of the text that lie in 16 hex digits (either case; a run of them, from any
 *    digit) that write 8 bytes such a window holds: the hex of a secret or of one of its forms;
 *  - unless a secret shorter than 8 bytes is the whole text: then one range, the whole text;
 *  - ranges increase and are merged (none touches the one before), counting alone gives the
 *    same count as writing, within EIP_SECRETS_MAX_RANGES; eip_secrets_any agrees.
 * Each secret and the text are copied into blocks of exactly their size, so ASan flags any
 * read past them.
 */
#include "fuzz_input.h"
#include "secrets.h"

#include <string.h>

#define MAXS 7
#define FORMS 6 /* the secret, lower, upper, and base64 at the three places (URL-safe: in_forms) */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The base64 characters of (k zero bytes, s) that no byte but s's decides, into out. */
static size_t model_base64(const unsigned char *s, size_t n, int k, char *out)
{
    size_t total = (size_t)k + n, whole = total / 3 * 3, i, o = 0, skip = k == 0 ? 0 : (size_t)k + 1;
    unsigned long acc = 0;
    int bits = 0;
    for (i = 0; i < whole; i++) {
        acc = (acc << 8) | (i < (size_t)k ? 0u : s[i - (size_t)k]);
        bits += 8;
        while (bits >= 6) {
            char c = B64[(acc >> (bits - 6)) & 63];
            bits -= 6;
            if (o >= skip)
                out[o - skip] = c;
            o++;
        }
    }
    return o > skip ? o - skip : 0;
}

/* Are the 8 bytes at w a word: letters only, in one case or capitalised? */
static int model_word(const char *w)
{
    int i, lower = 1, upper = 1;
    for (i = 0; i < 8; i++) {
        unsigned char c = (unsigned char)w[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return 0;
        if (c >= 'A' && c <= 'Z' && i > 0)
            lower = 0;
        if (c >= 'a' && c <= 'z')
            upper = 0;
    }
    return lower || upper; /* (lower: none upper but perhaps the first) */
}

/* Is the letter at s[i] (of n bytes) one? (false past either end) */
static int model_letter(const char *s, size_t n, size_t i)
{
    unsigned char c = i < n ? (unsigned char)s[i] : 0;
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Does some form (of the n given) hold the 8 bytes w? The case forms (1, 2) not where the
 * secret (form 0) holds a word of exactly 8 letters; the base64 ones (3..5) are also read
 * URL-safe. */
static int in_forms(char *const *form, const size_t *len, int n, const char *w)
{
    int f;
    size_t j, i;
    for (f = 0; f < n; f++) {
        for (j = 0; j + 8 <= len[f]; j++) {
            if ((f == 1 || f == 2) && len[0] > 8 && model_word(form[0] + j) &&
                (j == 0 || !model_letter(form[0], len[0], j - 1)) && !model_letter(form[0], len[0], j + 8))
                continue;
            if (memcmp(form[f] + j, w, 8) == 0)
                return 1;
            if (f >= 3) { /* URL-safe: '+' and '/' read '-' and '_' */
                for (i = 0; i < 8; i++) {
                    char c = form[f][j + i];
                    c = c == '+' ? '-' : c == '/' ? '_' : c;
                    if (c != w[i])
                        break;
                }
                if (i == 8)
                    return 1;
            }
        }
    }
    return 0;
}

/* The 8 bytes that the 16 hex digits at t write, into w; 0 when they are not all hex digits. */
static int model_hex(const char *t, char *w)
{
    static const char DIGITS[] = "0123456789abcdef";
    int i;
    for (i = 0; i < 16; i++) {
        char c = t[i] >= 'A' && t[i] <= 'F' ? (char)(t[i] + 32) : t[i];
        const char *d = c != '\0' ? strchr(DIGITS, c) : NULL;
        if (d == NULL)
            return 0;
        if (i % 2 == 0)
            w[i / 2] = (char)((d - DIGITS) * 16);
        else
            w[i / 2] = (char)(w[i / 2] + (d - DIGITS));
    }
    return 1;
}

/* Adds the piece [from, end) to the model's nr ranges (in order of start: merged with the last
 * one when it overlaps or touches it). */
static void model_add(eip_range *want, size_t *nr, size_t from, size_t end)
{
    if (*nr > 0 && from <= want[*nr - 1].to) {
        if (end > want[*nr - 1].to)
            want[*nr - 1].to = end;
    } else {
        want[*nr].from = from;
        want[*nr].to = end;
        (*nr)++;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reader r = {data, size};
    int ns = fuzz_u8(&r) % (MAXS + 1), q, f;
    char *sec[MAXS], *form[MAXS][FORMS], *text;
    size_t sl[MAXS], fl[MAXS][FORMS], tl, i, n, nr = 0;
    eip_secrets *x = eip_secrets_new((size_t)ns);
    eip_range *want, *got;
    int whole = 0;

    FUZZ_CHECK(x != NULL);
    for (q = 0; q < ns; q++) {
        const char *c = fuzz_chunk(&r, &sl[q]);
        sec[q] = malloc(sl[q] ? sl[q] : 1);
        FUZZ_CHECK(sec[q] != NULL);
        memcpy(sec[q], c, sl[q]);
        FUZZ_CHECK(eip_secrets_add(x, sec[q], sl[q]) == 0);
        for (f = 0; f < FORMS; f++) {
            form[q][f] = malloc(2 * sl[q] + 8);
            FUZZ_CHECK(form[q][f] != NULL);
            fl[q][f] = 0;
        }
        memcpy(form[q][0], sec[q], sl[q]);
        fl[q][0] = sl[q];
        if (sl[q] >= 8) { /* (the chunks are at most 255 bytes: under EIP_SECRETS_DERIVED_MAX) */
            for (i = 0; i < sl[q]; i++) {
                unsigned char b = (unsigned char)sec[q][i];
                form[q][1][i] = (char)(b >= 'A' && b <= 'Z' ? b + 32 : b);
                form[q][2][i] = (char)(b >= 'a' && b <= 'z' ? b - 32 : b);
            }
            fl[q][1] = fl[q][2] = sl[q];
            for (f = 0; f < 3; f++)
                fl[q][3 + f] = model_base64((const unsigned char *)sec[q], sl[q], f, form[q][3 + f]);
        }
    }
    tl = r.left;
    text = malloc(tl ? tl : 1);
    want = malloc((tl + 2) * sizeof *want);
    got = malloc((tl + 2) * sizeof *got);
    FUZZ_CHECK(text != NULL && want != NULL && got != NULL);
    memcpy(text, r.p, tl);

    for (q = 0; q < ns; q++)
        if (sl[q] > 0 && sl[q] < 8 && sl[q] == tl && memcmp(sec[q], text, tl) == 0)
            whole = 1;
    if (whole) {
        want[0].from = 0;
        want[0].to = tl;
        nr = 1;
    } else {
        size_t k;
        char w[8];
        for (k = 0; k + 8 <= tl; k++) {
            int hit = 0;
            for (q = 0; q < ns && !hit; q++)
                hit = in_forms(form[q], fl[q], FORMS, text + k);
            if (hit)
                model_add(want, &nr, k, k + 8);
            hit = 0;
            if (k + 16 <= tl && model_hex(text + k, w))
                for (q = 0; q < ns && !hit; q++)
                    hit = in_forms(form[q], fl[q], FORMS, w);
            if (hit)
                model_add(want, &nr, k, k + 16);
        }
    }
    n = eip_secrets_scan(x, text, tl, NULL);
    FUZZ_CHECK(n == nr && n <= EIP_SECRETS_MAX_RANGES(tl));
    FUZZ_CHECK(eip_secrets_scan(x, text, tl, got) == n);
    for (i = 0; i < n; i++)
        FUZZ_CHECK(got[i].from == want[i].from && got[i].to == want[i].to);
    FUZZ_CHECK(eip_secrets_any(x, text, tl) == (n > 0));

    eip_secrets_free(x);
    for (q = 0; q < ns; q++) {
        free(sec[q]);
        for (f = 0; f < FORMS; f++)
            free(form[q][f]);
    }
    free(text);
    free(want);
    free(got);
    return 0;
}
