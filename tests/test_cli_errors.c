/* test_cli_errors.c - the fqlm program given every kind of bad input a user or a script can
 * give it: each must end with a non-zero exit status and a message on stderr that says
 * what is wrong ("fqlm: error: ..."), never with a signal (a crash, an abort, a sanitizer
 * report) or a hang. Output files that cannot be written leave nothing behind, and SIGINT
 * during generation still prints the timings and writes the results so far.
 *
 * Runs the binary in FQLM_BIN (default build/fqlm) directly with fork/exec (no shell, so
 * any bytes can be passed as arguments), from the repository root. FQ_TEST_VERBOSE=1
 * prints each message. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gguf.h"
#include "harness.h"
#include "testutil.h"

#define MAX_ARGS 160
#define TIMEOUT_S 120

static const char *g_bin;
static int g_bin_asan; /* the binary is built with AddressSanitizer */
static int verbose;
static char g_tmp[256]; /* scratch directory for this run */

typedef struct {
    int status;   /* exit status; 128 + signal when killed; -1 when it timed out */
    char *out, *err;
    double secs;
} result;

typedef struct {
    size_t as_limit;    /* RLIMIT_AS for the child (0: none) */
    int sigint_after_ms; /* send SIGINT once this many ms passed and ... */
    const char *sigint_file; /* ... this file (default: stdout) has at least ... */
    int sigint_lines;        /* ... this many lines (default: 41 bytes: past the prompt echo) */
    size_t fsize_limit;      /* RLIMIT_FSIZE for the child (0: none): a disk that fills up */
    int out_append;          /* stdout opened O_APPEND on the existing stdout file (`>> log`) */
    const char *sigterm_when_temp_in; /* send SIGTERM once this directory holds a *.fqlm-tmp.* file */
} run_opts;

/* 1 when dir holds an output's temporary file (NAME.fqlm-tmp.PID.N, or an older NAME.tmp.PID). */
static int has_temp(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) n += strstr(de->d_name, "tmp.") != NULL;
    if (d) closedir(d);
    return n > 0;
}

static int count_lines(const char *path) {
    char *t = tu_read(path, NULL);
    int n = 0;
    for (char *p = t; p && *p; p++) n += *p == '\n';
    free(t);
    return t ? n : -1;
}

static void free_result(result *r) {
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

/* Runs g_bin with argv (NULL-terminated, without the program name). */
static result run_argv(const char *const *args, const run_opts *ro) {
    char outp[300], errp[300];
    snprintf(outp, sizeof outp, "%s/stdout", g_tmp);
    snprintf(errp, sizeof errp, "%s/stderr", g_tmp);
    char *argv[MAX_ARGS + 2];
    int n = 0;
    argv[n++] = (char *)g_bin;
    for (; args[n - 1] && n <= MAX_ARGS; n++) argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    fflush(stdout);
    fflush(stderr);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    FQ_ASSERT(pid >= 0);
    if (pid == 0) {
        int o = open(outp, O_WRONLY | O_CREAT | (ro && ro->out_append ? O_APPEND : O_TRUNC), 0600);
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int in = open("/dev/null", O_RDONLY);
        if (o < 0 || e < 0 || in < 0) _exit(99);
        dup2(in, 0), dup2(o, 1), dup2(e, 2);
        if (ro && ro->as_limit) {
            struct rlimit rl = {ro->as_limit, ro->as_limit};
            setrlimit(RLIMIT_AS, &rl);
        }
        if (ro && ro->fsize_limit) {
            struct rlimit rl = {ro->fsize_limit, ro->fsize_limit};
            setrlimit(RLIMIT_FSIZE, &rl);
            signal(SIGXFSZ, SIG_IGN); /* a write past the limit fails with EFBIG, as on a full disk */
        }
        signal(SIGINT, SIG_DFL);
        execv(g_bin, argv);
        _exit(98);
    }
    result r = {0};
    int st = 0, sent = 0;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) break;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double el = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
        if (ro && ro->sigterm_when_temp_in && !sent && has_temp(ro->sigterm_when_temp_in)) {
            kill(pid, SIGTERM);
            sent = 1;
        }
        if (ro && ro->sigint_after_ms && !sent && el * 1000 >= ro->sigint_after_ms) {
            struct stat so;
            int ready = ro->sigint_file ? count_lines(ro->sigint_file) >= ro->sigint_lines
                                        : stat(outp, &so) == 0 && so.st_size > 40;
            if (ready) {
                kill(pid, SIGINT);
                sent = 1;
            }
        }
        if (el > TIMEOUT_S) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            r.status = -1;
            break;
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r.secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (r.status != -1) r.status = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
    r.out = tu_read(outp, NULL);
    r.err = tu_read(errp, NULL);
    if (!r.out) r.out = strdup("");
    if (!r.err) r.err = strdup("");
    return r;
}

/* Splits a variadic list of strings (NULL-terminated) into an array. */
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static const char *show_args(const char *const *args) {
    static char buf[512];
    size_t o = 0;
    for (int i = 0; args[i] && o + 4 < sizeof buf; i++) {
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s", i ? " " : "");
        for (const unsigned char *p = (const unsigned char *)args[i]; *p && o + 6 < sizeof buf; p++)
            o += (size_t)(*p >= 0x20 && *p < 0x7f ? snprintf(buf + o, sizeof buf - o, "%c", *p)
                                                  : snprintf(buf + o, sizeof buf - o, "\\x%02x", *p));
    }
    return buf;
}

/* No sanitizer report, internal error or crash in what the program printed. (ASan's
 * "WARNING: AddressSanitizer failed to allocate", printed when an allocation fails under
 * allocator_may_return_null=1, is not a report.) */
static int clean_exit(const result *r) {
    return r->status >= 0 && r->status < 128 && !strstr(r->err, "ERROR: AddressSanitizer") &&
           !strstr(r->err, "ERROR: LeakSanitizer") && !strstr(r->err, "runtime error") &&
           !strstr(r->err, "internal error");
}

/* Expects the run to fail with want_status (0: any non-zero) and phrase in an error line. */
static void expect_error(const char *const *args, int want_status, const char *phrase) {
    result r = run_argv(args, NULL);
    const char *a = show_args(args);
    const char *line = strstr(r.err, "fqlm: error: ");
    if (verbose) printf("%-60s -> %d %s", a, r.status, line ? line : r.err);
    CHECK(clean_exit(&r), "'%s': exit %d (timeout -1, >=128 a signal): %s", a, r.status, r.err);
    CHECK(r.status != 0 && (!want_status || r.status == want_status), "'%s': exit %d, expected %d", a,
          r.status, want_status);
    CHECK(line && strstr(line, phrase), "'%s': stderr lacks 'fqlm: error: ...%s...': %s", a, phrase, r.err);
    free_result(&r);
}

/* Expects success (exit 0), with phrase on stderr when given. */
static void expect_ok(const char *const *args, const char *phrase) {
    result r = run_argv(args, NULL);
    const char *a = show_args(args);
    if (verbose) printf("%-60s -> %d\n", a, r.status);
    CHECK(clean_exit(&r) && r.status == 0, "'%s': exit %d: %s", a, r.status, r.err);
    CHECK(!phrase || strstr(r.err, phrase), "'%s': stderr lacks '%s': %s", a, phrase, r.err);
    free_result(&r);
}

static int exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Files in dir other than the names given (NULL-terminated); -1 when dir is unreadable. */
static int stray_files(const char *dir, const char *const *keep) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        int kept = 0;
        for (int i = 0; keep && keep[i]; i++) kept |= !strcmp(de->d_name, keep[i]);
        if (!kept) {
            if (verbose) printf("  stray file %s/%s\n", dir, de->d_name);
            n++;
        }
    }
    closedir(d);
    return n;
}

static char *tmp(const char *name) {
    static char buf[8][400];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 400, "%s/%s", g_tmp, name);
    return p;
}

static void write_text(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    FQ_ASSERT(f && fwrite(p, 1, n, f) == n && fclose(f) == 0);
}

/* ---- files -------------------------------------------------------------------------------- */

static void test_model_files(void) {
    expect_error(ARGS("run", "-m", "/nonexistent-dir/model.gguf", "-p", "hi"), 1, "cannot open: No such file");
    expect_error(ARGS("run", "-m", "tests/data", "-p", "hi"), 1, "is a directory");
    expect_error(ARGS("run", "-m", "/dev/null", "-p", "hi"), 1, "not a regular file");
    expect_error(ARGS("run", "-m", "", "-p", "hi"), 1, "cannot open");
    write_text(tmp("empty.gguf"), "", 0);
    expect_error(ARGS("run", "-m", tmp("empty.gguf"), "-p", "hi"), 1, "file is empty");
    expect_error(ARGS("run", "-m", "README.md", "-p", "hi"), 1, "not a GGUF file");
    expect_error(ARGS("inspect", "/nonexistent-dir/model.gguf"), 1, "cannot open");
    /* unreadable: permissions (not for root, who reads anything), a socket, a FIFO (which
     * must not block waiting for a writer) */
    if (geteuid() != 0) {
        size_t n;
        char *b = tu_read("models/stories260K.gguf", &n);
        FQ_ASSERT(b);
        write_text(tmp("noperm.gguf"), b, n);
        free(b);
        chmod(tmp("noperm.gguf"), 0);
        expect_error(ARGS("run", "-m", tmp("noperm.gguf"), "-p", "hi"), 1, "Permission denied");
    }
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", tmp("sock.gguf"));
    if (s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof sa) == 0)
        expect_error(ARGS("run", "-m", tmp("sock.gguf"), "-p", "hi"), 1, "cannot open");
    if (s >= 0) close(s);
    if (mkfifo(tmp("fifo.gguf"), 0600) == 0)
        expect_error(ARGS("run", "-m", tmp("fifo.gguf"), "-p", "hi"), 1, "not a regular file");
    /* a truncated model, and a model file that is a vocabulary only */
    size_t n;
    char *b = tu_read("models/stories260K.gguf", &n);
    FQ_ASSERT(b);
    write_text(tmp("half.gguf"), b, n / 2);
    free(b);
    expect_error(ARGS("run", "-m", tmp("half.gguf"), "-p", "hi"), 1, "data ends at byte");
    expect_error(ARGS("run", "-m", "tests/data/models/ggml-vocab-llama-spm.gguf", "-p", "hi"), 1,
                 "ggml-vocab-llama-spm.gguf: ");
}

/* ---- prompts -------------------------------------------------------------------------------- */

/* A copy of the bundled model whose tokenizer adds no BOS: an empty prompt gives no tokens. */
static void write_nobos_model(const char *path) {
    fq_gguf g;
    fq_err e;
    FQ_ASSERT(fq_gguf_open(&g, "models/stories260K.gguf", &e) == 0);
    fq_gguf_writer *w = fq_gguf_writer_new(&e);
    for (uint64_t i = 0; i < g.n_kv; i++) FQ_ASSERT(fq_gguf_writer_copy_kv(w, &g.kv[i], &e) == 0);
    /* a bool key: written as u32 0, which the tokenizer reads as false too */
    FQ_ASSERT(fq_gguf_writer_set_u32(w, "tokenizer.ggml.add_bos_token", 0, &e) == 0);
    for (uint64_t i = 0; i < g.n_tensors; i++)
        FQ_ASSERT(fq_gguf_writer_add_tensor(w, g.tensors[i].name, g.tensors[i].type, g.tensors[i].n_dims,
                                            g.tensors[i].ne, g.tensors[i].data, &e) == 0);
    FQ_ASSERT(fq_gguf_writer_write(w, path, &e) == 0);
    fq_gguf_writer_free(w);
    fq_gguf_close(&g);
}

static void test_prompts(void) {
    expect_error(ARGS("run", "-n", "4"), 2, "no prompt");
    expect_error(ARGS("run", "-p", "hi", "-f", "README.md"), 2, "not both");
    expect_error(ARGS("run", "-p", "\xff\xfe"), 2, "not valid UTF-8 (byte 0xff at offset 0)");
    expect_error(ARGS("run", "-p", "caf\xc3"), 2, "not valid UTF-8");            /* cut short */
    expect_error(ARGS("run", "-p", "\xed\xa0\x80"), 2, "not valid UTF-8");        /* surrogate */
    expect_error(ARGS("run", "-p", "\xc0\xaf"), 2, "not valid UTF-8");            /* overlong */
    expect_error(ARGS("run", "-p", "\xf4\x90\x80\x80"), 2, "not valid UTF-8");    /* > U+10FFFF */
    write_text(tmp("bad.txt"), "Once upon\x80 a time", 18);
    expect_error(ARGS("run", "-f", tmp("bad.txt")), 2, "bad.txt is not valid UTF-8 (byte 0x80 at offset 9)");
    expect_error(ARGS("run", "-f", "/nonexistent-dir/prompt.txt"), 2, "cannot open");
    expect_error(ARGS("run", "-f", "tests/data"), 2, "not a regular file");
    /* issue 11 item 18: a file that reports size 0 but has content is read to its end */
    if (exists("/proc/version")) {
        result r = run_argv(ARGS("run", "-f", "/proc/version", "-n", "1", "-t", "1"), NULL);
        CHECK(r.status == 0 && strstr(r.out, "Linux"), "-f /proc/version read as empty: exit %d: %s%s", r.status, r.out,
              r.err);
        free_result(&r);
    }
    /* item 5: a FIFO nobody writes to is an error at once (no hang), a FIFO with a writer
     * is read to its end (what `-f <(cmd)` and `-f /dev/stdin` give) */
    const char *fifo = tmp("prompt.fifo");
    FQ_ASSERT(mkfifo(fifo, 0600) == 0);
    expect_error(ARGS("run", "-f", fifo, "-n", "1"), 2, "no program is writing to");
    int ready[2];
    FQ_ASSERT(pipe(ready) == 0);
    pid_t wr = fork();
    FQ_ASSERT(wr >= 0);
    if (wr == 0) {
        /* O_RDWR opens at once and counts as a writer; the text waits in the FIFO until
         * the program has read it, then closing the FIFO gives it end of file */
        int fd = open(fifo, O_RDWR);
        if (fd < 0 || write(fd, "Once upon a time", 16) != 16) _exit(1);
        if (write(ready[1], "x", 1) != 1) _exit(1);
        for (int i = 0; i < 20000; i++) {
            int left = 0;
            if (ioctl(fd, FIONREAD, &left) != 0 || left == 0) break;
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        close(fd);
        _exit(0);
    }
    char c;
    FQ_ASSERT(read(ready[0], &c, 1) == 1);
    close(ready[0]);
    close(ready[1]);
    result fr = run_argv(ARGS("run", "-f", fifo, "-n", "2", "-t", "1"), NULL);
    waitpid(wr, NULL, 0);
    CHECK(fr.status == 0 && strstr(fr.out, "Once upon a time"), "-f FIFO with a writer: exit %d: %s%s", fr.status,
          fr.out, fr.err);
    free_result(&fr);
    /* an empty prompt: BOS alone starts the text (as llama.cpp does) ... */
    expect_ok(ARGS("run", "-p", "", "-n", "4", "-t", "1"), "eval time");
    write_text(tmp("empty.txt"), "", 0);
    expect_ok(ARGS("run", "-f", tmp("empty.txt"), "-n", "4", "-t", "1"), "eval time");
    /* ... unless the model adds none: then there is nothing to start from */
    write_nobos_model(tmp("nobos.gguf"));
    expect_error(ARGS("run", "-m", tmp("nobos.gguf"), "-p", "", "-n", "4"), 2, "gives no tokens");
    /* a prompt longer than the context */
    expect_error(ARGS("run", "-p", "Once upon a time there was", "-c", "2"), 2, "the context holds 2");
    expect_error(ARGS("run", "-p", "Once upon a time", "-c", "8", "-n", "100"), 2, "raise -c or lower -n");
    /* --chat on a model without a template, with an unknown template name */
    expect_error(ARGS("run", "-p", "hi", "--chat"), 2, "no chat template");
    expect_error(ARGS("run", "-p", "hi", "--chat-template", "nosuch"), 2, "unknown chat template 'nosuch'");
}

/* ---- numbers and flags ---------------------------------------------------------------------- */

static void test_options(void) {
    /* -n 0: nothing generated, the prompt is still evaluated and timed */
    result r = run_argv(ARGS("run", "-p", "Once upon a time", "-n", "0", "-t", "1"), NULL);
    CHECK(clean_exit(&r) && r.status == 0 && strstr(r.err, "prompt eval time") &&
              strstr(r.err, "0 runs") && !strcmp(r.out, " Once upon a time\n"), /* the echo: [BOS, "▁Once"...] */
          "-n 0: exit %d, out '%s', err %s", r.status, r.out, r.err);
    free_result(&r);
    expect_error(ARGS("run", "-p", "hi", "-n", "-2"), 2, "-n: -2 is out of range");
    expect_error(ARGS("run", "-p", "hi", "-n", "abc"), 2, "-n: 'abc' is not an integer");
    expect_error(ARGS("run", "-p", "hi", "-n", "99999999999999999999"), 2, "not an integer");
    expect_error(ARGS("run", "-p", "hi", "-n", ""), 2, "not an integer");
    expect_error(ARGS("run", "-p", "hi", "-n", "5x"), 2, "not an integer");
    expect_error(ARGS("run", "-p", "hi", "-t", "0"), 2, "-t: 0 is out of range");
    expect_error(ARGS("run", "-p", "hi", "-t", "-1"), 2, "out of range");
    expect_error(ARGS("run", "-p", "hi", "-t", "100000"), 2, "out of range");
    expect_error(ARGS("run", "-p", "hi", "-c", "0"), 2, "-c: 0 is out of range");
    expect_error(ARGS("run", "-p", "hi", "-c", "-4096"), 2, "out of range");
    expect_error(ARGS("run", "-p", "hi", "-c", "99999999999"), 2, "out of range");
    expect_error(ARGS("run", "-p", "hi", "-c", "1e9"), 2, "not an integer");
    expect_error(ARGS("run", "-p", "hi", "-b", "0"), 2, "out of range");
    expect_error(ARGS("run", "-p", "hi", "--temp", "nan"), 2, "not a finite number");
    expect_error(ARGS("run", "-p", "hi", "--temp", "inf"), 2, "not a finite number");
    expect_error(ARGS("run", "-p", "hi", "--top-k", "-1"), 2, "out of range");
    expect_error(ARGS("run", "-p", "hi", "-s", "-1"), 2, "out of range");
    expect_error(ARGS("run", "-p", "hi", "--cache-type", "q4_0"), 2, "unknown cache type 'q4_0'");
    /* unknown flags and commands, missing values */
    expect_error(ARGS("run", "--bogus"), 2, "unknown option '--bogus'");
    expect_error(ARGS("run", "-p", "hi", "-x"), 2, "unknown option '-x'");
    expect_error(ARGS("run", "-p", "hi", "--"), 2, "unknown option");
    expect_error(ARGS("run", "-p", "hi", "stray"), 2, "unknown option 'stray'");
    expect_error(ARGS("run", "-p"), 2, "needs a value");
    expect_error(ARGS("run", "-p", "hi", "-m"), 2, "needs a value");
    expect_error(ARGS("run", "-p", "hi", "--fq"), 2, "needs a value");
    expect_error(ARGS("frobnicate"), 2, "unknown command 'frobnicate'");
    expect_error(ARGS(""), 2, "unknown command");
    result u = run_argv((const char *const[]){NULL}, NULL);
    CHECK(clean_exit(&u) && u.status == 2 && strstr(u.err, "usage"), "no command: exit %d %s", u.status, u.err);
    free_result(&u);
    /* options that would be silently dropped or replaced (issue 11, item 17) */
    expect_error(ARGS("run", "-p", "one", "-p", "two"), 2, "option -p is given twice");
    expect_error(ARGS("run", "-p", "one", "--prompt", "two"), 2, "option --prompt is given twice");
    expect_error(ARGS("run", "-p", "hi", "--json", tmp("a.json"), "--json", tmp("b.json")), 2,
                 "option --json is given twice");
    expect_error(ARGS("run", "-p", "hi", "-m", "models/stories260K.gguf", "-m", "x.gguf"), 2,
                 "option -m is given twice");
    expect_error(ARGS("run", "-p", "hi", "--fq-stats", tmp("a.json"), "--fq-stats", tmp("b.json")), 2,
                 "option --fq-stats is given twice");
    expect_error(ARGS("run", "-p", "hi", "-sys", "Be brief."), 2, "-sys (a system prompt) needs --chat");
    expect_error(ARGS("compare", "-p", "hi", "-n", "2", "-t", "1", "--fq", "ffn_norm=bf16", "-sys", "Be brief."), 2,
                 "-sys (a system prompt) needs --chat");
    expect_error(ARGS("synth", "--shape", "stories260K", "--dry-run", "--rope-base", "-5"), 2,
                 "--rope-base -5: must be a positive number");
    expect_error(ARGS("synth", "--shape", "stories260K", "--dry-run", "--rms-eps", "-1e-5"), 2,
                 "--rms-eps -1e-5: must be a positive number");
    expect_error(ARGS("synth", "--shape", "stories260K", "--dry-run", "--rms-eps", "0"), 2,
                 "--rms-eps 0: must be a positive number");
    expect_error(ARGS("synth", "--shape", "stories260K", "-o", tmp("a.gguf"), "-o", tmp("b.gguf")), 2,
                 "-o is given twice");
    CHECK(!exists(tmp("a.gguf")) && !exists(tmp("b.gguf")), "synth -o twice wrote a file");
    expect_error(ARGS("inspect"), 2, "");
    expect_error(ARGS("inspect", "models/stories260K.gguf", "--bogus"), 2, "");
}

/* ---- --fq rules of every invalid shape ------------------------------------------------------- */

static void test_rules(void) {
    static const struct { const char *rule, *phrase; } bad[] = {
        {"ffn_norm", "write NODES[@LAYERS]=FORMAT"},          /* no '=' */
        {"=bf16", "write NODES[@LAYERS]=FORMAT"},             /* no node */
        {"ffn_norm=", "write NODES[@LAYERS]=FORMAT"},         /* no format */
        {"", "write NODES[@LAYERS]=FORMAT"},
        {"foo=bf16", "unknown node 'foo'"},
        {",=bf16", "no node named"},
        {"ffn_norm=foo", "unknown format 'foo'"},
        {"ffn_norm=bf16:", ""},
        {"ffn_norm=int4:bogus", "unknown option 'bogus'"},
        {"ffn_norm=int4:group=abc", "bad value 'abc' for option 'group'"},
        {"ffn_norm=int4:group=0", "bad value '0'"},
        {"ffn_norm=int4:group=-32", "bad value"},
        {"ffn_norm=int4:group=99999999999999999999", "bad value"},
        {"ffn_norm=e9m30", ""},
        {"ffn_norm=e0m0", ""},
        {"ffn_norm=fp8_e4m3:round=sideways", ""},
        {"ffn_norm@99=bf16", "layer 99 out of range: the model has layers 0-4"},
        {"ffn_norm@-5=bf16", "out of range"},
        {"ffn_norm@a=bf16", "bad layer list 'a'"},
        {"ffn_norm@=bf16", "bad layer list"},
        {"ffn_norm@1-=bf16", "bad layer range"},
        {"ffn_norm@1,,2=bf16", "bad layer list"},
        {"ffn_norm@0-99999999999999999999=bf16", "out of range"},
        {"ffn_norm-9=bf16", "layer 9 out of range"},
        {"ffn_norm-2@3=bf16", "names a layer twice"},
        {"result_output@1=bf16", "has no layer"},
        {"weight:=int4", "needs a tensor-name glob"},
        {"weight:nothing=int4", "no weight matrix of the model matches 'nothing'"},
        {"weight:[=int4", "no weight matrix"},
        {"weight:output_norm.weight=int4", "no weight matrix"}, /* a vector, not a matrix */
    };
    for (size_t i = 0; i < FQ_ARRAY_LEN(bad); i++)
        expect_error(ARGS("run", "-p", "hi", "-n", "1", "--fq", bad[i].rule), 2, bad[i].phrase);
    /* 65 rules: one too many */
    const char *many[MAX_ARGS];
    int k = 0;
    many[k++] = "run", many[k++] = "-p", many[k++] = "hi";
    for (int i = 0; i < 65; i++) many[k++] = "--fq", many[k++] = "ffn_norm=bf16";
    many[k] = NULL;
    expect_error(many, 2, "too many --fq rules");
    /* the report's flags, and --dump */
    expect_error(ARGS("run", "-p", "hi", "--fake-quant-ffn-norm", "nosuch"), 2, "unknown format 'nosuch'");
    expect_error(ARGS("run", "-p", "hi", "--fake-quant-ffn-norm", "bf16", "--fake-quant-layer", "5"), 2,
                 "layer 5 out of range");
    expect_error(ARGS("run", "-p", "hi", "--fake-quant-ffn-norm", "bf16", "--fake-quant-layer", "x"), 2,
                 "not an integer");
    expect_error(ARGS("run", "-p", "hi", "--fake-quant-layer", "2"), 2, "needs --fake-quant-ffn-norm");
    expect_error(ARGS("run", "-p", "hi", "--fake-quant", "fp8_e9m9"), 2, "--fake-quant");
    expect_error(ARGS("run", "-p", "hi", "--dump", "ffn_norm"), 2, "--dump needs --dump-dir");
    expect_error(ARGS("run", "-p", "hi", "--dump", "ffn_norm", "--dump-dir", "/nonexistent-dir"), 2,
                 "is not a directory");
    expect_error(ARGS("run", "-p", "hi", "--dump", "ffn_norm", "--dump-dir", "README.md"), 2,
                 "is not a directory");
    expect_error(ARGS("run", "-p", "hi", "--dump", "nosuch@1", "--dump-dir", g_tmp), 2, "unknown node");
}

/* ---- output files ---------------------------------------------------------------------------- */

/* The run must fail naming the file, and leave dir as it was (keep: names already there). */
static void expect_write_fail(const char *const *args, const char *dir, const char *const *keep,
                              const char *phrase) {
    result r = run_argv(args, NULL);
    const char *a = show_args(args);
    const char *line = strstr(r.err, "fqlm: error: ");
    if (verbose) printf("%-60s -> %d %s", a, r.status, line ? line : r.err);
    CHECK(clean_exit(&r) && r.status != 0, "'%s': exit %d: %s", a, r.status, r.err);
    CHECK(line && strstr(line, phrase), "'%s': stderr lacks '%s': %s", a, phrase, r.err);
    if (dir) CHECK(stray_files(dir, keep) == 0, "'%s': files left behind in %s", a, dir);
    free_result(&r);
}

static void test_outputs(void) {
    /* a missing directory */
    expect_write_fail(ARGS("run", "-p", "hi", "-n", "2", "-t", "1", "--json", "/nonexistent-dir/run.json"),
                      NULL, NULL, "/nonexistent-dir/run.json");
    expect_write_fail(ARGS("run", "-p", "hi", "-n", "2", "-t", "1", "--fq", "ffn_norm=bf16", "--fq-stats",
                           "/nonexistent-dir/stats.json"),
                      NULL, NULL, "/nonexistent-dir/stats.json");
    /* issue 11 item 2: devices, FIFOs and links to them are refused, never replaced by
     * a file nor written: a link to /dev/full in a scratch directory, /dev/full itself
     * (it is only written if the program opens it, which would fail with ENOSPC: never
     * renamed over, so the test cannot harm the system's device), a FIFO (no reader:
     * opening it for writing would block forever) */
    char dir[400];
    snprintf(dir, sizeof dir, "%s/full", g_tmp);
    FQ_ASSERT(mkdir(dir, 0700) == 0);
    const char *keep[] = {"run.json", "stats.json", "fifo.json", NULL};
    char json[500], stats[500], fifo[500];
    snprintf(json, sizeof json, "%s/run.json", dir);
    snprintf(stats, sizeof stats, "%s/stats.json", dir);
    snprintf(fifo, sizeof fifo, "%s/fifo.json", dir);
    struct stat st;
    if (exists("/dev/full") && symlink("/dev/full", json) == 0 && symlink("/dev/full", stats) == 0) {
        expect_write_fail(ARGS("run", "-p", "hi", "-n", "2", "-t", "1", "--json", json), dir, keep,
                          "character device");
        CHECK(lstat(json, &st) == 0 && S_ISLNK(st.st_mode), "--json to a link to /dev/full replaced the link");
        expect_write_fail(ARGS("run", "-p", "hi", "-n", "2", "-t", "1", "--fq", "ffn_norm=bf16", "--fq-stats", stats),
                          dir, keep, "character device");
        CHECK(lstat(stats, &st) == 0 && S_ISLNK(st.st_mode), "--fq-stats to a link to /dev/full replaced the link");
        if (stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode)) {
            expect_write_fail(ARGS("run", "-p", "hi", "-n", "2", "-t", "1", "--json", "/dev/full"), NULL, NULL,
                              "character device");
            CHECK(stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode), "/dev/full is no longer a device");
        }
    }
    FQ_ASSERT(mkfifo(fifo, 0600) == 0);
    expect_write_fail(ARGS("run", "-p", "hi", "-n", "2", "-t", "1", "--json", fifo), dir, keep, "FIFO");
    expect_write_fail(ARGS("run", "-p", "hi", "-n", "2", "-t", "1", "--fq", "ffn_norm=bf16", "--fq-stats", fifo), dir,
                      keep, "FIFO");
    CHECK(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode), "a FIFO was replaced");
    /* --json /dev/stdout on `>> log` appends to the log (the old writer truncated it) */
    {
        char outp[300];
        snprintf(outp, sizeof outp, "%s/stdout", g_tmp);
        write_text(outp, "earlier line\n", 13);
        run_opts ro = {.out_append = 1};
        result r = run_argv(ARGS("run", "-p", "hi", "-n", "2", "-t", "1", "--json", "/dev/stdout"), &ro);
        CHECK(r.status == 0 && !strncmp(r.out, "earlier line\n", 13) && strstr(r.out, "\"generated_tokens\""),
              "--json /dev/stdout >> log: exit %d, log now: %.200s", r.status, r.out);
        free_result(&r);
    }
    /* an existing result is kept whole when the new one cannot be written: a directory in
     * the way of the temporary file's rename */
    char in[400], keepdir[500];
    snprintf(in, sizeof in, "%s/in", g_tmp);
    snprintf(keepdir, sizeof keepdir, "%s/outdir.json", in);
    FQ_ASSERT(mkdir(in, 0700) == 0 && mkdir(keepdir, 0700) == 0);
    const char *keep2[] = {"outdir.json", NULL};
    expect_write_fail(ARGS("run", "-p", "hi", "-n", "2", "-t", "1", "--json", keepdir), in, keep2, "outdir.json");
}

/* ---- memory ------------------------------------------------------------------------------------ */

static void test_memory(void) {
    /* 2 (K, V) x 5 layers x 4194304 tokens x 32 x 4 bytes = 5120 MiB: more than the limit */
    run_opts ro = {0};
    const char *args[] = {"run", "-p", "hi", "-n", "1", "-t", "1", "-c", "4194304", NULL};
    const char *old = getenv("ASAN_OPTIONS");
    char *saved = old ? strdup(old) : NULL;
    if (g_bin_asan) {
        /* ASan cannot run under an address-space limit: make large allocations fail */
        char opts[1024];
        snprintf(opts, sizeof opts, "%s%sallocator_may_return_null=1:max_allocation_size_mb=3072",
                 saved ? saved : "", saved ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
    } else {
        ro.as_limit = (size_t)2 << 30;
    }
    result r = run_argv(args, &ro);
    if (saved) setenv("ASAN_OPTIONS", saved, 1);
    else unsetenv("ASAN_OPTIONS");
    free(saved);
    const char *line = strstr(r.err, "fqlm: error: ");
    if (verbose) printf("%-60s -> %d %s", show_args(args), r.status, line ? line : r.err);
    CHECK(clean_exit(&r) && r.status == 1, "huge -c: exit %d: %s", r.status, r.err);
    CHECK(line && strstr(line, "KV cache") && strstr(line, "5120.0 MiB"), "huge -c: %s", r.err);
    free_result(&r);
}

/* ---- SIGINT ------------------------------------------------------------------------------------ */

static void test_sigint(void) {
    char json[500];
    snprintf(json, sizeof json, "%s/interrupted.json", g_tmp);
    run_opts ro = {.sigint_after_ms = 300};
    const char *args[] = {"run", "-p", "Once upon a time", "-n", "4000", "-c", "4096", "--temp", "0",
                          "-t", "1", "--json", json, NULL};
    result r = run_argv(args, &ro);
    if (verbose) printf("SIGINT after %.2f s: exit %d\n", r.secs, r.status);
    CHECK(r.status == 130, "SIGINT: exit %d (expected 130, not killed by the signal): %s", r.status, r.err);
    CHECK(strstr(r.err, "interrupted after") && strstr(r.err, "eval time =") && strstr(r.err, "total time ="),
          "SIGINT: no timings: %s", r.err);
    char *js = tu_read(json, NULL);
    CHECK(js && strstr(js, "\"generated_tokens\":[") && strstr(js, "\"eval_tps\""),
          "SIGINT: --json not written: %s", js ? js : "(none)");
    free(js);
    free_result(&r);
}

/* ---- compare, ppl, sweep (when this build has them) ------------------------------------------- */

static int have_command(const char *name) {
    result r = run_argv((const char *const[]){name, "--help", NULL}, NULL);
    int ok = r.status == 0;
    free_result(&r);
    return ok;
}

/* A text of about 5 KB for ppl and sweep. */
static const char *text_file(void) {
    const char *path = tmp("text.txt");
    FILE *f = fopen(path, "w");
    FQ_ASSERT(f);
    for (int i = 0; i < 30; i++)
        fputs("Once upon a time, there was a little girl named Lily. She loved to play outside in the "
              "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n", f);
    FQ_ASSERT(fclose(f) == 0);
    return path;
}

static void test_compare_ppl(void) {
    if (have_command("compare")) {
        expect_write_fail(ARGS("compare", "--fake-quant-ffn-norm", "bf16", "-p", "Once upon a time", "-n", "4",
                               "-t", "1", "--json", "/nonexistent-dir/c.json"),
                          NULL, NULL, "/nonexistent-dir/c.json");
        expect_write_fail(ARGS("compare", "--fake-quant-ffn-norm", "bf16", "-p", "Once upon a time", "-n", "4",
                               "-t", "1", "--report", "/nonexistent-dir/c.md"),
                          NULL, NULL, "/nonexistent-dir/c.md");
        expect_error(ARGS("compare", "-p", "hi", "--fq", "ffn_norm@9=bf16"), 2, "out of range");
        char dir[400], link[500];
        snprintf(dir, sizeof dir, "%s/cfull", g_tmp);
        snprintf(link, sizeof link, "%s/c.json", dir);
        const char *keep[] = {"c.json", NULL};
        if (mkdir(dir, 0700) == 0 && exists("/dev/full") && symlink("/dev/full", link) == 0)
            expect_write_fail(ARGS("compare", "--fake-quant-ffn-norm", "bf16", "-p", "Once upon a time", "-n", "4",
                                   "-t", "1", "--json", link),
                              dir, keep, "character device");
    }
    if (have_command("ppl")) {
        expect_write_fail(ARGS("ppl", "-f", text_file(), "-c", "64", "--chunks", "2", "-t", "1", "--json",
                               "/nonexistent-dir/p.json"),
                          NULL, NULL, "/nonexistent-dir/p.json");
        expect_error(ARGS("ppl", "-f", "/nonexistent-dir/text.txt"), 0, "cannot open");
    }
}

/* Lines of a file, and whether it holds a NUL byte. */
static int csv_lines(const char *path, int *has_nul) {
    size_t n = 0;
    char *t = tu_read(path, &n);
    int k = 0;
    for (size_t i = 0; t && i < n; i++) k += t[i] == '\n';
    if (has_nul) *has_nul = t && memchr(t, 0, n) != NULL;
    free(t);
    return t ? k : -1;
}

/* Issue 11 items 3, 4, 6, 7, 13, 14, 15: what a sweep directory can hold and who may
 * write it. dir is a finished sweep of `text` whose rows are in csv. */
static void test_sweep_dirs(const char *text, const char *dir, const char *csv) {
    /* item 3: an empty directory name */
    expect_error(ARGS("sweep", "-f", text, "--nodes", "ffn_norm", "--formats", "bf16", "-o", ""), 2, "empty");
    expect_error(ARGS("demo", "-o", ""), 1, "directory");
    /* item 4: a NUL byte in results.csv cuts the file there, and reruns do not grow it */
    const char *args[] = {"sweep", "-f", text, "--nodes", "*", "--formats", "bf16,int4,fp8_e4m3", "-c", "64",
                          "--chunks", "4", "-t", "1", "-o", dir, NULL};
    int full = csv_lines(csv, NULL);
    size_t n = 0;
    char *t = tu_read(csv, &n);
    FQ_ASSERT(t && full > 6);
    char *line3 = t;
    for (int k = 0; k < 3; k++) line3 = strchr(line3, '\n') + 1;
    line3[4] = 0; /* inside the fourth line: that line and the rest go */
    write_text(csv, t, n);
    free(t);
    result r = run_argv(args, NULL);
    int nul = 1, after = csv_lines(csv, &nul);
    CHECK(r.status == 0 && strstr(r.err, "NUL byte") && strstr(r.err, "run again"),
          "NUL in results.csv: exit %d: %s", r.status, r.err);
    CHECK(after == full && !nul, "NUL in results.csv: %d lines after the rerun (had %d), NUL left %d", after, full, nul);
    free_result(&r);
    r = run_argv(args, NULL);
    CHECK(r.status == 0 && csv_lines(csv, NULL) == full, "a second rerun changed results.csv: %d lines (had %d)",
          csv_lines(csv, NULL), full);
    free_result(&r);

    /* items 14 and 15: a partial last line, and rows with absurd integers (1e300, inf,
     * -1e300) are dropped with one readable message; no float-to-int overflow (UBSan) */
    char d3[400], c3[500];
    snprintf(d3, sizeof d3, "%s/sweep-absurd", g_tmp);
    snprintf(c3, sizeof c3, "%s/results.csv", d3);
    FQ_ASSERT(mkdir(d3, 0700) == 0);
    t = tu_read(csv, &n);
    char *l1 = strchr(t, '\n') + 1, *l2 = strchr(l1, '\n') + 1;
    char hdr[2048], row[2048];
    snprintf(hdr, sizeof hdr, "%.*s", (int)(l1 - t), t);
    snprintf(row, sizeof row, "%.*s", (int)(l2 - l1 - 1), l1);
    free(t);
    char *f2 = strchr(row, ',') + 1, *f3 = strchr(f2, ',') + 1, *f4 = strchr(strchr(f3, ',') + 1, ',') + 1;
    char body[8192];
    /* node,1e300,...  node,L,fmt,inf,...  node,L,fmt,F,-1e300,...  and a cut line */
    int bl = snprintf(body, sizeof body, "%s%.*s1e300%s\n%.*sinf%s\n%.*s-1e300%s\n%.20s", hdr, (int)(f2 - row), row,
                      strchr(f2, ','), (int)(strchr(f3, ',') + 1 - row), row, strchr(strchr(f3, ',') + 1, ','),
                      (int)(f4 - row), row, strchr(f4, ','), row);
    write_text(c3, body, (size_t)bl);
    r = run_argv(ARGS("sweep", "-f", text, "--nodes", "ffn_norm", "--layers", "0", "--formats", "bf16", "-c", "64",
                      "--chunks", "1", "-t", "1", "-o", d3),
                 NULL);
    CHECK(clean_exit(&r) && r.status == 0 && strstr(r.err, "dropping a partial last line and 3 unreadable") &&
              !strstr(r.err, "line0"),
          "absurd rows: exit %d: %s", r.status, r.err);
    CHECK(csv_lines(c3, NULL) == 2, "absurd rows: results.csv has %d lines", csv_lines(c3, NULL));
    free_result(&r);

    /* item 6: a directory another sweep holds is refused (the lock is held here) */
    char lockp[500];
    snprintf(lockp, sizeof lockp, "%s/sweep.lock", d3);
    int lfd = open(lockp, O_RDWR | O_CREAT, 0600);
    FQ_ASSERT(lfd >= 0 && flock(lfd, LOCK_EX) == 0);
    expect_error(ARGS("sweep", "-f", text, "--nodes", "ffn_norm", "--layers", "0,1", "--formats", "bf16", "-c", "64",
                      "--chunks", "1", "-t", "1", "-o", d3),
                 1, "another fqlm sweep");
    close(lfd);
    CHECK(csv_lines(c3, NULL) == 2, "a refused sweep wrote rows");

    /* item 7: the same path and size but other bytes is another model */
    char d4[400], model[400];
    snprintf(d4, sizeof d4, "%s/sweep-model", g_tmp);
    snprintf(model, sizeof model, "%s/model-copy.gguf", g_tmp);
    t = tu_read("models/stories260K.gguf", &n);
    FQ_ASSERT(t);
    write_text(model, t, n);
    const char *margs[] = {"sweep", "-m", model, "-f", text, "--nodes", "ffn_norm", "--layers", "0", "--formats",
                           "bf16", "-c", "64", "--chunks", "1", "-t", "1", "-o", d4, NULL};
    r = run_argv(margs, NULL);
    CHECK(r.status == 0, "sweep on a model copy: exit %d: %s", r.status, r.err);
    free_result(&r);
    t[n - 5] ^= 0x01; /* a low bit near the end of the file: it still loads */
    write_text(model, t, n);
    free(t);
    expect_error(margs, 2, "model_hash");

    /* item 13: a disk that fills up (RLIMIT_FSIZE below report.html's size): the summary
     * names only the files that exist, the exit status says the run failed */
    char d5[400], html[500];
    snprintf(d5, sizeof d5, "%s/sweep-full", g_tmp);
    snprintf(html, sizeof html, "%s/report.html", d5);
    run_opts ro = {.fsize_limit = 8192};
    r = run_argv(ARGS("sweep", "-f", text, "--nodes", "ffn_norm", "--formats", "bf16", "-c", "64", "--chunks", "1",
                      "-t", "1", "-o", d5),
                 &ro);
    const char *keep5[] = {"results.json", "results.csv", "sweep.conf", "heatmap.svg", "sweep.lock", NULL};
    CHECK(clean_exit(&r) && r.status == 1 && strstr(r.err, "report.html") && strstr(r.err, "File too large"),
          "sweep on a full disk: exit %d: %s", r.status, r.err);
    CHECK(!exists(html) && !strstr(r.out, "report:") && strstr(r.out, "not written"),
          "sweep on a full disk claims report.html: %s", r.out);
    CHECK(stray_files(d5, keep5) == 0, "sweep on a full disk left files behind");
    free_result(&r);
}

/* A sweep interrupted with SIGINT leaves valid files and finishes when rerun. */
static void test_sweep(void) {
    if (!have_command("sweep")) return;
    const char *text = text_file();
    char dir[400], csv[500], json[500];
    snprintf(dir, sizeof dir, "%s/sweep", g_tmp);
    snprintf(csv, sizeof csv, "%s/results.csv", dir);
    snprintf(json, sizeof json, "%s/results.json", dir);
    const char *args[] = {"sweep", "-f", text, "--nodes", "*", "--formats", "bf16,int4,fp8_e4m3", "-c", "64",
                          "--chunks", "4", "-t", "1", "-o", dir, NULL};
    run_opts ro = {.sigint_after_ms = 50, .sigint_file = csv, .sigint_lines = 12};
    result r = run_argv(args, &ro);
    if (verbose) printf("sweep: SIGINT after %.2f s: exit %d, %d lines\n", r.secs, r.status, count_lines(csv));
    CHECK(r.status == 130 && strstr(r.err, "interrupted"), "sweep SIGINT: exit %d: %s", r.status, r.err);
    free_result(&r);
    /* every line whole, with the header's number of fields */
    char *t = tu_read(csv, NULL);
    int lines = 0, bad = 0, fields0 = -1;
    for (char *p = t; p && *p;) {
        char *nl = strchr(p, '\n');
        if (!nl) {
            bad++;
            break;
        }
        int f = 1;
        for (char *q = p; q < nl; q++) f += *q == ',';
        if (fields0 < 0) fields0 = f;
        bad += f != fields0;
        lines++;
        p = nl + 1;
    }
    free(t);
    CHECK(lines > 1 && bad == 0, "interrupted sweep: results.csv has %d lines, %d bad", lines, bad);
    char *js = tu_read(json, NULL);
    size_t jl = js ? strlen(js) : 0;
    CHECK(js && js[0] == '{' && jl > 2 && (js[jl - 1] == '}' || (js[jl - 1] == '\n' && js[jl - 2] == '}')),
          "interrupted sweep: results.json is not whole");
    free(js);
    /* the rerun skips what was done and completes */
    r = run_argv(args, NULL);
    int total = count_lines(csv);
    CHECK(r.status == 0 && total > lines, "sweep rerun: exit %d, %d lines (had %d): %s", r.status, total, lines, r.err);
    CHECK(strstr(r.out, "already done") != NULL, "sweep rerun does not say what it skipped: %s", r.out);
    free_result(&r);
    /* layer lists that select nothing or run backwards are errors, not an empty sweep */
    expect_error(ARGS("sweep", "-f", text, "--nodes", "ffn_norm", "--formats", "bf16", "-c", "64", "--chunks", "1",
                      "-t", "1", "--layers", "", "-o", tmp("sweep-empty")),
                 2, "--layers: the list is empty");
    expect_error(ARGS("sweep", "-f", text, "--nodes", "ffn_norm", "--formats", "bf16", "-c", "64", "--chunks", "1",
                      "-t", "1", "--layers", "4-2", "-o", tmp("sweep-empty")),
                 2, "the range 4-2 in '4-2' runs backwards (write 2-4)");
    expect_error(ARGS("sweep", "-f", text, "--nodes", "ffn_norm", "--formats", "bf16", "-c", "64", "--chunks", "1",
                      "-t", "1", "--layers", "1,", "-o", tmp("sweep-empty")),
                 2, "--layers: bad list '1,'");
    CHECK(!exists(tmp("sweep-empty")), "a refused sweep made its directory");
    /* output errors: a file in the way of the directory, a results file of something else,
     * and results.json on a full device */
    expect_error(ARGS("sweep", "-f", text, "--nodes", "ffn_norm", "--formats", "bf16", "-c", "64", "--chunks", "1",
                      "-o", "README.md"),
                 1, "README.md");
    char dir2[400], csv2[500], json2[500];
    snprintf(dir2, sizeof dir2, "%s/sweep2", g_tmp);
    snprintf(csv2, sizeof csv2, "%s/results.csv", dir2);
    snprintf(json2, sizeof json2, "%s/results.json", dir2);
    FQ_ASSERT(mkdir(dir2, 0700) == 0);
    write_text(csv2, "name,value\n", 11);
    expect_error(ARGS("sweep", "-f", text, "--nodes", "ffn_norm", "--formats", "bf16", "-c", "64", "--chunks", "1",
                      "-o", dir2),
                 1, "not an fqlm sweep results file");
    unlink(csv2);
    if (exists("/dev/full") && symlink("/dev/full", json2) == 0) {
        const char *keep[] = {"results.json", "results.csv", "sweep.conf", "heatmap.svg", "report.html",
                              "sweep.lock", NULL};
        expect_write_fail(ARGS("sweep", "-f", text, "--nodes", "ffn_norm", "--formats", "bf16", "-c", "64",
                               "--chunks", "1", "-t", "1", "-o", dir2),
                          dir2, keep, "character device");
        struct stat st;
        CHECK(lstat(json2, &st) == 0 && S_ISLNK(st.st_mode), "sweep replaced a link to /dev/full with a file");
    }
    test_sweep_dirs(text, dir, csv);
}

/* Issue 11 items 2 and 16: quantize and synth write through the same rules as every
 * output: a device is refused, a temporary file left by a killed run is removed by the
 * next run (and said), SIGTERM while writing leaves no temporary file. */
static void test_model_writers(void) {
    char dir[400], out[500], stale[600], dev[500];
    snprintf(dir, sizeof dir, "%s/writers", g_tmp);
    FQ_ASSERT(mkdir(dir, 0700) == 0);
    snprintf(out, sizeof out, "%s/q.gguf", dir);
    snprintf(dev, sizeof dev, "%s/nulldev", dir);
    struct stat st;
    if (mknod(dev, S_IFCHR | 0600, makedev(1, 3)) == 0) {
        expect_error(ARGS("quantize", "models/stories260K.gguf", dev, "q8_0"), 1, "character device");
        CHECK(lstat(dev, &st) == 0 && S_ISCHR(st.st_mode), "quantize replaced a device node");
        expect_error(ARGS("synth", "--shape", "stories260k", "-o", dev), 1, "character device");
        CHECK(lstat(dev, &st) == 0 && S_ISCHR(st.st_mode), "synth replaced a device node");
        unlink(dev);
    }
    pid_t dead = fork();
    FQ_ASSERT(dead >= 0);
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    snprintf(stale, sizeof stale, "%s.fqlm-tmp.%ld.0", out, (long)dead);
    write_text(stale, "half a model", 12);
    result r = run_argv(ARGS("quantize", "-q", "models/stories260K.gguf", out, "f16"), NULL);
    CHECK(r.status == 0 && !exists(stale) && strstr(r.err, "removed 1 temporary file"),
          "quantize after a killed one: exit %d, stale file %s: %s", r.status, exists(stale) ? "kept" : "gone", r.err);
    free_result(&r);
    /* SIGTERM while the file is being written (a model of about 40 MB) */
    char big[500];
    snprintf(big, sizeof big, "%s/big.gguf", dir);
    run_opts ro = {.sigterm_when_temp_in = dir};
    r = run_argv(ARGS("synth", "--layers", "1", "--embd", "1024", "--ff", "2048", "--heads", "8", "-t", "1", "-o", big),
                 &ro);
    CHECK(r.status == 128 + SIGTERM, "synth: SIGTERM while writing: exit %d: %s", r.status, r.err);
    CHECK(!has_temp(dir) && !exists(big), "synth: SIGTERM left a temporary file or a partial model");
    free_result(&r);
}

int main(void) {
    verbose = getenv("FQ_TEST_VERBOSE") != NULL;
    g_bin = getenv("FQLM_BIN");
    if (!g_bin) g_bin = "build/fqlm";
    size_t n;
    char *b = tu_read(g_bin, &n);
    if (!b) {
        fprintf(stderr, "test_cli_errors: %s not found (build it, or set FQLM_BIN)\n", g_bin);
        printf("RESULT test_cli_errors.c 0 1\n");
        return 1;
    }
    g_bin_asan = memmem(b, n, "__asan_init", 11) != NULL;
    free(b);
    snprintf(g_tmp, sizeof g_tmp, "/tmp/fqlm_test_cli_errors_%ld", (long)getpid());
    FQ_ASSERT(mkdir(g_tmp, 0700) == 0);
    test_model_files();
    test_prompts();
    test_options();
    test_rules();
    test_outputs();
    test_memory();
    test_sigint();
    test_compare_ppl();
    test_sweep();
    test_model_writers();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return TEST_END();
}
