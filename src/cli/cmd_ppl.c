/* cmd_ppl.c - `fqlm ppl`: perplexity of a text as llama-perplexity computes it (chunks of
 * CTX tokens starting with BOS, the second half of each chunk scored), with its error
 * estimate and any fake-quant rules applied. */
#include <math.h>
#include <signal.h>
#include <string.h>

#include "cli.h"
#include "jsonw.h"
#include "metrics.h"
#include "qtypes.h"
#include "score.h"
#include "session.h"
#include "tokenizer.h"

static volatile sig_atomic_t g_interrupted;
static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: fqlm ppl [-m MODEL] -f FILE [-c CTX] [--chunks K] [FAKE-QUANT-OPTIONS] [--json FILE]\n\n"
            "Perplexity as llama-perplexity computes it: the text (BOS first) is cut into chunks of\n"
            "CTX tokens, each chunk's first token is replaced by BOS, and the tokens of the second\n"
            "half of each chunk are scored. Prints the running value per chunk and the final\n"
            "estimate with its error (the uncertainty of the mean negative log-likelihood, times\n"
            "the perplexity). The text must give at least 2 x CTX tokens, and CTX must be at least 3\n"
            "(the scored half, positions CTX/2+1 .. CTX-1, is empty below that).\n"
            "The KV cache is F16 by default here, as llama-perplexity keeps it: with the same text,\n"
            "-c and --chunks the figures match `llama-perplexity -m MODEL -f FILE -c CTX --chunks K`\n"
            "(--cache-type f32 keeps it F32, as run, compare and sweep do by default).\n"
            "A position whose logits hold NaN/Inf has no likelihood: such positions are counted,\n"
            "PPL is then not given (nan, null in --json) and the exit status is 3.\n"
            "  -c, --ctx-size N        tokens per chunk (default 512, at least 3)\n"
            "  --chunks K              score the first K chunks only\n"
            "  --json FILE             write ppl, ppl_err, chunks, ctx, tokens, per-chunk values\n");
    cli_opts_help(f);
}

int cmd_ppl(int argc, char **argv) {
    cli_opts o;
    cli_opts_defaults(&o);
    o.cache_type = FQ_TYPE_F16; /* llama-perplexity's default; --cache-type overrides it */
    int max_chunks = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--chunks")) {
            long long v;
            if (i + 1 >= argc) {
                cli_error("option --chunks needs a value");
                return 2;
            }
            if (cli_parse_int("--chunks", argv[++i], 1, 1 << 30, &v)) return 2;
            max_chunks = (int)v;
            continue;
        }
        int r = cli_opts_parse(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r == 0) {
            cli_error("ppl: unknown option '%s' (see fqlm ppl --help)", argv[i]);
            return 2;
        }
    }
    if (!o.prompt_file && !o.prompt) {
        cli_error("no text: give one with -f FILE");
        return 2;
    }
    if (o.n_ctx == 0) o.n_ctx = 512;
    if (o.n_ctx < 3) {
        cli_error("-c %d is too short for ppl: each chunk's second half (positions CTX/2+1 .. CTX-1) is scored, "
                  "which is empty below -c 3 (use -c 3 or more; llama-perplexity's default is 512)", o.n_ctx);
        return 2;
    }
    int64_t t_start = fq_time_us();
    cli_session s;
    int rc = cli_session_open(&s, &o, 1);
    if (rc) return rc;
    const fq_model *m = s.m;
    const int V = m->hp.n_vocab, n_ctx = o.n_ctx;
    int32_t *toks = NULL, *chunk = NULL;
    size_t n = 0;
    float *logits = NULL;
    double *running = NULL;
    fq_err e;
    rc = cli_prompt_tokens(&o, m, &toks, &n);
    if (rc) goto done;
    if (n < (size_t)2 * n_ctx) {
        cli_error("you need at least %d tokens to evaluate perplexity with a context of %d; %s gives only %zu "
                  "(lower -c)", 2 * n_ctx, n_ctx, o.prompt_file ? o.prompt_file : "the prompt", n);
        rc = 2;
        goto done;
    }
    int n_chunk = (int)(n / (size_t)n_ctx);
    if (max_chunks > 0 && max_chunks < n_chunk) n_chunk = max_chunks;
    const int first = n_ctx / 2;
    const int add_bos = fq_tokenizer_adds_bos(m->tok);
    rc = 1;
    logits = fq_malloc((size_t)n_ctx * V * sizeof(float), &e);
    chunk = logits ? fq_malloc((size_t)n_ctx * sizeof(int32_t), &e) : NULL;
    running = chunk ? fq_malloc((size_t)n_chunk * sizeof(double), &e) : NULL;
    if (!running) {
        cli_error("%s", e.msg);
        goto done;
    }
    fprintf(stderr, "fqlm: ppl %s: %zu tokens; %d chunks of %d tokens, positions %d..%d of each scored; %d threads; "
                    "%s arithmetic; KV cache %s\n",
            o.prompt_file ? o.prompt_file : "prompt", n, n_chunk, n_ctx, first + 1, n_ctx - 1, o.n_threads,
            o.exact ? "exact (F32 activations)" : "llama.cpp-mirroring", o.cache_type == FQ_TYPE_F16 ? "f16" : "f32");
    g_interrupted = 0;
    struct sigaction sa = {0}, old_sa;
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old_sa);
    fq_ppl acc = {0};
    cli_nonfinite nf = {0};
    int64_t n_bad = 0;
    int done_chunks = 0;
    int64_t t_eval = fq_time_us();
    for (int k = 0; k < n_chunk && !g_interrupted; k++) {
        const int32_t *src = toks + (size_t)k * n_ctx;
        memcpy(chunk, src, (size_t)n_ctx * sizeof(int32_t));
        if (add_bos) chunk[0] = fq_tokenizer_bos(m->tok);
        int64_t tc = fq_time_us();
        if (fq_ctx_eval(s.ctx, chunk, n_ctx, 0, logits, 1, &e)) {
            cli_error("%s", e.msg);
            goto restore;
        }
        if (k == 0) {
            double sec = (fq_time_us() - tc) / 1e6;
            fprintf(stderr, "fqlm: %.2f seconds per pass - ETA %.2f minutes\n", sec, sec * n_chunk / 60.0);
        }
        cli_nonfinite_check(&nf, &s, &o, 1, logits + (size_t)first * V, n_ctx - 1 - first, V, first, chunk, n_ctx,
                            NULL, 0);
        for (int j = first; j < n_ctx - 1; j++) {
            const double nll = fq_nll(logits + (size_t)j * V, V, src[j + 1]);
            if (isnan(nll)) n_bad++; /* NaN/Inf logits: no likelihood, counted */
            else fq_ppl_add(&acc, nll);
        }
        running[k] = n_bad ? NAN : fq_ppl_value(&acc);
        done_chunks++;
        printf("[%d]%.4f,", k + 1, running[k]);
        fflush(stdout);
    }
    printf("\n");
    fflush(stdout);
    const double ppl = n_bad ? NAN : fq_ppl_value(&acc), err = n_bad ? NAN : fq_ppl_error(&acc);
    if (g_interrupted) fprintf(stderr, "fqlm: interrupted after %d of %d chunks\n", done_chunks, n_chunk);
    printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, err);
    if (n_bad)
        printf("NOT VALID: %lld of %lld scored positions have NaN/Inf logits (no likelihood), so no perplexity is "
               "given\n", (long long)n_bad, (long long)(acc.n + n_bad));
    fprintf(stderr, "fqlm: %lld tokens scored%s in %.2f s (%.1f tok/s evaluated)\n", (long long)acc.n,
            n_bad ? " (and some with NaN/Inf logits, not scored)" : "",
            (fq_time_us() - t_eval) / 1e6, done_chunks * (double)n_ctx / ((fq_time_us() - t_eval) / 1e6 + 1e-9));
    if (s.fq) fq_fakequant_report(s.fq, stderr, o.exact);
    rc = 0;
    if (o.json) {
        jsonw w;
        jsonw_init(&w);
        jsonw_obj_begin(&w);
        jsonw_key(&w, "file"); jsonw_str(&w, o.prompt_file ? o.prompt_file : "");
        jsonw_key(&w, "model"); jsonw_str(&w, o.model ? o.model : cli_default_model());
        jsonw_key(&w, "arithmetic"); jsonw_str(&w, o.exact ? "exact" : "llama.cpp");
        jsonw_key(&w, "tokens"); jsonw_int(&w, (long long)n);
        jsonw_key(&w, "ctx"); jsonw_int(&w, n_ctx);
        jsonw_key(&w, "chunks"); jsonw_int(&w, done_chunks);
        jsonw_key(&w, "kv_cache"); jsonw_str(&w, o.cache_type == FQ_TYPE_F16 ? "f16" : "f32");
        jsonw_key(&w, "scored"); jsonw_int(&w, acc.n + n_bad);
        jsonw_key(&w, "nonfinite_positions"); jsonw_int(&w, n_bad);
        jsonw_key(&w, "valid"); jsonw_bool(&w, n_bad == 0);
        char buf[40];
        jsonw_key(&w, "ppl");
        snprintf(buf, sizeof buf, "%.17g", ppl);
        if (isfinite(ppl)) jsonw_raw(&w, buf);
        else jsonw_null(&w);
        jsonw_key(&w, "ppl_err"); jsonw_num(&w, err);
        jsonw_key(&w, "nll_mean"); jsonw_num(&w, acc.n && !n_bad ? acc.sum_nll / (double)acc.n : NAN);
        jsonw_key(&w, "per_chunk");
        jsonw_arr_begin(&w);
        for (int k = 0; k < done_chunks; k++) jsonw_num(&w, running[k]);
        jsonw_arr_end(&w);
        jsonw_key(&w, "interrupted"); jsonw_bool(&w, g_interrupted != 0);
        if (s.fq) {
            char *js = fq_fakequant_json(s.fq, o.exact);
            jsonw_key(&w, "fake_quant");
            jsonw_raw(&w, js ? js : "null");
            free(js);
        }
        jsonw_obj_end(&w);
        if (jsonw_write_file(&w, o.json, &e)) {
            cli_error("--json: %s", e.msg);
            rc = 1;
        }
        jsonw_free(&w);
    }
    if (cli_fq_outputs(s.fq, &o)) rc = 1;
    if (n_bad && !rc) rc = CLI_EXIT_NONFINITE;
    (void)t_start;
    if (g_interrupted) rc = 130;
restore:
    sigaction(SIGINT, &old_sa, NULL);
done:
    free(toks);
    free(chunk);
    free(logits);
    free(running);
    cli_session_close(&s);
    return rc;
}
