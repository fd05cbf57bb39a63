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
    int zero;          /* a window of 8 NUL bytes is in the set (0 marks empty slots) */
};

/* Zeroes n bytes in a way the compiler may not drop as a dead store. */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

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
    if (x->t != NULL && need * 8 <= (x->mask + 1) * 5)
        return 0;
    for (cap = 16; cap * 5 < need * 8; cap *= 2)
        ;
    t = calloc(cap, sizeof *t);
    if (t == NULL)
        return -1;
    if (x->t != NULL) {
        size_t i;
        for (i = 0; i <= x->mask; i++)
            if (x->t[i] != 0)
                put(t, cap - 1, x->t[i]);
        wipe(x->t, (x->mask + 1) * sizeof *x->t);
        free(x->t);
    }
    x->t = t;
    x->mask = cap - 1;
    return 0;
}

int eip_secrets_add(eip_secrets *x, const char *value, size_t len)
{
    secret *s;
    size_t n = indexed(len), off;
    if (len == 0)
        return 0;
    if (x->count >= x->max)
        return -1;
    if (n >= 8 && reserve(x, n - 7) != 0)
        return -1;
    s = &x->s[x->count];
    s->p = malloc(len);
    if (s->p == NULL)
        return -1;
    memcpy(s->p, value, len);
    s->n = len;
    x->count++;
    for (off = 0; off + 8 <= n; off++) {
        uint64_t w = window_at(s->p + off);
        if (w == 0)
            x->zero = 1;
        else
            x->used += (size_t)put(x->t, x->mask, w);
    }
    return 0;
}

/* The pieces in text, merged, written into out unless it is NULL; with `first`, only whether
 * there is one (0 or 1). Returns how many. Windows are looked at in increasing order, so each
 * range starts at or after the last one's start, and a window overlapping or touching the last
 * range (its start at or before that range's end) extends it. */
static size_t scan(const eip_secrets *x, const char *text, size_t len, eip_range *out, int first)
{
    size_t n = 0, i, to = 0;
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
    for (i = 0; i + 8 <= len; i++) {
        if (!holds(x, window_at(text + i)))
            continue;
        if (first)
            return 1;
        if (n > 0 && i <= to) { /* overlaps or touches the last range: it grows */
            if (out != NULL)
                out[n - 1].to = i + 8;
        } else {
            if (out != NULL) {
                out[n].from = i;
                out[n].to = i + 8;
            }
            n++;
        }
        to = i + 8;
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
    if (x->t != NULL)
        wipe(x->t, (x->mask + 1) * sizeof *x->t);
    free(x->s);
    free(x->t);
    free(x);
}
