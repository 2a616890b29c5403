/* harness.h - the tiny test harness every tests/test_*.c uses.
 *
 * CHECK(cond, fmt, ...) counts one passed or failed check and prints failures with
 * file:line. A test program ends with `return TEST_END();`, which prints
 * "RESULT <name> <passed> <failed>" for tests/run.sh to add up, and returns non-zero
 * when anything failed. Test data lives under tests/data (path relative to the repo
 * root, where tests/run.sh runs the programs). */
#ifndef FQ_TEST_HARNESS_H
#define FQ_TEST_HARNESS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int t_passed, t_failed;

#define CHECK(cond, ...)                                          \
    do {                                                          \
        if (cond) {                                               \
            t_passed++;                                           \
        } else {                                                  \
            t_failed++;                                           \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);  \
            fprintf(stderr, __VA_ARGS__);                         \
            fputc('\n', stderr);                                  \
        }                                                         \
    } while (0)

static inline int t_end(const char *file) {
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    printf("RESULT %s %d %d\n", base, t_passed, t_failed);
    return t_failed ? 1 : 0;
}
#define TEST_END() t_end(__FILE__)

/* The bits of a float, for comparisons that must be exact. */
static inline uint32_t t_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}
/* The same bits, or both NaN: neither C nor IEEE 754 fixes the sign and payload of a NaN
 * that meets another NaN (x86 keeps the first operand's, and compilers order the operands
 * of + and * as they like: the sanitizer build's generic kernels return other NaNs). */
static inline int t_same(float a, float b) { return (isnan(a) && isnan(b)) || t_bits(a) == t_bits(b); }

#endif
