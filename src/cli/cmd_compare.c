/* cmd_compare.c - `fqlm compare`: the baseline and a fake-quant configuration on the same
 * input: generation side by side, exact distribution metrics, timings of both runs and
 * the per-node error table. */
#include <math.h>
#include <string.h>

#include "cli.h"
#include "jsonw.h"
#include "metrics.h"
#include "qtypes.h"
#include "report.h"
#include "sampler.h"
#include "score.h"
#include "session.h"
#include "tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: fqlm compare [-m MODEL] (-p PROMPT | -f FILE) FAKE-QUANT-OPTIONS [-n N] [--seed S]\n"
            "                    [-c CTX] [--chunks K] [--seeds K] [--json FILE] [--report FILE.md]\n\n"
            "Runs the baseline and the fake-quant configuration on the same input and reports:\n"
            "  1. with -p and -n: both generated texts (same seed and sampling) and the first\n"
            "     generated token where they part, or \"identical\";\n"
            "  2. teacher-forced distribution metrics over the prompt and the baseline's\n"
            "     continuation, or over FILE cut into chunks of CTX tokens (every position of\n"
            "     each chunk scored): mean KL(base||fq) with its standard error, median, p90,\n"
            "     p99, max; top-1 agreement; perplexity of both runs and their ratio; the change\n"
            "     in probability of the actual next token. Double precision from F32 logits;\n"
            "  3. timings of both runs; 4. the per-node error table of the fake-quant run.\n"
            "Example (the report's experiment):\n"
            "  fqlm compare --fake-quant-ffn-norm bf16 -p \"What is the capital of France?\" -n 30 --seed 42\n\n"
            "  -n, --n-predict N       tokens to generate (with -p; default 0: score the prompt only)\n"
            "  -c, --ctx-size N        with -f: tokens per chunk (default 512); with -p: the context\n"
            "  --chunks K              with -f: score the first K chunks only\n"
            "  --json FILE             write every figure as JSON (mean_kld, kld_stderr, kld_p99,\n"
            "                          max_kld, top1_agree, ppl_base, ppl_fq, first_diff_token,\n"
            "                          timings, nodes, ...)\n"
            "  --report FILE.md        write the report as Markdown\n"
            "  --seeds K               with stochastic rounding (round=stochastic): score the configuration\n"
            "                          K times, seeds S, S+1, ..., S+K-1 (S: --seed), and report the mean and\n"
            "                          the sample standard deviation of each figure over the K runs (--json:\n"
            "                          \"seeds\"); the single-run figures are seed S's. A configuration without\n"
            "                          stochastic rounding gives the same figures for every seed: run once\n"
            "A weight rule changes only the fake-quant run's copy of the model (it is loaded twice).\n"
            "The KV cache is F32 unless --cache-type f16 (llama.cpp's tools keep it F16); the header says which.\n"
            "Positions whose logits hold NaN/Inf are counted and reported; they have no KL, top-1 or p(next)\n"
            "figure, so those figures are not given (nan, null in --json) and the exit status is 3.\n");
    cli_opts_help(f);
}

/* A piece of text for display: one token, control tokens shown as their text. */
static char *token_text(const fq_tokenizer *t, int32_t id) {
    size_t n;
    const char *p = fq_token_to_piece(t, id, true, &n);
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, p, n);
    s[n] = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\n') s[i] = ' ';
    return s;
}

/* Prompt + generated tokens as one text (EOS and other control tokens give nothing). */
static char *seq_text(const fq_tokenizer *t, const int32_t *p, size_t np, const int32_t *g, int ng) {
    int32_t *all = malloc((np + (size_t)ng + 1) * sizeof(int32_t));
    if (!all) return NULL;
    memcpy(all, p, np * sizeof(int32_t));
    if (ng) memcpy(all + np, g, (size_t)ng * sizeof(int32_t));
    char *out = NULL;
    size_t len;
    fq_err e;
    if (fq_detokenize(t, all, np + (size_t)ng, false, &out, &len, &e)) out = NULL;
    free(all);
    if (out) {
        for (size_t i = 0; i < len; i++)
            if (out[i] == '\n' || out[i] == '\r' || out[i] == 0) out[i] = ' ';
        /* BOS + U+2581 "What" reads " What": drop the leading space for display */
        size_t lead = 0;
        while (lead < len && out[lead] == ' ') lead++;
        memmove(out, out + lead, len - lead + 1);
    }
    return out;
}

/* Evaluates the prompt and samples up to n tokens (stops after an end-of-generation
 * token). gen holds n ids; *ng the count. Timings into t. 0, or -1 with e set. */
static int generate(cli_session *s, const cli_opts *o, int with_rules, cli_nonfinite *nf, const int32_t *ptoks,
                    size_t np, int n, int32_t *gen, int *ng, report_timing *t, fq_err *e) {
    const int V = s->m->hp.n_vocab;
    float *logits = fq_malloc((size_t)V * sizeof(float), e);
    fq_sampler *smp = logits ? fq_sampler_new(&o->sp, V, e) : NULL;
    int rc = -1;
    *ng = 0;
    if (!smp) goto out;
    for (size_t i = 0; i < np; i++) fq_sampler_accept(smp, ptoks[i]);
    int64_t t0 = fq_time_us();
    if (fq_ctx_eval(s->ctx, ptoks, (int)np, 0, logits, 0, e)) goto out;
    t->prompt_ms = (fq_time_us() - t0) / 1e3;
    t->n_prompt = (int)np;
    int pos = (int)np;
    while (*ng < n) {
        cli_nonfinite_check(nf, s, o, with_rules, logits, 1, V, pos - 1, ptoks, (int)np, gen, *ng);
        int tok = fq_sampler_sample(smp, logits);
        if (tok < 0) {
            fprintf(stderr, "fqlm: %s generation stopped after %d tokens: every logit after position %d is NaN or "
                            "-Inf, nothing to draw\n", nf->what, *ng, pos - 1);
            break;
        }
        fq_sampler_accept(smp, tok);
        gen[(*ng)++] = tok;
        if (fq_tokenizer_is_eog(s->m->tok, tok) || *ng == n) break;
        int64_t te = fq_time_us();
        if (fq_ctx_eval(s->ctx, &tok, 1, pos++, logits, 0, e)) goto out;
        t->eval_ms += (fq_time_us() - te) / 1e3;
        t->n_eval++;
    }
    rc = 0;
out:
    fq_sampler_free(smp);
    free(logits);
    return rc;
}

static void jnum(jsonw *w, const char *key, double v) {
    jsonw_key(w, key);
    jsonw_num17(w, v);
}

static void json_timing(jsonw *w, const char *key, const report_timing *t) {
    jsonw_key(w, key);
    jsonw_obj_begin(w);
    jnum(w, "load_ms", t->load_ms);
    jnum(w, "prompt_ms", t->prompt_ms);
    jsonw_key(w, "prompt_tokens"); jsonw_int(w, t->n_prompt);
    jnum(w, "prompt_tps", t->prompt_ms > 0 ? 1e3 * t->n_prompt / t->prompt_ms : 0);
    jnum(w, "eval_ms", t->eval_ms);
    jsonw_key(w, "eval_tokens"); jsonw_int(w, t->n_eval);
    jnum(w, "eval_tps", t->eval_ms > 0 ? 1e3 * t->n_eval / t->eval_ms : 0);
    jnum(w, "score_ms", t->score_ms);
    jsonw_key(w, "score_tokens"); jsonw_int(w, t->n_score);
    jnum(w, "total_ms", t->total_ms);
    jsonw_obj_end(w);
}

/* ---- --seeds: a stochastic configuration scored with K seeds -------------------------------- */

#define N_SEED_FIGS 7
static const char *const SEED_FIG[N_SEED_FIGS] = {"mean_kld", "kld_median", "kld_p99", "max_kld",
                                                  "top1_agree", "ppl_fq", "ppl_ratio"};

typedef struct {
    int n;                          /* runs: K, or 1 without stochastic rounding */
    int asked;                      /* --seeds K as given */
    int stochastic;
    unsigned long long first;       /* seed of run 0 (--seed) */
    double (*v)[N_SEED_FIGS];       /* [n] */
    double mean[N_SEED_FIGS], sd[N_SEED_FIGS];
} seed_figs;

static void seed_put(seed_figs *sf, int k, const fq_metrics_summary *m) {
    const double x[N_SEED_FIGS] = {m->mean_kld, m->kld_median, m->kld_p99, m->max_kld,
                                   m->top1_agree, m->ppl_fq, m->ppl_ratio};
    memcpy(sf->v[k], x, sizeof x);
}

static void seed_stats(seed_figs *sf) {
    double col[1000];
    for (int i = 0; i < N_SEED_FIGS; i++) {
        for (int k = 0; k < sf->n; k++) col[k] = sf->v[k][i];
        cli_mean_sd(col, sf->n, &sf->mean[i], &sf->sd[i]);
    }
}

/* The configuration with another seed on a session of its own (weight rules rounded again
 * with that seed), scored on the same chunks against the baseline. 0, or 1 after printing. */
static int score_seed(cli_session *sb, const cli_opts *o, uint64_t seed, cli_chunks *ch, float *lb, float *lf,
                      int32_t *next, int V, fq_metrics_summary *out) {
    cli_opts o2 = *o;
    o2.sp.seed = seed;
    o2.dump = NULL;
    o2.fq_stats = NULL;
    o2.json = NULL;
    cli_session s;
    int rc = cli_session_open(&s, &o2, 1);
    if (rc) return 1;
    if (s.fq) fq_fakequant_set_log(s.fq, NULL);
    fq_metrics acc;
    fq_metrics_init(&acc);
    fq_err e;
    rc = 1;
    for (int k = 0; k < ch->n; k++) {
        const int n = cli_chunk_len(ch, k);
        if (fq_ctx_eval(sb->ctx, cli_chunk_tok(ch, k), n, 0, lb, 1, &e) ||
            fq_ctx_eval(s.ctx, cli_chunk_tok(ch, k), n, 0, lf, 1, &e))
            goto fail;
        cli_chunk_next(ch, k, next);
        if (fq_metrics_add_rows(&acc, lb, lf, n, V, next, fq_ctx_pool(sb->ctx), &e)) goto fail;
    }
    if (fq_metrics_summarize(&acc, out, &e)) goto fail;
    rc = 0;
fail:
    if (rc) cli_error("--seeds, seed %llu: %s", (unsigned long long)seed, e.msg);
    fq_metrics_free(&acc);
    cli_session_close(&s);
    return rc;
}

static void json_seeds(jsonw *w, const seed_figs *sf) {
    jsonw_key(w, "seeds");
    if (!sf->asked) {
        jsonw_null(w);
        return;
    }
    jsonw_obj_begin(w);
    jsonw_key(w, "requested"); jsonw_int(w, sf->asked);
    jsonw_key(w, "runs"); jsonw_int(w, sf->n);
    jsonw_key(w, "stochastic"); jsonw_bool(w, sf->stochastic);
    jsonw_key(w, "first_seed"); jsonw_int(w, (long long)sf->first);
    for (int i = 0; i < N_SEED_FIGS; i++) {
        jsonw_key(w, SEED_FIG[i]);
        jsonw_obj_begin(w);
        jnum(w, "mean", sf->mean[i]);
        jnum(w, "sd", sf->sd[i]);
        jsonw_key(w, "values");
        jsonw_arr_begin(w);
        for (int k = 0; k < sf->n; k++) jsonw_num17(w, sf->v[k][i]);
        jsonw_arr_end(w);
        jsonw_obj_end(w);
    }
    jsonw_obj_end(w);
}

static int write_json(const char *path, const report_compare *r, const cli_opts *o, const int32_t *gb, int ngb,
                      const int32_t *gf, int ngf, const fq_fakequant *fq, const seed_figs *sf) {
    const fq_metrics_summary *m = &r->m;
    jsonw w;
    jsonw_init(&w);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "command"); jsonw_str(&w, r->command);
    jsonw_key(&w, "model"); jsonw_str(&w, r->model);
    jsonw_key(&w, "fake_quant_config"); jsonw_str(&w, r->config);
    jsonw_key(&w, "arithmetic"); jsonw_str(&w, r->exact ? "exact" : "llama.cpp");
    jsonw_key(&w, "kv_cache"); jsonw_str(&w, r->kv_cache);
    jsonw_key(&w, "seed"); jsonw_int(&w, (long long)o->sp.seed);
    jsonw_key(&w, "generation");
    if (r->has_gen) {
        jsonw_obj_begin(&w);
        jsonw_key(&w, "n_predict"); jsonw_int(&w, r->n_predict);
        jnum(&w, "temp", r->temp);
        jsonw_key(&w, "baseline_text"); jsonw_str(&w, r->text_base);
        jsonw_key(&w, "fq_text"); jsonw_str(&w, r->text_fq);
        jsonw_key(&w, "baseline_tokens");
        jsonw_arr_begin(&w);
        for (int i = 0; i < ngb; i++) jsonw_int(&w, gb[i]);
        jsonw_arr_end(&w);
        jsonw_key(&w, "fq_tokens");
        jsonw_arr_begin(&w);
        for (int i = 0; i < ngf; i++) jsonw_int(&w, gf[i]);
        jsonw_arr_end(&w);
        jsonw_key(&w, "identical"); jsonw_bool(&w, r->first_diff < 0);
        jsonw_obj_end(&w);
    } else {
        jsonw_null(&w);
    }
    jsonw_key(&w, "first_diff_token");
    if (r->has_gen && r->first_diff >= 0) jsonw_int(&w, r->first_diff);
    else jsonw_null(&w);
    jsonw_key(&w, "identical");
    if (r->has_gen) jsonw_bool(&w, r->first_diff < 0);
    else jsonw_null(&w);
    jsonw_key(&w, "scored"); jsonw_str(&w, r->scored);
    jsonw_key(&w, "chunks"); jsonw_int(&w, r->n_chunks);
    jsonw_key(&w, "ctx"); jsonw_int(&w, r->ctx);
    jsonw_key(&w, "positions"); jsonw_int(&w, m->n_pos);
    jsonw_key(&w, "scored_positions"); jsonw_int(&w, m->n_scored);
    jsonw_key(&w, "nonfinite_positions"); jsonw_int(&w, m->n_nonfinite);
    jsonw_key(&w, "nonfinite_base"); jsonw_int(&w, m->n_nonfinite_base);
    jsonw_key(&w, "nonfinite_fq"); jsonw_int(&w, m->n_nonfinite_fq);
    jsonw_key(&w, "valid"); jsonw_bool(&w, m->n_nonfinite == 0 && !r->nonfinite_gen);
    jnum(&w, "mean_kld", m->mean_kld);
    jnum(&w, "kld_stderr", m->kld_stderr);
    jnum(&w, "kld_median", m->kld_median);
    jnum(&w, "kld_p90", m->kld_p90);
    jnum(&w, "kld_p95", m->kld_p95);
    jnum(&w, "kld_p99", m->kld_p99);
    jnum(&w, "max_kld", m->max_kld);
    jnum(&w, "top1_agree", m->top1_agree);
    jsonw_key(&w, "top1_count"); jsonw_int(&w, m->n_top1);
    jnum(&w, "ppl_base", m->ppl_base);
    jnum(&w, "ppl_base_err", m->ppl_base_err);
    jnum(&w, "ppl_fq", m->ppl_fq);
    jnum(&w, "ppl_fq_err", m->ppl_fq_err);
    jnum(&w, "ppl_ratio", m->ppl_ratio);
    jnum(&w, "nll_base", m->nll_base);
    jnum(&w, "nll_fq", m->nll_fq);
    jsonw_key(&w, "dp_next");
    jsonw_obj_begin(&w);
    jnum(&w, "mean", m->dp_mean);
    jnum(&w, "min", m->dp_min);
    jnum(&w, "p1", m->dp_p1);
    jnum(&w, "p5", m->dp_p5);
    jnum(&w, "median", m->dp_median);
    jnum(&w, "p95", m->dp_p95);
    jnum(&w, "p99", m->dp_p99);
    jnum(&w, "max", m->dp_max);
    jsonw_obj_end(&w);
    jnum(&w, "max_abs_logit_diff", m->max_abs_logit_diff);
    json_seeds(&w, sf);
    jsonw_key(&w, "timings");
    jsonw_obj_begin(&w);
    json_timing(&w, "baseline", &r->t_base);
    json_timing(&w, "fake_quant", &r->t_fq);
    jsonw_obj_end(&w);
    jsonw_key(&w, "nodes");
    if (fq) {
        fq_fakequant_json_nodes(fq, &w);
    } else {
        jsonw_arr_begin(&w);
        jsonw_arr_end(&w);
    }
    char *fq_js = fq ? fq_fakequant_json(fq, r->exact) : NULL;
    jsonw_key(&w, "fake_quant");
    jsonw_raw(&w, fq_js ? fq_js : "null");
    free(fq_js);
    jsonw_obj_end(&w);
    fq_err e;
    int rc = jsonw_write_file(&w, path, &e);
    if (rc) cli_error("--json: %s", e.msg);
    jsonw_free(&w);
    return rc;
}

/* The rules as text ("ffn_norm@4=bf16 result_output=bf16"). */
static void config_text(rbuf *b, const cli_opts *o, int n_layer) {
    for (int i = 0; i < o->n_rules; i++) rb_printf(b, "%s%s", b->len ? " " : "", o->rules[i]);
    if (o->fq_ffn_norm) {
        const char *L = o->fq_layer;
        char lb[16];
        if (!L) snprintf(lb, sizeof lb, "%d", n_layer - 1), L = lb;
        rb_printf(b, "%sffn_norm@%s=%s", b->len ? " " : "", !strcmp(L, "-1") ? "*" : L, o->fq_ffn_norm);
    }
    if (o->fq_logits) rb_printf(b, "%sresult_output=%s", b->len ? " " : "", o->fq_logits);
    if (o->dump) rb_printf(b, "%s(dump %s)", b->len ? " " : "", o->dump);
    if (o->fq_model) rb_printf(b, "%smodel %s", b->len ? " " : "", o->fq_model);
    if (o->weight_plan) rb_printf(b, "%sweight types of %s", b->len ? " " : "", o->weight_plan);
}

int cmd_compare(int argc, char **argv) {
    cli_opts o;
    cli_opts_defaults(&o);
    const char *report_path = NULL;
    int max_chunks = 0, n_seeds = 1, n_seeds_given = 0;
    seed_figs sd;
    memset(&sd, 0, sizeof sd);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--report") || !strcmp(argv[i], "--chunks") || !strcmp(argv[i], "--seeds")) {
            if (i + 1 >= argc) {
                cli_error("option %s needs a value", argv[i]);
                return 2;
            }
            if (!strcmp(argv[i], "--report")) {
                report_path = argv[++i];
            } else if (!strcmp(argv[i], "--seeds")) {
                long long v;
                if (cli_parse_int("--seeds", argv[++i], 1, 1000, &v)) return 2;
                n_seeds = (int)v;
                n_seeds_given = 1;
            } else {
                long long v;
                if (cli_parse_int("--chunks", argv[++i], 1, 1 << 30, &v)) return 2;
                max_chunks = (int)v;
            }
            continue;
        }
        int r = cli_opts_parse(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r == 0) {
            cli_error("compare: unknown option '%s' (see fqlm compare --help)", argv[i]);
            return 2;
        }
    }
    if (!o.n_rules && !o.fq_ffn_norm && !o.fq_logits && !o.fq_layer && !o.fq_model && !o.weight_plan) {
        cli_error("compare needs a fake-quant configuration: --fq NODES[@LAYERS]=FORMAT, --fq-model FILE, "
                  "--weight-plan FILE, "
                  "--fake-quant-ffn-norm TYPE or --fake-quant TYPE");
        return 2;
    }
    if (!o.prompt && !o.prompt_file) {
        cli_error("no input: give a prompt with -p TEXT or a text to score with -f FILE");
        return 2;
    }
    const int from_file = o.prompt_file != NULL && o.prompt == NULL;
    if (from_file && o.n_predict > 0)
        fprintf(stderr, "fqlm: note: -n is ignored with -f (the file is scored, nothing is generated)\n");
    if (from_file && o.n_ctx == 0) o.n_ctx = 512;
    const int n_predict = from_file ? 0 : FQ_MAX(0, o.n_predict);

    rbuf cmdline, config, md;
    rb_init(&cmdline);
    rb_init(&config);
    rb_init(&md);
    report_command_line(&cmdline, argc, argv);

    cli_session sb, sf;
    memset(&sf, 0, sizeof sf);
    report_compare R;
    memset(&R, 0, sizeof R);
    int64_t t0 = fq_time_us();
    int rc = cli_session_open(&sb, &o, 0);
    if (rc) goto free_bufs;
    R.t_base.load_ms = (fq_time_us() - t0) / 1e3;
    t0 = fq_time_us();
    rc = cli_session_open(&sf, &o, 1);
    if (rc) goto close_base;
    R.t_fq.load_ms = (fq_time_us() - t0) / 1e3;
    if (sf.m->hp.n_vocab != sb.m->hp.n_vocab) {
        cli_error("--fq-model %s has %d tokens in its vocabulary, the model %d: compare needs the same vocabulary",
                  o.fq_model ? o.fq_model : "", sf.m->hp.n_vocab, sb.m->hp.n_vocab);
        rc = 1;
        cli_session_close(&sf);
        goto close_base;
    }

    const fq_model *m = sb.m;
    const int V = m->hp.n_vocab;
    int32_t *ptoks = NULL, *gb = NULL, *gf = NULL;
    size_t np = 0;
    int ngb = 0, ngf = 0;
    char *text_b = NULL, *text_f = NULL, *diff_b = NULL, *diff_f = NULL, *node_table = NULL;
    float *lb = NULL, *lf = NULL;
    int32_t *next = NULL;
    cli_chunks ch;
    memset(&ch, 0, sizeof ch);
    fq_metrics acc;
    fq_metrics_init(&acc);
    fq_err e;
    cli_nonfinite nf_b = {.what = "baseline"}, nf_f = {.what = "fake-quant"};
    rc = cli_prompt_tokens(&o, m, &ptoks, &np);
    if (rc) goto done;
    rc = 2;
    if (np == 0) {
        cli_error("the input gives no tokens");
        goto done;
    }
    config_text(&config, &o, m->hp.n_layer);
    fprintf(stderr, "fqlm: compare %s: %d layers; %d threads; %s arithmetic; KV cache %s; fake-quant %s\n",
            o.model ? o.model : cli_default_model(), m->hp.n_layer, o.n_threads,
            o.exact ? "exact (F32 activations)" : "llama.cpp-mirroring", o.cache_type == FQ_TYPE_F16 ? "f16" : "f32",
            config.s ? config.s : "");

    /* 1. generation */
    if (n_predict > 0) {
        if ((long long)np + n_predict > sb.n_ctx) {
            cli_error("the prompt (%zu tokens) and -n %d need %lld positions, the context holds %d "
                      "(raise -c or lower -n)", np, n_predict, (long long)np + n_predict, sb.n_ctx);
            goto done;
        }
        rc = 1;
        gb = fq_malloc((size_t)n_predict * sizeof(int32_t), &e);
        gf = fq_malloc((size_t)n_predict * sizeof(int32_t), &e);
        if (!gb || !gf || generate(&sb, &o, 0, &nf_b, ptoks, np, n_predict, gb, &ngb, &R.t_base, &e) ||
            generate(&sf, &o, 1, &nf_f, ptoks, np, n_predict, gf, &ngf, &R.t_fq, &e)) {
            cli_error("%s", e.msg);
            goto done;
        }
        R.has_gen = 1;
        R.first_diff = -1;
        for (int i = 0; i < FQ_MAX(ngb, ngf); i++)
            if (i >= ngb || i >= ngf || gb[i] != gf[i]) {
                R.first_diff = i;
                break;
            }
        text_b = seq_text(m->tok, ptoks, np, gb, ngb);
        text_f = seq_text(m->tok, ptoks, np, gf, ngf);
        if (R.first_diff >= 0) {
            diff_b = R.first_diff < ngb ? token_text(m->tok, gb[R.first_diff]) : strdup("(end)");
            diff_f = R.first_diff < ngf ? token_text(m->tok, gf[R.first_diff]) : strdup("(end)");
        }
        if (sf.fq) fq_fakequant_reset_stats(sf.fq);
    }

    /* 2. teacher-forced scoring */
    rc = 1;
    const int32_t bos = fq_tokenizer_adds_bos(m->tok) ? fq_tokenizer_bos(m->tok) : -1;
    char scored[600];
    if (from_file) {
        if (cli_chunks_make(&ch, ptoks, np, o.n_ctx, max_chunks, bos, &e)) {
            cli_error("%s: %s", o.prompt_file, e.msg);
            rc = 2;
            goto done;
        }
        snprintf(scored, sizeof scored, "%s (%zu tokens; %d chunk%s of up to %d tokens, all positions)",
                 o.prompt_file, np, ch.n, ch.n == 1 ? "" : "s", o.n_ctx);
    } else {
        int32_t *seq = fq_malloc((np + (size_t)ngb) * sizeof(int32_t), &e);
        if (!seq) {
            cli_error("%s", e.msg);
            goto done;
        }
        memcpy(seq, ptoks, np * sizeof(int32_t));
        if (ngb) memcpy(seq + np, gb, (size_t)ngb * sizeof(int32_t));
        const size_t ns = np + (size_t)ngb;
        int bad = cli_chunks_make(&ch, seq, ns, (int)FQ_MAX(ns, 2), 1, bos, &e);
        free(seq);
        if (bad) {
            cli_error("%s", e.msg);
            rc = 2;
            goto done;
        }
        if (ngb) snprintf(scored, sizeof scored, "the prompt and the baseline's continuation (%zu + %d tokens)", np, ngb);
        else snprintf(scored, sizeof scored, "the prompt (%zu tokens)", np);
    }
    int max_len = 0;
    for (int k = 0; k < ch.n; k++) max_len = FQ_MAX(max_len, cli_chunk_len(&ch, k));
    lb = fq_malloc((size_t)max_len * V * sizeof(float), &e);
    lf = lb ? fq_malloc((size_t)max_len * V * sizeof(float), &e) : NULL;
    next = lf ? fq_malloc((size_t)max_len * sizeof(int32_t), &e) : NULL;
    if (!next) {
        cli_error("%s", e.msg);
        goto done;
    }
    for (int k = 0; k < ch.n; k++) {
        const int n = cli_chunk_len(&ch, k);
        int64_t ta = fq_time_us();
        if (fq_ctx_eval(sb.ctx, cli_chunk_tok(&ch, k), n, 0, lb, 1, &e)) goto eval_fail;
        int64_t tb = fq_time_us();
        if (fq_ctx_eval(sf.ctx, cli_chunk_tok(&ch, k), n, 0, lf, 1, &e)) goto eval_fail;
        int64_t tc = fq_time_us();
        R.t_base.score_ms += (tb - ta) / 1e3;
        R.t_fq.score_ms += (tc - tb) / 1e3;
        R.t_base.n_score += n;
        R.t_fq.n_score += n;
        cli_chunk_next(&ch, k, next);
        cli_nonfinite_check(&nf_b, &sb, &o, 0, lb, n, V, 0, cli_chunk_tok(&ch, k), n, NULL, 0);
        cli_nonfinite_check(&nf_f, &sf, &o, 1, lf, n, V, 0, cli_chunk_tok(&ch, k), n, NULL, 0);
        if (fq_metrics_add_rows(&acc, lb, lf, n, V, next, fq_ctx_pool(sb.ctx), &e)) goto eval_fail;
        if (ch.n > 1 && o.verbose) fprintf(stderr, "fqlm: scored chunk %d of %d\n", k + 1, ch.n);
    }
    if (fq_metrics_summarize(&acc, &R.m, &e)) goto eval_fail;
    if (n_seeds_given) {
        sd.asked = n_seeds;
        sd.first = (unsigned long long)o.sp.seed;
        sd.stochastic = sf.fq && fq_fakequant_stochastic(sf.fq);
        sd.n = sd.stochastic ? n_seeds : 1;
        if (!(sd.v = calloc((size_t)sd.n, sizeof *sd.v))) {
            cli_error("out of memory");
            goto done;
        }
        seed_put(&sd, 0, &R.m);
        for (int k = 1; k < sd.n; k++) {
            fq_metrics_summary ms;
            if (score_seed(&sb, &o, o.sp.seed + (uint64_t)k, &ch, lb, lf, next, V, &ms)) goto done;
            seed_put(&sd, k, &ms);
            if (o.verbose) fprintf(stderr, "fqlm: --seeds: seed %llu scored\n", (unsigned long long)o.sp.seed + k);
        }
        seed_stats(&sd);
    }
    if (!R.has_gen) {
        /* the scored chunks are the runs' prompt evaluation */
        R.t_base.prompt_ms = R.t_base.score_ms, R.t_base.n_prompt = R.t_base.n_score;
        R.t_fq.prompt_ms = R.t_fq.score_ms, R.t_fq.n_prompt = R.t_fq.n_score;
    }
    {
        report_timing *tt[2] = {&R.t_base, &R.t_fq};
        for (int i = 0; i < 2; i++)
            tt[i]->total_ms = tt[i]->load_ms + tt[i]->prompt_ms + tt[i]->eval_ms + (R.has_gen ? tt[i]->score_ms : 0);
    }

    /* 4. per-node table */
    if (sf.fq) {
        char *buf = NULL;
        size_t blen = 0;
        FILE *mf = open_memstream(&buf, &blen);
        if (mf) {
            fq_fakequant_report(sf.fq, mf, o.exact);
            fclose(mf);
            node_table = buf;
        }
    }

    R.command = cmdline.s ? cmdline.s : "";
    R.model = o.model ? o.model : cli_default_model();
    R.config = config.s ? config.s : "";
    R.exact = o.exact;
    R.kv_cache = o.cache_type == FQ_TYPE_F16 ? "f16" : "f32";
    R.n_layer = m->hp.n_layer;
    R.seed = (unsigned long long)o.sp.seed;
    R.temp = o.sp.temp;
    R.n_predict = n_predict;
    R.text_base = text_b ? text_b : "";
    R.text_fq = text_f ? text_f : "";
    R.n_gen_base = ngb;
    R.n_gen_fq = ngf;
    R.diff_base = diff_b;
    R.diff_fq = diff_f;
    R.scored = scored;
    R.n_chunks = ch.n;
    R.ctx = from_file ? o.n_ctx : sb.n_ctx;
    R.node_table = node_table;
    R.nonfinite_gen = nf_b.rows + nf_f.rows - R.m.n_nonfinite_base - R.m.n_nonfinite_fq;
    report_compare_text(stdout, &R);
    if (sd.asked) {
        if (!sd.stochastic)
            printf("\n--seeds %d: no rule rounds stochastically, every seed gives the figures above (one run)\n",
                   sd.asked);
        else {
            printf("\n--seeds %d (seeds %llu..%llu): mean +- sample sd over the runs\n", sd.n, sd.first,
                   sd.first + (unsigned long long)sd.n - 1);
            for (int i = 0; i < N_SEED_FIGS; i++)
                printf("  %-12s %.6g +- %.3g\n", SEED_FIG[i], sd.mean[i], sd.sd[i]);
        }
    }
    fflush(stdout);
    rc = 0;
    if (o.json && write_json(o.json, &R, &o, gb, ngb, gf, ngf, sf.fq, &sd)) rc = 1;
    if (report_path) {
        report_compare_md(&md, &R);
        if (md.oom || fq_write_file_atomic(report_path, md.s, md.len, &e)) {
            cli_error("--report: %s", md.oom ? "out of memory" : e.msg);
            rc = 1;
        }
    }
    if (cli_fq_outputs(sf.fq, &o)) rc = 1;
    if (nf_b.rows || nf_f.rows) {
        fprintf(stderr, "fqlm: NaN/Inf logits: baseline %lld rows, fake-quant %lld rows (generation and scoring): "
                        "the figures above are not valid (exit status %d)\n",
                (long long)nf_b.rows, (long long)nf_f.rows, CLI_EXIT_NONFINITE);
        if (!rc) rc = CLI_EXIT_NONFINITE;
    }
    goto done;
eval_fail:
    cli_error("%s", e.msg);
    rc = 1;
done:
    free(sd.v);
    fq_metrics_free(&acc);
    cli_chunks_free(&ch);
    free(lb);
    free(lf);
    free(next);
    free(ptoks);
    free(gb);
    free(gf);
    free(text_b);
    free(text_f);
    free(diff_b);
    free(diff_f);
    free(node_table);
    cli_session_close(&sf);
close_base:
    cli_session_close(&sb);
free_bufs:
    rb_free(&cmdline);
    rb_free(&config);
    rb_free(&md);
    return rc;
}
