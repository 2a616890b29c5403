/* cmd_plan.c - `fqlm plan`: a mixed-precision assignment of number formats to (node, layer)
 * sites that stays within a measured budget (mean KL, top-1 agreement or perplexity ratio).
 *
 * Written on the public API (include/fqlm.h) alone: a baseline context and, per measured
 * configuration, a context with that configuration's rules, scored by fqlm_score_tokens as
 * `fqlm compare -f` scores a text (same chunks, same figures to the last bit).
 *
 * Every figure the plan reports is a measured run of the whole configuration; measurements
 * are appended to DIR/plan.state (one line each, fsync'd) and keyed by the configuration, so
 * a rerun (after Ctrl-C, a crash, or with another budget) replays the search from them
 * without measuring again. DIR/plan.conf records what the numbers depend on (model hash,
 * text, context, chunks, arithmetic, seed); a rerun with others is refused. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "fqlm.h"
#include "jsonw.h"
#include "opts.h"
#include "outdir.h"
#include "qtypes.h"
#include "quantize.h"
#include "report.h"
#include "requant.h"
#include "select.h"
#include "session.h"

#define BASE_BITS 32.0 /* activations are F32 unless a rule rounds them */

/* Ctrl-C / SIGTERM: plan stops when the running measurement ends (it is recorded like every
 * finished one in plan.state) and exits 130; the same command resumes. */
static volatile sig_atomic_t g_interrupted;
static void on_signal(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: fqlm plan [-m MODEL] -f FILE --formats F1,F2,... (--budget-kl X | --budget-top1 P |\n"
            "                 --budget-ppl R | --budget-bits B) [--nodes LIST] [--layers LIST] [--from-sweep DIR]\n"
            "                 [--pairs K] [--seeds K] [-c CTX] [--chunks K] [-t N] -o DIR\n"
            "       fqlm plan --weights [-m MODEL] -f FILE --formats TYPE,TYPE,... (a budget as above |\n"
            "                 --budget-size-of FILE.gguf) [--nodes GLOBS] [--layers LIST] ... -o DIR\n\n"
            "Finds which (node, layer) sites can take which of the formats together while a measured\n"
            "run of the whole configuration stays within the budget, and writes\n"
            "  DIR/plan.json     the assignment [{node, layer, format}], avg_bits, the measured figures\n"
            "                    of the final configuration (mean_kld, kld_p99, top1_agree, ppl_ratio),\n"
            "                    every step of the search, and the interaction table\n"
            "  DIR/rules.txt     one --fq rule per line (a node's layers with one format in one rule:\n"
            "                    ffn_norm@0-2,4=bf16): `fqlm compare -f FILE $(sed 's/^/--fq /' rules.txt)`\n"
            "                    re-measures the plan's figures exactly\n"
            "  DIR/pareto.svg    average bits vs measured mean KL, one point per accepted step\n"
            "  DIR/report.html   the same on one self-contained page\n\n"
            "Algorithm:\n"
            "  1. candidates: every selected (node, layer) site with every format cheaper than F32\n"
            "     (cost: the format's bits per element with per-block scales, as `fqlm formats` lists);\n"
            "     average bits are weighted by each site's values per token (kq, kq_soft_max: n_head x CTX/2);\n"
            "  2. sensitivity: each candidate's single-rounding mean KL, measured (or read from\n"
            "     --from-sweep DIR, a sweep of the same model, text and settings);\n"
            "  3. greedy: candidates in order of single KL per bit saved (least first); the next batch\n"
            "     of candidates is added to the current configuration and the combination is measured;\n"
            "     within the budget: the step is accepted and the batch doubles; over it: the batch is\n"
            "     backed off, halved, and tried again; a single candidate over the budget is skipped and\n"
            "     the search goes on with the next. A candidate replaces a site's format only when it\n"
            "     is cheaper. Every reported point is a measured run, never a sum of single effects;\n"
            "  3b. with a bits budget (--budget-bits, --budget-size-of) instead: every site starts at its\n"
            "     cheapest format, or at one format everywhere it fits when that is within the budget and\n"
            "     measures better; then upgrades, most single KL gained per bit added first, each measured\n"
            "     with the rest and kept when the measured KL falls, while the average stays within budget;\n"
            "  4. interactions: for the K most sensitive pairs of the final assignment (--pairs, default 6),\n"
            "     the measured KL of the pair together vs the sum of the two singles (ratio > 1: the\n"
            "     effects compound; < 1: they cancel).\n"
            "Measurements go to DIR/plan.state as they are made (Ctrl-C stops after the running one, exit\n"
            "130): rerunning (with any budget) measures\n"
            "nothing twice. DIR/plan.conf holds the settings and the model's hash; a rerun with others\n"
            "is refused. A budget that no candidate meets is an error (exit 1).\n\n"
            "  --formats LIST          format specs, comma-separated (bf16,fp8_e4m3,mxfp4,int4:group=32,asym)\n"
            "  --budget-kl X           mean KL(base||plan) at most X nats\n"
            "  --budget-top1 P         top-1 agreement at least P (0..1)\n"
            "  --budget-ppl R          perplexity ratio plan/base at most R\n"
            "  --nodes LIST            node names or globs, comma-separated (default: every node)\n"
            "  --layers LIST           N, N-M, N,M,... or * (default: all)\n"
            "  --from-sweep DIR        single-rounding figures from a `fqlm sweep` directory\n"
            "  --pairs K               interaction pairs to measure (default 6; 0: none)\n"
            "  --seeds K               a configuration with a stochastic format (round=stochastic) is measured\n"
            "                          with seeds S..S+K-1 (S: --seed); its figures are the means, and the\n"
            "                          budget is held against the mean plus one sample sd (top-1: mean minus\n"
            "                          one sd); `fqlm compare --seeds K` with rules.txt re-measures the means\n"
            "  --budget-bits B         average bits per value at most B; the least measured KL found\n"
            "  --weights               plan real ggml weight types per tensor instead (--formats q4_0,q4_1,\n"
            "                          q5_0,q5_1,q8_0,q4_k,q5_k,q6_k,...; cost: bits per weight with block\n"
            "                          scales; a type is a candidate where the rows are whole blocks of it);\n"
            "                          each configuration is the model re-encoded in memory, so the real\n"
            "                          kernels run. --nodes: globs over tensor names ('blk.*.ffn_*'); --layers:\n"
            "                          blk.N tensors (the others only with every layer). Writes deploy.txt\n"
            "                          instead of rules.txt: fqlm quantize --plan DIR/plan.json IN OUT writes\n"
            "                          the GGUF, --print-llama-quantize gives llama-quantize's --tensor-type\n"
            "                          line, fqlm compare --weight-plan DIR/plan.json re-measures it\n"
            "  --budget-size-of FILE   with --weights: the average bits per weight FILE's types give these\n"
            "                          tensors (a uniform llama-quantize file: the plan at its size)\n"
            "  -c, --ctx-size N        tokens per chunk (default 512)\n"
            "  --chunks K              score the first K chunks only\n"
            "  -o, --out DIR           output directory (created if missing)\n");
    cli_opts_help(f);
}

/* ---- sites, candidates, measurements --------------------------------------------------------- */

typedef struct {
    const char *node;   /* --weights: the tensor's name */
    int layer;          /* -1: no layer (--weights: always -1) */
    double weight;      /* values per token (--weights: elements): the weight of its bits in the average */
    double base_bits;   /* what it has without the plan: 32 (F32 activations), the stored type's bits */
    int64_t row_len;    /* --weights: the row length block types must divide */
} site;

typedef struct {
    double mean_kld, kld_p99, top1_agree, ppl_ratio; /* --seeds K: the means over the K runs */
    long long nonfinite;
    int runs;           /* 1, or K for a stochastic configuration under --seeds K */
    double sd[4];       /* sample sd of the four figures over the runs (0 for one run) */
} meas;

typedef struct {
    int site, fmt;
    double saved;   /* (32 - bits) x weight */
    meas single;
    int have_single;
    double prio;
} cand;

typedef struct {
    char *key;
    meas m;
} memo_row;

typedef struct {
    int *added;     /* candidate indices */
    int n_added;
    int accepted;
    double avg_bits;
    meas m;
} step;

typedef struct {
    fqlm_model *model;
    fqlm_context *base;
    fqlm_context_params cp;
    const int32_t *toks;
    int n_toks, ctx;
    site *sites;
    int n_sites;
    char **formats;
    double *bits;
    int n_formats;
    memo_row *memo;
    int n_memo, cap_memo;
    int state_fd;
    int n_new, n_reused;
    double total_weight;
    int weights;        /* sites are weight tensors, formats ggml types */
    int n_seeds;        /* --seeds K */
    uint64_t seed0;     /* --seed: the first seed */
    int *stochastic;    /* per format: rounds stochastically */
} plan;

static void rule_text(const plan *P, int s, int f, char *buf, size_t n) {
    const site *t = &P->sites[s];
    if (P->weights) snprintf(buf, n, "%s=%s", t->node, P->formats[f]);
    else if (t->layer >= 0) snprintf(buf, n, "%s@%d=%s", t->node, t->layer, P->formats[f]);
    else snprintf(buf, n, "%s=%s", t->node, P->formats[f]);
}

/* The rules of an assignment (fmt per site, -1: none), in site order, joined by '\n'. */
static void config_key(const plan *P, const int *fmt, rbuf *b) {
    char r[512];
    for (int s = 0; s < P->n_sites; s++) {
        if (fmt[s] < 0) continue;
        rule_text(P, s, fmt[s], r, sizeof r);
        rb_printf(b, "%s%s", b->len ? "\n" : "", r);
    }
}

/* The rules that give an assignment, one per line: the sites of one node with one format
 * joined into one rule over their layers (ffn_norm@0-2,4=bf16), so that a configuration of
 * any number of sites stays within the rules a context (and compare's --fq) takes. */
static void config_rules(const plan *P, const int *fmt, rbuf *b) {
    char r[512];
    unsigned char *done = calloc((size_t)P->n_sites, 1);
    if (!done) {
        b->oom = 1;
        return;
    }
    for (int s = 0; s < P->n_sites; s++) {
        if (fmt[s] < 0 || done[s]) continue;
        const site *t = &P->sites[s];
        if (P->weights || t->layer < 0) {
            rule_text(P, s, fmt[s], r, sizeof r);
            rb_printf(b, "%s\n", r);
            continue;
        }
        rb_printf(b, "%s@", t->node);
        int prev = -2, run_start = -2, first = 1;
        for (int u = s; u <= P->n_sites; u++) {
            int L = -1;
            if (u < P->n_sites) {
                const site *v = &P->sites[u];
                if (done[u] || fmt[u] != fmt[s] || v->layer < 0 || strcmp(v->node, t->node)) continue;
                done[u] = 1;
                L = v->layer;
                if (L == prev + 1) {
                    prev = L;
                    continue;
                }
            }
            if (prev >= 0) { /* close the run run_start..prev */
                rb_printf(b, "%s%d", first ? "" : ",", run_start);
                if (prev > run_start) rb_printf(b, "%s%d", prev == run_start + 1 ? "," : "-", prev);
                first = 0;
            }
            run_start = prev = L;
        }
        rb_printf(b, "=%s\n", P->formats[fmt[s]]);
    }
    free(done);
}

static double avg_bits(const plan *P, const int *fmt) {
    double sum = 0;
    for (int s = 0; s < P->n_sites; s++) sum += P->sites[s].weight * (fmt[s] < 0 ? P->sites[s].base_bits : P->bits[fmt[s]]);
    return P->total_weight > 0 ? sum / P->total_weight : BASE_BITS;
}

static int memo_find(const plan *P, const char *key) {
    for (int i = 0; i < P->n_memo; i++)
        if (!strcmp(P->memo[i].key, key)) return i;
    return -1;
}

static int memo_add(plan *P, const char *key, const meas *m) {
    if (P->n_memo == P->cap_memo) {
        int nc = P->cap_memo ? 2 * P->cap_memo : 256;
        memo_row *nv = realloc(P->memo, (size_t)nc * sizeof *nv);
        if (!nv) return -1;
        P->memo = nv;
        P->cap_memo = nc;
    }
    char *k = strdup(key);
    if (!k) return -1;
    P->memo[P->n_memo++] = (memo_row){k, *m};
    return 0;
}

/* State file lines: "m\t" rules joined by ' ' "\t" mean_kld p99 top1 ppl_ratio nonfinite. */
static int state_append(plan *P, const char *key, const meas *m) {
    rbuf b;
    rb_init(&b);
    rb_puts(&b, "m\t");
    for (const char *p = key; *p; p++) rb_putn(&b, *p == '\n' ? " " : p, 1);
    rb_printf(&b, "\t%.17g\t%.17g\t%.17g\t%.17g\t%lld\n", m->mean_kld, m->kld_p99, m->top1_agree, m->ppl_ratio,
              m->nonfinite);
    int rc = 0;
    if (b.oom) rc = -1;
    else {
        ssize_t w;
        do w = write(P->state_fd, b.s, b.len);
        while (w < 0 && errno == EINTR);
        if (w != (ssize_t)b.len || fsync(P->state_fd) != 0) rc = -1;
    }
    if (rc) cli_error("appending to plan.state: %s", b.oom ? "out of memory" : strerror(errno));
    rb_free(&b);
    return rc;
}

static int state_load(plan *P, const char *path) {
    fq_err e;
    size_t len;
    if (access(path, F_OK) != 0) return 0;
    char *text = fq_read_file(path, &len, &e);
    if (!text) {
        cli_error("%s", e.msg);
        return -1;
    }
    int dropped = 0;
    char *p = text;
    while (p < text + len && *p) {
        char *nl = strchr(p, '\n');
        if (!nl) { /* a write cut short: measured again */
            dropped++;
            break;
        }
        *nl = 0;
        char *f[7];
        int nf = 0;
        for (char *q = p; nf < 7;) {
            f[nf++] = q;
            char *t = strchr(q, '\t');
            if (!t) break;
            *t = 0;
            q = t + 1;
        }
        meas m;
        char *end;
        int ok = nf == 7 && !strcmp(f[0], "m");
        double *num[4] = {&m.mean_kld, &m.kld_p99, &m.top1_agree, &m.ppl_ratio};
        for (int i = 0; ok && i < 4; i++) {
            *num[i] = strtod(f[2 + i], &end);
            ok = end != f[2 + i] && !*end;
        }
        if (ok) {
            m.nonfinite = strtoll(f[6], &end, 10);
            ok = end != f[6] && !*end;
        }
        if (ok) {
            for (char *q = f[1]; *q; q++)
                if (*q == ' ') *q = '\n';
            m.runs = 1;
            memset(m.sd, 0, sizeof m.sd);
            if (memo_find(P, f[1]) < 0 && memo_add(P, f[1], &m)) {
                free(text);
                cli_error("out of memory reading %s", path);
                return -1;
            }
        } else {
            dropped++;
        }
        p = nl + 1;
    }
    free(text);
    if (dropped)
        fprintf(stderr, "fqlm: %s: dropping %d unreadable or partial line%s (measured again)\n", path, dropped,
                dropped == 1 ? "" : "s");
    return 0;
}

/* 1 when a format of the assignment rounds stochastically. */
static int config_stochastic(const plan *P, const int *fmt) {
    for (int s = 0; P->stochastic && s < P->n_sites; s++)
        if (fmt[s] >= 0 && P->stochastic[fmt[s]]) return 1;
    return 0;
}

/* Measures an assignment (fmt per site, -1: none) with one seed (seed: the key names it, for
 * a stochastic assignment; the context rounds with it): from the memo, else a run. Returns 0,
 * or -1 after printing an error (a rule the library refuses, an evaluation failure). */
static int measure_one(plan *P, const int *fmt, int stoch, uint64_t seed, meas *out) {
    rbuf key;
    rb_init(&key);
    config_key(P, fmt, &key);
    if (stoch) rb_printf(&key, "\n#seed=%llu", (unsigned long long)seed);
    int rc = -1;
    if (key.oom) {
        cli_error("out of memory");
        goto out;
    }
    const char *k = key.s ? key.s : "";
    int i = memo_find(P, k);
    if (i >= 0) {
        *out = P->memo[i].m;
        P->n_reused++;
        rc = 0;
        goto out;
    }
    fqlm_model *wm = NULL; /* --weights: the model with the assignment's tensor types */
    if (P->weights) {
        const char **tn = malloc((size_t)P->n_sites * sizeof *tn), **ty = malloc((size_t)P->n_sites * sizeof *ty);
        int n = 0;
        for (int s = 0; tn && ty && s < P->n_sites; s++)
            if (fmt[s] >= 0) tn[n] = P->sites[s].node, ty[n++] = P->formats[fmt[s]];
        if (tn && ty) wm = fqlm_model_requantize(P->model, tn, ty, n, P->cp.n_threads);
        free(tn);
        free(ty);
        if (!wm) {
            cli_error("%s", tn && ty ? fqlm_last_error() : "out of memory");
            goto out;
        }
    }
    if (g_interrupted) {
        cli_error("interrupted: %d measurements kept in plan.state; the same command resumes from them", P->n_memo);
        goto out;
    }
    fqlm_context_params cp = P->cp;
    cp.seed = seed;
    fqlm_context *c = fqlm_context_new(wm ? wm : P->model, &cp);
    if (!c) {
        cli_error("%s", fqlm_last_error());
        fqlm_model_free(wm);
        goto out;
    }
    if (!P->weights) {
        rbuf rl;
        rb_init(&rl);
        config_rules(P, fmt, &rl);
        int bad_rule = rl.oom;
        if (bad_rule) cli_error("out of memory");
        for (char *r = rl.s; !bad_rule && r && *r;) {
            char *nl = strchr(r, '\n');
            *nl = 0;
            if (fqlm_context_add_rule(c, r)) {
                cli_error("rule %s: %s", r, fqlm_last_error());
                bad_rule = 1;
            }
            r = nl + 1;
        }
        rb_free(&rl);
        if (bad_rule) {
            fqlm_context_free(c);
            goto out;
        }
    }
    fqlm_score sc;
    int bad = fqlm_score_tokens(P->base, c, P->toks, P->n_toks, P->ctx, &sc);
    fqlm_context_free(c);
    fqlm_model_free(wm);
    if (bad) {
        cli_error("%s", fqlm_last_error());
        goto out;
    }
    *out = (meas){sc.mean_kld, sc.kld_p99, sc.top1_agree, sc.ppl_ratio, (long long)sc.n_nonfinite, 1, {0, 0, 0, 0}};
    P->n_new++;
    if (memo_add(P, k, out)) {
        cli_error("out of memory");
        goto out;
    }
    if (state_append(P, k, out)) goto out;
    rc = 0;
out:
    rb_free(&key);
    return rc;
}

/* Measures an assignment: one run, or under --seeds K a stochastic one K times (seeds S ..
 * S+K-1), giving each figure's mean (cli_mean_sd: the bits compare --seeds K reports) and
 * sample sd. Returns 0, or -1 after printing an error. */
static int measure(plan *P, const int *fmt, meas *out) {
    const int stoch = config_stochastic(P, fmt);
    const int K = stoch ? P->n_seeds : 1;
    if (K <= 1) return measure_one(P, fmt, stoch, P->seed0, out);
    double v[4][1000];
    long long nf = 0;
    for (int k = 0; k < K; k++) {
        meas m;
        if (measure_one(P, fmt, stoch, P->seed0 + (uint64_t)k, &m)) return -1;
        v[0][k] = m.mean_kld, v[1][k] = m.kld_p99, v[2][k] = m.top1_agree, v[3][k] = m.ppl_ratio;
        nf += m.nonfinite;
    }
    double mean[4];
    for (int i = 0; i < 4; i++) cli_mean_sd(v[i], K, &mean[i], &out->sd[i]);
    out->mean_kld = mean[0], out->kld_p99 = mean[1], out->top1_agree = mean[2], out->ppl_ratio = mean[3];
    out->nonfinite = nf;
    out->runs = K;
    return 0;
}

/* ---- budget ------------------------------------------------------------------------------------ */

/* BUDGET_BITS: at most that many average bits, with the least measured KL the search finds */
enum { BUDGET_KL, BUDGET_TOP1, BUDGET_PPL, BUDGET_BITS };
static const char *const budget_metric[] = {"mean_kld", "top1_agree", "ppl_ratio", "avg_bits"};
static const char *const budget_flag[] = {"--budget-kl", "--budget-top1", "--budget-ppl", "--budget-bits"};

static double metric_of(const meas *m, int kind) {
    return kind == BUDGET_TOP1 ? m->top1_agree : kind == BUDGET_PPL ? m->ppl_ratio : m->mean_kld;
}

/* The figure held against a quality budget: the mean plus one sd on the unfavourable side
 * (KL, ppl ratio: mean + sd; top-1 agreement: mean - sd); one run: the figure itself. */
static double budget_value(const meas *m, int kind) {
    const double sd = kind == BUDGET_TOP1 ? m->sd[2] : kind == BUDGET_PPL ? m->sd[3] : m->sd[0];
    return kind == BUDGET_TOP1 ? m->top1_agree - sd : metric_of(m, kind) + sd;
}

/* A measured point within a quality budget (BUDGET_BITS: any finite point). */
static int within(const meas *m, int kind, double limit) {
    if (m->nonfinite) return 0;
    if (kind == BUDGET_BITS) return isfinite(m->mean_kld);
    double v = budget_value(m, kind);
    if (isnan(v)) return 0;
    return kind == BUDGET_TOP1 ? v >= limit : v <= limit;
}

/* ---- outputs ----------------------------------------------------------------------------------- */

typedef struct {
    int a, b;       /* candidate indices */
    meas joint;
} pair_row;

typedef struct {
    const char *command, *model_path, *text_path, *from_sweep, *size_of;
    uint64_t model_hash;
    int kind;
    double limit;
    int n_chunks;
    int64_t n_tokens;
    const cand *cands;
    int n_cands;
    const step *steps;
    int n_steps;
    const int *fmt;     /* final */
    double base_bits;   /* the average without the plan */
    double final_bits;
    meas final;
    const pair_row *pairs;
    int n_pairs;
} plan_out;

static void jnum(jsonw *w, const char *k, double v) {
    jsonw_key(w, k);
    jsonw_num17(w, v);
}

static void json_meas(jsonw *w, const meas *m) {
    jsonw_obj_begin(w);
    jnum(w, "mean_kld", m->mean_kld);
    jnum(w, "kld_p99", m->kld_p99);
    jnum(w, "top1_agree", m->top1_agree);
    jnum(w, "ppl_ratio", m->ppl_ratio);
    jsonw_key(w, "nonfinite_positions");
    jsonw_int(w, m->nonfinite);
    if (m->runs > 1) { /* --seeds K: the figures above are means; their sample sd */
        jsonw_key(w, "seeds");
        jsonw_int(w, m->runs);
        jnum(w, "mean_kld_sd", m->sd[0]);
        jnum(w, "kld_p99_sd", m->sd[1]);
        jnum(w, "top1_agree_sd", m->sd[2]);
        jnum(w, "ppl_ratio_sd", m->sd[3]);
    }
    jsonw_obj_end(w);
}

static const char *ALGORITHM =
    "greedy by single-rounding mean KL per bit saved; batches of candidates added and the combination "
    "measured; a batch over the budget is backed off and halved, a single candidate over it skipped; "
    "every reported point is a measured run";
static const char *ALGORITHM_BITS =
    "every site at its cheapest format, then greedy upgrades by single-rounding KL gained per bit added "
    "while the average stays within the bits budget; an upgrade is kept when the measured KL of the "
    "combination falls, else backed off; every reported point is a measured run";

static int write_json(const plan *P, const plan_out *R, const char *path) {
    jsonw w;
    jsonw_init(&w);
    char r[512], hex[32];
    jsonw_obj_begin(&w);
    jsonw_key(&w, "command"); jsonw_str(&w, R->command);
    jsonw_key(&w, "model"); jsonw_str(&w, R->model_path);
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)R->model_hash);
    jsonw_key(&w, "model_hash"); jsonw_str(&w, hex);
    jsonw_key(&w, "text"); jsonw_str(&w, R->text_path);
    jsonw_key(&w, "ctx"); jsonw_int(&w, P->ctx);
    jsonw_key(&w, "chunks"); jsonw_int(&w, R->n_chunks);
    jsonw_key(&w, "tokens"); jsonw_int(&w, R->n_tokens);
    jsonw_key(&w, "arithmetic"); jsonw_str(&w, P->cp.exact ? "exact" : "llama.cpp");
    jsonw_key(&w, "budget");
    jsonw_obj_begin(&w);
    jsonw_key(&w, "metric"); jsonw_str(&w, budget_metric[R->kind]);
    jnum(&w, R->kind == BUDGET_TOP1 ? "min" : "max", R->limit);
    if (R->size_of) {
        jsonw_key(&w, "size_of"); jsonw_str(&w, R->size_of);
    }
    jsonw_obj_end(&w);
    jsonw_key(&w, "mode"); jsonw_str(&w, P->weights ? "weights" : "activations");
    jsonw_key(&w, "seeds"); jsonw_int(&w, P->n_seeds);
    jsonw_key(&w, "first_seed"); jsonw_int(&w, (long long)P->seed0);
    jsonw_key(&w, "algorithm"); jsonw_str(&w, R->kind == BUDGET_BITS ? ALGORITHM_BITS : ALGORITHM);
    jsonw_key(&w, "sensitivities"); jsonw_str(&w, R->from_sweep ? R->from_sweep : "measured");
    jsonw_key(&w, "formats");
    jsonw_arr_begin(&w);
    for (int f = 0; f < P->n_formats; f++) {
        jsonw_obj_begin(&w);
        jsonw_key(&w, "format"); jsonw_str(&w, P->formats[f]);
        jnum(&w, "bits", P->bits[f]);
        jsonw_obj_end(&w);
    }
    jsonw_arr_end(&w);
    jnum(&w, "baseline_bits", R->base_bits);
    jnum(&w, "avg_bits", R->final_bits);
    jsonw_key(&w, "assignment");
    jsonw_arr_begin(&w);
    for (int s = 0; s < P->n_sites; s++) {
        if (R->fmt[s] < 0) continue;
        jsonw_obj_begin(&w);
        if (P->weights) {
            jsonw_key(&w, "tensor"); jsonw_str(&w, P->sites[s].node);
            jsonw_key(&w, "type"); jsonw_str(&w, P->formats[R->fmt[s]]);
            jnum(&w, "base_bits", P->sites[s].base_bits);
        } else {
            jsonw_key(&w, "node"); jsonw_str(&w, P->sites[s].node);
            jsonw_key(&w, "layer");
            if (P->sites[s].layer >= 0) jsonw_int(&w, P->sites[s].layer);
            else jsonw_null(&w);
            jsonw_key(&w, "format"); jsonw_str(&w, P->formats[R->fmt[s]]);
        }
        jnum(&w, "bits", P->bits[R->fmt[s]]);
        rule_text(P, s, R->fmt[s], r, sizeof r);
        jsonw_key(&w, "rule"); jsonw_str(&w, r);
        for (int c = 0; c < R->n_cands; c++)
            if (R->cands[c].site == s && R->cands[c].fmt == R->fmt[s]) jnum(&w, "single_kld", R->cands[c].single.mean_kld);
        jsonw_obj_end(&w);
    }
    jsonw_arr_end(&w);
    jsonw_key(&w, "measured");
    json_meas(&w, &R->final);
    jsonw_key(&w, "steps");
    jsonw_arr_begin(&w);
    for (int i = 0; i < R->n_steps; i++) {
        const step *st = &R->steps[i];
        jsonw_obj_begin(&w);
        jsonw_key(&w, "step"); jsonw_int(&w, i);
        jsonw_key(&w, "added");
        jsonw_arr_begin(&w);
        for (int k = 0; k < st->n_added; k++) {
            rule_text(P, R->cands[st->added[k]].site, R->cands[st->added[k]].fmt, r, sizeof r);
            jsonw_str(&w, r);
        }
        jsonw_arr_end(&w);
        jsonw_key(&w, "accepted"); jsonw_bool(&w, st->accepted);
        jnum(&w, "avg_bits", st->avg_bits);
        jsonw_key(&w, "measured");
        json_meas(&w, &st->m);
        jsonw_obj_end(&w);
    }
    jsonw_arr_end(&w);
    jsonw_key(&w, "interactions");
    jsonw_arr_begin(&w);
    for (int i = 0; i < R->n_pairs; i++) {
        const pair_row *pr = &R->pairs[i];
        const cand *a = &R->cands[pr->a], *b = &R->cands[pr->b];
        jsonw_obj_begin(&w);
        rule_text(P, a->site, a->fmt, r, sizeof r);
        jsonw_key(&w, "a"); jsonw_str(&w, r);
        rule_text(P, b->site, b->fmt, r, sizeof r);
        jsonw_key(&w, "b"); jsonw_str(&w, r);
        jnum(&w, "kld_a", a->single.mean_kld);
        jnum(&w, "kld_b", b->single.mean_kld);
        const double sum = a->single.mean_kld + b->single.mean_kld;
        jnum(&w, "kld_sum", sum);
        jnum(&w, "kld_joint", pr->joint.mean_kld);
        jnum(&w, "ratio", sum > 0 ? pr->joint.mean_kld / sum : NAN);
        jsonw_obj_end(&w);
    }
    jsonw_arr_end(&w);
    jsonw_key(&w, "measurements");
    jsonw_obj_begin(&w);
    jsonw_key(&w, "new"); jsonw_int(&w, P->n_new);
    jsonw_key(&w, "reused"); jsonw_int(&w, P->n_reused);
    jsonw_obj_end(&w);
    jsonw_obj_end(&w);
    fq_err e;
    int rc = jsonw_write_file(&w, path, &e);
    if (rc) cli_error("%s", e.msg);
    jsonw_free(&w);
    return rc;
}

/* Average bits (x, falling to the right) vs measured mean KL (y), accepted steps joined by
 * a line, steps over the budget as grey crosses, the budget as a dashed line (KL budgets). */
static void pareto_svg(rbuf *b, const plan_out *R, int standalone) {
    const double W = 640, H = 400, L = 70, Rm = 20, T = 30, B = 50;
    double xmin = R->base_bits, xmax = R->base_bits, ymax = 0;
    /* y: the accepted steps and the budget set the scale; a rejected step far above them is
     * drawn at the top edge (its figure in plan.json and the report's table) */
    double yrej = 0;
    for (int i = 0; i < R->n_steps; i++) {
        xmin = fmin(xmin, R->steps[i].avg_bits);
        if (!isfinite(R->steps[i].m.mean_kld)) continue;
        if (R->steps[i].accepted) ymax = fmax(ymax, R->steps[i].m.mean_kld);
        else yrej = fmax(yrej, R->steps[i].m.mean_kld);
    }
    if (R->kind == BUDGET_KL) ymax = fmax(ymax, R->limit);
    if (ymax <= 0) ymax = yrej > 0 ? yrej : 1e-6;
    ymax = fmin(ymax * 2, fmax(ymax * 1.1, yrej * 1.05));
    if (xmax - xmin < 1) xmin = xmax - 1;
    /* x: most bits on the left, fewest on the right (the direction of the search) */
#define PX(v) (L + (xmax - (v)) / (xmax - xmin) * (W - L - Rm))
#define PY(v) (T + (1 - (v) / ymax) * (H - T - B))
    rb_printf(b, "%s<svg %swidth=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" "
                 "font-size=\"12\">\n",
              standalone ? "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" : "",
              standalone ? "xmlns=\"http://www.w3.org/2000/svg\" " : "", W, H, W, H);
    rb_printf(b, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", W, H);
    rb_printf(b, "<text x=\"%.0f\" y=\"18\" text-anchor=\"middle\">measured mean KL vs average bits (accepted "
                 "steps)</text>\n", W / 2);
    rb_printf(b, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", L, H - B, W - Rm, H - B);
    rb_printf(b, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", L, T, L, H - B);
    for (int k = 0; k <= 4; k++) {
        double xv = xmax - k * (xmax - xmin) / 4, yv = k * ymax / 4;
        rb_printf(b, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.2f</text>\n", PX(xv), H - B + 16, xv);
        rb_printf(b, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", L - 4, PY(yv) + 4, yv);
    }
    rb_printf(b, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">average bits per value</text>\n", W / 2, H - 12);
    rb_printf(b, "<text x=\"14\" y=\"%.0f\" text-anchor=\"middle\" transform=\"rotate(-90 14 %.0f)\">mean KL "
                 "(nats)</text>\n", (H - B + T) / 2, (H - B + T) / 2);
    if (R->kind == BUDGET_KL)
        rb_printf(b, "<line class=\"budget\" x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"red\" "
                     "stroke-dasharray=\"4 3\"/>\n", L, PY(R->limit), W - Rm, PY(R->limit));
    rb_printf(b, "<polyline fill=\"none\" stroke=\"steelblue\" points=\"%.1f,%.1f", PX(R->base_bits), PY(0.0));
    for (int i = 0; i < R->n_steps; i++)
        if (R->steps[i].accepted && isfinite(R->steps[i].m.mean_kld))
            rb_printf(b, " %.1f,%.1f", PX(R->steps[i].avg_bits), PY(R->steps[i].m.mean_kld));
    rb_puts(b, "\"/>\n");
    rb_printf(b, "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"steelblue\"><title>baseline: %.0f "
                 "bits, KL 0</title></circle>\n", PX(R->base_bits), PY(0.0), R->base_bits);
    for (int i = 0; i < R->n_steps; i++) {
        const step *st = &R->steps[i];
        if (!isfinite(st->m.mean_kld)) continue;
        const double x = PX(st->avg_bits), y = PY(fmin(st->m.mean_kld, ymax));
        if (st->accepted)
            rb_printf(b, "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"steelblue\"><title>step %d: "
                         "%.3f bits, KL %.4g</title></circle>\n", x, y, i, st->avg_bits, st->m.mean_kld);
        else
            rb_printf(b, "<path class=\"rejected\" d=\"M%.1f %.1fl6 6m0 -6l-6 6\" stroke=\"#aaa\"/>\n", x - 3, y - 3);
    }
    rb_puts(b, "</svg>\n");
#undef PX
#undef PY
}

static void html_meas_cells(rbuf *b, const meas *m) {
    rb_printf(b, "<td>%.6g</td><td>%.6g</td><td>%.6f</td><td>%.6f</td>", m->mean_kld, m->kld_p99, m->top1_agree,
              m->ppl_ratio);
}

static void report_html(rbuf *b, const plan *P, const plan_out *R) {
    char r[512];
    rb_puts(b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>fqlm plan</title><style>"
               "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
               "padding:2px 6px;text-align:right}td:first-child{text-align:left}code{background:#f4f4f4}"
               ".no{color:#999}</style></head><body>\n<h1>fqlm plan</h1>\n<p>Model <code>");
    rb_xml(b, R->model_path);
    rb_printf(b, "</code> (hash %016llx), text <code>", (unsigned long long)R->model_hash);
    rb_xml(b, R->text_path);
    rb_printf(b, "</code>: %lld tokens in %d chunk%s of up to %d; %s arithmetic.</p>\n", (long long)R->n_tokens,
              R->n_chunks, R->n_chunks == 1 ? "" : "s", P->ctx, P->cp.exact ? "exact" : "llama.cpp-mirroring");
    rb_printf(b, "<p>Budget: %s %s %.6g. Result: <b>%.4f average bits</b> (baseline %.4g) with measured mean KL "
                 "%.6g, KL p99 %.6g, top-1 agreement %.6f, perplexity ratio %.6f.</p>\n",
              budget_metric[R->kind], R->kind == BUDGET_TOP1 ? "&ge;" : "&le;", R->limit, R->final_bits, R->base_bits,
              R->final.mean_kld, R->final.kld_p99, R->final.top1_agree, R->final.ppl_ratio);
    if (R->final.runs > 1)
        rb_printf(b, "<p>Stochastic rounding: the figures are means over %d seeds (from %llu); sample sd of the mean "
                     "KL %.3g, KL p99 %.3g, top-1 %.3g, ppl ratio %.3g. The budget is held against the mean %s one "
                     "sd.</p>\n", R->final.runs, (unsigned long long)P->seed0, R->final.sd[0], R->final.sd[1],
                  R->final.sd[2], R->final.sd[3], R->kind == BUDGET_TOP1 ? "minus" : "plus");
    rb_puts(b, "<p>Algorithm: ");
    rb_xml(b, R->kind == BUDGET_BITS ? ALGORITHM_BITS : ALGORITHM);
    rb_puts(b, ".</p>\n<p>Command: <code>");
    rb_xml(b, R->command);
    rb_puts(b, "</code></p>\n");
    pareto_svg(b, R, 0);
    rb_puts(b, "<h2>Assignment (rules.txt)</h2>\n<table><tr><th>rule</th><th>bits</th><th>single KL</th></tr>\n");
    for (int s = 0; s < P->n_sites; s++) {
        if (R->fmt[s] < 0) continue;
        rule_text(P, s, R->fmt[s], r, sizeof r);
        double kl = NAN;
        for (int c = 0; c < R->n_cands; c++)
            if (R->cands[c].site == s && R->cands[c].fmt == R->fmt[s]) kl = R->cands[c].single.mean_kld;
        rb_puts(b, "<tr><td><code>");
        rb_xml(b, r);
        rb_printf(b, "</code></td><td>%.4g</td><td>%.6g</td></tr>\n", P->bits[R->fmt[s]], kl);
    }
    rb_puts(b, "</table>\n<h2>Interactions</h2>\n<p>Measured KL of each pair together against the sum of the two "
               "single KLs: a ratio above 1 means the effects compound, below 1 that they cancel.</p>\n"
               "<table><tr><th>a</th><th>b</th><th>KL a</th><th>KL b</th><th>sum</th><th>joint</th><th>ratio</th>"
               "</tr>\n");
    for (int i = 0; i < R->n_pairs; i++) {
        const cand *a = &R->cands[R->pairs[i].a], *c = &R->cands[R->pairs[i].b];
        const double sum = a->single.mean_kld + c->single.mean_kld;
        rb_puts(b, "<tr><td><code>");
        rule_text(P, a->site, a->fmt, r, sizeof r);
        rb_xml(b, r);
        rb_puts(b, "</code></td><td><code>");
        rule_text(P, c->site, c->fmt, r, sizeof r);
        rb_xml(b, r);
        rb_printf(b, "</code></td><td>%.6g</td><td>%.6g</td><td>%.6g</td><td>%.6g</td><td>%.4f</td></tr>\n",
                  a->single.mean_kld, c->single.mean_kld, sum, R->pairs[i].joint.mean_kld,
                  sum > 0 ? R->pairs[i].joint.mean_kld / sum : NAN);
    }
    rb_puts(b, "</table>\n<h2>Steps</h2>\n<table><tr><th>added</th><th>accepted</th><th>avg bits</th><th>mean KL</th>"
               "<th>KL p99</th><th>top-1</th><th>ppl ratio</th></tr>\n");
    for (int i = 0; i < R->n_steps; i++) {
        const step *st = &R->steps[i];
        rb_printf(b, "<tr%s><td>", st->accepted ? "" : " class=\"no\"");
        for (int k = 0; k < st->n_added; k++) {
            rule_text(P, R->cands[st->added[k]].site, R->cands[st->added[k]].fmt, r, sizeof r);
            if (k) rb_puts(b, " ");
            rb_xml(b, r);
        }
        rb_printf(b, "</td><td>%s</td><td>%.4f</td>", st->accepted ? "yes" : "no", st->avg_bits);
        html_meas_cells(b, &st->m);
        rb_puts(b, "</tr>\n");
    }
    rb_puts(b, "</table>\n</body></html>\n");
}

/* n as text, in a static buffer (one use per expression). */
static const char *argv_num(int n) {
    static char b[24];
    snprintf(b, sizeof b, "%d", n);
    return b;
}

static int write_buf(const char *dir, const char *name, rbuf *b) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    fq_err e;
    if (b->oom || fq_write_file_atomic(path, b->s ? b->s : "", b->len, &e)) {
        cli_error("%s: %s", path, b->oom ? "out of memory" : e.msg);
        return -1;
    }
    return 0;
}

/* ---- settings ---------------------------------------------------------------------------------- */

/* The value of "key=" in a key=value text, or NULL (points into text; ends at '\n'). */
static const char *conf_get(const char *text, const char *key, size_t *len) {
    size_t kl = strlen(key);
    for (const char *p = text; p && *p;) {
        if (!strncmp(p, key, kl) && p[kl] == '=') {
            const char *v = p + kl + 1;
            *len = strcspn(v, "\n");
            return v;
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
    return NULL;
}

/* The settings a sweep directory's numbers depend on must be this plan's: model (by hash),
 * text (by its tokens), context, chunks, arithmetic, cache and seed. 0, or 2 after printing. */
static int check_sweep_conf(const char *dir, const char *conf) {
    char path[4096];
    snprintf(path, sizeof path, "%s/sweep.conf", dir);
    fq_err e;
    size_t len;
    char *sc = fq_read_file(path, &len, &e);
    if (!sc) {
        cli_error("--from-sweep: %s", e.msg);
        return 2;
    }
    static const char *const keys[] = {"model_hash", "text_hash", "text_tokens", "ctx", "chunks", "arithmetic",
                                       "cache_type", "seed"};
    int rc = 0;
    for (size_t i = 0; i < sizeof keys / sizeof *keys && !rc; i++) {
        size_t la = 0, lb = 0;
        const char *a = conf_get(sc, keys[i], &la), *b = conf_get(conf, keys[i], &lb);
        if (!a || !b || la != lb || memcmp(a, b, la)) {
            cli_error("--from-sweep %s: the sweep was made with %s %s=%.*s, this plan has %s=%.*s (%s)", dir,
                      !strcmp(keys[i], "model_hash") ? "another model:" : "other settings:", keys[i], a ? (int)la : 9,
                      a ? a : "(missing)", keys[i], (int)lb, b ? b : "",
                      !strcmp(keys[i], "model_hash") ? "run the sweep on this model, or plan without --from-sweep"
                                                     : "use the sweep's settings, or plan without --from-sweep");
            rc = 2;
        }
    }
    free(sc);
    return rc;
}

/* ---- a bits budget: upgrades from the cheapest assignment ------------------------------------------ */

static double single_kl(const cand *cands, int n, int s, int f) {
    for (int c = 0; c < n; c++)
        if (cands[c].site == s && cands[c].fmt == f) return cands[c].single.mean_kld;
    return NAN;
}

/* Every site with a usable candidate starts at its cheapest format (the first step, measured);
 * then the upgrade with the most single KL gained per bit added that keeps the average within
 * limit is measured with the rest, and kept when the measured KL falls. Returns 0, 1 when even
 * the cheapest assignment is over the budget (*start_bits says by how much), or -1 after
 * printing an error. */
static int search_up(plan *P, const cand *cands, int n_cands, int *fmt, int *trial, step *steps, int *n_steps,
                     int *n_accepted, meas *cur, double limit, double *start_bits, int verbose) {
    const double *bits = P->bits;
    for (int s = 0; s < P->n_sites; s++) fmt[s] = -1;
    for (int c = 0; c < n_cands; c++) {
        const cand *cd = &cands[c];
        if (!isfinite(cd->prio)) continue;
        const int f0 = fmt[cd->site];
        if (f0 < 0 || bits[cd->fmt] < bits[f0] ||
            (bits[cd->fmt] == bits[f0] && cd->single.mean_kld < single_kl(cands, n_cands, cd->site, f0)))
            fmt[cd->site] = cd->fmt;
    }
    *start_bits = avg_bits(P, fmt);
    if (*start_bits > limit) return 1;
    /* other starting points: each format everywhere it fits (the cheapest elsewhere), when that
     * is within the budget; the start is the one with the least measured KL */
    int *best = malloc((size_t)P->n_sites * sizeof(int));
    char *tried = calloc((size_t)n_cands + 1, 1);
    if (!tried || !best) {
        free(best);
        free(tried);
        cli_error("out of memory");
        return -1;
    }
    int rc = -1, from = -1, first = *n_steps;
    memcpy(best, fmt, (size_t)P->n_sites * sizeof(int));
    for (int f = -1; f < P->n_formats; f++) {
        memcpy(trial, fmt, (size_t)P->n_sites * sizeof(int));
        int differs = f < 0;
        for (int c = 0; f >= 0 && c < n_cands; c++)
            if (cands[c].fmt == f && isfinite(cands[c].prio) && trial[cands[c].site] != f)
                trial[cands[c].site] = f, differs = 1;
        if (!differs || avg_bits(P, trial) > limit) continue;
        step *st = &steps[(*n_steps)++];
        if (measure(P, trial, &st->m)) goto out;
        st->avg_bits = avg_bits(P, trial);
        if (within(&st->m, BUDGET_BITS, limit) && (*n_steps - 1 == first || st->m.mean_kld < cur->mean_kld)) {
            *cur = st->m;
            memcpy(best, trial, (size_t)P->n_sites * sizeof(int));
        }
    }
    for (int i = first; i < *n_steps; i++) steps[i].accepted = steps[i].m.mean_kld == cur->mean_kld;
    memcpy(fmt, best, (size_t)P->n_sites * sizeof(int));
    (*n_accepted)++;
    for (;;) {
        /* the next upgrade: the most single KL gained per bit added, within the budget */
        from = -1;
        double top = 0;
        for (int c = 0; c < n_cands; c++) {
            const cand *cd = &cands[c];
            const int f0 = fmt[cd->site];
            if (tried[c] || !isfinite(cd->prio) || f0 < 0 || bits[cd->fmt] <= bits[f0]) continue;
            const double gain = single_kl(cands, n_cands, cd->site, f0) - cd->single.mean_kld;
            if (!(gain > 0)) continue;
            memcpy(trial, fmt, (size_t)P->n_sites * sizeof(int));
            trial[cd->site] = cd->fmt;
            if (avg_bits(P, trial) > limit) continue;
            const double p = gain / ((bits[cd->fmt] - bits[f0]) * P->sites[cd->site].weight);
            if (from < 0 || p > top) from = c, top = p;
        }
        if (from < 0) break;
        tried[from] = 1;
        memcpy(trial, fmt, (size_t)P->n_sites * sizeof(int));
        trial[cands[from].site] = cands[from].fmt;
        meas m;
        step *st = &steps[*n_steps];
        if (measure(P, trial, &m)) goto out;
        if (!(st->added = malloc(sizeof(int)))) {
            cli_error("out of memory");
            goto out;
        }
        st->added[0] = from;
        st->n_added = 1;
        st->avg_bits = avg_bits(P, trial);
        st->m = m;
        st->accepted = within(&m, BUDGET_BITS, limit) && m.mean_kld < cur->mean_kld;
        (*n_steps)++;
        if (st->accepted) {
            memcpy(fmt, trial, (size_t)P->n_sites * sizeof(int));
            *cur = m;
            (*n_accepted)++;
        }
        if (verbose)
            fprintf(stderr, "fqlm: step %d: %.4f bits, mean KL %.6g: %s\n", *n_steps - 1, st->avg_bits, m.mean_kld,
                    st->accepted ? "kept" : "backed off");
    }
    rc = 0;
out:
    free(tried);
    free(best);
    return rc;
}

/* ---- --weights: tensors and types ---------------------------------------------------------------- */

/* 1 when name matches one of the comma-separated globs of list. */
static int glob_hit(const char *list, const char *name) {
    const char *p = list;
    char pat[256];
    while (*p) {
        size_t n = strcspn(p, ",");
        while (n && *p == ' ') p++, n--;
        snprintf(pat, sizeof pat, "%.*s", (int)n, p);
        if (*pat && fnmatch(pat, name, 0) == 0) return 1;
        p += n + (p[n] == ',');
    }
    return 0;
}

/* --formats for --weights: ggml type names (case-insensitive) into their lower-case names. */
static int parse_weight_types(const char *list, char ***out, int *n_out) {
    char **v = calloc(strlen(list) + 1, sizeof *v);
    int n = 0;
    if (!v) return -1;
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, ",");
        char t[64];
        snprintf(t, sizeof t, "%.*s", (int)(k < 63 ? k : 63), p);
        p += k + (p[k] == ',');
        if (!*t) continue;
        const char *name = NULL;
        for (int i = 0; fqlm_weight_type_list(i); i++)
            if (!strcasecmp(fqlm_weight_type_list(i), t)) name = fqlm_weight_type_list(i);
        if (!name || fqlm_weight_type_bpw(name) < 0) {
            fqlm_weight_type_bpw(t); /* its message lists the known types */
            cli_error("--formats: '%s' is not a weight type: %s", t, fqlm_last_error());
            goto fail;
        }
        int dup = 0;
        for (int i = 0; i < n; i++) dup |= !strcmp(v[i], name);
        if (!dup && !(v[n++] = strdup(name))) goto fail;
    }
    if (!n) {
        cli_error("--formats: no weight type named in '%s'", list);
        goto fail;
    }
    *out = v;
    *n_out = n;
    return 0;
fail:
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
    return -1;
}

/* The weight matrices --nodes (globs over tensor names) and --layers (blk.N.*; others only
 * when every layer is selected) pick, with their stored types' bits. 0, or -1 after printing. */
static int weight_sites(plan *P, const char *nodes, const char *layers_arg, const int *layers, int n_layers) {
    const int nw = fqlm_model_n_weights(P->model);
    const int all = n_layers == fqlm_model_n_layer(P->model);
    P->sites = calloc((size_t)(nw > 0 ? nw : 1), sizeof *P->sites);
    if (!P->sites) {
        cli_error("out of memory");
        return -1;
    }
    for (int i = 0; i < nw; i++) {
        const char *type = NULL;
        int64_t ne = 0, row = 0;
        const char *name = fqlm_model_weight(P->model, i, &type, &ne, &row);
        if (!name || !glob_hit(nodes, name)) continue;
        int L = -1, in = all;
        if (sscanf(name, "blk.%d.", &L) == 1) {
            in = 0;
            for (int k = 0; k < n_layers; k++) in |= layers[k] == L;
        }
        if (!in) continue;
        const double b = type ? fqlm_weight_type_bpw(type) : -1;
        if (b < 0) {
            cli_error("%s: stored as %s, a type --weights cannot plan from", name, type ? type : "(unknown)");
            return -1;
        }
        P->sites[P->n_sites++] = (site){name, -1, (double)ne, b, row};
    }
    if (!P->n_sites) {
        cli_error("--weights: --nodes '%s' --layers '%s' select no weight matrix (names as `fqlm inspect` lists "
                  "them, e.g. 'blk.*.ffn_*')", nodes, layers_arg);
        return -1;
    }
    return 0;
}

/* --budget-size-of FILE: the average bits per weight FILE's types give the plan's tensors.
 * 0, or -1 after printing. */
static int size_budget(const plan *P, const char *path, double *limit) {
    fqlm_model *f = fqlm_model_load(path);
    if (!f) {
        cli_error("--budget-size-of: %s", fqlm_last_error());
        return -1;
    }
    double sum = 0, tot = 0;
    int rc = 0;
    for (int s = 0; s < P->n_sites && !rc; s++) {
        int found = 0;
        for (int i = 0; i < fqlm_model_n_weights(f) && !found; i++) {
            const char *type = NULL;
            int64_t ne = 0;
            const char *name = fqlm_model_weight(f, i, &type, &ne, NULL);
            if (!name || strcmp(name, P->sites[s].node)) continue;
            found = 1;
            if ((double)ne != P->sites[s].weight) {
                cli_error("--budget-size-of %s: %s has %lld elements there, %.0f in the model", path, name,
                          (long long)ne, P->sites[s].weight);
                rc = -1;
            }
            sum += fqlm_weight_type_bpw(type) * (double)ne;
            tot += (double)ne;
        }
        if (!found) {
            cli_error("--budget-size-of %s: the file has no tensor %s: not a model of the same shape", path,
                      P->sites[s].node);
            rc = -1;
        }
    }
    fqlm_model_free(f);
    if (!rc) *limit = sum / tot;
    return rc;
}

/* ---- the command ------------------------------------------------------------------------------- */

static int cmp_prio(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    if (a->prio != b->prio) return a->prio < b->prio ? -1 : 1;
    if (a->site != b->site) return a->site - b->site;
    return a->fmt - b->fmt;
}

int cmd_plan(int argc, char **argv) {
    cli_opts o;
    cli_opts_defaults(&o);
    const char *formats_arg = NULL, *nodes_arg = "*", *layers_arg = "*", *dir = NULL, *sweep_dir = NULL,
               *size_of = NULL;
    int kind = -1, n_budgets = 0, max_chunks = 0, n_pairs_max = 6, weights = 0, n_seeds = 1;
    double limit = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--weights")) {
            weights = 1;
            continue;
        }
        static const char *const valued[] = {"--formats", "--nodes", "--layers", "-o", "--out", "--from-sweep",
                                             "--chunks", "--pairs", "--budget-kl", "--budget-top1", "--budget-ppl",
                                             "--budget-bits", "--budget-size-of", "--seeds"};
        int hit = -1;
        for (int k = 0; k < (int)(sizeof valued / sizeof *valued); k++)
            if (!strcmp(a, valued[k])) hit = k;
        if (hit >= 0) {
            if (i + 1 >= argc) {
                cli_error("option %s needs a value", a);
                return 2;
            }
            const char *v = argv[++i];
            long long iv;
            if (hit == 0) formats_arg = v;
            else if (hit == 1) nodes_arg = v;
            else if (hit == 2) layers_arg = v;
            else if (hit == 3 || hit == 4) dir = v;
            else if (hit == 5) sweep_dir = v;
            else if (hit == 6) {
                if (cli_parse_int(a, v, 1, 1 << 30, &iv)) return 2;
                max_chunks = (int)iv;
            } else if (hit == 7) {
                if (cli_parse_int(a, v, 0, 1000, &iv)) return 2;
                n_pairs_max = (int)iv;
            } else if (hit == 13) {
                if (cli_parse_int(a, v, 1, 1000, &iv)) return 2;
                n_seeds = (int)iv;
            } else if (hit == 12) {
                kind = BUDGET_BITS;
                n_budgets++;
                size_of = v;
            } else {
                kind = hit - 8;
                n_budgets++;
                if (cli_parse_float(a, v, &limit)) return 2;
            }
            continue;
        }
        int r = cli_opts_parse(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r == 0) {
            cli_error("plan: unknown option '%s' (see fqlm plan --help)", a);
            return 2;
        }
    }
    if (weights && sweep_dir) {
        cli_error("--from-sweep goes with activation plans: a sweep rounds activations, --weights re-encodes weights");
        return 2;
    }
    if (o.n_rules || o.fq_ffn_norm || o.fq_logits || o.fq_layer || o.dump || o.fq_stats || o.json || o.chat ||
        o.cache_type_k != UINT32_MAX || o.cache_type_v != UINT32_MAX) {
        cli_error("plan takes no --fq, --fake-quant*, --dump, --fq-stats, --json, --chat or --cache-type-k/-v "
                  "options: it builds the configuration itself (see fqlm plan --help)");
        return 2;
    }
    if (!o.prompt_file || o.prompt) {
        cli_error("plan needs a text to score: -f FILE (as fqlm compare -f)");
        return 2;
    }
    if (!formats_arg) {
        cli_error("plan needs --formats F1,F2,... (see fqlm formats)");
        return 2;
    }
    if (n_budgets != 1) {
        cli_error("plan needs exactly one budget: --budget-kl X, --budget-top1 P, --budget-ppl R, --budget-bits B or "
                  "--budget-size-of FILE (%d given)", n_budgets);
        return 2;
    }
    if (kind == BUDGET_BITS && !size_of && !(limit > 0 && limit < 64)) {
        cli_error("--budget-bits %g: give the average bits per value, more than 0 and below 64", limit);
        return 2;
    }
    if (kind != BUDGET_BITS && (!isfinite(limit) || (kind == BUDGET_KL && !(limit > 0)) ||
                                (kind == BUDGET_TOP1 && !(limit > 0 && limit <= 1)) || (kind == BUDGET_PPL && !(limit >= 1)))) {
        cli_error("%s %g: no assignment can meet it (%s)", budget_flag[kind], limit,
                  kind == BUDGET_KL ? "a KL budget must be > 0" : kind == BUDGET_TOP1 ? "top-1 agreement is in (0, 1]"
                                                                               : "a perplexity ratio budget must be >= 1");
        return 2;
    }
    if (!dir) {
        cli_error("plan needs an output directory: -o DIR");
        return 2;
    }
    if (o.n_ctx == 0) o.n_ctx = 512;

    if (size_of && !weights) {
        cli_error("--budget-size-of goes with --weights (a file's size is its weights' types); activation plans take "
                  "--budget-bits B");
        return 2;
    }
    char **formats = NULL;
    int n_formats = 0;
    if (weights ? parse_weight_types(formats_arg, &formats, &n_formats)
                : cli_parse_formats("--formats", formats_arg, &formats, &n_formats))
        return 2;
    double *bits = calloc((size_t)n_formats, sizeof(double));
    plan P;
    memset(&P, 0, sizeof P);
    P.state_fd = -1;
    P.formats = formats;
    P.n_formats = n_formats;
    P.bits = bits;
    P.n_seeds = n_seeds;
    P.seed0 = o.sp.seed;
    int rc = 1;
    char *text = NULL;
    int32_t *toks = NULL;
    int *layers = NULL, n_layers = 0, *fmt = NULL, *trial = NULL, *batch = NULL;
    cand *cands = NULL;
    step *steps = NULL;
    pair_row *pairs = NULL;
    sweep_row *srows = NULL;
    int n_cands = 0, n_steps = 0, n_pairs = 0, n_srows = 0, lock_fd = -1, handlers = 0;
    rbuf conf, cmdline, out;
    rb_init(&conf);
    rb_init(&cmdline);
    rb_init(&out);
    report_command_line(&cmdline, argc, argv);
    if (!bits) goto oom;
    if (!(P.stochastic = calloc((size_t)n_formats, sizeof(int)))) goto oom;
    int any_stoch = 0;
    for (int f = 0; f < n_formats; f++) {
        char canon[256] = "";
        if (weights) bits[f] = fqlm_weight_type_bpw(formats[f]);
        else fqlm_format_info(formats[f], canon, sizeof canon, &bits[f]);
        any_stoch |= P.stochastic[f] = strstr(canon, "round=stochastic") != NULL;
    }
    if (n_seeds > 1 && !any_stoch)
        fprintf(stderr, "fqlm: note: --seeds %d: no format of --formats rounds stochastically (round=stochastic), so "
                        "every seed gives the same figures: one run per configuration\n", n_seeds);
    P.weights = weights;

    const char *model_path = o.model ? o.model : cli_default_model();
    P.model = fqlm_model_load(model_path);
    if (!P.model) {
        cli_error("%s", fqlm_last_error());
        goto done;
    }
    const int NL = fqlm_model_n_layer(P.model);
    rc = 2;
    if (cli_parse_layers("--layers", layers_arg, NL, &layers, &n_layers)) goto done;

    if (weights) {
        if (weight_sites(&P, nodes_arg, layers_arg, layers, n_layers)) goto done;
        if (size_of && size_budget(&P, size_of, &limit)) goto done;
    } else {
    /* sites: the selected nodes the model computes, in graph order, each at the selected layers */
    {
        const int nn = fqlm_model_n_nodes(P.model);
        P.sites = calloc((size_t)nn * (size_t)(NL + 1), sizeof *P.sites);
        if (!P.sites) goto oom;
        char *copy = strdup(nodes_arg);
        if (!copy) goto oom;
        /* every piece of --nodes must name something */
        char *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ') t++;
            int hits = 0;
            for (int i = 0; i < nn; i++)
                hits += fnmatch(t, fqlm_model_node(P.model, i, NULL, NULL), 0) == 0;
            if (!hits) {
                rbuf names;
                rb_init(&names);
                for (int i = 0; i < nn; i++) rb_printf(&names, "%s%s", i ? ", " : "", fqlm_model_node(P.model, i, NULL, NULL));
                cli_error("--nodes: the model has no node '%s' (its nodes: %s)", t, names.s ? names.s : "");
                rb_free(&names);
                free(copy);
                goto done;
            }
        }
        free(copy);
        for (int i = 0; i < nn; i++) {
            int has_layer = 0;
            int64_t cols = 0;
            const char *name = fqlm_model_node(P.model, i, &has_layer, &cols);
            int sel = 0;
            copy = strdup(nodes_arg);
            if (!copy) goto oom;
            save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                while (*t == ' ') t++;
                sel |= fnmatch(t, name, 0) == 0;
            }
            free(copy);
            if (!sel) continue;
            /* kq and kq_soft_max hold n_head rows of n_kv values per token: n_kv averages CTX/2 */
            double wgt = (double)cols * (!strncmp(name, "kq", 2) ? o.n_ctx / 2.0 : 1.0);
            if (!has_layer) P.sites[P.n_sites++] = (site){name, -1, wgt, BASE_BITS, 0};
            else
                for (int li = 0; li < n_layers; li++) P.sites[P.n_sites++] = (site){name, layers[li], wgt, BASE_BITS, 0};
        }
    }
    }
    if (!P.n_sites) {
        cli_error("--nodes '%s' --layers '%s' select no site", nodes_arg, layers_arg);
        goto done;
    }
    for (int s = 0; s < P.n_sites; s++) P.total_weight += P.sites[s].weight;

    /* the text, cut as compare -f cuts it; K chunks take the first CTX + (K-1)(CTX-1) tokens */
    size_t tlen;
    text = cli_prompt_text(&o, &tlen);
    if (!text) goto done;
    int32_t probe[1];
    int nt = fqlm_tokenize(P.model, text, probe, 0, 1);
    if (nt < 0) {
        cli_error("%s: %s", o.prompt_file, fqlm_last_error());
        rc = 1;
        goto done;
    }
    toks = malloc((size_t)(nt > 0 ? nt : 1) * sizeof(int32_t));
    if (!toks) goto oom;
    fqlm_tokenize(P.model, text, toks, nt, 1);
    const int ctx = o.n_ctx;
    const int lead = nt > 0 && toks[0] == fqlm_token_bos(P.model);
    if (ctx < 2 || nt < (lead ? 2 : 1)) {
        cli_error("%s: %s", o.prompt_file, ctx < 2 ? "chunks of fewer than 2 tokens cannot be scored (use -c 2 or more)"
                                                   : "the text gives no tokens to score");
        goto done;
    }
    int n_chunks = 1, n_used = nt;
    {
        const long per = ctx - lead;
        if (nt > ctx) n_chunks += (int)((nt - ctx + per - 1) / per);
        if (max_chunks > 0 && n_chunks > max_chunks) {
            n_chunks = max_chunks;
            n_used = (int)(ctx + (long)(max_chunks - 1) * per);
        }
    }
    P.toks = toks;
    P.n_toks = n_used;
    P.ctx = ctx;
    P.cp = fqlm_context_default_params();
    P.cp.n_ctx = ctx;
    P.cp.n_threads = o.n_threads;
    P.cp.n_batch = o.n_batch;
    P.cp.exact = o.exact;
    P.cp.cache_f16 = o.cache_type != 0; /* GGUF type ids: 0 F32, 1 F16 */
    P.cp.seed = o.sp.seed;
    const uint64_t mhash = fqlm_model_hash(P.model);
    rb_printf(&conf, "model=%s\nmodel_hash=%016llx\n", model_path, (unsigned long long)mhash);
    rb_printf(&conf, "text=%s\ntext_tokens=%d\ntext_hash=%016llx\n", o.prompt_file, nt,
              (unsigned long long)fqlm_hash_bytes(toks, (size_t)nt * sizeof(int32_t)));
    rb_printf(&conf, "ctx=%d\nchunks=%d\nbatch=%d\narithmetic=%s\ncache_type=%u\nseed=%llu\n", ctx, n_chunks, o.n_batch,
              o.exact ? "exact" : "llama.cpp", o.cache_type, (unsigned long long)o.sp.seed);
    if (conf.oom) goto oom;

    /* candidates: each site with each format cheaper than F32 */
    cands = calloc((size_t)P.n_sites * (size_t)n_formats, sizeof *cands);
    if (!cands) goto oom;
    for (int s = 0; s < P.n_sites; s++)
        for (int f = 0; f < n_formats; f++)
            if (bits[f] < P.sites[s].base_bits && (!weights || fqlm_weight_type_fits(formats[f], P.sites[s].row_len) == 1))
                cands[n_cands++] = (cand){.site = s, .fmt = f, .saved = (P.sites[s].base_bits - bits[f]) * P.sites[s].weight};
    if (!n_cands) {
        cli_error("--formats %s: no format costs less than what the selected %s have (or fits their rows): nothing "
                  "to plan", formats_arg, weights ? "tensors" : "nodes");
        goto done;
    }

    /* the output directory, its settings and earlier measurements */
    if (sweep_dir) {
        rc = check_sweep_conf(sweep_dir, conf.s);
        if (rc) goto done;
        rc = 2;
        if (cli_sweep_read_rows(sweep_dir, &srows, &n_srows)) goto done;
    }
    rc = 1;
    {
        struct stat st;
        if (report_mkdir_p(dir) || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            cli_error("cannot create the output directory '%s': %s", dir,
                      errno && errno != EEXIST ? strerror(errno) : "a file of that name is in the way");
            goto done;
        }
        lock_fd = cli_lock_dir(dir, "plan");
        if (lock_fd < 0) goto done;
        char path[4096], cpath[4096];
        snprintf(path, sizeof path, "%s/plan.state", dir);
        if (state_load(&P, path)) goto done;
        snprintf(cpath, sizeof cpath, "%s/plan.conf", dir);
        rc = cli_check_conf(cpath, conf.s, P.n_memo ? "plan.state" : NULL, "plan");
        if (rc) goto done;
        rc = 1;
        P.state_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
        if (P.state_fd < 0) {
            cli_error("%s: %s", path, strerror(errno));
            goto done;
        }
    }
    const int n_from_state = P.n_memo;
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    g_interrupted = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    handlers = 1;
    P.base = fqlm_context_new(P.model, &P.cp);
    if (!P.base) {
        cli_error("%s", fqlm_last_error());
        goto done;
    }
    fprintf(stderr, "fqlm: plan %s: %s: %d tokens in %d chunk%s of up to %d; %d sites x %d formats = %d candidates; "
                    "budget %s %s %g; %d measurements in %s/plan.state\n",
            model_path, o.prompt_file, n_used, n_chunks, n_chunks == 1 ? "" : "s", ctx, P.n_sites, n_formats, n_cands,
            budget_metric[kind], kind == BUDGET_TOP1 ? ">=" : "<=", limit, n_from_state, dir);

    fmt = malloc((size_t)P.n_sites * sizeof(int));
    trial = malloc((size_t)P.n_sites * sizeof(int));
    batch = malloc((size_t)n_cands * sizeof(int));
    if (!fmt || !trial || !batch) goto oom;

    /* 2. single-rounding sensitivities */
    int n_sweep = 0;
    for (int c = 0; c < n_cands; c++) {
        cand *cd = &cands[c];
        /* a sweep has one seed's figures: under --seeds K a stochastic format is measured */
        for (int r = 0; r < n_srows && !(n_seeds > 1 && P.stochastic[cd->fmt]); r++)
            if (srows[r].layer == P.sites[cd->site].layer && !strcmp(srows[r].node, P.sites[cd->site].node) &&
                !strcmp(srows[r].format, formats[cd->fmt])) {
                cd->single = (meas){srows[r].mean_kld, srows[r].kld_p99, srows[r].top1_agree, srows[r].ppl_ratio,
                                    isfinite(srows[r].mean_kld) ? 0 : 1, 1, {0, 0, 0, 0}};
                cd->have_single = 1;
                n_sweep++;
                break;
            }
        if (cd->have_single) continue;
        for (int s = 0; s < P.n_sites; s++) fmt[s] = -1;
        fmt[cd->site] = cd->fmt;
        if (measure(&P, fmt, &cd->single)) goto done;
        cd->have_single = 1;
    }
    if (sweep_dir)
        fprintf(stderr, "fqlm: --from-sweep %s: %d of %d single-rounding figures from the sweep\n", sweep_dir, n_sweep,
                n_cands);
    for (int c = 0; c < n_cands; c++) {
        const double kl = cands[c].single.mean_kld;
        cands[c].prio = cands[c].single.nonfinite || !isfinite(kl) ? INFINITY : fmax(kl, 0) / cands[c].saved;
    }
    qsort(cands, (size_t)n_cands, sizeof *cands, cmp_prio);

    /* 3. greedy with back-off */
    for (int s = 0; s < P.n_sites; s++) fmt[s] = -1;
    meas cur = {0, 0, 1, 1, 0, 1, {0, 0, 0, 0}};
    steps = calloc((size_t)n_cands * 2 + 2, sizeof *steps);
    if (!steps) goto oom;
    int next = 0, bsize = 1, n_accepted = 0;
    if (kind == BUDGET_BITS) {
        double start = 0;
        int r = search_up(&P, cands, n_cands, fmt, trial, steps, &n_steps, &n_accepted, &cur, limit, &start, o.verbose);
        if (r < 0) goto done;
        if (r > 0) {
            cli_error("no assignment meets %s %.6g: every selected site at its cheapest format averages %.6g bits "
                      "(offer cheaper formats or raise the budget)", size_of ? "--budget-size-of" : "--budget-bits",
                      limit, start);
            rc = 1;
            goto done;
        }
        next = n_cands;
    }
    while (next < n_cands) {
        /* the next bsize candidates that would make their site cheaper (one per site per batch) */
        memcpy(trial, fmt, (size_t)P.n_sites * sizeof(int));
        int nb = 0, scan = next;
        for (; scan < n_cands && nb < bsize; scan++) {
            const cand *cd = &cands[scan];
            if (!isfinite(cd->prio)) continue;
            const int curf = trial[cd->site];
            if (curf >= 0 && bits[cd->fmt] >= bits[curf]) continue;
            if (curf != fmt[cd->site]) break; /* the site already moved in this batch: next batch */
            trial[cd->site] = cd->fmt;
            batch[nb++] = scan;
        }
        if (!nb) break;
        meas m;
        if (measure(&P, trial, &m)) goto done;
        step *st = &steps[n_steps];
        if (n_steps + 1 >= n_cands * 2 + 2) { /* cannot happen: each step adds or skips one */
            cli_error("internal: too many steps");
            goto done;
        }
        st->added = malloc((size_t)nb * sizeof(int));
        if (!st->added) goto oom;
        memcpy(st->added, batch, (size_t)nb * sizeof(int));
        st->n_added = nb;
        st->avg_bits = avg_bits(&P, trial);
        st->m = m;
        st->accepted = within(&m, kind, limit);
        n_steps++;
        if (st->accepted) {
            memcpy(fmt, trial, (size_t)P.n_sites * sizeof(int));
            cur = m;
            n_accepted++;
            next = batch[nb - 1] + 1;
            bsize *= 2;
        } else if (nb > 1) {
            bsize = FQ_MAX(1, nb / 2);
        } else {
            next = batch[0] + 1;
        }
        if (o.verbose)
            fprintf(stderr, "fqlm: step %d: +%d candidate%s: %.4f bits, %s %.6g: %s\n", n_steps - 1, nb, nb == 1 ? "" : "s",
                    st->avg_bits, budget_metric[kind], metric_of(&m, kind), st->accepted ? "accepted" : "over the budget");
        if (st->accepted || nb == 1) {
            /* skip candidates no cheaper than what their site has now */
            while (next < n_cands && fmt[cands[next].site] >= 0 && bits[cands[next].fmt] >= bits[fmt[cands[next].site]])
                next++;
        }
    }
    if (!n_accepted) {
        const cand *best = NULL;
        for (int c = 0; c < n_cands; c++)
            if (!best || (isfinite(metric_of(&cands[c].single, kind)) &&
                          (kind == BUDGET_TOP1 ? metric_of(&cands[c].single, kind) > metric_of(&best->single, kind)
                                               : metric_of(&cands[c].single, kind) < metric_of(&best->single, kind))))
                best = &cands[c];
        char r[512];
        rule_text(&P, best->site, best->fmt, r, sizeof r);
        cli_error("no assignment meets %s %g: even the least harmful single candidate, %s, measures %s %.6g "
                  "(loosen the budget or offer formats with more bits); %d measurements kept in %s/plan.state",
                  budget_flag[kind], limit, r, budget_metric[kind], metric_of(&best->single, kind), P.n_memo, dir);
        rc = 1;
        goto done;
    }

    /* 4. interactions: pairs of the final assignment's most sensitive entries */
    {
        int *pool = malloc((size_t)P.n_sites * sizeof(int)), np = 0;
        if (!pool) goto oom;
        for (int c = 0; c < n_cands; c++)
            if (fmt[cands[c].site] == cands[c].fmt) pool[np++] = c;
        /* most sensitive first */
        for (int i = 1; i < np; i++)
            for (int j = i; j > 0 && cands[pool[j]].single.mean_kld > cands[pool[j - 1]].single.mean_kld; j--) {
                int t = pool[j];
                pool[j] = pool[j - 1];
                pool[j - 1] = t;
            }
        pairs = calloc((size_t)n_pairs_max + 1, sizeof *pairs);
        if (!pairs) {
            free(pool);
            goto oom;
        }
        /* pairs (0,1), (0,2), (1,2), (0,3), ...: the most sensitive entries first */
        for (int j = 1; j < np && n_pairs < n_pairs_max; j++)
            for (int i = 0; i < j && n_pairs < n_pairs_max; i++) {
                int a = pool[i], b = pool[j];
                if (cands[a].site > cands[b].site) a = pool[j], b = pool[i];
                for (int s = 0; s < P.n_sites; s++) trial[s] = -1;
                trial[cands[a].site] = cands[a].fmt;
                trial[cands[b].site] = cands[b].fmt;
                pairs[n_pairs].a = a;
                pairs[n_pairs].b = b;
                if (measure(&P, trial, &pairs[n_pairs].joint)) {
                    free(pool);
                    goto done;
                }
                n_pairs++;
            }
        free(pool);
    }

    /* outputs */
    for (int s = 0; s < P.n_sites; s++) trial[s] = -1;
    const int *none = trial;
    {
        plan_out R = {.command = cmdline.s ? cmdline.s : "", .model_path = model_path, .text_path = o.prompt_file,
                      .from_sweep = sweep_dir, .model_hash = mhash, .kind = kind, .limit = limit,
                      .n_chunks = n_chunks, .n_tokens = n_used, .cands = cands, .n_cands = n_cands, .steps = steps,
                      .n_steps = n_steps, .fmt = fmt, .final_bits = avg_bits(&P, fmt), .base_bits = avg_bits(&P, none), .final = cur,
                      .pairs = pairs, .n_pairs = n_pairs};
        char path[4096];
        snprintf(path, sizeof path, "%s/plan.json", dir);
        if (write_json(&P, &R, path)) goto done;
        rb_init(&out);
        if (weights) {
            /* real tensor types: deployed by fqlm quantize (or llama-quantize: the line that
             * quantize --print-llama-quantize prints), re-measured by compare --weight-plan */
            char **pn = NULL, *lq = NULL;
            uint32_t *pt = NULL;
            int pnn = 0;
            fq_err qe;
            fq_qtypes_init();
            if (fq_plan_read_weights(path, &pn, &pt, &pnn, &qe) == 0) {
                fq_quantize_params qp = {0};
                qp.tt_names = (const char *const *)pn;
                qp.tt_types = pt;
                qp.n_tt = pnn;
                qp.n_threads = 1;
                fq_quantize_llama_cmd(model_path, "OUT.gguf", &qp, &lq, &qe);
                fq_plan_free(pn, pt, pnn);
            }
            if (!lq) {
                cli_error("the llama-quantize line for %s: %s", path, qe.msg);
                goto done;
            }
            rb_printf(&out, "# the plan's tensor types, written into a GGUF file:\nfqlm quantize --plan %s/plan.json %s OUT.gguf\n"
                            "# the llama-quantize command line that writes the same types (fqlm quantize --plan\n"
                            "# %s/plan.json --print-llama-quantize %s OUT.gguf prints it):\n%s\n"
                            "# the plan's figures, measured again:\nfqlm compare -m %s -f %s -c %d%s%s --weight-plan %s/plan.json\n",
                      dir, model_path, dir, model_path, lq, model_path, o.prompt_file, ctx, max_chunks ? " --chunks " : "",
                      max_chunks ? argv_num(max_chunks) : "", dir);
            free(lq);
            if (write_buf(dir, "deploy.txt", &out)) goto done;
        } else {
            config_rules(&P, fmt, &out);
            if (write_buf(dir, "rules.txt", &out)) goto done;
        }
        rb_free(&out);
        rb_init(&out);
        pareto_svg(&out, &R, 1);
        if (write_buf(dir, "pareto.svg", &out)) goto done;
        rb_free(&out);
        rb_init(&out);
        report_html(&out, &P, &R);
        if (write_buf(dir, "report.html", &out)) goto done;
        int n_assigned = 0;
        for (int s = 0; s < P.n_sites; s++) n_assigned += fmt[s] >= 0;
        printf("plan: %d of %d sites rounded, %.4f average bits (baseline %.4g): mean KL %.6g, KL p99 %.6g, top-1 "
               "%.6f, ppl ratio %.6f (measured)\n",
               n_assigned, P.n_sites, R.final_bits, R.base_bits, cur.mean_kld, cur.kld_p99, cur.top1_agree, cur.ppl_ratio);
        if (cur.runs > 1)
            printf("plan: means of %d seeds (%llu..%llu); sample sd: mean KL %.3g, KL p99 %.3g, top-1 %.3g, ppl ratio "
                   "%.3g; the budget held %s\n", cur.runs, (unsigned long long)P.seed0,
                   (unsigned long long)P.seed0 + (unsigned long long)cur.runs - 1, cur.sd[0], cur.sd[1], cur.sd[2],
                   cur.sd[3], kind == BUDGET_TOP1 ? "mean - sd" : "mean + sd");
        printf("plan: %d steps (%d accepted), %d interaction pair%s; %d new measurements, %d reused (%d were in "
               "%s/plan.state)\n",
               n_steps, n_accepted, n_pairs, n_pairs == 1 ? "" : "s", P.n_new, P.n_reused, n_from_state, dir);
        printf("plan: wrote %s/plan.json, %s, pareto.svg, report.html\n", dir, weights ? "deploy.txt" : "rules.txt");
    }
    rc = 0;
    goto done;
oom:
    cli_error("out of memory");
    rc = 1;
done:
    if (handlers) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        if (g_interrupted && rc) rc = 130;
    }
    if (P.state_fd >= 0) close(P.state_fd);
    if (lock_fd >= 0) close(lock_fd);
    for (int i = 0; i < P.n_memo; i++) free(P.memo[i].key);
    free(P.memo);
    for (int i = 0; steps && i < n_steps; i++) free(steps[i].added);
    free(steps);
    free(pairs);
    free(cands);
    free(srows);
    free(fmt);
    free(trial);
    free(batch);
    free(layers);
    free(toks);
    free(text);
    free(P.sites);
    fqlm_context_free(P.base);
    fqlm_model_free(P.model);
    for (int f = 0; f < n_formats; f++) free(formats[f]);
    free(formats);
    free(bits);
    free(P.stochastic);
    rb_free(&conf);
    rb_free(&cmdline);
    rb_free(&out);
    return rc;
}
