/* secrets.c - the set of secret values' 8-byte windows. See secrets.h. */
#include "secrets.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;
    size_t n;
} secret;

struct eip_secrets {
    secret *s;
    size_t count, max;
    uint64_t *t;       /* the windows, as 8-byte values (0: an empty slot) */
    size_t mask, used; /* the table has mask + 1 slots (a power of two), used of them taken */
    unsigned char *f;  /* 8 (mask + 1) bits: a window's bit (filter_bit) set, so that a look-up of
                        * one that is not there (nearly every one) mostly ends at its bit */
    int zero;          /* a window of 8 NUL bytes is in the set (0 marks empty slots) */
    unsigned high;     /* the high halves (4 bits) of the bytes the windows are made of, a bit each */
    unsigned char hex_high[256]; /* 1 for a hex digit whose value is one of those halves */
};

/* Zeroes n bytes in a way the compiler may not drop as a dead store. */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

/* 1 + the value of each hex digit (either case), 0 for any other byte. */
static const unsigned char HEX[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
    ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

static uint64_t window_at(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

static size_t slot_of(uint64_t w, size_t mask)
{
    return (size_t)((w * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & mask;
}

/* The window's bit in a filter of 8 (mask + 1) bits: its slot's and three hash bits more. */
static size_t filter_bit(uint64_t w, size_t mask)
{
    return (size_t)((w * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (mask << 3 | 7);
}

/* Puts w in t unless it is there; returns whether it was added. */
static int put(uint64_t *t, size_t mask, uint64_t w)
{
    size_t i = slot_of(w, mask);
    while (t[i] != 0) {
        if (t[i] == w)
            return 0;
        i = (i + 1) & mask;
    }
    t[i] = w;
    return 1;
}

/* Could the window w be in the set (x->t not NULL)? Not when its filter bit is clear. Small, so
 * that it is inlined where scan looks at each window. */
static int may_hold(const eip_secrets *x, uint64_t w)
{
    size_t b = filter_bit(w, x->mask);
    return w == 0 || (x->f[b >> 3] & 1u << (b & 7)) != 0;
}

/* put, and the window's bit set in the table's filter f. */
static int put_window(uint64_t *t, unsigned char *f, size_t mask, uint64_t w)
{
    size_t b = filter_bit(w, mask);
    f[b >> 3] = (unsigned char)(f[b >> 3] | 1u << (b & 7));
    return put(t, mask, w);
}

/* Is the window w in the set? (scan asks may_hold first: most windows end there.) */
static int holds(const eip_secrets *x, uint64_t w)
{
    size_t i;
    if (w == 0)
        return x->zero;
    if (x->t == NULL)
        return 0;
    for (i = slot_of(w, x->mask); x->t[i] != 0; i = (i + 1) & x->mask)
        if (x->t[i] == w)
            return 1;
    return 0;
}

eip_secrets *eip_secrets_new(size_t max_secrets)
{
    eip_secrets *x = calloc(1, sizeof *x);
    if (x == NULL)
        return NULL;
    if (max_secrets > 0) {
        x->s = calloc(max_secrets, sizeof *x->s);
        if (x->s == NULL) {
            free(x);
            return NULL;
        }
    }
    x->max = max_secrets;
    return x;
}

/* The bytes of a secret that are indexed. */
static size_t indexed(size_t n)
{
    return n > EIP_SECRETS_INDEXED_MAX ? EIP_SECRETS_INDEXED_MAX : n;
}

/* Makes room for `more` windows: the table kept at most 5/8 full, grown by rehashing. 0, or -1
 * when out of memory. */
static int reserve(eip_secrets *x, size_t more)
{
    size_t need = x->used + more, cap;
    uint64_t *t;
    unsigned char *f;
    if (x->t != NULL && need * 8 <= (x->mask + 1) * 5)
        return 0;
    for (cap = 16; cap * 5 < need * 8; cap *= 2)
        ;
    t = calloc(cap, sizeof *t);
    f = calloc(cap, 1);
    if (t == NULL || f == NULL) {
        free(t);
        free(f);
        return -1;
    }
    if (x->t != NULL) {
        size_t i;
        for (i = 0; i <= x->mask; i++)
            if (x->t[i] != 0)
                put_window(t, f, cap - 1, x->t[i]);
        wipe(x->t, (x->mask + 1) * sizeof *x->t);
        wipe(x->f, x->mask + 1);
        free(x->t);
        free(x->f);
    }
    x->t = t;
    x->f = f;
    x->mask = cap - 1;
    return 0;
}

static int is_letter(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Is w[0..8) a word as people write one: ASCII letters alone, all lower case, all upper case,
 * or capitalised ("Password")? A window of a random key or token seldom is (its letters change
 * case within 8 of them). */
static int word_shaped(const char *w)
{
    int k, lower = 0, upper = 0;
    for (k = 0; k < 8; k++) {
        unsigned char c = (unsigned char)w[k];
        if (c >= 'a' && c <= 'z')
            lower++;
        else if (c >= 'A' && c <= 'Z')
            upper += k == 0 ? 1 : 2;
        else
            return 0;
    }
    return lower == 8 || upper == 15 || (upper == 1 && lower == 7);
}

/* Puts every 8-byte window of p[0..n) in the set; with `like` (a text of n bytes too, that p
 * is a form of), not one whose window in `like` is a whole word of 8 letters (word-shaped, and
 * no letter just before or after it): "Password" of "Password@2024", whose lower case is a word
 * server texts use. A longer run of letters ("correcthorsebattery") keeps all its windows, and
 * so does anything around the word (the windows beside it cover all of the secret but the
 * word's first or last letter), and a secret that is the word alone ("Sunshine": no other
 * window would find its echo). 0, or -1 when out of memory. */
static int index_some_windows(eip_secrets *x, const char *p, size_t n, const char *like)
{
    size_t off;
    if (n < 8)
        return 0;
    if (reserve(x, n - 7) != 0)
        return -1;
    for (off = 0; off < n; off++)
        x->high |= 1u << ((unsigned char)p[off] >> 4);
    for (off = 0; off < 256; off++)
        x->hex_high[off] = (unsigned char)(HEX[off] != 0 && (x->high >> (HEX[off] - 1) & 1));
    for (off = 0; off + 8 <= n; off++) {
        uint64_t w = window_at(p + off);
        if (like != NULL && n > 8 && word_shaped(like + off) && (off == 0 || !is_letter((unsigned char)like[off - 1])) &&
            (off + 8 == n || !is_letter((unsigned char)like[off + 8])))
            continue;
        if (w == 0)
            x->zero = 1;
        else
            x->used += (size_t)put_window(x->t, x->f, x->mask, w);
    }
    return 0;
}

/* Puts every 8-byte window of p[0..n) in the set. 0, or -1 when out of memory. */
static int index_windows(eip_secrets *x, const char *p, size_t n)
{
    return index_some_windows(x, p, n, NULL);
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The base64 of p[0..n) as it reads inside the base64 of a longer text where p starts `k`
 * (0..2) bytes into a group of three: the characters that depend on p's bytes alone (not the
 * first 0, 2 or 3 that hold bytes before it, nor a last partial group that holds bytes after
 * it), into out (room for (n + 2) / 3 * 4). Returns how many. */
static size_t base64_at(const unsigned char *p, size_t n, int k, char *out)
{
    size_t whole = ((size_t)k + n) / 3 * 3, i, o = 0, skip = k == 0 ? 0 : (size_t)k + 1;
    for (i = 0; i < whole; i += 3) {
        unsigned char g[3];
        int j;
        for (j = 0; j < 3; j++)
            g[j] = i + (size_t)j < (size_t)k ? 0 : p[i + (size_t)j - (size_t)k];
        out[o++] = B64[g[0] >> 2];
        out[o++] = B64[((g[0] & 3) << 4) | (g[1] >> 4)];
        out[o++] = B64[((g[1] & 15) << 2) | (g[2] >> 6)];
        out[o++] = B64[g[2] & 63];
    }
    if (o <= skip)
        return 0;
    memmove(out, out + skip, o - skip);
    return o - skip;
}

/* Indexes the forms a server may echo a secret in besides its own bytes, over its first
 * EIP_SECRETS_DERIVED_MAX bytes: lower and upper case (ASCII; not where the secret holds a
 * word of 8 letters: index_some_windows), and base64 (standard and URL-safe) at each of the
 * three places it may start in a base64 text. An 8-character window of those is 8 or 6 bytes
 * of the secret. (Not hex: a window there is 4 bytes, 32 bits, which the request ids of a long
 * batch, 32 hex digits each, would match by chance now and then; scan reads 16 hex digits as the
 * 8 bytes they write instead.) 0, or -1 when out of memory. */
static int index_derived(eip_secrets *x, const unsigned char *p, size_t n)
{
    char buf[(EIP_SECRETS_DERIVED_MAX + 2) / 3 * 4]; /* a form: base64 is the longest */
    size_t i;
    int k, variant, rc = 0;
    if (n > EIP_SECRETS_DERIVED_MAX)
        n = EIP_SECRETS_DERIVED_MAX;
    for (variant = 0; variant < 2 && rc == 0; variant++) { /* lower, upper case */
        for (i = 0; i < n; i++) {
            unsigned char c = p[i];
            if (variant == 0 && c >= 'A' && c <= 'Z')
                c = (unsigned char)(c - 'A' + 'a');
            else if (variant == 1 && c >= 'a' && c <= 'z')
                c = (unsigned char)(c - 'a' + 'A');
            buf[i] = (char)c;
        }
        /* Not where the secret holds a word of 8 letters: the lower case of "Password@2024"
         * holds "password", which server texts use (the secret's own bytes still stand). */
        if (memcmp(buf, p, n) != 0)
            rc = index_some_windows(x, buf, n, (const char *)p);
    }
    for (k = 0; k < 3 && rc == 0; k++) {
        int url = 0;
        size_t m = base64_at(p, n, k, buf);
        rc = index_windows(x, buf, m);
        for (i = 0; i < m; i++) {
            if (buf[i] == '+' || buf[i] == '/') {
                buf[i] = buf[i] == '+' ? '-' : '_';
                url = 1;
            }
        }
        if (url && rc == 0)
            rc = index_windows(x, buf, m);
    }
    wipe(buf, sizeof buf);
    return rc;
}

int eip_secrets_add(eip_secrets *x, const char *value, size_t len)
{
    secret *s;
    size_t n = indexed(len);
    if (len == 0)
        return 0;
    if (x->count >= x->max)
        return -1;
    s = &x->s[x->count];
    s->p = malloc(len);
    if (s->p == NULL)
        return -1;
    memcpy(s->p, value, len);
    s->n = len;
    x->count++;
    if (index_windows(x, s->p, n) != 0)
        return -1;
    /* (a secret shorter than 8 bytes is one only as the whole text: no form of it either) */
    if (n >= 8 && index_derived(x, (const unsigned char *)s->p, n) != 0)
        return -1;
    return 0;
}

/* Adds the piece [from, end) to the n ranges so far, the last of which ends at *to: pieces come
 * in increasing order of start, so one that starts at or before the last range's end (overlaps
 * or touches it) extends it, when it ends later (a hex piece is 16 bytes, a window 8). */
static void add_piece(eip_range *out, size_t *n, size_t *to, size_t from, size_t end)
{
    if (*n > 0 && from <= *to) {
        if (end <= *to)
            return;
        if (out != NULL)
            out[*n - 1].to = end;
    } else {
        if (out != NULL) {
            out[*n].from = from;
            out[*n].to = end;
        }
        (*n)++;
    }
    *to = end;
}

/* The byte the two hex digits at p write. */
static unsigned char hex_byte(const char *p)
{
    return (unsigned char)((HEX[(unsigned char)p[0]] - 1) << 4 | (HEX[(unsigned char)p[1]] - 1));
}

/* The window of the 8 bytes that the 16 hex digits at p write. */
static uint64_t hex_window(const char *p)
{
    unsigned char b[8];
    int k;
    for (k = 0; k < 8; k++)
        b[k] = hex_byte(p + 2 * k);
    return window_at((const char *)b);
}

/* The first place in the hex digits text[from..to) where the 8 bytes that 16 digits write may be
 * a window, judged by their high halves alone (every other digit), or `to` when there is none:
 * the 16 random bytes of a request id seldom have one, an ASCII text's hex soon has. */
static size_t hex_from_of(const eip_secrets *x, const char *text, size_t from, size_t to)
{
    size_t j, here = 0, there = 0; /* high halves in a row, of the digits from j, j - 2, ...; the others' */
    for (j = from; j < to; j++) {
        size_t h = x->hex_high[(unsigned char)text[j]] ? here + 1 : 0;
        if (h == 8)
            return j - 14;
        here = there;
        there = h;
    }
    return to;
}

/* The pieces in text, merged, written into out unless it is NULL; with `first`, only whether
 * there is one (0 or 1). Returns how many. Pieces are looked at in increasing order of start:
 * at each byte, the 8-byte window there, and, inside a run of hex digits, the 16 digits there
 * read as the 8 bytes they write (a window of the set: the hex of 8 bytes of a secret or of one
 * of its forms, in either case, whichever digit it starts at). */
static size_t scan(const eip_secrets *x, const char *text, size_t len, eip_range *out, int first)
{
    /* (hex: the digits from i end at hex_to; no window of them is looked up before hex_from) */
    size_t n = 0, i, to = 0, hex_to = 0, hex_from = len;
    for (i = 0; i < x->count; i++) { /* a short secret: only as the whole text */
        const secret *s = &x->s[i];
        if (s->n < 8 && s->n == len && memcmp(s->p, text, len) == 0) {
            if (out != NULL) {
                out[0].from = 0;
                out[0].to = len;
            }
            return 1;
        }
    }
    if (x->t == NULL) /* no window at all: no secret of 8 bytes or more */
        return 0;
    for (i = 0; i + 8 <= len; i++) {
        uint64_t w = window_at(text + i);
        if (may_hold(x, w) && holds(x, w)) {
            if (first)
                return 1;
            add_piece(out, &n, &to, i, i + 8);
        }
        if (i >= hex_to) { /* where the hex digits from i end, and their hex_from */
            for (hex_to = i; hex_to < len && HEX[(unsigned char)text[hex_to]] != 0; hex_to++)
                ;
            hex_from = hex_to - i >= 16 ? hex_from_of(x, text, i, hex_to) : len;
        }
        if (i >= hex_from && i + 16 <= hex_to && (w = hex_window(text + i), may_hold(x, w)) && holds(x, w)) {
            if (first)
                return 1;
            add_piece(out, &n, &to, i, i + 16);
        }
    }
    return n;
}

size_t eip_secrets_scan(const eip_secrets *x, const char *text, size_t len, eip_range *out)
{
    return scan(x, text, len, out, 0);
}

int eip_secrets_any(const eip_secrets *x, const char *text, size_t len)
{
    return scan(x, text, len, NULL, 1) != 0;
}

void eip_secrets_free(eip_secrets *x)
{
    size_t i;
    if (x == NULL)
        return;
    for (i = 0; i < x->count; i++) {
        wipe(x->s[i].p, x->s[i].n);
        free(x->s[i].p);
    }
    if (x->t != NULL) {
        wipe(x->t, (x->mask + 1) * sizeof *x->t);
        wipe(x->f, x->mask + 1);
    }
    free(x->s);
    free(x->t);
    free(x->f);
    free(x);
}
