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
#include <string.h>

#define FQ_ERR_MAX 1024

typedef struct fq_err {
    char msg[FQ_ERR_MAX];
} fq_err;

/* Sets e->msg (printf-style) when e is not NULL. Always returns -1, so callers write
 * `return fq_errf(e, "...")`. */
int fq_errf(fq_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an existing message (for adding context on the way up). */
int fq_err_prefix(fq_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Untrusted text (a string from a model file, a token) rendered for a message or a
 * terminal, so that it cannot move the cursor, clear the screen, reorder the line or hide
 * its own end: printable ASCII and valid UTF-8 are kept; C0 controls and DEL become \n \t
 * \r or \xNN; bytes that are not valid UTF-8 \xNN; C1 controls (U+0080..U+009F), line and
 * paragraph separators and bidirectional controls \uNNNN; a backslash and both quote
 * characters are escaped, so the rendering reads back unambiguously. At most cap - 1
 * bytes are written, always NUL-terminated; text that does not fit ends in "...". Returns
 * dst, so it can be an argument: fq_errf(e, "architecture '%s'", fq_show(b, sizeof b, p, n)). */
#define FQ_SHOW_CAP 128 /* a buffer size that suits one name in a message */
const char *fq_show(char *dst, size_t cap, const void *s, size_t n);

/* Length (1..4) of the valid UTF-8 sequence at p[0..n), or 0 when the byte at p does not
 * begin one (stray continuation, overlong form, surrogate, above U+10FFFF, cut short). */
int fq_utf8_len(const unsigned char *p, size_t n);

/* Writes n bytes of generated text to f. terminal 0: the bytes as they are (what llama.cpp
 * prints). terminal 1: for a terminal, every control character except \n and \t, C1
 * controls and bytes that are not valid UTF-8 are written escaped as fq_show does (an
 * escape sequence in a model's output must not drive the terminal). Returns 0, or -1 when
 * the stream reports an error. */
int fq_write_text(FILE *f, const void *s, size_t n, int terminal);

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

/* ---- hashes: one definition each. Files, stochastic rounding draws and checksums depend
 * on their exact bits, so they never change. ------------------------------------------ */

/* FNV-1a (64-bit) of n bytes. */
static inline uint64_t fq_fnv1a(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* A content hash of a file's bytes (a model's metadata and weights: what sweep.conf and
 * plan.conf record as model_hash): four independent lanes over 8-byte words, so it runs at
 * memory speed (a 668 MB model in about 0.1 s). */
static inline uint64_t fq_content_hash(const uint8_t *p, uint64_t n) {
    const uint64_t K = 0x9e3779b97f4a7c15ull;
    uint64_t h[4] = {K, K ^ 1, K ^ 2, K ^ 3};
    uint64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int l = 0; l < 4; l++) {
            uint64_t w;
            memcpy(&w, p + i + 8 * l, 8);
            h[l] = (h[l] ^ w) * 0xff51afd7ed558ccdull;
            h[l] ^= h[l] >> 29;
        }
    uint64_t r = n;
    for (int l = 0; l < 4; l++) r = (r ^ h[l]) * K;
    for (; i < n; i++) r = (r ^ p[i]) * 0x100000001b3ull;
    return r ^ (r >> 31);
}

/* splitmix64's output function (Stafford's mix 13): random bits from a counter; synth's
 * weights and the number formats' stochastic rounding draws use it. */
static inline uint64_t fq_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* MurmurHash3's fmix64: a different finalizer, kept beside fq_mix64 because the fake-quant
 * hooks' stream ids are made with it (changing it would change every stochastically
 * rounded result). */
static inline uint64_t fq_fmix64(uint64_t x) {
    x = (x ^ (x >> 33)) * 0xff51afd7ed558ccdull;
    x = (x ^ (x >> 33)) * 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
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
