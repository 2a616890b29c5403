/* fuzz_common.h - what the libFuzzer targets share: contract checks that abort (libFuzzer
 * reports an abort as a crash, with the input), and a scratch file for APIs that take a
 * path. Targets run from the repository root (make fuzz-run does), where the bundled
 * models are. */
#ifndef FQ_FUZZ_COMMON_H
#define FQ_FUZZ_COMMON_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define FUZZ_STORIES "models/stories260K.gguf"
#define FUZZ_SPM_VOCAB "tests/data/models/ggml-vocab-llama-spm.gguf"
#define FUZZ_VOCAB_DIR "tests/data/vocab/"

/* A property the code promises: abort with the reason when it does not hold. */
#define FUZZ_REQUIRE(c, ...)                                                   \
    do {                                                                       \
        if (!(c)) {                                                            \
            fprintf(stderr, "fuzz: %s:%d: '%s' does not hold: ", __FILE__,     \
                    __LINE__, #c);                                             \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* An error must come with a message. */
#define FUZZ_REQUIRE_MSG(e) FUZZ_REQUIRE((e).msg[0] != 0, "an error without a message")

/* Input as a NUL-terminated malloc'd string (embedded NULs cut it short, as argv would). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    FQ_ASSERT(s);
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}

/* A per-process scratch path in /dev/shm (memory) when it exists, else $TMPDIR or /tmp. */
static inline const char *fuzz_scratch_path(const char *tag) {
    static char path[512];
    if (!path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        if (!dir || !*dir) dir = "/tmp";
        snprintf(path, sizeof path, "%s/fqlm_fuzz_%s_%ld.bin", dir, tag, (long)getpid());
    }
    return path;
}

/* Writes data to path (no fsync: scratch only). Returns 0 or -1. */
static inline int fuzz_write(const char *path, const uint8_t *data, size_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    return close(fd);
}

#endif
