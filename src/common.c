/* common.c - error messages, checked allocation, time, whole-file I/O. */
#include "common.h"
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int fq_errf(fq_err *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int fq_err_prefix(fq_err *e, const char *fmt, ...) {
    if (e) {
        char pre[FQ_ERR_MAX], old[FQ_ERR_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(pre, sizeof pre, fmt, ap);
        va_end(ap);
        memcpy(old, e->msg, sizeof old);
        size_t n = strlen(pre);
        if (n > sizeof e->msg - 3) n = sizeof e->msg - 3;
        memcpy(e->msg, pre, n);
        memcpy(e->msg + n, ": ", 2);
        size_t left = sizeof e->msg - n - 2, ol = strlen(old);
        if (ol > left - 1) ol = left - 1;
        memcpy(e->msg + n + 2, old, ol);
        e->msg[n + 2 + ol] = 0;
    }
    return -1;
}

/* ---- untrusted text ---------------------------------------------------------------- */

int fq_utf8_len(const unsigned char *p, size_t n) {
    if (!n) return 0;
    unsigned c = p[0];
    if (c < 0x80) return 1;
    int k;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) k = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) k = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) k = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if ((size_t)k > n) return 0;
    for (int i = 1; i < k; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return k;
}

/* Characters that reorder or break a displayed line: line/paragraph separators and the
 * bidirectional marks, embeddings, overrides and isolates. */
static int is_layout_control(uint32_t cp) {
    return cp == 0x061c || cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

/* Renders the character at p (n > 0 bytes left) into out (16 bytes): *used gets the bytes
 * it stands for. quoted: fq_show's rules; else fq_write_text's terminal rules (\n and \t
 * kept, quotes and backslashes kept, layout controls kept). Returns the length written. */
static size_t render_char(const unsigned char *p, size_t n, char *out, size_t *used, int quoted) {
    unsigned c = p[0];
    *used = 1;
    if (c < 0x20 || c == 0x7f) {
        if ((c == '\n' || c == '\t') && !quoted) {
            out[0] = (char)c;
            return 1;
        }
        if (c == '\n' || c == '\t' || c == '\r') {
            out[0] = '\\';
            out[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
            return 2;
        }
        return (size_t)snprintf(out, 16, "\\x%02x", c);
    }
    if (c < 0x80) {
        size_t k = 0;
        if (quoted && (c == '\\' || c == '\'' || c == '"')) out[k++] = '\\';
        out[k++] = (char)c;
        return k;
    }
    int k = fq_utf8_len(p, n);
    if (!k) return (size_t)snprintf(out, 16, "\\x%02x", c);
    uint32_t cp = k == 2 ? (c & 0x1fu) : k == 3 ? (c & 0x0fu) : (c & 0x07u);
    for (int i = 1; i < k; i++) cp = cp << 6 | (p[i] & 0x3fu);
    *used = (size_t)k;
    if (cp <= 0x9f || (quoted && is_layout_control(cp))) return (size_t)snprintf(out, 16, "\\u%04x", cp);
    memcpy(out, p, (size_t)k);
    return (size_t)k;
}

const char *fq_show(char *dst, size_t cap, const void *s, size_t n) {
    if (!cap) return dst;
    const unsigned char *p = s;
    if (!p) n = 0;
    char u[16];
    size_t used, total = 0;
    for (size_t i = 0; i < n && total < cap; i += used) total += render_char(p + i, n - i, u, &used, 1);
    /* all of it when it fits, else as much as leaves room for "..." */
    size_t room = total < cap ? cap - 1 : (cap > 4 ? cap - 4 : 0), o = 0;
    for (size_t i = 0; i < n; i += used) {
        size_t k = render_char(p + i, n - i, u, &used, 1);
        if (o + k > room) break;
        memcpy(dst + o, u, k);
        o += k;
    }
    if (total >= cap && cap > 4) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = 0;
    return dst;
}

int fq_write_text(FILE *f, const void *s, size_t n, int terminal) {
    const unsigned char *p = s;
    if (!terminal) return n && fwrite(p, 1, n, f) != n ? -1 : 0;
    size_t i = 0, used;
    char u[16];
    while (i < n) {
        /* the longest run written as it is, then one escaped character */
        size_t j = i, k = 0;
        while (j < n) {
            k = render_char(p + j, n - j, u, &used, 0);
            if (k != used || memcmp(u, p + j, k) != 0) break;
            j += used;
        }
        if (j > i && fwrite(p + i, 1, j - i, f) != j - i) return -1;
        if (j == n) break;
        if (fwrite(u, 1, k, f) != k) return -1;
        i = j + used;
    }
    return ferror(f) ? -1 : 0;
}

void *fq_malloc(size_t n, fq_err *e) {
    void *p = malloc(n ? n : 1);
    if (!p) fq_errf(e, "out of memory allocating %zu bytes (%.1f MiB)", n, n / 1048576.0);
    return p;
}

void *fq_calloc(size_t n, size_t size, fq_err *e) {
    uint64_t total;
    if (!fq_mul_ok(n, size, &total) || total > SIZE_MAX) {
        fq_errf(e, "allocation of %zu x %zu bytes overflows", n, size);
        return NULL;
    }
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) fq_errf(e, "out of memory allocating %llu bytes (%.1f MiB)",
                    (unsigned long long)total, total / 1048576.0);
    return p;
}

int64_t fq_time_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int fq_write_file_atomic(const char *path, const void *data, size_t n, fq_err *e) {
    fq_out o;
    if (fq_out_open(&o, path, e)) return -1;
    fq_out_write(&o, data, n);
    return fq_out_close(&o, e);
}

/* Reads what fd holds until end of file (the size a file reports is not trusted: files
 * under /proc report 0). At most `cap` bytes. */
static char *read_all(int fd, size_t hint, size_t cap, const char *path, size_t *len, fq_err *e) {
    size_t n = 0, size = hint + 2 > 4096 ? hint + 2 : 4096; /* +2: the last read sees the end */
    char *buf = fq_malloc(size, e);
    if (!buf) return NULL;
    for (;;) {
        if (n + 1 >= size) {
            if (size > cap) {
                free(buf);
                fq_errf(e, "'%s' holds more than %zu MiB", path, cap >> 20);
                return NULL;
            }
            size_t ns = size * 2;
            char *nb = realloc(buf, ns);
            if (!nb) {
                free(buf);
                fq_errf(e, "out of memory reading '%s'", path);
                return NULL;
            }
            buf = nb;
            size = ns;
        }
        ssize_t r = read(fd, buf + n, size - n - 1);
        if (r == 0) break;
        if (r < 0) {
            if (errno == EINTR) continue;
            fq_errf(e, "cannot read '%s': %s", path, strerror(errno));
            free(buf);
            return NULL;
        }
        n += (size_t)r;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

char *fq_read_file(const char *path, size_t *len, fq_err *e) {
    /* O_NONBLOCK: opening a FIFO must not wait for a writer */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fq_errf(e, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fq_errf(e, "cannot read '%s': %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    int stream = S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || (S_ISCHR(st.st_mode) && isatty(fd));
    if (!S_ISREG(st.st_mode) && !stream) {
        fq_errf(e, "'%s' is not a regular file (%s)", path,
                S_ISDIR(st.st_mode) ? "a directory" : S_ISCHR(st.st_mode) ? "a character device"
                : S_ISBLK(st.st_mode) ? "a block device" : "unknown type");
        close(fd);
        return NULL;
    }
    /* a pipe or terminal is read until its writer closes it; one without a writer reads
     * as empty at once */
    int fl = fcntl(fd, F_GETFL);
    if (fl != -1) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    size_t n = 0;
    size_t cap = S_ISREG(st.st_mode) ? SIZE_MAX / 4 : (size_t)1 << 30;
    char *buf = read_all(fd, S_ISREG(st.st_mode) ? (size_t)st.st_size : 0, cap, path, &n, e);
    close(fd);
    if (buf && len) *len = n;
    return buf;
}
