/* outdir.c - lock and settings of a resumable command's output directory. */
#include "outdir.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"

int cli_lock_dir(const char *dir, const char *what) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.lock", dir, what);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0666);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        cli_error("cannot lock the output directory: %s: %s", path, fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0) close(fd);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char holder[32] = "";
        ssize_t k = pread(fd, holder, sizeof holder - 1, 0);
        holder[k > 0 ? k : 0] = 0;
        holder[strcspn(holder, "\n")] = 0;
        if (err == EWOULDBLOCK && *holder)
            cli_error("another fqlm %s (process %s) is writing to %s: wait for it to finish, or use another -o DIR",
                      what, holder, dir);
        else if (err == EWOULDBLOCK)
            cli_error("another fqlm %s is writing to %s: wait for it to finish, or use another -o DIR", what, dir);
        else
            cli_error("cannot lock the output directory: %s: %s", path, strerror(err));
        close(fd);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        /* the pid is only for the other process's message: the lock holds without it */
    }
    return fd;
}


int cli_check_conf(const char *path, const char *conf, const char *data_file, const char *what) {
    fq_err e;
    if (access(path, F_OK) == 0) {
        size_t len;
        char *old = fq_read_file(path, &len, &e);
        if (!old) {
            cli_error("%s", e.msg);
            return 1;
        }
        int same = !strcmp(old, conf);
        if (!same) {
            /* name the first line that differs */
            const char *a = old, *b = conf;
            while (*a && *b) {
                const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
                size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
                if (la != lb || memcmp(a, b, la)) {
                    cli_error("the output directory holds a %s made with other settings: it has '%.*s', "
                              "this command '%.*s'; use another -o DIR (or delete that one)",
                              what, (int)la, a, (int)lb, b);
                    break;
                }
                a += la + (ea ? 1 : 0);
                b += lb + (eb ? 1 : 0);
            }
            if (!*a || !*b) cli_error("the output directory holds a %s made with other settings (%s differs)", what, path);
        }
        free(old);
        return same ? 0 : 2;
    }
    if (data_file) {
        cli_error("%s is missing but %s has rows: cannot tell which settings made them; "
                  "use another -o DIR", path, data_file);
        return 2;
    }
    if (fq_write_file_atomic(path, conf, strlen(conf), &e)) {
        cli_error("%s", e.msg);
        return 1;
    }
    return 0;
}
