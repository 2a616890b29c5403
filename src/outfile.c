/* outfile.c - whole-or-nothing output files (the rules are in outfile.h). */
#include "outfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OUT_BUF (1u << 16)
#define OUT_SLOTS 32

/* Temporary files that exist now, for fq_out_remove_temps (read by signal handlers). */
static char *volatile g_live[OUT_SLOTS];
static unsigned g_seq;
static int g_stale;
static char g_stale_last[512];

static int live_add(char *tmp) {
    for (int i = 0; i < OUT_SLOTS; i++) {
        char *expect = NULL;
        if (__atomic_compare_exchange_n(&g_live[i], &expect, tmp, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return i;
    }
    return -1; /* table full: still written, only not removed by a signal handler */
}

static void live_del(int slot) {
    if (slot >= 0) __atomic_store_n(&g_live[slot], NULL, __ATOMIC_SEQ_CST);
}

void fq_out_remove_temps(void) {
    for (int i = 0; i < OUT_SLOTS; i++) {
        char *p = __atomic_load_n(&g_live[i], __ATOMIC_SEQ_CST);
        if (p) unlink(p);
    }
}

int fq_out_stale_removed(const char **last) {
    if (last) *last = g_stale ? g_stale_last : NULL;
    return g_stale;
}

int fq_out_is_stream(const char *path) {
    return path && (!strcmp(path, "-") || !strcmp(path, "/dev/stdout") || !strcmp(path, "/dev/stderr"));
}

static const char *kind_name(mode_t m) {
    return S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device" : S_ISFIFO(m) ? "a FIFO"
         : S_ISSOCK(m) ? "a socket" : S_ISDIR(m) ? "a directory" : "not a regular file";
}

/* Removes DIR/BASE.fqlm-tmp.PID[.N] files whose process PID no longer exists: what a
 * killed write of the same path left behind. */
static void remove_stale(const char *dst) {
    const char *slash = strrchr(dst, '/');
    char dir[4096];
    const char *base = dst;
    if (slash) {
        size_t dl = (size_t)(slash - dst);
        if (dl >= sizeof dir) return;
        memcpy(dir, dst, dl);
        dir[dl ? dl : 1] = 0;
        if (!dl) dir[0] = '/';
        base = slash + 1;
    } else {
        strcpy(dir, ".");
    }
    size_t bl = strlen(base);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (strncmp(n, base, bl) || strncmp(n + bl, ".fqlm-tmp.", 10)) continue;
        const char *p = n + bl + 10;
        char *end;
        errno = 0;
        long pid = strtol(p, &end, 10);
        if (end == p || errno || pid <= 0 || pid == (long)getpid()) continue;
        if (*end == '.') {
            const char *q = end + 1;
            strtoul(q, &end, 10);
            if (end == q) continue;
        }
        if (*end) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
        struct stat st;
        if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISDIR(st.st_mode)) continue;
        if (unlinkat(dirfd(d), n, 0) == 0) {
            g_stale++;
            snprintf(g_stale_last, sizeof g_stale_last, "%s/%s", dir, n);
        }
    }
    closedir(d);
}

static void out_release(fq_out *o) {
    live_del(o->slot);
    free(o->name);
    free(o->dst);
    free(o->tmp);
    free(o->buf);
    memset(o, 0, sizeof *o);
    o->fd = -1;
    o->slot = -1;
}

int fq_out_open(fq_out *o, const char *path, fq_err *e) {
    memset(o, 0, sizeof *o);
    o->fd = -1;
    o->slot = -1;
    if (!path || !*path) return fq_errf(e, "empty output file name");
    o->name = strdup(path);
    o->buf = malloc(OUT_BUF);
    if (!o->name || !o->buf) {
        out_release(o);
        return fq_errf(e, "out of memory");
    }
    if (fq_out_is_stream(path)) {
        o->direct = 1;
        o->fd = !strcmp(path, "/dev/stderr") ? 2 : 1;
        fflush(o->fd == 2 ? stderr : stdout); /* keep what the program printed before */
        return 0;
    }
    struct stat st;
    int have_mode = 0;
    mode_t mode = 0;
    if (lstat(path, &st) == 0) {
        if (S_ISLNK(st.st_mode)) {
            o->dst = realpath(path, NULL);
            if (!o->dst) {
                int err = errno;
                out_release(o);
                if (err == ENOENT)
                    return fq_errf(e, "cannot write '%s': it is a symbolic link to a file that does not exist", path);
                return fq_errf(e, "cannot write '%s': %s", path, strerror(err));
            }
            if (stat(o->dst, &st) != 0) {
                int err = errno;
                out_release(o);
                return fq_errf(e, "cannot write '%s': %s", path, strerror(err));
            }
            if (!S_ISREG(st.st_mode)) {
                fq_errf(e, "cannot write '%s': it links to '%s', which is %s (outputs go to regular files, "
                           "or to -, /dev/stdout or /dev/stderr)", path, o->dst, kind_name(st.st_mode));
                out_release(o);
                return -1;
            }
        } else if (!S_ISREG(st.st_mode)) {
            out_release(o);
            if (S_ISDIR(st.st_mode)) return fq_errf(e, "cannot write '%s': it is a directory", path);
            return fq_errf(e, "cannot write '%s': it is %s, not a regular file (outputs go to regular files, "
                              "or to -, /dev/stdout or /dev/stderr)", path, kind_name(st.st_mode));
        }
        have_mode = 1;
        mode = st.st_mode & 07777;
    } else if (errno != ENOENT) {
        int err = errno;
        out_release(o);
        return fq_errf(e, "cannot write '%s': %s", path, strerror(err));
    }
    if (!o->dst) o->dst = strdup(path);
    size_t tl = strlen(o->dst) + 48;
    o->tmp = o->dst ? malloc(tl) : NULL;
    if (!o->tmp) {
        out_release(o);
        return fq_errf(e, "out of memory");
    }
    o->tmp[0] = 0;
    remove_stale(o->dst);
    o->slot = live_add(o->tmp);
    int err = 0;
    for (int k = 0; k < 100; k++) {
        unsigned seq = __atomic_fetch_add(&g_seq, 1, __ATOMIC_SEQ_CST);
        snprintf(o->tmp, tl, "%s.fqlm-tmp.%ld.%u", o->dst, (long)getpid(), seq);
        o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (o->fd >= 0) break;
        err = errno;
        if (err != EEXIST) break;
    }
    if (o->fd < 0) {
        fq_errf(e, "cannot write '%s': cannot create a temporary file beside it: %s", path, strerror(err));
        out_release(o);
        return -1;
    }
    if (have_mode) (void)fchmod(o->fd, mode);
    return 0;
}

int fq_out_check(const char *path, fq_err *e) {
    fq_out o;
    if (fq_out_open(&o, path, e)) return -1;
    fq_out_abort(&o);
    return 0;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int out_flush(fq_out *o) {
    if (o->err) return -1;
    if (o->blen && (o->err = write_all(o->fd, o->buf, o->blen))) return -1;
    o->blen = 0;
    return 0;
}

int fq_out_write(fq_out *o, const void *p, size_t n) {
    if (o->err) return -1;
    if (o->blen + n <= OUT_BUF) {
        memcpy(o->buf + o->blen, p, n);
        o->blen += n;
        return 0;
    }
    if (out_flush(o)) return -1;
    if (n >= OUT_BUF) return (o->err = write_all(o->fd, p, n)) ? -1 : 0;
    memcpy(o->buf, p, n);
    o->blen = n;
    return 0;
}

void fq_out_abort(fq_out *o) {
    if (!o->direct && o->fd >= 0) close(o->fd);
    if (o->tmp && o->fd >= 0) unlink(o->tmp);
    out_release(o);
}

int fq_out_close(fq_out *o, fq_err *e) {
    out_flush(o);
    if (o->direct) {
        int err = o->err;
        char *name = o->name;
        o->name = NULL;
        out_release(o);
        if (err) fq_errf(e, "cannot write '%s': %s", name, strerror(err));
        free(name);
        return err ? -1 : 0;
    }
    if (!o->err && fsync(o->fd) != 0 && errno != EINVAL && errno != EROFS) o->err = errno;
    if (close(o->fd) != 0 && !o->err) o->err = errno;
    o->fd = -1;
    if (!o->err && rename(o->tmp, o->dst) != 0) o->err = errno;
    if (o->err) {
        fq_errf(e, "cannot write '%s': %s", o->name, strerror(o->err));
        unlink(o->tmp);
        out_release(o);
        return -1;
    }
    /* make the rename itself durable */
    char *slash = strrchr(o->dst, '/');
    if (slash) *slash = 0;
    int dfd = open(slash ? (*o->dst ? o->dst : "/") : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    out_release(o);
    return 0;
}
