/* test_cli_run.c - the fqlm program as a user runs it: `run` output, timings, the report's
 * flags, fake-quant logging, --json, --dump, and sampling that does not depend on -t. */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "testutil.h"

static const char *bin(void) {
    const char *b = getenv("FQLM_BIN");
    return b ? b : "build/fqlm";
}

/* Runs a command line (through sh), stdout and stderr into files; returns the exit status
 * (128 + signal when killed). */
static int sh(const char *args, char **out, char **err) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s >/tmp/fqlm_cli_out.$$ 2>/tmp/fqlm_cli_err.$$; rc=$?; "
                              "mv /tmp/fqlm_cli_out.$$ /tmp/fqlm_cli_out; mv /tmp/fqlm_cli_err.$$ /tmp/fqlm_cli_err; exit $rc",
             bin(), args);
    int st = system(cmd);
    if (out) *out = tu_read("/tmp/fqlm_cli_out", NULL);
    if (err) *err = tu_read("/tmp/fqlm_cli_err", NULL);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

/* Runs bin() with args (NULL-terminated, without the program name) with stdout on a
 * pseudo-terminal; returns what it printed there (malloc'd), or NULL when no pty can be
 * had (the check is then skipped). */
static char *run_on_pty(const char *const *args) {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0 || !ptsname(m)) {
        if (m >= 0) close(m);
        return NULL;
    }
    char slave[256];
    snprintf(slave, sizeof slave, "%s", ptsname(m));
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)bin();
    for (int i = 0; args[i] && n < 31; i++) argv[n++] = (char *)args[i];
    argv[n] = NULL;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int s = open(slave, O_RDWR | O_NOCTTY);
        int nul = open("/dev/null", O_RDWR);
        if (s < 0 || nul < 0) _exit(99);
        dup2(nul, 0), dup2(s, 1), dup2(nul, 2);
        close(m), close(s), close(nul);
        execv(argv[0], argv);
        _exit(98);
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) { /* EIO once the child has closed the terminal */
        ssize_t r = read(m, buf + len, cap - 1 - len);
        if (r <= 0) break;
        len += (size_t)r;
        if (len == cap - 1) break;
    }
    buf[len] = 0;
    int st;
    waitpid(pid, &st, 0);
    close(m);
    return buf;
}

/* Model families on the command line: --list-nodes, the separate K/V cache types, a
 * family-specific --fq rule and one on a node the family lacks. */
static void check_families(void) {
    char *out, *err;
    int rc = sh("run --list-nodes -m tests/data/arch/models/gemma2-l26-e64-f32.gguf", &out, &err);
    CHECK(rc == 0 && out && strstr(out, "gemma2 model") && strstr(out, "attn_post_norm   [T][64]") &&
              strstr(out, "ffn_post_norm") && strstr(out, "inp_scaled       [T][64]            no layer") &&
              strstr(out, "kq_soft_max      [T][4][n_kv]") && !strstr(out, "ffn_silu"),
          "--list-nodes gemma2 (exit %d): %s %s", rc, out ? out : "", err ? err : "");
    free(out), free(err);
    rc = sh("run -m tests/data/arch/models/qwen3-l2-e256-f32.gguf -p 'Once upon a time' -n 3 --temp 0 -t 2 "
            "--cache-type-k f32 --cache-type-v f16 --fq 'Qcur_normed@1=bf16'",
            &out, &err);
    CHECK(rc == 0 && err && strstr(err, "Qcur_normed-1"), "qwen3 with -ctv f16 and a Qcur_normed rule (exit %d): %s", rc,
          err ? err : "");
    free(out), free(err);
    rc = sh("run -m tests/data/arch/models/qwen3-l2-e256-f32.gguf -p hi -n 1 -ctv q4_0", &out, &err);
    CHECK(rc == 2 && err && strstr(err, "unknown cache type 'q4_0'"), "-ctv q4_0 (exit %d): %s", rc, err ? err : "");
    free(out), free(err);
    rc = sh("run -m tests/data/arch/models/olmo2-l2-e256-f32.gguf -p hi -n 1 --fq 'ffn_norm@0=bf16'", &out, &err);
    CHECK(rc == 2 && err && strstr(err, "node 'ffn_norm' does not exist in this olmo2 model") &&
              strstr(err, "Qcur_normed"),
          "olmo2 ffn_norm rule (exit %d): %s", rc, err ? err : "");
    free(out), free(err);
}

int main(void) {
    char *out, *err;
    /* text to a terminal: an escape sequence (here in the prompt echo, the same path as
     * generated text) is shown escaped; to a pipe or file the bytes are kept, as llama.cpp
     * prints them */
    {
        const char *args[] = {"run", "-p", "A\x1b[2JB", "-n", "2", "--temp", "0", "-t", "1", NULL};
        char *tty = run_on_pty(args);
        if (tty) {
            CHECK(strstr(tty, "A\\x1b[2JB") && !strchr(tty, '\x1b'), "run on a terminal: '%s'", tty);
            free(tty);
        } else {
            printf("test_cli_run: no pseudo-terminal: skipping the terminal check\n");
        }
        const char *cargs[] = {"compare", "-p", "A\x1b[2JB", "-n", "2", "--fq", "ffn_norm=bf16", "-t", "1", NULL};
        tty = run_on_pty(cargs);
        if (tty) {
            CHECK(strstr(tty, "baseline    A\\x1b[2JB") && !strchr(tty, '\x1b'), "compare on a terminal: '%s'", tty);
            free(tty);
        }
        int rc = sh("run -p \"$(printf 'A\\033[2JB')\" -n 2 --temp 0 -t 1", &out, &err);
        CHECK(rc == 0 && out && strstr(out, "A\x1b[2JB"), "run to a file keeps the bytes: rc %d '%s'", rc, out);
        free(out), free(err);
    }
    check_families();
    /* the golden greedy continuation, and llama.cpp-style timing lines */
    int rc = sh("run -p 'Once upon a time' -n 64 --temp 0 -t 2", &out, &err);
    CHECK(rc == 0, "run exit %d: %s", rc, err ? err : "");
    CHECK(out && strstr(out, "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."),
          "greedy text: %s", out ? out : "");
    CHECK(err && strstr(err, "prompt eval time =") && strstr(err, "eval time =") && strstr(err, "load time =") &&
              strstr(err, "tokens per second"),
          "timings: %s", err ? err : "");
    free(out), free(err);

    /* the report's flags on the 5-layer model: default = last layer */
    rc = sh("run -p 'What is the capital of France?' -n 30 --seed 42 --fake-quant-ffn-norm bf16 -t 2", &out, &err);
    CHECK(rc == 0, "legacy flags exit %d: %s", rc, err ? err : "");
    CHECK(err && strstr(err, "fake-quant ffn_norm-4 bf16: 1344 elements"), "first-application log line: %s", err ? err : "");
    CHECK(err && strstr(err, "fake-quant report") && strstr(err, "llama.cpp-mirroring"), "report header: %s", err ? err : "");
    CHECK(err && strstr(err, "ffn_norm-4") && !strstr(err, "NEVER FIRED"), "table row: %s", err ? err : "");
    free(out), free(err);
    rc = sh("run -p 'What is the capital of France?' -n 30 --seed 42 --fake-quant-ffn-norm bf16 --fake-quant-layer 21", &out, &err);
    CHECK(rc == 2 && err && strstr(err, "layer 21 out of range: the model has layers 0-4"), "range error rc %d: %s", rc, err);
    free(out), free(err);
    rc = sh("run -p 'Hi' -n 4 --fake-quant-ffn-norm bf16 --fake-quant-layer -1 -t 1", &out, &err);
    CHECK(rc == 0 && err && strstr(err, "fake-quant ffn_norm-0 bf16") && strstr(err, "fake-quant ffn_norm-4 bf16"),
          "all layers: %s", err);
    free(out), free(err);

    /* sampling: same seed, same text for -t 1 and -t 2; another seed differs */
    char *a, *b, *c;
    sh("run -p 'Once upon a time' -n 48 --seed 7 --temp 1.0 -t 1 --fq 'ffn_up@*=fp8_e4m3:round=stochastic'", &a, NULL);
    sh("run -p 'Once upon a time' -n 48 --seed 7 --temp 1.0 -t 2 --fq 'ffn_up@*=fp8_e4m3:round=stochastic'", &b, NULL);
    sh("run -p 'Once upon a time' -n 48 --seed 8 --temp 1.0 -t 2 --fq 'ffn_up@*=fp8_e4m3:round=stochastic'", &c, NULL);
    CHECK(a && b && !strcmp(a, b), "-t 1 and -t 2 differ:\n%s\n%s", a ? a : "", b ? b : "");
    CHECK(a && c && strcmp(a, c) != 0, "seed 7 and 8 gave the same text");
    free(a), free(b), free(c);

    /* --json and --fq-stats */
    unlink("/tmp/fqlm_run.json");
    unlink("/tmp/fqlm_stats.json");
    rc = sh("run -p 'Once upon a time' -n 8 --temp 0 --fq k_cache=fp8_e5m2 --fq-stats /tmp/fqlm_stats.json --json /tmp/fqlm_run.json", &out, &err);
    CHECK(rc == 0, "json run: %s", err);
    char *js = tu_read("/tmp/fqlm_run.json", NULL), *st = tu_read("/tmp/fqlm_stats.json", NULL);
    CHECK(js && strstr(js, "\"prompt_tokens\":[1,403,407,261,378]") && strstr(js, "\"generated_tokens\":[") &&
              strstr(js, "\"eval_tps\""),
          "run json: %s", js ? js : "");
    CHECK(st && strstr(st, "\"node\":\"k_cache\"") && strstr(st, "\"sqnr_db\""), "stats json: %s", st ? st : "");
    free(js), free(st), free(out), free(err);

    /* --dump given twice: both selections are dumped (they accumulate, as --fq rules do) */
    system("rm -rf /tmp/fqlm_dump2 && mkdir -p /tmp/fqlm_dump2");
    rc = sh("run -p 'Once upon a time' -n 2 --temp 0 -t 1 --dump ffn_norm@2 --dump attn_norm@0 --dump-dir /tmp/fqlm_dump2",
            &out, &err);
    {
        struct stat s1, s2;
        CHECK(rc == 0 && stat("/tmp/fqlm_dump2/ffn_norm-2.pos0.value.npy", &s1) == 0 &&
                  stat("/tmp/fqlm_dump2/attn_norm-0.pos0.value.npy", &s2) == 0,
              "two --dump options: rc %d: %s", rc, err ? err : "");
    }
    free(out), free(err);
    system("rm -rf /tmp/fqlm_dump2");

    /* --dump: .npy files before/after and an index */
    system("rm -rf /tmp/fqlm_dump && mkdir -p /tmp/fqlm_dump");
    rc = sh("run -p 'Once upon a time' -n 2 --temp 0 --fq ffn_norm@2=int4 --dump ffn_norm@2 --dump-dir /tmp/fqlm_dump", &out, &err);
    CHECK(rc == 0, "dump run: %s", err);
    size_t nlen;
    char *npy = tu_read("/tmp/fqlm_dump/ffn_norm-2.pos0.before.npy", &nlen);
    char *npy2 = tu_read("/tmp/fqlm_dump/ffn_norm-2.pos0.after.npy", NULL);
    char *idx = tu_read("/tmp/fqlm_dump/index.tsv", NULL);
    CHECK(npy && nlen == 128 + 5 * 64 * 4 && !memcmp(npy, "\x93NUMPY", 6) && memmem(npy, 128, "'shape': (5, 64)", 16),
          "npy header (len %zu)", nlen);
    CHECK(npy && npy2 && memcmp(npy + 128, npy2 + 128, 5 * 64 * 4) != 0, "before and after are the same");
    CHECK(idx && strstr(idx, "ffn_norm-2.pos5.after.npy"), "index: %s", idx ? idx : "");
    free(npy), free(npy2), free(idx), free(out), free(err);

    /* identity format: counts, changes nothing */
    sh("run -p 'Once upon a time' -n 16 --temp 0", &a, NULL);
    sh("run -p 'Once upon a time' -n 16 --temp 0 --fq '*@*=f32'", &b, &err);
    CHECK(a && b && !strcmp(a, b), "f32 rules changed the text");
    CHECK(err && strstr(err, "fake-quant kq_soft_max-4 f32"), "f32 rules logged: %s", err ? err : "");
    free(a), free(b), free(err);

    /* a rule that never fires is reported loudly */
    rc = sh("run -p 'Once upon a time' -n 1 --temp 0 --fq result_norm=bf16 --fq 'weight:output.weight=int8:per_row'", &out, &err);
    CHECK(rc == 0 && err && strstr(err, "fake-quant weight output.weight int8"), "weight rule log: %s", err);
    free(out), free(err);
    /* the report's experiment, as written, on a 22-layer model (TinyLlama's layer count,
     * small widths): logs the application, fills the table, and layer 22 is out of range */
    rc = sh("synth --layers 22 --embd 64 --ff 128 --heads 4 --kv-heads 2 --type q4_0 -o /tmp/fqlm_l22.gguf", &out, &err);
    CHECK(rc == 0, "synth 22 layers: %s", err ? err : "");
    free(out), free(err);
    rc = sh("run -m /tmp/fqlm_l22.gguf -p 'What is the capital of France?' -n 30 --seed 42 "
            "--fake-quant-ffn-norm bf16 --fake-quant-layer 21", &out, &err);
    CHECK(rc == 0 && err && strstr(err, "fake-quant ffn_norm-21 bf16:") && strstr(err, "ffn_norm-21 ") &&
              !strstr(err, "NEVER FIRED") && strstr(err, "eval time ="),
          "report's experiment on 22 layers (rc %d): %s", rc, err ? err : "");
    free(out), free(err);
    rc = sh("run -m /tmp/fqlm_l22.gguf -p 'What is the capital of France?' -n 30 --seed 42 "
            "--fake-quant-ffn-norm bf16 --fake-quant-layer 22", &out, &err);
    CHECK(rc == 2 && err && strstr(err, "layer 22 out of range: the model has layers 0-21"), "range: %s", err ? err : "");
    free(out), free(err);
    unlink("/tmp/fqlm_l22.gguf");
    return TEST_END();
}
