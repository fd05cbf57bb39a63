/* ctest.h - a minimal C test harness for lua-eip's C parts.
 *
 * Each CHECK is one counted test. A test binary ends with CTEST_END(), which prints
 * "ctest <name>: N passed, M failed" (the Makefile sums these lines with busted's) and
 * returns non-zero when anything failed.
 */
#ifndef EIP_CTEST_H
#define EIP_CTEST_H

#include <stdio.h>
#include <string.h>

static int ctest_passed_, ctest_failed_;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            ctest_passed_++;                                               \
        } else {                                                           \
            ctest_failed_++;                                               \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

#define CHECK_STR(got, want)                                                       \
    do {                                                                           \
        const char *g_ = (got), *w_ = (want);                                      \
        CHECK(g_ != NULL && strcmp(g_, w_) == 0, "got \"%s\", want \"%s\"",        \
              g_ ? g_ : "(null)", w_);                                             \
    } while (0)

#define CTEST_END(name)                                                            \
    (printf("ctest %s: %d passed, %d failed\n", (name), ctest_passed_, ctest_failed_), \
     ctest_failed_ ? 1 : 0)

#endif
