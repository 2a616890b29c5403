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
 * gemma2's GELU goes through ggml's fp16 table, where an input one ulp away from an fp16
 * rounding boundary moves the output a whole fp16 step (2e-3 at 4): over 26 layers only a
 * bit-identical graph stays within 1e-4, which is why every kernel here mirrors ggml's
 * operation order (measured: the gemma2 F32 logits and every dumped tensor are identical
 * to llama.cpp's, max|diff| 0). The test also applies our GELU to the reference's own
 * ffn_gate and asks for its ffn_gelu bit for bit in every layer.
 *
 * Measured exception, kept visible here rather than hidden in a loose bound:
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

/* case, first position that differs (positions before it within KL 1e-10). None at
 * present: llama3rope-l2-e256-q4_k_m was one (a flip at position 11, KL 1e-4 .. 2.5e-4 after
 * it) until SiLU began to mirror ggml's vectorised expf. */
static const struct {
    const char *name;
    int flip_pos;
} tie_flip_cases[] = {
    {"(none)", 0},
};

static int tie_flip_pos(const char *name) {
    for (size_t i = 0; i < sizeof tie_flip_cases / sizeof tie_flip_cases[0]; i++)
        if (!strcmp(name, tie_flip_cases[i].name)) return tie_flip_cases[i].flip_pos;
    return -1;
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
        const double bound = 1e-4;
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
            CHECK(r.max_diff <= 1e-4, "%s-%s: max|diff| %.3e (bound 1e-4)", fc->name, type, r.max_diff);
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

/* ---- --fq on family nodes -------------------------------------------------------------- */

static void check_family_rules(void) {
    fq_err e;
    fq_model *m = fq_model_load(ADIR "/models/gemma2-l26-e64-f32.gguf", &e);
    CHECK(m != NULL, "load gemma2: %s", m ? "" : e.msg);
    if (!m) return;
    fq_fakequant *f = fq_fakequant_new(m, &e);
    CHECK(fq_fakequant_add_rule(f, "attn_post_norm@*=bf16", &e) == 0, "gemma2 rule: %s", e.msg);
    FILE *log = tmpfile();
    fq_fakequant_set_log(f, log);
    fq_ctx *c = make_ctx(m, 0, 2, &e);
    fq_fakequant_attach(f, c);
    const int32_t toks[] = {1, 403, 407, 261, 378, 383};
    float *lg = malloc(6 * (size_t)m->hp.n_vocab * 4);
    CHECK(fq_ctx_eval(c, toks, 6, 0, lg, 1, &e) == 0, "eval with the rule");
    /* one application per layer for the one step */
    CHECK(fq_fakequant_applications(f) == (uint64_t)m->hp.n_layer, "attn_post_norm@*: %llu applications, want %d",
          (unsigned long long)fq_fakequant_applications(f), m->hp.n_layer);
    /* logged: one first-application line per layer */
    char logbuf[8192] = {0};
    rewind(log);
    size_t ln = fread(logbuf, 1, sizeof logbuf - 1, log);
    logbuf[ln] = 0;
    fclose(log);
    CHECK(strstr(logbuf, "attn_post_norm-0") && strstr(logbuf, "attn_post_norm-25"), "first-application log: %s", logbuf);
    FILE *devnull = fopen("/dev/null", "w");
    CHECK(fq_fakequant_report(f, devnull, 0) == 0, "a target of attn_post_norm@* never fired");
    fclose(devnull);
    char *js = fq_fakequant_json(f, 0);
    CHECK(js && strstr(js, "\"attn_post_norm\"") && strstr(js, "\"layer\":25"), "report rows name attn_post_norm-25: %s",
          js ? js : "(null)");
    free(js);
    /* the rounding reaches the logits */
    float *l0 = run_prompt(m, 0, toks, 6, 2);
    CHECK(l0 && memcmp(l0, lg, 6 * (size_t)m->hp.n_vocab * 4) != 0, "the bf16 rule changed nothing");
    free(l0);
    free(lg);
    fq_ctx_free(c);
    fq_fakequant_free(f);
    /* a node of another family: refused, with this family's nodes */
    fq_model *p3 = fq_model_load(ADIR "/models/phi3-l2-e256-f32.gguf", &e);
    CHECK(p3 != NULL, "load phi3");
    if (p3) {
        fq_fakequant *g = fq_fakequant_new(p3, &e);
        const char *bad[] = {"attn_post_norm@*=bf16", "ffn_gate_par=bf16", "attn_post_norm-1=bf16"};
        for (size_t i = 0; i < 3; i++) {
            CHECK(fq_fakequant_add_rule(g, bad[i], &e) != 0, "phi3: '%s' accepted", bad[i]);
            CHECK(strstr(e.msg, "does not exist in this phi3 model") && strstr(e.msg, "wqkv") &&
                      strstr(e.msg, "ffn_mul"),
                  "phi3 '%s': %s", bad[i], e.msg);
        }
        CHECK(fq_fakequant_add_rule(g, "ffn_mul@1=bf16", &e) == 0, "phi3 ffn_mul: %s", e.msg);
        /* a glob takes only the family's nodes */
        CHECK(fq_fakequant_add_rule(g, "*@0=bf16", &e) == 0, "phi3 glob: %s", e.msg);
        fq_fakequant_free(g);
        fq_model_free(p3);
    }
    fq_model_free(m);
}

/* ---- settings that change results (issue 11 item 8) ------------------------------------ */

typedef struct {
    const char *set_str_key, *set_str;
    const char *set_f32_key;
    float set_f32;
    const char *set_u32_key;
    uint32_t set_u32;
    int add_biases;          /* blk.L.attn_{q,k,v,output}.bias */
    const char *add_vec;     /* one more [n_embd] tensor */
} variant;

static const char *variant_path(const char *tag) {
    static char buf[256];
    snprintf(buf, sizeof buf, "/tmp/fqlm_test_arch_%d_%s.gguf", (int)getpid(), tag);
    return buf;
}

/* Copies the llama model with the edits; returns the path or NULL. */
static const char *write_variant(const variant *v, const char *tag) {
    fq_gguf g;
    fq_err e = {{0}};
    if (fq_gguf_open(&g, ADIR "/models/llama-hd128-l2-e256-f32.gguf", &e)) return NULL;
    fq_gguf_writer *w = fq_gguf_writer_new(&e);
    for (uint64_t i = 0; i < g.n_kv; i++) FQ_ASSERT(fq_gguf_writer_copy_kv(w, &g.kv[i], &e) == 0);
    if (v->set_str_key) FQ_ASSERT(fq_gguf_writer_set_str(w, v->set_str_key, v->set_str, &e) == 0);
    if (v->set_f32_key) FQ_ASSERT(fq_gguf_writer_set_f32(w, v->set_f32_key, v->set_f32, &e) == 0);
    if (v->set_u32_key) FQ_ASSERT(fq_gguf_writer_set_u32(w, v->set_u32_key, v->set_u32, &e) == 0);
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const fq_gguf_tensor *t = &g.tensors[i];
        FQ_ASSERT(fq_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &e) == 0);
    }
    static float bias[4][512];
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 512; i++) bias[k][i] = 0.05f * (float)((i * 7 + k * 13) % 17 - 8);
    if (v->add_biases) {
        const char *nm[4] = {"attn_q.bias", "attn_k.bias", "attn_v.bias", "attn_output.bias"};
        const int64_t n[4] = {512, 256, 256, 256}; /* H d, Hkv d, Hkv d, n_embd */
        for (int L = 0; L < 2; L++)
            for (int k = 0; k < 4; k++) {
                char name[64];
                snprintf(name, sizeof name, "blk.%d.%s", L, nm[k]);
                int64_t ne[4] = {n[k], 1, 1, 1};
                FQ_ASSERT(fq_gguf_writer_add_tensor(w, name, FQ_TYPE_F32, 1, ne, bias[k], &e) == 0);
            }
    }
    if (v->add_vec) {
        int64_t ne[4] = {256, 1, 1, 1};
        FQ_ASSERT(fq_gguf_writer_add_tensor(w, v->add_vec, FQ_TYPE_F32, 1, ne, bias[0], &e) == 0);
    }
    const char *path = variant_path(tag);
    const int rc = fq_gguf_writer_write(w, path, &e);
    fq_gguf_writer_free(w);
    fq_gguf_close(&g);
    CHECK(rc == 0, "write %s: %s", path, e.msg);
    return rc == 0 ? path : NULL;
}

static void expect_refused(const variant *v, const char *tag, const char *phrase1, const char *phrase2) {
    const char *path = write_variant(v, tag);
    if (!path) return;
    fq_err e;
    fq_model *m = fq_model_load(path, &e);
    CHECK(!m, "%s: loaded, expected a refusal naming '%s'", tag, phrase1);
    if (m) fq_model_free(m);
    else CHECK(strstr(e.msg, phrase1) && strstr(e.msg, phrase2), "%s: '%s'", tag, e.msg);
    unlink(path);
}

typedef struct {
    int node;
    float *v[4];
} grab;

static void grab_hook(void *ud, const fq_hook_call *c) {
    grab *g = ud;
    for (int k = 0; k < 4; k++)
        if (c->layer == 0 && c->node == (k == 0 ? FQ_NODE_QCUR : k == 1 ? FQ_NODE_QCUR_PROJ : k == 2 ? FQ_NODE_QCUR_BIASED : FQ_NODE_KQV_OUT)) {
            free(g->v[k]);
            g->v[k] = malloc((size_t)(c->nrows * c->ncols) * 4);
            memcpy(g->v[k], c->data, (size_t)(c->nrows * c->ncols) * 4);
        }
}

static float *eval_grab(fq_model *m, const int32_t *toks, int n, grab *g) {
    fq_err e;
    fq_ctx *c = make_ctx(m, 0, 2, &e);
    uint8_t *mask = malloc(fq_hook_mask_size(m));
    memset(mask, 1, fq_hook_mask_size(m));
    fq_ctx_set_hook(c, grab_hook, g, mask);
    float *lg = malloc((size_t)n * m->hp.n_vocab * 4);
    CHECK(fq_ctx_eval(c, toks, n, 0, lg, 1, &e) == 0, "eval: %s", e.msg);
    free(mask);
    fq_ctx_free(c);
    return lg;
}

static void check_item8(void) {
    expect_refused(&(variant){.set_str_key = "llama.rope.scaling.type", .set_str = "yarn"}, "yarn",
                   "llama.rope.scaling.type", "yarn");
    expect_refused(&(variant){.set_str_key = "llama.rope.scaling.type", .set_str = "longrope"}, "longrope",
                   "llama.rope.scaling.type", "not supported");
    expect_refused(&(variant){.set_u32_key = "llama.expert_count", .set_u32 = 8}, "moe", "llama.expert_count",
                   "mixture-of-experts");
    expect_refused(&(variant){.add_vec = "blk.0.post_ffw_norm.weight"}, "unused", "blk.0.post_ffw_norm.weight",
                   "not used by architecture 'llama'");
    expect_refused(&(variant){.set_str_key = "general.architecture", .set_str = "mamba"}, "mamba",
                   "architecture 'mamba' is not supported", "llama, qwen2, qwen3, gemma2, gemma3, phi3, olmo2");
    expect_refused(&(variant){.set_str_key = "general.architecture", .set_str = "\x1b[2Jx"}, "escape",
                   "architecture '\\x1b[2Jx' is not supported", "olmo2");
    expect_refused(&(variant){.set_f32_key = "llama.rope.scaling.factor", .set_f32 = -2.0f}, "negfactor",
                   "llama.rope.scaling.factor", "positive");
    fq_err e;
    /* linear scaling: positions divided by the factor. One token repeated, so layer 0's
     * Q before RoPE is the same row at every position: Qcur at position 4k with factor 4
     * equals the unscaled model's Qcur at position k (up to the rounding of the angle) */
    int32_t toks[16];
    for (int i = 0; i < 16; i++) toks[i] = 403;
    fq_model *m0 = fq_model_load(ADIR "/models/llama-hd128-l2-e256-f32.gguf", &e);
    const char *p1 = write_variant(
        &(variant){.set_str_key = "llama.rope.scaling.type", .set_str = "linear", .set_f32_key = "llama.rope.scaling.factor", .set_f32 = 4.0f},
        "linear");
    fq_model *m1 = p1 ? fq_model_load(p1, &e) : NULL;
    CHECK(m0 && m1, "linear scaling model loads: %s", m1 ? "" : e.msg);
    if (m0 && m1) {
        CHECK(m1->hp.rope_freq_scale == 0.25f, "rope_freq_scale %g", m1->hp.rope_freq_scale);
        grab g0 = {0}, g1 = {0};
        float *l0 = eval_grab(m0, toks, 16, &g0), *l1 = eval_grab(m1, toks, 16, &g1);
        CHECK(memcmp(l0, l1, 16 * (size_t)m0->hp.n_vocab * 4) != 0, "linear scaling changed nothing");
        const int Q = m0->hp.n_head * m0->hp.head_dim;
        double md = 0, moved = 0;
        for (int k = 1; k < 4; k++)
            for (int i = 0; i < Q; i++) {
                md = fmax(md, fabs(g1.v[0][(size_t)4 * k * Q + i] - g0.v[0][(size_t)k * Q + i]));
                moved = fmax(moved, fabs(g1.v[0][(size_t)4 * k * Q + i] - g0.v[0][(size_t)4 * k * Q + i]));
            }
        printf("linear rope scaling x4: Qcur-0 at 4k vs unscaled at k: max|diff| %.2e (vs unscaled at 4k: %.2e)\n", md,
               moved);
        CHECK(md < 1e-5 && moved > 1e-2, "linear scaling: %.3g / %.3g", md, moved);
        for (int k = 0; k < 4; k++) free(g0.v[k]), free(g1.v[k]);
        free(l0);
        free(l1);
    }
    fq_model_free(m1);
    if (p1) unlink(p1);
    /* attention biases are added where llama.cpp adds them */
    const char *p2 = write_variant(&(variant){.add_biases = 1}, "bias");
    fq_model *m2 = p2 ? fq_model_load(p2, &e) : NULL;
    CHECK(m2 != NULL, "bias model loads: %s", m2 ? "" : e.msg);
    if (m0 && m2) {
        CHECK(fq_node_in_model(m2, FQ_NODE_QCUR_BIASED) && fq_node_in_model(m2, FQ_NODE_VCUR_PROJ) &&
                  !fq_node_in_model(m0, FQ_NODE_QCUR_BIASED),
              "bias nodes");
        grab g0 = {0}, g2 = {0};
        float *l0 = eval_grab(m0, toks, 4, &g0), *l2 = eval_grab(m2, toks, 4, &g2);
        const int Q = m2->hp.n_head * m2->hp.head_dim, E = m2->hp.n_embd;
        int bad = 0;
        for (int t = 0; t < 4; t++)
            for (int i = 0; i < Q; i++)
                bad += g2.v[2][(size_t)t * Q + i] != g2.v[1][(size_t)t * Q + i] + m2->layers[0].bq[i];
        CHECK(bad == 0, "Qcur_biased != Qcur_proj + attn_q.bias in %d values", bad);
        CHECK(m2->layers[0].bo && m2->layers[0].bk && m2->layers[0].bv, "k/v/output biases bound");
        double dout = 0;
        for (int i = 0; i < 4 * E; i++) dout = fmax(dout, fabs(g2.v[3][i] - g0.v[3][i]));
        CHECK(dout > 1e-2, "biases did not reach kqv_out (%.3g)", dout);
        CHECK(memcmp(l0, l2, 4 * (size_t)m0->hp.n_vocab * 4) != 0, "biases changed nothing");
        for (int k = 0; k < 4; k++) free(g0.v[k]), free(g2.v[k]);
        free(l0);
        free(l2);
    }
    fq_model_free(m2);
    if (p2) unlink(p2);
    fq_model_free(m0);
}

/* ---- the same bits with the portable kernels ------------------------------------------- */

#define CHILD_ENV "FQ_TEST_ARCH_CHILD"
static const char *const det_models[] = {"gemma2-l26-e64-f32", "qwen3-l2-e256-q4_k_m", "phi3-l2-e256-q4_k_m"};

/* Writes the logits of the determinism models to path (child mode). */
static int write_det_logits(const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    const int32_t toks[] = {1, 403, 407, 261, 378, 383, 286, 261};
    for (size_t i = 0; i < sizeof det_models / sizeof det_models[0]; i++) {
        char mp[256];
        snprintf(mp, sizeof mp, ADIR "/models/%s.gguf", det_models[i]);
        fq_err e;
        fq_model *m = fq_model_load(mp, &e);
        if (!m) return 1;
        float *lg = run_prompt(m, strstr(mp, "qwen3") != NULL, toks, 8, 3);
        if (!lg) return 1;
        fwrite(lg, 4, 8 * (size_t)m->hp.n_vocab, f);
        free(lg);
        fq_model_free(m);
    }
    return fclose(f) != 0;
}

static void check_generic(const char *self) {
    char a[256], b[256], cmd[1024];
    snprintf(a, sizeof a, "/tmp/fqlm_test_arch_%d_simd.f32", (int)getpid());
    snprintf(b, sizeof b, "/tmp/fqlm_test_arch_%d_generic.f32", (int)getpid());
    CHECK(write_det_logits(a) == 0, "logits for the generic comparison");
    snprintf(cmd, sizeof cmd, "FQLM_FORCE_GENERIC=1 " CHILD_ENV "='%s' '%s'", b, self);
    CHECK(system(cmd) == 0, "child run with FQLM_FORCE_GENERIC=1 failed");
    size_t na, nb;
    float *la = tu_read_f32(a, &na), *lb = tu_read_f32(b, &nb);
    CHECK(la && lb && na == nb && na > 0 && memcmp(la, lb, na * 4) == 0,
          "FQLM_FORCE_GENERIC=1 logits differ from the SIMD kernels' (gemma2 f32, qwen3/phi3 q4_k_m)");
    free(la);
    free(lb);
    unlink(a);
    unlink(b);
}

int main(int argc, char **argv) {
    const char *child = getenv(CHILD_ENV);
    if (child) {
        fq_qtypes_init();
        return write_det_logits(child);
    }
    printf("kernels: %s\n", fq_qtypes_init());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_case(&cases[i], "f32");
        check_case(&cases[i], "q4_k_m");
    }
    check_family_rules();
    check_item8();
    if (argc > 0) check_generic(argv[0]);
    return TEST_END();
}
