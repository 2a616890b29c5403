/* common.h - internal helpers shared by every module of libfqlm.
 *
 * Errors come in two tiers (see STYLE.md):
 *  - conditions that input can cause: the function returns -1 (or NULL) and fills an
 *    fq_err with a message naming what is wrong and where; only the CLI exits;
 *  - invariants of our own code: FQ_ASSERT, always on, names file and line, aborts.
 */
#ifndef FQ_COMMON_H
#define FQ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define FQ_ERR_MAX 1024

typedef struct fq_err {
    char msg[FQ_ERR_MAX];
} fq_err;

/* Sets e->msg (printf-style) when e is not NULL. Always returns -1, so callers write
 * `return fq_errf(e, "...")`. */
int fq_errf(fq_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an existing message (for adding context on the way up). */
int fq_err_prefix(fq_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define FQ_ASSERT(c)                                                                   \
    do {                                                                               \
        if (!(c)) {                                                                    \
            fprintf(stderr, "fqlm: internal error at %s:%d: assertion '%s' failed\n", \
                    __FILE__, __LINE__, #c);                                           \
            abort();                                                                   \
        }                                                                              \
    } while (0)

#define FQ_MIN(a, b) ((a) < (b) ? (a) : (b))
#define FQ_MAX(a, b) ((a) > (b) ? (a) : (b))
#define FQ_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Overflow-checked size arithmetic: return false on overflow. */
static inline bool fq_mul_ok(uint64_t a, uint64_t b, uint64_t *r) {
    return !__builtin_mul_overflow(a, b, r);
}
static inline bool fq_add_ok(uint64_t a, uint64_t b, uint64_t *r) {
    return !__builtin_add_overflow(a, b, r);
}

/* malloc/calloc that return NULL and fill e with the size asked for on failure. */
void *fq_malloc(size_t n, fq_err *e);
void *fq_calloc(size_t n, size_t size, fq_err *e);

/* Monotonic wall-clock time in microseconds. */
int64_t fq_time_us(void);

/* Writes `n` bytes to `path` whole or not at all, by the rules of outfile.h (a temporary
 * file beside it, fsync'd and renamed into place; devices, FIFOs and directories refused;
 * "-", /dev/stdout, /dev/stderr written in place). Returns 0, or -1 with e set. */
int fq_write_file_atomic(const char *path, const void *data, size_t n, fq_err *e);

/* Reads a whole file into a malloc'd NUL-terminated buffer, until end of file (not
 * trusting the size a file reports: /proc files say 0). A FIFO, pipe or terminal is read
 * until its writer closes it (a FIFO is opened without waiting: one with no writer reads
 * as empty); directories and other devices are refused. Returns NULL with e set. */
char *fq_read_file(const char *path, size_t *len, fq_err *e);

#endif
