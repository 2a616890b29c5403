/* test_arch.c - every model family of arch_table.h against its reference engine's outputs
 * (tests/data/arch: llama.cpp c392e509, or ik_llama.cpp for qwen3 / gemma3; see the README
 * there for each family's graph, node names and quirks).
 *
 * Per family, default arithmetic: the F32 model's logits at every prompt position within
 * 1e-4 of the reference, every intermediate tensor of the reference's dump within 1e-4
 * (relative to the tensor's magnitude where it exceeds 1: kq reaches 47), the greedy
 * continuation identical; the Q4_K_M file's mean KL(golden || ours) <= 1e-5 per position
 * and top-1 >= 99% (ik_llama.cpp cases: its own activation format, KL <= 1e-4, top-1 >= 98%).
 * The ik_llama.cpp cases run with V in F16 and K in F32, as the reference does. Also:
 * -t 1 vs -t 2 bit-identical, a family-specific --fq rule fires and is counted, a rule on a
 * node the family lacks is refused with the family's node list, and the loader refuses
 * settings it would otherwise ignore (issue 11 item 8).
 *
 * Measured exceptions, kept visible here rather than hidden in loose bounds:
 *  - gemma2 F32 (26 layers): 1.1e-3 in the logits. Its GELU goes through ggml's fp16 table
 *    (an input one ulp away from an fp16 rounding boundary moves the output a whole fp16
 *    step, 2e-3 at 4), and the remaining ulp-level differences upstream (ggml's
 *    ggml_vec_dot_f32 order for kq, its vectorised expf in the softmax, tinyBLAS order
 *    for kqv; every matrix product and RoPE here are bit-identical to llama.cpp's) cross
 *    such boundaries in later layers. The test checks that our GELU applied to the
 *    reference's own ffn_gate gives its ffn_gelu bit for bit in every layer, and bounds
 *    the logits and tensors at 2e-3 (an engine with the exact GELU lands at 1.6e-3 in the
 *    float64 reference and fails the bit-exact GELU check).
 *  - rounding-tie cases (tie_flip_cases): positions before the flip match to KL 1e-10, one
 *    activation rounding flip at a position moves that position and, through the KV cache,
 *    the later ones. Bound: top-1 >= 95%, mirroring beats the exact engine, the positions
 *    before the flip within KL 1e-10. */
#include <math.h>
#include <unistd.h>

#include "fakequant.h"
#include "forward.h"
#include "gguf.h"
#include "harness.h"
#include "model.h"
#include "qtypes.h"
#include "testutil.h"

#define ADIR "tests/data/arch"

typedef struct {
    const char *name;   /* model base name */
    int ik;             /* reference is ik_llama.cpp: V cache F16 */
    const char *map;    /* dump name (NAME or NAME@k, without -L) = fqlm node, space separated */
} family_case;

static const family_case cases[] = {
    {"qwen2-l2-e256", 0, "Qcur@0=Qcur_proj Qcur@1=Qcur_biased Kcur@0=Kcur_proj Kcur@1=Kcur_biased Vcur@0=Vcur_proj"},
    {"llama3rope-l2-e256", 0, "Qcur@0=Qcur_proj Kcur@0=Kcur_proj"},
    {"llama-hd128-l2-e256", 0, "Qcur@0=Qcur_proj Kcur@0=Kcur_proj"},
    {"gemma2-l26-e64", 0, "Qcur@0=Qcur_proj Kcur@0=Kcur_proj"},
    {"phi3-l2-e256", 0, "Qcur@0=Qcur_proj Qcur@1=Qcur Qcur=Qcur_scaled Kcur@0=Kcur_proj ffn_silu=ffn_up"},
    {"olmo2-l2-e256", 0, "Qcur=Qcur_proj Kcur=Kcur_proj"},
    {"qwen3-l2-e256", 1, "Qcur=Qcur_proj Kcur=Kcur_proj attn_out=kqv_out ffn_norm=ffn_inp"},
    {"gemma3-l6-e64", 1, "Qcur@0=Qcur_proj Kcur@0=Kcur_proj ffn_norm=sa_out"},
};

/* case, first position that differs (evidence measured: positions before it at KL <= 6e-14,
 * max|diff| <= 1.5e-6; from it on KL 1e-4 .. 2.5e-4) */
static const struct {
    const char *name;
    int flip_pos;
} tie_flip_cases[] = {
    {"llama3rope-l2-e256-q4_k_m", 11},
};

static int tie_flip_pos(const char *name) {
    for (size_t i = 0; i < sizeof tie_flip_cases / sizeof tie_flip_cases[0]; i++)
        if (!strcmp(name, tie_flip_cases[i].name)) return tie_flip_cases[i].flip_pos;
    return -1;
}

typedef struct {
    double max_diff, mean_kl, top1;
} cmp_result;

static cmp_result compare_logits(const float *gold, const float *ours, int T, int V) {
    cmp_result r = {0, 0, 0};
    int agree = 0;
    for (int t = 0; t < T; t++) {
        const float *g = gold + (size_t)t * V, *o = ours + (size_t)t * V;
        double mg = -INFINITY, mo = -INFINITY;
        int ag = 0, ao = 0;
        for (int i = 0; i < V; i++) {
            double d = fabs((double)g[i] - o[i]);
            if (d > r.max_diff || isnan(d)) r.max_diff = isnan(d) ? INFINITY : d;
            if (g[i] > mg) mg = g[i], ag = i;
            if (o[i] > mo) mo = o[i], ao = i;
        }
        agree += ag == ao;
        double sg = 0, so = 0;
        for (int i = 0; i < V; i++) sg += exp(g[i] - mg), so += exp(o[i] - mo);
        double lzg = mg + log(sg), lzo = mo + log(so), kl = 0;
        for (int i = 0; i < V; i++) {
            double lpg = g[i] - lzg, lpo = o[i] - lzo;
            kl += exp(lpg) * (lpg - lpo);
        }
        r.mean_kl += kl / T;
    }
    r.top1 = (double)agree / T;
    return r;
}

static int verbose(void) { return getenv("FQ_TEST_VERBOSE") != NULL; }

static fq_ctx *make_ctx(const fq_model *m, int ik, int threads, fq_err *e) {
    fq_ctx_params p = {.n_ctx = 64, .n_threads = threads, .exact = 0, .cache_type = FQ_TYPE_F32, .n_batch = 512};
    if (ik) p.kv_split = 1, p.cache_type_k = FQ_TYPE_F32, p.cache_type_v = FQ_TYPE_F16;
    return fq_ctx_new(m, &p, e);
}

/* ---- capture of every node ------------------------------------------------------------ */

typedef struct {
    int T, n_head, n_layer;
    float *store[FQ_NODE_COUNT][40]; /* per (node, layer + 1) */
} capture;

static void cap_hook(void *ud, const fq_hook_call *c) {
    capture *cp = ud;
    const int li = c->layer + 1;
    if (li >= 40) return;
    if (c->node == FQ_NODE_KQ || c->node == FQ_NODE_KQ_SOFT_MAX) {
        /* per token: [n_head][pos+1]; kept as [T][n_head][T] */
        if (!cp->store[c->node][li]) cp->store[c->node][li] = calloc((size_t)cp->T * cp->n_head * cp->T, 4);
        for (int h = 0; h < cp->n_head; h++)
            memcpy(cp->store[c->node][li] + ((size_t)c->pos * cp->n_head + h) * cp->T,
                   c->data + (size_t)h * c->ncols, (size_t)c->ncols * 4);
        return;
    }
    free(cp->store[c->node][li]);
    cp->store[c->node][li] = malloc((size_t)(c->nrows * c->ncols) * 4);
    memcpy(cp->store[c->node][li], c->data, (size_t)(c->nrows * c->ncols) * 4);
}

/* The fqlm node a dump name stands for, from the case's map or by name; -1: unknown. */
static int map_name(const family_case *fc, const char *name, int n_layer, int *layer) {
    char base[128];
    snprintf(base, sizeof base, "%s", name);
    int k = -1;
    char *at = strchr(base, '@');
    if (at) {
        k = atoi(at + 1);
        *at = 0;
    }
    *layer = -1;
    char *dash = strrchr(base, '-');
    if (dash && dash[1] >= '0' && dash[1] <= '9') {
        *layer = atoi(dash + 1);
        *dash = 0;
    } else if (!strcmp(base, "ffn_post_norm")) {
        /* written without a layer number: @k is layer k's, the plain name the last layer's */
        *layer = k >= 0 ? k : n_layer - 1;
        k = -1;
    }
    char key[160];
    if (k >= 0) snprintf(key, sizeof key, "%s@%d=", base, k);
    else snprintf(key, sizeof key, "%s=", base);
    const char *p = fc->map;
    while (p && *p) {
        while (*p == ' ') p++;
        if (!strncmp(p, key, strlen(key)) && (p == fc->map || p[-1] == ' ')) {
            char nm[64];
            const char *v = p + strlen(key);
            size_t n = strcspn(v, " ");
            snprintf(nm, sizeof nm, "%.*s", (int)n, v);
            return fq_node_from_name(nm);
        }
        p = strchr(p, ' ');
    }
    if (k >= 0) return -1; /* an earlier write the map does not name */
    return fq_node_from_name(base);
}

static void check_tensors(const family_case *fc, fq_model *m, const int32_t *toks, int T) {
    char path[512];
    snprintf(path, sizeof path, ADIR "/logits/%s-f32.p3.tensors/index.txt", fc->name);
    char *index = tu_read(path, NULL);
    CHECK(index != NULL, "%s: no tensor dump", path);
    if (!index) return;
    fq_err e;
    capture *cp = calloc(1, sizeof *cp);
    cp->T = T;
    cp->n_head = m->hp.n_head;
    uint8_t *mask = malloc(fq_hook_mask_size(m));
    memset(mask, 1, fq_hook_mask_size(m));
    fq_ctx *c = make_ctx(m, fc->ik, 2, &e);
    fq_ctx_set_hook(c, cap_hook, cp, mask);
    float *lg = malloc((size_t)T * m->hp.n_vocab * 4);
    CHECK(fq_ctx_eval(c, toks, T, 0, lg, 1, &e) == 0, "eval");
    const float kq_scale = m->arch->qscale == FQ_QSCALE_SOFTMAX ? m->hp.q_scale : 1.0f;
    int checked = 0, unmapped = 0, gelu_checked = 0;
    double worst = 0;
    char worst_name[128] = "";
    char *save = NULL;
    for (char *line = strtok_r(index, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[128];
        long ne0, ne1, ne2, ne3;
        if (sscanf(line, "%127s %ld %ld %ld %ld", name, &ne0, &ne1, &ne2, &ne3) != 5) continue;
        int layer;
        const int node = map_name(fc, name, m->hp.n_layer, &layer);
        if (node < 0 || !fq_node_in_model(m, node)) {
            printf("  %s: dump tensor %s has no fqlm node\n", fc->name, name);
            unmapped++;
            continue;
        }
        snprintf(path, sizeof path, ADIR "/logits/%s-f32.p3.tensors/%s.f32", fc->name, name);
        size_t gn;
        float *g = tu_read_f32(path, &gn);
        const float *ours = layer + 1 < 40 ? cp->store[node][layer + 1] : NULL;
        CHECK(g && ours, "%s: %s: %s", fc->name, name, g ? "not captured" : "dump file missing");
        if (!g || !ours) {
            free(g);
            continue;
        }
        double maxd = 0, maxg = 0;
        if (node == FQ_NODE_KQ || node == FQ_NODE_KQ_SOFT_MAX) {
            /* dump [n_kv][T][n_head] (n_kv padded); kq is the raw product, ours is scaled
             * by kq_scale; entries above the diagonal: kq real products (not computed
             * here, skipped), soft_max masked zeros */
            for (long h = 0; h < ne2; h++)
                for (long t = 0; t < ne1; t++)
                    for (long j = 0; j < ne0; j++) {
                        float gv = g[(h * ne1 + t) * ne0 + j];
                        if (node == FQ_NODE_KQ) {
                            if (j > t) continue;
                            gv *= kq_scale;
                        }
                        float ov = j <= t ? ours[((size_t)t * cp->n_head + h) * T + j] : 0.0f;
                        maxd = fmax(maxd, fabs(gv - ov));
                        maxg = fmax(maxg, fabs(gv));
                    }
        } else {
            CHECK(gn == (size_t)(ne0 * ne1 * ne2 * ne3), "%s: %s size", fc->name, name);
            for (size_t i = 0; i < gn; i++) {
                maxd = fmax(maxd, fabs((double)g[i] - ours[i]));
                maxg = fmax(maxg, fabs(g[i]));
            }
        }
        const double rel = maxd / fmax(1.0, maxg);
        if (verbose()) printf("  %-24s -> %-16s max|diff| %.3g (max|golden| %.3g)\n", name, fq_node_name(node), maxd, maxg);
        if (rel > worst) worst = rel, snprintf(worst_name, sizeof worst_name, "%s", name);
        const double bound = !strcmp(fc->name, "gemma2-l26-e64") ? 2e-3 : 1e-4;
        CHECK(rel <= bound, "%s: %s (fqlm %s-%d) max|diff| %.3g (max|golden| %.3g)", fc->name, name, fq_node_name(node),
              layer, maxd, maxg);
        if (node == FQ_NODE_FFN_GELU && m->arch->ffn_act == FQ_ACT_GELU_FP16) {
            /* the activation alone, on the reference's own input: bit for bit */
            char gp[512];
            snprintf(gp, sizeof gp, ADIR "/logits/%s-f32.p3.tensors/ffn_gate-%d.f32", fc->name, layer);
            size_t an;
            float *gate = tu_read_f32(gp, &an);
            CHECK(gate && an == gn, "%s: ffn_gate-%d for the GELU check", fc->name, layer);
            if (gate && an == gn) {
                fq__gelu_row(gate, (int64_t)an, m->arch->ffn_act);
                CHECK(memcmp(gate, g, gn * 4) == 0, "%s: GELU of the reference's ffn_gate-%d differs from its ffn_gelu",
                      fc->name, layer);
                gelu_checked++;
            }
            free(gate);
        }
        checked++;
        free(g);
    }
    printf("%-22s tensors: %d compared, worst %s %.2e\n", fc->name, checked, worst_name, worst);
    CHECK(unmapped == 0, "%s: %d dump tensors without an fqlm node", fc->name, unmapped);
    if (m->arch->ffn_act == FQ_ACT_GELU_FP16)
        CHECK(gelu_checked == m->hp.n_layer, "%s: GELU checked in %d layers", fc->name, gelu_checked);
    CHECK(checked > 20, "%s: only %d tensors compared", fc->name, checked);
    for (int i = 0; i < FQ_NODE_COUNT; i++)
        for (int j = 0; j < 40; j++) free(cp->store[i][j]);
    free(cp);
    free(mask);
    free(lg);
    free(index);
    fq_ctx_free(c);
}

static int json_floats(const char *js, const char *key, double *out, int cap) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(js, pat);
    if (!p) return 0;
    p = strchr(p, '[');
    if (!p) return 0;
    p++;
    int n = 0;
    while (*p && *p != ']' && n < cap) {
        char *end;
        double v = strtod(p, &end);
        if (end == p) break;
        out[n++] = v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    return n;
}

static float *run_prompt_mode(fq_model *m, int ik, const int32_t *toks, int n, int threads, int exact) {
    fq_err e;
    fq_ctx_params p = {.n_ctx = 64, .n_threads = threads, .exact = exact, .cache_type = FQ_TYPE_F32, .n_batch = 512};
    if (ik) p.kv_split = 1, p.cache_type_k = FQ_TYPE_F32, p.cache_type_v = FQ_TYPE_F16;
    fq_ctx *c = fq_ctx_new(m, &p, &e);
    if (!c) return NULL;
    float *lg = malloc((size_t)n * m->hp.n_vocab * 4);
    if (fq_ctx_eval(c, toks, n, 0, lg, 1, &e)) {
        fprintf(stderr, "eval: %s\n", e.msg);
        free(lg);
        lg = NULL;
    }
    fq_ctx_free(c);
    return lg;
}

static float *run_prompt(fq_model *m, int ik, const int32_t *toks, int n, int threads) {
    return run_prompt_mode(m, ik, toks, n, threads, 0);
}

static void check_case(const family_case *fc, const char *type) {
    char path[512];
    snprintf(path, sizeof path, ADIR "/logits/%s-%s.p3.json", fc->name, type);
    char *js = tu_read(path, NULL);
    CHECK(js != NULL, "%s: cannot read", path);
    if (!js) return;
    int32_t toks[64], greedy[64];
    double gap[64];
    const int n = tu_json_ints(js, "tokens", toks, 64), ng = tu_json_ints(js, "greedy_tokens", greedy, 64);
    const int ngap = json_floats(js, "greedy_top2_gap", gap, 64);
    snprintf(path, sizeof path, ADIR "/models/%s-%s.gguf", fc->name, type);
    fq_err e;
    fq_model *m = fq_model_load(path, &e);
    CHECK(m != NULL, "%s: load: %s", path, m ? "" : e.msg);
    if (!m) {
        free(js);
        return;
    }
    const int V = m->hp.n_vocab, f32 = !strcmp(type, "f32");
    snprintf(path, sizeof path, ADIR "/logits/%s-%s.p3.logits.f32", fc->name, type);
    size_t gn;
    float *gold = tu_read_f32(path, &gn);
    CHECK(gold && gn == (size_t)n * V, "%s: golden logits size", path);
    float *l1 = run_prompt(m, fc->ik, toks, n, 1), *l2 = run_prompt(m, fc->ik, toks, n, 2);
    CHECK(l1 && l2, "%s-%s: eval failed", fc->name, type);
    if (gold && l1 && l2) {
        cmp_result r = compare_logits(gold, l1, n, V);
        printf("%-22s %-6s max|diff| %.3e  mean KL %.3e  top1 %.3f%s\n", fc->name, type, r.max_diff, r.mean_kl, r.top1,
               fc->ik ? "  (ik_llama.cpp, V cache F16)" : "");
        char cname[128];
        snprintf(cname, sizeof cname, "%s-%s", fc->name, type);
        const int flip = tie_flip_pos(cname);
        if (f32) {
            const double bound = !strcmp(fc->name, "gemma2-l26-e64") ? 2e-3 : 1e-4;
            CHECK(r.max_diff <= bound, "%s-%s: max|diff| %.3e (bound %.0e)", fc->name, type, r.max_diff, bound);
        } else if (flip >= 0) {
            float *lx = run_prompt_mode(m, fc->ik, toks, n, 2, 1);
            cmp_result rx = lx ? compare_logits(gold, lx, n, V) : (cmp_result){0, 0, 0};
            cmp_result rb = compare_logits(gold, l1, flip, V); /* the positions before the flip */
            printf("%-22s %-6s rounding-tie case: positions 0-%d mean KL %.2e; exact engine KL %.2e\n", fc->name, type,
                   flip - 1, rb.mean_kl, rx.mean_kl);
            CHECK(rb.mean_kl <= 1e-10, "%s: positions before the flip: mean KL %.3e", cname, rb.mean_kl);
            CHECK(r.mean_kl < rx.mean_kl, "%s: mirroring KL %.3e not below the exact engine's %.3e", cname, r.mean_kl,
                  rx.mean_kl);
            CHECK(r.top1 >= 0.95, "%s: top-1 %.3f (bound 0.95)", cname, r.top1);
            if (r.mean_kl <= 1e-5) printf("note: %s now meets the strict bound: take it off tie_flip_cases\n", cname);
            free(lx);
        } else {
            const double kl_bound = fc->ik ? 1e-4 : 1e-5, top1 = fc->ik ? 0.98 : 0.99;
            CHECK(r.mean_kl <= kl_bound, "%s-%s: mean KL %.3e (bound %.0e)", fc->name, type, r.mean_kl, kl_bound);
            CHECK(r.top1 >= top1, "%s-%s: top-1 %.3f (bound %.2f)", fc->name, type, r.top1, top1);
        }
        CHECK(memcmp(l1, l2, (size_t)n * V * 4) == 0, "%s-%s: -t 1 and -t 2 logits differ", fc->name, type);
    }
    if (f32 && ng > 0) {
        /* greedy continuation, one token at a time; compared up to the first step whose
         * golden top-2 gap is below 1e-3 (none in these F32 cases) */
        fq_ctx *c = make_ctx(m, fc->ik, 2, &e);
        float *lg = malloc((size_t)V * 4);
        int ok = c && fq_ctx_eval(c, toks, n, 0, lg, 0, &e) == 0, match = 0, cmp_n = ng;
        for (int i = 0; i < ngap && i < ng; i++)
            if (gap[i] < 1e-3) {
                cmp_n = i;
                printf("%-22s greedy step %d has a golden top-2 gap of %.2g: compared up to it\n", fc->name, i, gap[i]);
                break;
            }
        for (int i = 0; ok && i < cmp_n; i++) {
            int best = 0;
            for (int k = 1; k < V; k++)
                if (lg[k] > lg[best]) best = k;
            if (best != greedy[i]) break;
            match++;
            if (i + 1 < ng) ok = fq_ctx_eval(c, &greedy[i], 1, n + i, lg, 0, &e) == 0;
        }
        CHECK(match == cmp_n, "%s: greedy tokens agree for %d of %d", fc->name, match, cmp_n);
        free(lg);
        fq_ctx_free(c);
        check_tensors(fc, m, toks, n);
    }
    free(l1);
    free(l2);
    free(gold);
    fq_model_free(m);
    free(js);
}

int main(void) {
    printf("kernels: %s\n", fq_qtypes_init());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_case(&cases[i], "f32");
        check_case(&cases[i], "q4_k_m");
    }
    return TEST_END();
}
