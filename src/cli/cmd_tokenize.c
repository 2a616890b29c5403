/* cmd_tokenize.c - `fqlm tokenize` (as llama-tokenize): a text's token ids and pieces, from
 * any GGUF with a tokenizer (vocabulary-only files included); and `fqlm bench tokenizer`:
 * tokens per second on a 1 MB text per vocabulary, side by side with llama-tokenize when
 * LLAMA_TOKENIZE names one. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "jsonw.h"
#include "tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: fqlm tokenize -m MODEL (-p TEXT | -f FILE) [--no-bos] [--parse-special] [--ids] [--json]\n"
            "\n"
            "Tokenizes TEXT (or the bytes of FILE) as llama.cpp does and prints one line per token:\n"
            "its id and its piece. MODEL may be a whole model or a vocabulary-only GGUF.\n"
            "  --no-bos          do not add the BOS/EOS tokens the vocabulary asks for\n"
            "  --parse-special   text such as <|im_end|> becomes that control token\n"
            "  --ids             print only the ids, as a list: [1, 2, 3]\n"
            "  --json            print {\"ids\": [...], \"pieces\": [...]} (pieces as text)\n");
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *file = NULL;
    bool add_special = true, parse_special = false, ids_only = false, json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "-p") ||
                   !strcmp(a, "--prompt") || !strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (i + 1 >= argc) {
                cli_error("tokenize: %s needs a value", a);
                return 2;
            }
            const char **dst = a[1] == 'm' || !strcmp(a, "--model") ? &model
                             : a[1] == 'p' || !strcmp(a, "--prompt") ? &prompt : &file;
            *dst = argv[++i];
        } else if (!strcmp(a, "--no-bos")) {
            add_special = false;
        } else if (!strcmp(a, "--parse-special")) {
            parse_special = true;
        } else if (!strcmp(a, "--ids")) {
            ids_only = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else {
            cli_error("tokenize: unknown option '%s'", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model) {
        cli_error("tokenize: -m MODEL is required");
        return 2;
    }
    if (!prompt == !file) {
        cli_error("tokenize: give exactly one of -p TEXT and -f FILE");
        return 2;
    }
    if (ids_only && json) {
        cli_error("tokenize: --ids and --json exclude each other");
        return 2;
    }
    fq_err e = {{0}};
    char *text = NULL;
    size_t len;
    if (file) {
        if (!(text = fq_read_file(file, &len, &e))) {
            cli_error("%s", e.msg);
            return 1;
        }
    } else {
        len = strlen(prompt);
    }
    fq_tokenizer *t;
    if (fq_tokenizer_load_file(&t, model, &e)) {
        cli_error("%s", e.msg);
        free(text);
        return 1;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = fq_tokenize(t, text ? text : prompt, len, add_special, parse_special, &ids, &n, &e);
    free(text);
    if (rc) {
        cli_error("tokenize: %s", e.msg);
        fq_tokenizer_free(t);
        return 1;
    }
    int status = 0;
    if (ids_only) {
        putchar('[');
        for (size_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
        printf("]\n");
    } else if (json) {
        jsonw w;
        jsonw_init(&w);
        jsonw_obj_begin(&w);
        jsonw_key(&w, "ids");
        jsonw_arr_begin(&w);
        for (size_t i = 0; i < n; i++) jsonw_int(&w, ids[i]);
        jsonw_arr_end(&w);
        jsonw_key(&w, "pieces");
        jsonw_arr_begin(&w);
        for (size_t i = 0; i < n; i++) {
            size_t pl;
            const char *p = fq_token_to_piece(t, ids[i], true, &pl);
            jsonw_strn(&w, p, pl);
        }
        jsonw_arr_end(&w);
        jsonw_obj_end(&w);
        char *s = jsonw_take(&w);
        if (!s) {
            cli_error("tokenize: out of memory");
            status = 1;
        } else {
            printf("%s\n", s);
            free(s);
        }
    } else {
        const int term = isatty(fileno(stdout));
        for (size_t i = 0; i < n; i++) {
            size_t pl;
            const char *p = fq_token_to_piece(t, ids[i], true, &pl);
            printf("%6d -> '", ids[i]);
            fq_write_text(stdout, p, pl, term);
            printf("'\n");
        }
    }
    if (fflush(stdout) || ferror(stdout)) {
        cli_error("tokenize: cannot write the output");
        status = 1;
    }
    free(ids);
    fq_tokenizer_free(t);
    return status;
}

/* ---- bench tokenizer ------------------------------------------------------------------ */

/* A deterministic mixed text of about n bytes: English-like prose with numbers, code,
 * punctuation, and some Chinese, Cyrillic, Greek and emoji. */
static char *bench_text(size_t n) {
    static const char *const parts[] = {
        "The ", "quick ", "brown ", "fox ", "jumps ", "over ", "the ", "lazy ", "dog", ". ",
        "It's ", "2024 ", "and ", "we've ", "got ", "3.14159 ", "reasons", ", ", "don't ", "we?\n",
        "int main(void) { return 0; }\n", "    for (i = 0; i < 10; i++)\n", "\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c ",
        "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 ", "\xce\xba\xce\xb1\xce\xbb\xce\xb7\xce\xbc\xce\xad\xcf\x81\xce\xb1 ",
        "\xf0\x9f\x98\x80 ", "tokenization ", "perplexity ", "quantization", "!\n\n", "  ", "\t",
        "Hello", "World ", "123456789 ", "e.g. ", "(see ", "\"quoted\") ", "http://example.com/a?b=c ",
    };
    char *s = malloc(n + 64);
    if (!s) return NULL;
    size_t o = 0;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    while (o < n) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const char *p = parts[x % (sizeof parts / sizeof parts[0])];
        size_t l = strlen(p);
        if (o + l > n) break;
        memcpy(s + o, p, l);
        o += l;
    }
    s[o] = '\0';
    return s;
}

/* ---- llama-tokenize side by side ----------------------------------------------------------- */

extern char **environ;

/* A temporary file holding len bytes of data (its path in path[64]). Returns 0 or -1. */
static int temp_file(char path[64], const char *data, size_t len) {
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir || strlen(dir) > 40) dir = "/tmp";
    snprintf(path, 64, "%s/fqlm-bench-XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    size_t o = 0;
    while (o < len) {
        ssize_t w = write(fd, data + o, len - o);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        o += (size_t)w;
    }
    if (close(fd) || o < len) {
        unlink(path);
        return -1;
    }
    return 0;
}

/* Runs argv (argv[0] the program) with stdout to out and stderr to err; returns the CPU time
 * it used (user + system, which a loaded machine disturbs less than wall time) in
 * microseconds, or -1 (why in msg). */
static int64_t run_timed(char *const argv[], const char *vocab, const char *out, const char *err, char *msg,
                         size_t msg_len) {
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa)) {
        snprintf(msg, msg_len, "out of memory");
        return -1;
    }
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        snprintf(msg, msg_len, "cannot run %.300s: %s", argv[0], strerror(rc));
        return -1;
    }
    int st;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0)
        if (errno != EINTR) {
            snprintf(msg, msg_len, "waiting for %.300s: %s", argv[0], strerror(errno));
            return -1;
        }
    int64_t us = (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
    if (!WIFEXITED(st) || WEXITSTATUS(st)) {
        fq_err e = {{0}};
        size_t el = 0;
        char *et = fq_read_file(err, &el, &e);
        while (et && el && (et[el - 1] == '\n' || et[el - 1] == '\r')) el--;
        const char *last = et ? et + el : NULL;
        while (last && last > et && last[-1] != '\n') last--;
        int ll = last ? (int)(et + el - last) : 0;
        snprintf(msg, msg_len, "%.200s on %.200s %s %d%s%.*s", argv[0], vocab,
                 WIFEXITED(st) ? "exited with" : "died of signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                 ll ? ": " : "", ll > 80 ? 80 : ll, ll ? last : "");
        free(et);
        return -1;
    }
    return us;
}

/* Tokenizing time of a program run as a process, in seconds: best of 3 runs on the text
 * (in_big) minus best of 3 on a one-byte text (in_tiny), so that starting, loading the
 * vocabulary and reading the file cancel out. argv[slot] is the input file's place. Leaves
 * the ids of the last run on the text in out. Returns 0 (the time, which noise can make <= 0,
 * in *secs) or -1 (why in msg). */
static int process_seconds(char **argv, int slot, const char *vocab, const char *in_big, const char *in_tiny,
                           const char *out, const char *err, double *secs, char *msg, size_t msg_len) {
    int64_t big = -1, tiny = -1;
    for (int rep = 0; rep < 6; rep++) {
        argv[slot] = (char *)(rep % 2 ? in_tiny : in_big);
        int64_t us = run_timed(argv, vocab, rep % 2 ? err : out, err, msg, msg_len);
        if (us < 0) return -1;
        if (rep % 2 == 0 && (big < 0 || us < big)) big = us;
        if (rep % 2 == 1 && (tiny < 0 || us < tiny)) tiny = us;
    }
    *secs = (double)(big - tiny) / 1e6;
    return 0;
}

/* Compares llama-tokenize's "[1, 2, 3]" output in file out with ids[0..n). Writes a one-line
 * verdict to msg; returns 1 if equal, 0 if not, -1 if out is not such a list. */
static int compare_ids(const char *out, const int32_t *ids, size_t n, size_t *n_llama, char *msg,
                       size_t msg_len) {
    fq_err e = {{0}};
    size_t len = 0;
    char *s = fq_read_file(out, &len, &e);
    *n_llama = 0;
    if (!s) {
        snprintf(msg, msg_len, "%.400s", e.msg);
        return -1;
    }
    const char *p = s, *end = s + len;
    int verdict = 1;
    size_t i = 0;
    if (p == end || *p != '[') goto bad;
    p++;
    while (p < end && *p != ']') {
        char *q;
        errno = 0;
        long v = strtol(p, &q, 10);
        if (q == p || errno || q > end) goto bad;
        if (verdict == 1 && (i >= n || ids[i] != v)) {
            if (i >= n) snprintf(msg, msg_len, "DIFFER: llama-tokenize has more tokens (from token %zu)", i);
            else snprintf(msg, msg_len, "DIFFER at token %zu: fqlm %d, llama-tokenize %ld", i, ids[i], v);
            verdict = 0;
        }
        i++;
        p = q;
        if (p < end && *p == ',') p++;
        while (p < end && *p == ' ') p++;
    }
    if (p == end) goto bad;
    *n_llama = i;
    if (verdict == 1 && i < n) {
        snprintf(msg, msg_len, "DIFFER: llama-tokenize stops after %zu of %zu tokens", i, n);
        verdict = 0;
    }
    if (verdict == 1) snprintf(msg, msg_len, "equal");
    free(s);
    return verdict;
bad:
    snprintf(msg, msg_len, "llama-tokenize's output is not an id list [1, 2, ...] (at byte %zu)", (size_t)(p - s));
    free(s);
    return -1;
}

int bench_tokenizer(int argc, char **argv) {
    const char *file = NULL;
    const char *models[64];
    int n_models = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: [LLAMA_TOKENIZE=PATH] fqlm bench tokenizer -m VOCAB [-m VOCAB...] [-f FILE]\n\n"
                   "Tokenizes a 1 MB text (or FILE) with each vocabulary (a model or a vocabulary-only\n"
                   "GGUF) and prints tokens per second, one thread, best of 3 runs (no BOS, no\n"
                   "special-token parsing).\n"
                   "With LLAMA_TOKENIZE set to a llama-tokenize program, it also times that and\n"
                   "`fqlm tokenize` alike, each as a process on the same text and vocabulary (--ids\n"
                   "--no-bos, and for llama-tokenize --no-escape --no-parse-special --log-disable):\n"
                   "CPU time (user + system), best of 3 on the text minus best of 3 on a 1-byte text,\n"
                   "so that start-up, loading and reading cancel out and printing the ids stays in\n"
                   "for both. Columns: fqlm's\n"
                   "in-process tokens/s, fqlm's and llama-tokenize's as processes, their ratio, and\n"
                   "whether llama-tokenize's ids equal fqlm's (exit 1 if not).\n");
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "-f")) && i + 1 < argc) {
            if (a[1] == 'f') {
                file = argv[++i];
            } else if (n_models < 64) {
                models[n_models++] = argv[++i];
            } else {
                cli_error("bench tokenizer: at most 64 vocabularies");
                return 2;
            }
        } else {
            cli_error("bench tokenizer: unknown option or missing value '%s'", a);
            return 2;
        }
    }
    if (n_models == 0) {
        cli_error("bench tokenizer: give at least one -m VOCAB");
        return 2;
    }
    fq_err e = {{0}};
    size_t len;
    char *text = file ? fq_read_file(file, &len, &e) : bench_text((size_t)1 << 20);
    if (!text) {
        cli_error("%s", file ? e.msg : "out of memory");
        return 1;
    }
    if (!file) len = strlen(text);
    const char *llama = getenv("LLAMA_TOKENIZE");
    if (llama && !*llama) llama = NULL;
    if (llama && access(llama, X_OK)) {
        cli_error("bench tokenizer: LLAMA_TOKENIZE=%s is not a program that can be run: %s", llama, strerror(errno));
        free(text);
        return 1;
    }
    char in_big[64], in_tiny[64], out_ids[64], out_err[64];
    int nfiles = 0;
    if (llama) {
        if (temp_file(in_big, text, len) == 0) nfiles++;
        if (nfiles == 1 && temp_file(in_tiny, "a", 1) == 0) nfiles++;
        if (nfiles == 2 && temp_file(out_ids, "", 0) == 0) nfiles++;
        if (nfiles == 3 && temp_file(out_err, "", 0) == 0) nfiles++;
        if (nfiles < 4) {
            cli_error("bench tokenizer: cannot write a temporary file for llama-tokenize: %s", strerror(errno));
            if (nfiles > 0) unlink(in_big);
            if (nfiles > 1) unlink(in_tiny);
            if (nfiles > 2) unlink(out_ids);
            free(text);
            return 1;
        }
        printf("%-32s %5s %8s %11s %11s %11s %7s  %s\n", "vocabulary", "MB", "tokens", "fqlm tok/s",
               "fqlm proc", "llama proc", "ratio", "ids");
    } else {
        printf("%-50s %10s %10s %12s\n", "vocabulary", "MB", "tokens", "tokens/s");
    }
    int status = 0;
    for (int k = 0; k < n_models; k++) {
        fq_tokenizer *t;
        if (fq_tokenizer_load_file(&t, models[k], &e)) {
            cli_error("%s", e.msg);
            status = 1;
            continue;
        }
        double best = 0;
        size_t n = 0;
        int32_t *ids = NULL;
        int ok = 1;
        for (int rep = 0; rep < 3; rep++) {
            free(ids);
            int64_t t0 = fq_time_us();
            if (fq_tokenize(t, text, len, false, false, &ids, &n, &e)) {
                cli_error("%s: %s", models[k], e.msg);
                status = 1;
                ids = NULL;
                ok = 0;
                break;
            }
            double s = (double)(fq_time_us() - t0) / 1e6;
            double tps = s > 0 ? (double)n / s : 0;
            if (tps > best) best = tps;
        }
        fq_tokenizer_free(t);
        const char *name = strrchr(models[k], '/');
        name = name ? name + 1 : models[k];
        if (!llama) {
            if (ok) printf("%-50s %10.2f %10zu %12.0f\n", name, (double)len / (1 << 20), n, best);
            free(ids);
            continue;
        }
        if (!ok) continue;
        /* llama-tokenize and `fqlm tokenize`, each as a process, timed alike (process_seconds) */
        char msg[512] = "";
        char *largv[] = {(char *)llama, "-m", (char *)models[k], "-f", NULL, "--ids", "--no-bos", "--no-escape",
                         "--no-parse-special", "--log-disable", NULL};
        char *fargv[] = {"/proc/self/exe", "tokenize", "-m", (char *)models[k], "-f", NULL, "--ids", "--no-bos", NULL};
        double ls = 0, fs = 0;
        int v = process_seconds(largv, 4, models[k], in_big, in_tiny, out_ids, out_err, &ls, msg, sizeof msg);
        size_t nl = 0;
        if (v == 0) v = compare_ids(out_ids, ids, n, &nl, msg, sizeof msg);
        free(ids);
        char fmsg[512] = "";
        int fr = v < 0 ? -1
                       : process_seconds(fargv, 5, models[k], in_big, in_tiny, out_ids, out_err, &fs, fmsg, sizeof fmsg);
        if (v < 0 || fr < 0) {
            cli_error("bench tokenizer: %s", v < 0 ? msg : fmsg);
            status = 1;
            continue;
        }
        if (v == 0) status = 1;
        char c1[32] = "n/a", c2[32] = "n/a", c3[32] = "n/a";
        if (fs > 0) snprintf(c1, sizeof c1, "%.0f", (double)n / fs);
        if (ls > 0) snprintf(c2, sizeof c2, "%.0f", (double)nl / ls);
        if (fs > 0 && ls > 0) snprintf(c3, sizeof c3, "%.2fx", ((double)n / fs) / ((double)nl / ls));
        printf("%-32s %5.2f %8zu %11.0f %11s %11s %7s  %s\n", name, (double)len / (1 << 20), n, best, c1, c2, c3, msg);
        fflush(stdout);
    }
    if (llama) {
        unlink(in_big);
        unlink(in_tiny);
        unlink(out_ids);
        unlink(out_err);
    }
    free(text);
    return status;
}
