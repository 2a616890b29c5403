/* outfile.h - the one way every output of the project is written (GGUF files, JSON, CSV,
 * reports, statistics, SVG/HTML, .npy dumps).
 *
 * Rules, for every path:
 *  - "-", "/dev/stdout" and "/dev/stderr" are written in place on descriptor 1 or 2 (so
 *    `--json /dev/stdout >> log` appends to the log instead of truncating it);
 *  - a regular file, or a missing one, is replaced whole or not at all: the data goes to a
 *    temporary file beside it (created with O_EXCL|O_NOFOLLOW, so a link planted at that
 *    name cannot redirect the write), is fsync'd and renamed over the path;
 *  - a symbolic link is written through: the file it points to is replaced as above and
 *    the link stays; a link to nothing, or to something that is not a regular file, is
 *    refused;
 *  - a directory, device, FIFO or socket is refused with a message (never opened, so a
 *    FIFO without a reader cannot block and a device is never replaced by a file).
 * Temporary files are named PATH.fqlm-tmp.PID.N. They are removed on every error path, by
 * fq_out_remove_temps() (which the program calls from its signal handlers), and, should
 * the process have been killed outright (SIGKILL, power loss), by the next write of the
 * same PATH once process PID no longer exists. */
#ifndef FQ_OUTFILE_H
#define FQ_OUTFILE_H

#include "common.h"

typedef struct fq_out {
    int fd;
    int direct;     /* 1: descriptor 1 or 2, written in place */
    int err;        /* errno of the first failed write, 0 if none */
    int slot;       /* index in the table of live temporary files, -1 if none */
    char *name;     /* the path as given (for messages) */
    char *dst;      /* where the file ends up (a link's target) */
    char *tmp;      /* the temporary file, NULL when direct */
    char *buf;      /* write buffer */
    size_t blen;
} fq_out;

/* Checks the path against the rules above and opens the temporary file (or the stream).
 * Returns 0, or -1 with e set (nothing is created then). */
int fq_out_open(fq_out *o, const char *path, fq_err *e);

/* Checks that path can be written by these rules before long work starts (it creates and
 * removes the temporary file, so a directory without write permission shows too).
 * Returns 0, or -1 with e set. */
int fq_out_check(const char *path, fq_err *e);

/* Appends n bytes. Returns 0, or -1 once a write failed (the error is kept for close). */
int fq_out_write(fq_out *o, const void *p, size_t n);

/* Flushes, fsyncs and renames the temporary file into place. Returns 0, or -1 with e set
 * after removing the temporary file; o is released either way. */
int fq_out_close(fq_out *o, fq_err *e);

/* Gives up: removes the temporary file and releases o. */
void fq_out_abort(fq_out *o);

/* 1 for "-", "/dev/stdout" and "/dev/stderr". */
int fq_out_is_stream(const char *path);

/* Unlinks every temporary file this process has open. Async-signal-safe: meant for signal
 * handlers (the process is about to die). */
void fq_out_remove_temps(void);

/* How many stale temporary files (left by a killed process) writes of this process have
 * removed, and the name of the last one (NULL if none). */
int fq_out_stale_removed(const char **last);

#endif
