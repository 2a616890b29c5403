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
