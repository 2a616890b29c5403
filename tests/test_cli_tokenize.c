/* test_cli_tokenize.c - `fqlm tokenize` on vocabulary-only GGUFs (ids as llama.cpp gives
 * them, --json, --parse-special, usage and file errors), the public fqlm_vocab API, and a
 * gpt2-vocabulary model end to end: synth from the Qwen2 vocabulary, `fqlm run`, `fqlm ppl`. */
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fqlm.h"
#include "harness.h"
#include "testutil.h"

#define VOCAB "tests/data/vocab/ggml-vocab-"

static const char *bin(void) {
    const char *b = getenv("FQLM_BIN");
    return b ? b : "build/fqlm";
}

/* Runs `bin() args` through sh, stdout and stderr into malloc'd strings; returns the exit
 * status. */
static int sh(const char *args, char **out, char **err) {
    char o[64], e[64], cmd[4096];
    snprintf(o, sizeof o, "/tmp/fqlm_tok_out.%d", (int)getpid());
    snprintf(e, sizeof e, "/tmp/fqlm_tok_err.%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s %s >%s 2>%s", bin(), args, o, e);
    int st = system(cmd);
    if (out) *out = tu_read(o, NULL);
    if (err) *err = tu_read(e, NULL);
    unlink(o);
    unlink(e);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

static void expect(const char *args, int want_rc, const char *want_out, const char *want_err) {
    char *out = NULL, *err = NULL;
    int rc = sh(args, &out, &err);
    CHECK(rc == want_rc, "fqlm %s: exit %d, want %d (stderr: %s)", args, rc, want_rc, err ? err : "");
    if (want_out)
        CHECK(out && strstr(out, want_out), "fqlm %s: stdout '%s' lacks '%s'", args, out ? out : "", want_out);
    if (want_err)
        CHECK(err && strstr(err, want_err), "fqlm %s: stderr '%s' lacks '%s'", args, err ? err : "", want_err);
    free(out);
    free(err);
}

static void test_tokenize_cli(void) {
    /* llama.cpp's ids (shared/vocab/cases, "Hello world"): Llama 3 adds BOS, Qwen2 does not */
    expect("tokenize -m " VOCAB "llama-bpe.gguf -p 'Hello world' --ids", 0, "[128000, 9906, 1917]\n", NULL);
    expect("tokenize -m " VOCAB "llama-bpe.gguf -p 'Hello world' --ids --no-bos", 0, "[9906, 1917]\n", NULL);
    expect("tokenize -m " VOCAB "qwen2.gguf -p 'Hello world' --ids", 0, "[9707, 1879]\n", NULL);
    expect("tokenize -m " VOCAB "qwen2.gguf -p 'Hello world' --json", 0,
           "{\"ids\":[9707,1879],\"pieces\":[\"Hello\",\" world\"]}", NULL);
    expect("tokenize -m " VOCAB "qwen2.gguf -p 'a<|im_end|>' --ids --parse-special", 0, "[64, 151645]\n", NULL);
    expect("tokenize -m " VOCAB "gpt-2.gguf -p 'Hello world'", 0, " 15496 -> 'Hello'\n   995 -> ' world'\n", NULL);
    expect("tokenize -m tests/data/models/ggml-vocab-llama-spm.gguf -p 'Hello world' --ids", 0,
           "[1, 15043, 3186]\n", NULL);
    expect("tokenize -p x", 2, NULL, "-m MODEL is required");
    expect("tokenize -m " VOCAB "qwen2.gguf", 2, NULL, "exactly one of -p TEXT and -f FILE");
    expect("tokenize -m " VOCAB "qwen2.gguf -p x --frobnicate", 2, NULL, "unknown option '--frobnicate'");
    expect("tokenize -m /nonexistent.gguf -p x", 1, NULL, "/nonexistent.gguf");
    expect("tokenize -m " VOCAB "qwen2.gguf -f /nonexistent.txt", 1, NULL, "/nonexistent.txt");
    expect("bench tokenizer -m " VOCAB "qwen2.gguf -f tests/data/vocab/ggml-vocab-qwen2.gguf.inp", 0,
           "ggml-vocab-qwen2.gguf", NULL);
}

/* bench tokenizer side by side with llama-tokenize, here a script that checks the options
 * and prints fqlm's own ids (or altered ones, or fails) */
static void test_bench_llama(void) {
    setenv("FQLM_BIN", bin(), 0);
    setenv("LLAMA_TOKENIZE", "tests/data/bin/fake-llama-tokenize", 1);
    const char *args = "bench tokenizer -m " VOCAB "qwen2.gguf -m " VOCAB "gpt-2.gguf -f tests/data/vocab/ggml-vocab-qwen2.gguf.inp";
    char *out = NULL, *err = NULL;
    int rc = sh(args, &out, &err);
    CHECK(rc == 0, "%s: exit %d (%s)", args, rc, err ? err : "");
    /* both rows: name, MB, tokens, in-process speed, two process speeds and their ratio (or
     * n/a where a difference came out <= 0), "equal" */
    int rows = 0;
    for (const char *p = out ? strstr(out, "ggml-vocab-") : NULL; p; p = strstr(p + 1, "ggml-vocab-")) {
        char name[64], l1[32], l2[32], l3[32], verdict[32];
        double mb, f1;
        unsigned long n;
        int k = sscanf(p, "%63s %lf %lu %lf %31s %31s %31s %31s", name, &mb, &n, &f1, l1, l2, l3, verdict);
        CHECK(k == 8 && n > 100 && f1 > 0 && strcmp(verdict, "equal") == 0, "bench row: %.120s", p);
        rows++;
    }
    CHECK(rows == 2 && strstr(out, "llama proc"), "bench with LLAMA_TOKENIZE: %s", out ? out : "");
    free(out);
    free(err);
    setenv("FAKE_LLAMA_MODE", "differ", 1);
    expect(args, 1, "DIFFER at token 1: fqlm ", NULL);
    setenv("FAKE_LLAMA_MODE", "fail", 1);
    expect(args, 1, NULL, "fake-llama-tokenize on " VOCAB "qwen2.gguf exited with 1: error: could not load model");
    unsetenv("FAKE_LLAMA_MODE");
    setenv("LLAMA_TOKENIZE", "/nonexistent/llama-tokenize", 1);
    expect(args, 1, NULL, "LLAMA_TOKENIZE=/nonexistent/llama-tokenize is not a program that can be run");
    unsetenv("LLAMA_TOKENIZE");
}

static void test_vocab_api(void) {
    fqlm_vocab *v = fqlm_vocab_load(VOCAB "llama-bpe.gguf");
    CHECK(v != NULL, "fqlm_vocab_load: %s", fqlm_last_error());
    if (!v) return;
    CHECK(fqlm_vocab_n_tokens(v) == 128256, "n_tokens %d", fqlm_vocab_n_tokens(v));
    int32_t ids[16];
    int n = fqlm_vocab_tokenize(v, "Hello world<|eot_id|>", 21, ids, 16, 1, 1);
    CHECK(n == 4 && ids[0] == 128000 && ids[1] == 9906 && ids[2] == 1917 && ids[3] == 128009,
          "fqlm_vocab_tokenize: %d", n);
    char buf[64];
    int len = fqlm_vocab_detokenize(v, ids + 1, 3, buf, sizeof buf, 1);
    CHECK(len == 21 && strcmp(buf, "Hello world<|eot_id|>") == 0, "detokenize: %d '%s'", len, buf);
    len = fqlm_vocab_detokenize(v, ids + 1, 3, buf, sizeof buf, 0);
    CHECK(len == 11 && strcmp(buf, "Hello world") == 0, "detokenize: %d '%s'", len, buf);
    fqlm_vocab_free(v);
    CHECK(fqlm_vocab_load("tests/data/vocab/qwen2.jsonl") == NULL && *fqlm_last_error(),
          "a non-GGUF file loads");
}

/* A Qwen2-vocabulary model (byte-level BPE, 151936 tokens) generates and scores text. */
static void test_end_to_end(void) {
    char model[64], cmd[512];
    snprintf(model, sizeof model, "/tmp/fqlm_tok_q2_%d.gguf", (int)getpid());
    snprintf(cmd, sizeof cmd,
             "synth --arch qwen2 --layers 2 --embd 32 --ff 64 --heads 2 --type q8_0 --vocab-from "
             VOCAB "qwen2.gguf -o %s", model);
    char *out = NULL, *err = NULL;
    int rc = sh(cmd, &out, &err);
    CHECK(rc == 0, "synth: %s", err ? err : "");
    free(out);
    free(err);
    if (rc) return;
    snprintf(cmd, sizeof cmd, "run -m %s -p 'Hello world, 你好' -n 6 --seed 1", model);
    rc = sh(cmd, &out, &err);
    CHECK(rc == 0 && out && strncmp(out, "Hello world, 你好", 18) == 0, "run: rc %d out '%s' err '%s'", rc,
          out ? out : "", err ? err : "");
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "ppl -m %s -f tests/data/vocab/ggml-vocab-qwen2.gguf.inp -c 64", model);
    rc = sh(cmd, &out, &err);
    const char *fin = out ? strstr(out, "Final estimate: PPL = ") : NULL;
    double ppl = fin ? atof(fin + 22) : NAN;
    /* random weights: near the vocabulary size, far from 1 */
    CHECK(rc == 0 && isfinite(ppl) && ppl > 1000, "ppl: rc %d ppl %g err '%s'", rc, ppl, err ? err : "");
    free(out);
    free(err);
    unlink(model);
}

int main(void) {
    test_tokenize_cli();
    test_bench_llama();
    test_vocab_api();
    test_end_to_end();
    return TEST_END();
}
