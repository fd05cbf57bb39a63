/* fuzz_input.h - carving structured arguments out of a libFuzzer input, and the invariant
 * check shared by the fuzz targets.
 *
 * A reader hands out bytes front to back; once the input runs out every read yields zeros or
 * empty chunks, so any input is a valid call. Chunks are length-prefixed by one byte so that the
 * fuzzer can grow or shrink one argument without shifting the others.
 */
#ifndef EIP_FUZZ_INPUT_H
#define EIP_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    const uint8_t *p;
    size_t left;
} fuzz_reader;

static inline uint8_t fuzz_u8(fuzz_reader *r)
{
    uint8_t v = 0;
    if (r->left) {
        v = *r->p++;
        r->left--;
    }
    return v;
}

/* A chunk of up to 255 bytes (fewer when the input ends), pointing into the input. */
static inline const char *fuzz_chunk(fuzz_reader *r, size_t *len)
{
    size_t n = fuzz_u8(r);
    const char *s = (const char *)r->p;
    if (n > r->left)
        n = r->left;
    r->p += n;
    r->left -= n;
    *len = n;
    return s;
}

/* abort() rather than assert(): the invariants must hold in every build, NDEBUG or not, and
 * libFuzzer saves the input that triggered the abort as a crash. */
#define FUZZ_CHECK(cond)                                                             \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "invariant violated at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#endif
