/* secrets.c - an index of secret values' 8-byte windows. See secrets.h. */
#include "secrets.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STRIDE 4 /* windows indexed at every STRIDE-th offset: pieces of 8 + STRIDE - 1 bytes found */

typedef struct {
    char *p;
    size_t n;
} secret;

typedef struct {
    uint32_t fp;     /* the window's fingerprint; 0: an empty slot */
    uint32_t secret; /* which secret */
    size_t off;      /* where in it the window starts */
} slot;

struct eip_secrets {
    secret *s;
    size_t count, max;
    slot *t;
    size_t mask, used; /* the table has mask + 1 slots (a power of two), used of them taken */
};

/* Zeroes n bytes in a way the compiler may not drop as a dead store. */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

static uint64_t hash8(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w * UINT64_C(0x9E3779B97F4A7C15);
}

static uint32_t fp_of(uint64_t h)
{
    return (uint32_t)(h >> 32) | 1u;
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

/* Puts the window of secret `which` at off into t, unless the same 8 bytes are there already
 * (a secret that repeats itself would otherwise fill a run of slots that every look-up landing
 * in it walks). s: the secrets, to compare with. */
static void put(slot *t, size_t mask, const secret *s, uint32_t which, size_t off)
{
    const char *window = s[which].p + off;
    uint64_t h = hash8(window);
    uint32_t fp = fp_of(h);
    size_t i = (size_t)(h >> 40) & mask;
    while (t[i].fp != 0) {
        if (t[i].fp == fp && memcmp(s[t[i].secret].p + t[i].off, window, 8) == 0)
            return;
        i = (i + 1) & mask;
    }
    t[i].fp = fp;
    t[i].secret = which;
    t[i].off = off;
}

/* The windows a secret of n indexed bytes puts in the table. */
static size_t windows_of(size_t n)
{
    return n < 8 ? 0 : (n - 8) / STRIDE + 2;
}

static void put_secret(slot *t, size_t mask, const secret *s, uint32_t which)
{
    size_t n = s[which].n > EIP_SECRETS_INDEXED_MAX ? EIP_SECRETS_INDEXED_MAX : s[which].n, off;
    if (n < 8)
        return;
    for (off = 0; off + 8 <= n; off += STRIDE)
        put(t, mask, s, which, off);
    if ((n - 8) % STRIDE != 0)
        put(t, mask, s, which, n - 8);
}

int eip_secrets_add(eip_secrets *x, const char *value, size_t len)
{
    secret *s;
    size_t need, cap, i;
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
    need = x->used + windows_of(len > EIP_SECRETS_INDEXED_MAX ? EIP_SECRETS_INDEXED_MAX : len);
    if (need > 0 && (x->t == NULL || need * 2 > x->mask + 1)) {
        slot *t;
        for (cap = 16; cap < need * 2; cap *= 2)
            ;
        t = calloc(cap, sizeof *t);
        if (t == NULL) {
            wipe(s->p, len);
            free(s->p);
            s->p = NULL;
            return -1;
        }
        if (x->t != NULL) { /* the windows of the secrets so far, in the bigger table */
            for (i = 0; i < x->count; i++)
                put_secret(t, cap - 1, x->s, (uint32_t)i);
            free(x->t);
        }
        x->t = t;
        x->mask = cap - 1;
    }
    if (x->t != NULL)
        put_secret(x->t, x->mask, x->s, (uint32_t)x->count);
    x->used = need;
    x->count++;
    return 0;
}

/* Adds [from, to) to the sorted, merged list out[0..*n). */
static void add_range(eip_range *out, size_t *n, size_t from, size_t to)
{
    while (*n > 0 && from <= out[*n - 1].to) {
        eip_range *last = &out[*n - 1];
        if (last->from < from)
            from = last->from;
        if (last->to > to)
            to = last->to;
        (*n)--;
    }
    out[*n].from = from;
    out[*n].to = to;
    (*n)++;
}

/* The pieces in text, into out (NULL: stop at the first one). Returns how many. */
static size_t scan(const eip_secrets *x, const char *text, size_t len, eip_range *out)
{
    size_t n = 0, covered = 0, i;
    for (i = 0; i < x->count; i++) { /* a short secret: only as the whole text */
        const secret *s = &x->s[i];
        if (s->n < 8 && s->n == len && memcmp(s->p, text, len) == 0) {
            if (out == NULL)
                return 1;
            add_range(out, &n, 0, len);
            return n;
        }
    }
    if (x->t == NULL || len < 8)
        return n;
    for (i = 0; i + 8 <= len; i++) {
        uint64_t h;
        uint32_t fp;
        size_t k;
        if (i + 8 <= covered)
            continue; /* inside a piece found already */
        h = hash8(text + i);
        fp = fp_of(h);
        for (k = (size_t)(h >> 40) & x->mask; x->t[k].fp != 0; k = (k + 1) & x->mask) {
            const slot *e = &x->t[k];
            const secret *s;
            size_t from, to, a, b;
            if (e->fp != fp)
                continue;
            s = &x->s[e->secret];
            if (memcmp(s->p + e->off, text + i, 8) != 0)
                continue;
            if (out == NULL)
                return 1;
            /* As far as it matches this secret, both ways. */
            from = i;
            a = e->off;
            while (from > 0 && a > 0 && text[from - 1] == s->p[a - 1]) {
                from--;
                a--;
            }
            to = i + 8;
            b = e->off + 8;
            while (to < len && b < s->n && text[to] == s->p[b]) {
                to++;
                b++;
            }
            add_range(out, &n, from, to);
            if (to > covered)
                covered = to;
            break;
        }
    }
    return n;
}

size_t eip_secrets_scan(const eip_secrets *x, const char *text, size_t len, eip_range *out)
{
    return scan(x, text, len, out);
}

int eip_secrets_any(const eip_secrets *x, const char *text, size_t len)
{
    return scan(x, text, len, NULL) != 0;
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
    free(x->s);
    free(x->t);
    free(x);
}
