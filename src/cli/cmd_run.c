/* cmd_run.c - `fqlm run`: generate text, streaming it, with llama.cpp-style timings. */
#include <signal.h>
#include <string.h>

#include "cli.h"
#include "jsonw.h"
#include "sampler.h"
#include "session.h"
#include "tokenizer.h"

static volatile sig_atomic_t g_interrupted;
static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static void usage(FILE *f) {
    fprintf(f, "usage: fqlm run [-m MODEL] (-p PROMPT | -f FILE) [-n N] [options]\n\n"
               "Generates text from a prompt and prints llama.cpp-style timings.\n"
               "  -n, --n-predict N       tokens to generate (default -1: until EOS or the\n"
               "                          context is full)\n"
               "  --chat [-sys TEXT]      wrap the prompt in the model's chat template\n"
               "  --chat-template NAME    use this template kind (zephyr, llama2, chatml)\n"
               "  --json FILE             write prompt tokens, generated tokens, text, timings\n"
               "  --list-nodes            print the model's node names (for --fq, --dump, sweep)\n"
               "                          with their shapes, then exit\n");
    cli_opts_help(f);
}

typedef struct {
    double load_ms, prompt_ms, eval_ms, sample_ms, total_ms;
    int n_prompt, n_eval, n_sample;
} run_timings;

static void print_timings(FILE *f, const run_timings *t) {
    fprintf(f, "\nfqlm_perf:      sampling time = %10.2f ms / %5d runs   (%8.2f ms per token, %8.2f tokens per second)\n",
            t->sample_ms, t->n_sample, t->n_sample ? t->sample_ms / t->n_sample : 0.0,
            t->sample_ms > 0 ? 1e3 * t->n_sample / t->sample_ms : 0.0);
    fprintf(f, "fqlm_perf:          load time = %10.2f ms\n", t->load_ms);
    fprintf(f, "fqlm_perf:   prompt eval time = %10.2f ms / %5d tokens (%8.2f ms per token, %8.2f tokens per second)\n",
            t->prompt_ms, t->n_prompt, t->n_prompt ? t->prompt_ms / t->n_prompt : 0.0,
            t->prompt_ms > 0 ? 1e3 * t->n_prompt / t->prompt_ms : 0.0);
    fprintf(f, "fqlm_perf:          eval time = %10.2f ms / %5d runs   (%8.2f ms per token, %8.2f tokens per second)\n",
            t->eval_ms, t->n_eval, t->n_eval ? t->eval_ms / t->n_eval : 0.0,
            t->eval_ms > 0 ? 1e3 * t->n_eval / t->eval_ms : 0.0);
    fprintf(f, "fqlm_perf:         total time = %10.2f ms / %5d tokens\n", t->total_ms,
            t->n_prompt + t->n_eval);
}

static int write_json(const char *path, const int32_t *ptoks, size_t np, const int32_t *gen, int ng,
                      const char *text, size_t text_len, const run_timings *t, const fq_fakequant *fq,
                      int exact) {
    jsonw w;
    jsonw_init(&w);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "prompt_tokens");
    jsonw_arr_begin(&w);
    for (size_t i = 0; i < np; i++) jsonw_int(&w, ptoks[i]);
    jsonw_arr_end(&w);
    jsonw_key(&w, "generated_tokens");
    jsonw_arr_begin(&w);
    for (int i = 0; i < ng; i++) jsonw_int(&w, gen[i]);
    jsonw_arr_end(&w);
    jsonw_key(&w, "text");
    jsonw_strn(&w, text, text_len);
    jsonw_key(&w, "timings");
    jsonw_obj_begin(&w);
    jsonw_key(&w, "load_ms"); jsonw_num(&w, t->load_ms);
    jsonw_key(&w, "prompt_ms"); jsonw_num(&w, t->prompt_ms);
    jsonw_key(&w, "prompt_tokens"); jsonw_int(&w, t->n_prompt);
    jsonw_key(&w, "prompt_tps"); jsonw_num(&w, t->prompt_ms > 0 ? 1e3 * t->n_prompt / t->prompt_ms : 0);
    jsonw_key(&w, "eval_ms"); jsonw_num(&w, t->eval_ms);
    jsonw_key(&w, "eval_tokens"); jsonw_int(&w, t->n_eval);
    jsonw_key(&w, "eval_tps"); jsonw_num(&w, t->eval_ms > 0 ? 1e3 * t->n_eval / t->eval_ms : 0);
    jsonw_key(&w, "sample_ms"); jsonw_num(&w, t->sample_ms);
    jsonw_key(&w, "total_ms"); jsonw_num(&w, t->total_ms);
    jsonw_obj_end(&w);
    if (fq) {
        char *nodes = fq_fakequant_json(fq, exact);
        jsonw_key(&w, "fake_quant");
        jsonw_raw(&w, nodes ? nodes : "null");
        free(nodes);
    }
    jsonw_obj_end(&w);
    fq_err e;
    int rc = jsonw_write_file(&w, path, &e);
    if (rc) cli_error("%s", e.msg);
    jsonw_free(&w);
    return rc;
}

/* --list-nodes: the loaded model's nodes in graph order with their shapes per token. */
static int print_nodes(const cli_opts *o) {
    fq_err e;
    fq_model *m = fq_model_load(o->model ? o->model : cli_default_model(), &e);
    if (!m) {
        cli_error("%s", e.msg);
        return 1;
    }
    const fq_hparams *hp = &m->hp;
    printf("# %s model (%s): %d layers; shapes per token, T = tokens of a step, n_kv = cached positions\n",
           m->arch->name, m->arch->reference, hp->n_layer);
    int order[FQ_NODE_COUNT];
    const int n = fq_node_order(m, order);
    for (int i = 0; i < n; i++) {
        const int node = order[i];
        char shape[64];
        if (node == FQ_NODE_KQ || node == FQ_NODE_KQ_SOFT_MAX)
            snprintf(shape, sizeof shape, "[T][%d][n_kv]", hp->n_head);
        else
            snprintf(shape, sizeof shape, "[T][%lld]", (long long)fq_node_cols(m, node));
        if (fq_node_has_layer(node)) printf("%-16s %-18s layers 0-%d\n", fq_node_name(node), shape, hp->n_layer - 1);
        else printf("%-16s %-18s no layer\n", fq_node_name(node), shape);
    }
    fq_model_free(m);
    return 0;
}

int cmd_run(int argc, char **argv) {
    cli_opts o;
    cli_opts_defaults(&o);
    int list_nodes = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--list-nodes")) {
            list_nodes = 1;
            continue;
        }
        int r = cli_opts_parse(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r == 0) {
            cli_error("run: unknown option '%s' (see fqlm run --help)", argv[i]);
            return 2;
        }
    }
    if (list_nodes) return print_nodes(&o);
    int64_t t_start = fq_time_us();
    cli_session s;
    int rc = cli_session_open(&s, &o, 1);
    if (rc) return rc;
    run_timings tm = {0};
    tm.load_ms = (fq_time_us() - t_start) / 1e3;
    int32_t *ptoks = NULL, *gen = NULL;
    size_t np = 0;
    char *text = NULL;
    size_t text_len = 0, text_cap = 0;
    float *logits = NULL;
    fq_sampler *smp = NULL;
    fq_err e;
    rc = cli_prompt_tokens(&o, s.m, &ptoks, &np);
    if (rc) goto done;
    rc = 1;
    if (np == 0) {
        cli_error("the prompt gives no tokens (the model adds no BOS): nothing to start from");
        rc = 2;
        goto done;
    }
    if (np > (size_t)s.n_ctx) {
        cli_error("the prompt has %zu tokens but the context holds %d (raise -c)", np, s.n_ctx);
        rc = 2;
        goto done;
    }
    int n_predict = o.n_predict;
    if (n_predict < 0) n_predict = s.n_ctx - (int)np;
    if ((long long)np + n_predict > s.n_ctx) {
        cli_error("the prompt (%zu tokens) and -n %d need %lld positions, the context holds %d "
                  "(raise -c or lower -n)",
                  np, n_predict, (long long)np + n_predict, s.n_ctx);
        rc = 2;
        goto done;
    }
    const int V = s.m->hp.n_vocab;
    logits = fq_malloc((size_t)V * sizeof(float), &e);
    gen = fq_malloc((size_t)(n_predict + 1) * sizeof(int32_t), &e);
    smp = fq_sampler_new(&o.sp, V, &e);
    if (!logits || !gen || !smp) {
        cli_error("%s", e.msg);
        rc = o.sp.top_p > 0 ? 2 : 1;
        goto done;
    }
    fprintf(stderr, "fqlm: model %s: %d layers, n_embd %d, n_vocab %d; context %d; %d threads; "
                    "%s arithmetic; seed %llu\n",
            o.model ? o.model : cli_default_model(), s.m->hp.n_layer, s.m->hp.n_embd, V, s.n_ctx,
            o.n_threads, o.exact ? "exact (F32 activations)" : "llama.cpp-mirroring",
            (unsigned long long)o.sp.seed);
    /* echo the prompt as llama.cpp does */
    {
        char *ptxt;
        size_t plen;
        if (fq_detokenize(s.m->tok, ptoks, np, false, &ptxt, &plen, &e) == 0) {
            fwrite(ptxt, 1, plen, stdout);
            free(ptxt);
        }
        fflush(stdout);
    }
    for (size_t i = 0; i < np; i++) fq_sampler_accept(smp, ptoks[i]);
    g_interrupted = 0;
    struct sigaction sa = {0}, old_sa;
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, &old_sa);
    int64_t t0 = fq_time_us();
    if (fq_ctx_eval(s.ctx, ptoks, (int)np, 0, logits, 0, &e)) {
        cli_error("%s", e.msg);
        goto restore;
    }
    tm.prompt_ms = (fq_time_us() - t0) / 1e3;
    tm.n_prompt = (int)np;
    fq_detok dt;
    fq_detok_init(&dt, s.m->tok, false, false);
    char *piece = fq_malloc(fq_tokenizer_max_piece(s.m->tok) + 8, &e);
    if (!piece) {
        cli_error("%s", e.msg);
        goto restore;
    }
    int ng = 0, pos = (int)np;
    while (ng < n_predict && !g_interrupted) {
        int64_t ts = fq_time_us();
        int tok = fq_sampler_sample(smp, logits);
        fq_sampler_accept(smp, tok);
        tm.sample_ms += (fq_time_us() - ts) / 1e3;
        tm.n_sample++;
        gen[ng++] = tok;
        if (fq_tokenizer_is_eog(s.m->tok, tok)) break;
        int n = fq_detok_push(&dt, tok, piece, &e);
        if (n > 0) {
            fwrite(piece, 1, (size_t)n, stdout);
            fflush(stdout);
            if (text_len + (size_t)n + 1 > text_cap) {
                text_cap = (text_len + (size_t)n + 1) * 2;
                text = realloc(text, text_cap);
            }
            memcpy(text + text_len, piece, (size_t)n);
            text_len += (size_t)n;
        }
        if (ng == n_predict) break;
        int64_t te = fq_time_us();
        if (fq_ctx_eval(s.ctx, &gen[ng - 1], 1, pos, logits, 0, &e)) {
            cli_error("%s", e.msg);
            free(piece);
            goto restore;
        }
        pos++;
        tm.eval_ms += (fq_time_us() - te) / 1e3;
        tm.n_eval++;
    }
    {
        size_t n = fq_detok_flush(&dt, piece);
        if (n) {
            fwrite(piece, 1, n, stdout);
            if (text_len + n + 1 > text_cap) {
                text_cap = text_len + n + 1;
                text = realloc(text, text_cap);
            }
            memcpy(text + text_len, piece, n);
            text_len += n;
        }
    }
    free(piece);
    fputc('\n', stdout);
    fflush(stdout);
    if (g_interrupted) fprintf(stderr, "\nfqlm: interrupted after %d tokens\n", ng);
    tm.total_ms = (fq_time_us() - t_start) / 1e3;
    print_timings(stderr, &tm);
    int never = 0;
    if (s.fq) never = fq_fakequant_report(s.fq, stderr, o.exact);
    rc = 0;
    if (cli_fq_outputs(s.fq, &o)) rc = 1;
    if (o.json && write_json(o.json, ptoks, np, gen, ng, text ? text : "", text_len, &tm, s.fq, o.exact))
        rc = 1;
    (void)never;
    if (g_interrupted) rc = 130;
restore:
    sigaction(SIGINT, &old_sa, NULL);
done:
    fq_sampler_free(smp);
    free(logits);
    free(gen);
    free(ptoks);
    free(text);
    cli_session_close(&s);
    return rc;
}
