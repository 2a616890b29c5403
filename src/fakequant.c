/* fakequant.c - rules, hooks, statistics, weight rounding and .npy dumps. */
#include "fakequant.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "formats.h"
#include "jsonw.h"
#include "qtypes.h"

#define FQ_MAX_RULES 64
#define CHUNK_ROWS 8 /* rows per statistics chunk: fixed, so sums do not depend on threads */

typedef struct {
    fq_qstats st;
    uint64_t applications;
    int targeted;       /* the rule covers this (node, layer) */
    int logged;         /* first application already logged */
} slot;

typedef struct {
    char *text;         /* as the user wrote it */
    fq_format *fmt;
    int is_weight;
    char *glob;         /* weight rules: tensor-name glob */
    uint8_t *nodes;     /* [FQ_NODE_COUNT] */
    uint8_t *layers;    /* [n_layer + 1]: index layer + 1 */
    slot *slots;        /* [FQ_NODE_COUNT][n_layer + 1] */
    /* weight rules */
    int n_tensors;
    int applied;        /* weight rule already applied to the model */
    uint64_t w_bytes;
    fq_qstats wst;
} rule;

struct fq_fakequant {
    const fq_model *m;
    int n_layer;
    rule rules[FQ_MAX_RULES];
    int n_rules;
    uint64_t seed;
    FILE *log;
    /* dumps */
    uint8_t *dump_mask; /* [FQ_NODE_COUNT][n_layer + 1] */
    char *dump_dir;
    char *dump_index;
    size_t dump_index_len;
    int n_dumps;
    char dump_err[FQ_ERR_MAX + 64];
    int has_dump_err;
    uint8_t *mask;      /* union of rules and dumps, for the context */
    fq_hook_fn observer;
    void *observer_ud;
    int check_all;      /* hook every node to find where NaN/Inf first appear */
    /* the first hooked node whose values held NaN/Inf */
    int nf_seen, nf_node, nf_layer, nf_rule; /* nf_rule: the rule that produced them, or -1 */
    int64_t nf_pos, nf_nan, nf_inf, nf_total;
    /* the first weight rule that left NaN/Inf in a weight */
    int wnf_rule;
    char wnf_tensor[96];
    int64_t wnf_count;
};

static size_t nslots(const fq_fakequant *f) { return (size_t)FQ_NODE_COUNT * (f->n_layer + 1); }
static size_t sidx(const fq_fakequant *f, int node, int layer) {
    return (size_t)node * (f->n_layer + 1) + (size_t)(layer + 1);
}

fq_fakequant *fq_fakequant_new(const fq_model *m, fq_err *e) {
    fq_fakequant *f = fq_calloc(1, sizeof *f, e);
    if (!f) return NULL;
    f->m = m;
    f->n_layer = m->hp.n_layer;
    f->wnf_rule = -1;
    f->mask = fq_calloc(nslots(f), 1, e);
    f->dump_mask = fq_calloc(nslots(f), 1, e);
    if (!f->mask || !f->dump_mask) {
        fq_fakequant_free(f);
        return NULL;
    }
    return f;
}

void fq_fakequant_free(fq_fakequant *f) {
    if (!f) return;
    for (int i = 0; i < f->n_rules; i++) {
        rule *r = &f->rules[i];
        free(r->text);
        fq_format_free(r->fmt);
        free(r->glob);
        free(r->nodes);
        free(r->layers);
        free(r->slots);
    }
    free(f->mask);
    free(f->dump_mask);
    free(f->dump_dir);
    free(f->dump_index);
    free(f);
}

void fq_fakequant_set_seed(fq_fakequant *f, uint64_t seed) { f->seed = seed; }

int fq_fakequant_stochastic(const fq_fakequant *f) {
    for (int i = 0; f && i < f->n_rules; i++) {
        fq_format_desc d;
        fq_format_describe(f->rules[i].fmt, &d);
        if (d.rounding && !strcmp(d.rounding, "stochastic")) return 1;
    }
    return 0;
}
void fq_fakequant_set_log(fq_fakequant *f, FILE *log) { f->log = log; }
int fq_fakequant_n_rules(const fq_fakequant *f) { return f->n_rules; }
const char *fq_fakequant_dump_error(const fq_fakequant *f) {
    return f->has_dump_err ? f->dump_err : NULL;
}


/* Parses NODES into nodes[] (names, comma lists, globs; "name-L" also fixes the layer,
 * returned in *layer_from_name, else -2). */
static int parse_nodes(const fq_fakequant *f, const char *spec, uint8_t *nodes, uint8_t *named,
                       int *layer_from_name, fq_err *e) {
    *layer_from_name = -2;
    char *copy = strdup(spec);
    if (!copy) return fq_errf(e, "out of memory");
    int rc = 0;
    char *save = NULL;
    int any = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        if (!*tok) continue;
        int hit = 0;
        /* globs take the nodes this model's family computes; a name of another family's
         * node is an error that says so */
        for (int i = 0; i < FQ_NODE_COUNT; i++)
            if (fq_node_in_model(f->m, i) && fnmatch(tok, fq_node_name(i), 0) == 0) nodes[i] = 1, hit = 1;
        int id = fq_node_from_name(tok);
        if (id >= 0 && !fq_node_in_model(f->m, id)) {
            char names[1024];
            fq_node_list(f->m, names, sizeof names);
            rc = fq_errf(e, "node '%s' does not exist in this %s model (its nodes: %s)", tok, f->m->arch->name,
                         names);
            break;
        }
        if (id >= 0) nodes[id] = 1, named[id] = 1, hit = 1;
        if (!hit) {
            /* llama.cpp's tensor names: ffn_norm-21 */
            char *dash = strrchr(tok, '-');
            if (dash && dash[1]) {
                char *end;
                long L = strtol(dash + 1, &end, 10);
                *dash = 0;
                int nid = fq_node_from_name(tok);
                if (!*end && nid >= 0 && !fq_node_in_model(f->m, nid)) {
                    char names[1024];
                    fq_node_list(f->m, names, sizeof names);
                    rc = fq_errf(e, "node '%s' does not exist in this %s model (its nodes: %s)", tok,
                                 f->m->arch->name, names);
                    *dash = '-';
                    break;
                }
                if (!*end && nid >= 0 && fq_node_has_layer(nid)) {
                    if (L < 0 || L >= f->n_layer) {
                        rc = fq_errf(e, "layer %ld out of range: the model has layers 0-%d", L,
                                     f->n_layer - 1);
                        break;
                    }
                    nodes[nid] = 1;
                    named[nid] = 1;
                    *layer_from_name = (int)L;
                    hit = 1;
                }
                *dash = '-';
            }
        }
        if (!hit) {
            char names[1024];
            fq_node_list(f->m, names, sizeof names);
            rc = fq_errf(e, "unknown node '%s' (nodes of this %s model: %s; or weight:GLOB for weights)", tok,
                         f->m->arch->name, names);
            break;
        }
        any = 1;
    }
    if (!rc && !any) rc = fq_errf(e, "no node named in '%s'", spec);
    free(copy);
    return rc;
}

/* Parses LAYERS: N, N-M, N,M,..., * or -1 (all). */
static int parse_layers(const fq_fakequant *f, const char *spec, uint8_t *layers, fq_err *e) {
    if (!strcmp(spec, "*") || !strcmp(spec, "-1") || !strcmp(spec, "all")) {
        for (int i = 0; i < f->n_layer; i++) layers[i + 1] = 1;
        return 0;
    }
    const char *p = spec;
    if (!*p) return fq_errf(e, "bad layer list '' (use N, N-M, N,M,... or * / -1 for all)");
    while (*p) {
        char *end;
        errno = 0;
        long a = strtol(p, &end, 10), b;
        if (end == p || errno) return fq_errf(e, "bad layer list '%s' (use N, N-M, N,M,... or * / -1 for all)", spec);
        b = a;
        p = end;
        if (*p == '-') {
            p++;
            b = strtol(p, &end, 10);
            if (end == p) return fq_errf(e, "bad layer range in '%s'", spec);
            p = end;
        }
        if (*p && *p != ',') return fq_errf(e, "bad layer list '%s' (use N, N-M, N,M,... or * / -1 for all)", spec);
        if (*p == ',') p++;
        for (long L = FQ_MIN(a, b); L <= FQ_MAX(a, b); L++) {
            if (L < 0 || L >= f->n_layer)
                return fq_errf(e, "layer %ld out of range: the model has layers 0-%d", L, f->n_layer - 1);
            layers[L + 1] = 1;
        }
    }
    return 0;
}

static void rebuild_mask(fq_fakequant *f) {
    memcpy(f->mask, f->dump_mask, nslots(f));
    if (f->observer || f->check_all) memset(f->mask, 1, nslots(f));
    for (int i = 0; i < f->n_rules; i++) {
        if (f->rules[i].is_weight) continue;
        for (size_t s = 0; s < nslots(f); s++) f->mask[s] |= (uint8_t)f->rules[i].slots[s].targeted;
    }
}

/* Fills targets[] from NODES[@LAYERS]. */
static int parse_selection(fq_fakequant *f, const char *sel, uint8_t *targets, fq_err *e) {
    uint8_t nodes[FQ_NODE_COUNT] = {0}, named[FQ_NODE_COUNT] = {0};
    uint8_t *layers = calloc((size_t)f->n_layer + 1, 1);
    char *copy = strdup(sel);
    int rc = -1;
    if (!layers || !copy) {
        fq_errf(e, "out of memory");
        goto out;
    }
    char *at = strchr(copy, '@');
    if (at) *at = 0;
    int lname;
    if (parse_nodes(f, copy, nodes, named, &lname, e)) goto out;
    if (at) {
        if (lname != -2) {
            fq_errf(e, "'%s' names a layer twice", sel);
            goto out;
        }
        if (parse_layers(f, at + 1, layers, e)) goto out;
    } else if (lname != -2) {
        layers[lname + 1] = 1;
    } else {
        for (int i = 0; i < f->n_layer; i++) layers[i + 1] = 1;
    }
    for (int n = 0; n < FQ_NODE_COUNT; n++) {
        if (!nodes[n]) continue;
        if (!fq_node_has_layer(n)) {
            if (at && !named[n]) continue; /* a glob with @LAYERS: only nodes that have layers */
            if (at) {
                fq_errf(e, "node '%s' has no layer: write it without @LAYERS", fq_node_name(n));
                goto out;
            }
            targets[sidx(f, n, -1)] = 1;
            continue;
        }
        for (int L = 0; L < f->n_layer; L++)
            if (layers[L + 1]) targets[sidx(f, n, L)] = 1;
    }
    rc = 0;
out:
    free(layers);
    free(copy);
    return rc;
}

int fq_fakequant_add_rule(fq_fakequant *f, const char *text, fq_err *e) {
    if (f->n_rules == FQ_MAX_RULES) return fq_errf(e, "too many rules (at most %d)", FQ_MAX_RULES);
    const char *eq = strchr(text, '=');
    if (!eq || eq == text || !eq[1])
        return fq_errf(e, "bad rule '%s': write NODES[@LAYERS]=FORMAT, e.g. ffn_norm@21=bf16, "
                          "or weight:GLOB=FORMAT", text);
    rule r = {0};
    r.text = strdup(text);
    r.slots = calloc(nslots(f), sizeof(slot));
    if (!r.text || !r.slots) {
        fq_errf(e, "out of memory");
        goto fail;
    }
    if (fq_format_parse(eq + 1, &r.fmt, e)) {
        fq_err_prefix(e, "rule '%s'", text);
        goto fail;
    }
    size_t sel_len = (size_t)(eq - text);
    char *sel = strndup(text, sel_len);
    if (!sel) {
        fq_errf(e, "out of memory");
        goto fail;
    }
    if (!strncmp(sel, "weight:", 7)) {
        r.is_weight = 1;
        r.glob = strdup(sel + 7);
        free(sel);
        if (!r.glob || !*r.glob) {
            fq_errf(e, "rule '%s': weight: needs a tensor-name glob, e.g. weight:blk.*.ffn_down.weight", text);
            goto fail;
        }
        int hits = 0;
        for (uint64_t i = 0; i < f->m->gguf.n_tensors; i++)
            if (fnmatch(r.glob, f->m->gguf.tensors[i].name, 0) == 0 && f->m->gguf.tensors[i].ne[1] > 1) hits++;
        if (!hits) {
            fq_errf(e, "rule '%s': no weight matrix of the model matches '%s' (names look like "
                       "blk.0.ffn_down.weight, output.weight, token_embd.weight)", text, r.glob);
            goto fail;
        }
    } else {
        uint8_t *targets = calloc(nslots(f), 1);
        if (!targets) {
            free(sel);
            fq_errf(e, "out of memory");
            goto fail;
        }
        int rc = parse_selection(f, sel, targets, e);
        free(sel);
        if (rc) {
            free(targets);
            fq_err_prefix(e, "rule '%s'", text);
            goto fail;
        }
        for (size_t s = 0; s < nslots(f); s++) r.slots[s].targeted = targets[s];
        free(targets);
    }
    f->rules[f->n_rules++] = r;
    rebuild_mask(f);
    return 0;
fail:
    free(r.text);
    free(r.slots);
    free(r.glob);
    fq_format_free(r.fmt);
    return -1;
}

int fq_fakequant_add_legacy(fq_fakequant *f, const char *ffn_norm_fmt, const char *layer,
                            const char *logits_fmt, fq_err *e) {
    char buf[512];
    if (ffn_norm_fmt) {
        int L = f->n_layer - 1;
        if (layer) {
            char *end;
            long v = strtol(layer, &end, 10);
            if (!*layer || *end) return fq_errf(e, "--fake-quant-layer: '%s' is not an integer", layer);
            if (v != -1 && (v < 0 || v >= f->n_layer))
                return fq_errf(e, "--fake-quant-layer: layer %ld out of range: the model has layers 0-%d",
                               v, f->n_layer - 1);
            L = (int)v;
        }
        if (L == -1) snprintf(buf, sizeof buf, "ffn_norm@*=%s", ffn_norm_fmt);
        else snprintf(buf, sizeof buf, "ffn_norm@%d=%s", L, ffn_norm_fmt);
        if (fq_fakequant_add_rule(f, buf, e)) return fq_err_prefix(e, "--fake-quant-ffn-norm");
    }
    if (logits_fmt) {
        snprintf(buf, sizeof buf, "result_output=%s", logits_fmt);
        if (fq_fakequant_add_rule(f, buf, e)) return fq_err_prefix(e, "--fake-quant");
    }
    return 0;
}

int fq_fakequant_add_dump(fq_fakequant *f, const char *sel, const char *dir, fq_err *e) {
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return fq_errf(e, "--dump-dir '%s' is not a directory", dir);
    if (parse_selection(f, sel, f->dump_mask, e)) return fq_err_prefix(e, "--dump '%s'", sel);
    free(f->dump_dir);
    f->dump_dir = strdup(dir);
    if (!f->dump_dir) return fq_errf(e, "out of memory");
    rebuild_mask(f);
    return 0;
}

/* ---- applying ---------------------------------------------------------------------------- */

typedef struct {
    const fq_format *fmt;
    float *data;
    int64_t nrows, ncols, row0;
    uint64_t seed, stream;
    fq_qstats *chunk_st;
    int64_t n_chunks;
} apply_job;

static void apply_kernel(void *arg, int ith, int nth) {
    apply_job *j = arg;
    int64_t c0, c1;
    fq_split(j->n_chunks, ith, nth, &c0, &c1);
    for (int64_t c = c0; c < c1; c++) {
        int64_t r0 = c * CHUNK_ROWS, r1 = FQ_MIN(j->nrows, r0 + CHUNK_ROWS);
        memset(&j->chunk_st[c], 0, sizeof j->chunk_st[c]);
        fq_format_apply(j->fmt, j->data + r0 * j->ncols, r1 - r0, j->ncols, j->seed, j->stream,
                        j->row0 + r0, &j->chunk_st[c]);
    }
}

/* Rounds data with fmt, in parallel when the format treats rows independently. */
static void apply_format(const fq_format *fmt, float *data, int64_t nrows, int64_t ncols, uint64_t seed,
                         uint64_t stream, int64_t row0, fq_pool *pool, fq_qstats *acc) {
    int64_t n_chunks = (nrows + CHUNK_ROWS - 1) / CHUNK_ROWS;
    if (!pool || fq_pool_size(pool) == 1 || !fq_format_row_local(fmt) || n_chunks < 2 ||
        nrows * ncols < 16384) {
        fq_qstats st;
        memset(&st, 0, sizeof st);
        fq_format_apply(fmt, data, nrows, ncols, seed, stream, row0, &st);
        fq_qstats_merge(acc, &st);
        return;
    }
    fq_qstats stack[64];
    fq_qstats *cs = n_chunks <= 64 ? stack : malloc((size_t)n_chunks * sizeof *cs);
    if (!cs) { /* no memory for chunk stats: do it on this thread */
        fq_qstats st;
        memset(&st, 0, sizeof st);
        fq_format_apply(fmt, data, nrows, ncols, seed, stream, row0, &st);
        fq_qstats_merge(acc, &st);
        return;
    }
    apply_job j = {fmt, data, nrows, ncols, row0, seed, stream, cs, n_chunks};
    fq_pool_run(pool, apply_kernel, &j);
    for (int64_t c = 0; c < n_chunks; c++) fq_qstats_merge(acc, &cs[c]);
    if (cs != stack) free(cs);
}

static void node_label(char *buf, size_t n, int node, int layer) {
    if (layer >= 0) snprintf(buf, n, "%s-%d", fq_node_name(node), layer);
    else snprintf(buf, n, "%s", fq_node_name(node));
}

static void write_npy(fq_fakequant *f, const char *fname, const float *data, int64_t nrows, int64_t ncols) {
    char header[256];
    int hl = snprintf(header, sizeof header,
                      "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                      (long long)nrows, (long long)ncols);
    int total = 10 + hl + 1;
    int pad = (64 - total % 64) % 64;
    size_t bytes = (size_t)(nrows * ncols) * sizeof(float);
    size_t size = (size_t)(total + pad) + bytes;
    char *buf = malloc(size);
    if (!buf) {
        f->has_dump_err = 1;
        snprintf(f->dump_err, sizeof f->dump_err, "out of memory writing %s", fname);
        return;
    }
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    uint16_t hlen = (uint16_t)(hl + pad + 1);
    buf[8] = (char)(hlen & 0xff);
    buf[9] = (char)(hlen >> 8);
    memcpy(buf + 10, header, (size_t)hl);
    memset(buf + 10 + hl, ' ', (size_t)pad);
    buf[10 + hl + pad] = '\n';
    memcpy(buf + total + pad, data, bytes);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", f->dump_dir, fname);
    fq_err e;
    if (fq_write_file_atomic(path, buf, size, &e)) {
        f->has_dump_err = 1;
        snprintf(f->dump_err, sizeof f->dump_err, "%s", e.msg);
    }
    free(buf);
}

static void dump_node(fq_fakequant *f, const fq_hook_call *c, const char *stage, const char *fmt_str) {
    if (f->has_dump_err) return;
    char label[96], fname[256];
    node_label(label, sizeof label, c->node, c->layer);
    snprintf(fname, sizeof fname, "%s.pos%lld.%s.npy", label, (long long)c->pos, stage);
    write_npy(f, fname, c->data, c->nrows, c->ncols);
    char line[512];
    int n = snprintf(line, sizeof line, "%s\t%s\t%d\t%lld\t%lld\t%lld\t%s\t%s\n", fname,
                     fq_node_name(c->node), c->layer, (long long)c->pos, (long long)c->nrows,
                     (long long)c->ncols, stage, fmt_str);
    char *ni = realloc(f->dump_index, f->dump_index_len + (size_t)n + 1);
    if (!ni) return;
    f->dump_index = ni;
    memcpy(ni + f->dump_index_len, line, (size_t)n + 1);
    f->dump_index_len += (size_t)n;
    f->n_dumps++;
    char path[4096];
    snprintf(path, sizeof path, "%s/index.tsv", f->dump_dir);
    const char *head = "file\tnode\tlayer\tpos\trows\tcols\tstage\tformat\n";
    size_t hlen = strlen(head);
    char *all = malloc(hlen + f->dump_index_len);
    if (!all) return;
    memcpy(all, head, hlen);
    memcpy(all + hlen, f->dump_index, f->dump_index_len);
    fq_err e;
    if (fq_write_file_atomic(path, all, hlen + f->dump_index_len, &e)) {
        f->has_dump_err = 1;
        snprintf(f->dump_err, sizeof f->dump_err, "%s", e.msg);
    }
    free(all);
}

/* Index of the first NaN/Inf in x[0..n), or -1. */
static int64_t first_nonfinite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}

/* Records c as the first node whose values hold NaN/Inf (rule: the rule that made them, or -1)
 * when it is, and none was recorded before. */
static void note_nonfinite(fq_fakequant *f, const fq_hook_call *c, int rule_idx) {
    const int64_t n = c->nrows * c->ncols;
    const int64_t at = first_nonfinite(c->data, n);
    if (at < 0) return;
    f->nf_seen = 1;
    f->nf_node = c->node;
    f->nf_layer = c->layer;
    f->nf_rule = rule_idx;
    /* kq and kq_soft_max hand one token's heads at a time */
    const int per_token = c->node == FQ_NODE_KQ || c->node == FQ_NODE_KQ_SOFT_MAX;
    f->nf_pos = c->pos + (per_token ? 0 : at / c->ncols);
    f->nf_total = n;
    f->nf_nan = f->nf_inf = 0;
    for (int64_t i = at; i < n; i++) {
        f->nf_nan += isnan(c->data[i]) != 0;
        f->nf_inf += isinf(c->data[i]) != 0;
    }
}

static void hook(void *ud, const fq_hook_call *c) {
    fq_fakequant *f = ud;
    size_t s = sidx(f, c->node, c->layer);
    const int dump = f->dump_mask[s] && f->dump_dir;
    const char *last_fmt = "none";
    int any_rule = 0;
    for (int i = 0; i < f->n_rules; i++) any_rule |= !f->rules[i].is_weight && f->rules[i].slots[s].targeted;
    if (dump) dump_node(f, c, any_rule ? "before" : "value", "none");
    /* one scan per hooked node until the first NaN/Inf is found: values computed so are
     * told apart from values a rule made so */
    if (!f->nf_seen) note_nonfinite(f, c, -1);
    for (int i = 0; i < f->n_rules; i++) {
        rule *r = &f->rules[i];
        if (r->is_weight || !r->slots[s].targeted) continue;
        slot *sl = &r->slots[s];
        uint64_t stream = fq_fmix64(((uint64_t)i << 40) ^ ((uint64_t)c->node << 20) ^ (uint64_t)(c->layer + 1));
        apply_format(r->fmt, c->data, c->nrows, c->ncols, f->seed, stream, c->row0, c->pool, &sl->st);
        if (!f->nf_seen) note_nonfinite(f, c, i);
        sl->applications++;
        last_fmt = fq_format_str(r->fmt);
        if (!sl->logged && f->log) {
            char label[96];
            node_label(label, sizeof label, c->node, c->layer);
            fprintf(f->log, "fake-quant %s %s: %lld elements\n", label, fq_format_str(r->fmt),
                    (long long)(c->nrows * c->ncols));
            sl->logged = 1;
        }
    }
    if (dump && any_rule) dump_node(f, c, "after", last_fmt);
    if (f->observer) f->observer(f->observer_ud, c);
}

void fq_fakequant_set_check_all(fq_fakequant *f, int on) {
    f->check_all = on != 0;
    rebuild_mask(f);
}

int fq_fakequant_nonfinite(const fq_fakequant *f, char *buf, size_t n) {
    size_t len = 0;
    int rc = 0;
    if (n) buf[0] = 0;
    if (f->nf_seen) {
        char label[96];
        node_label(label, sizeof label, f->nf_node, f->nf_layer);
        int k = snprintf(buf, n, "%s at position %lld (%lld NaN, %lld Inf of %lld values), ", label,
                         (long long)f->nf_pos, (long long)f->nf_nan, (long long)f->nf_inf, (long long)f->nf_total);
        len = k > 0 ? FQ_MIN((size_t)k, n ? n - 1 : 0) : 0;
        if (f->nf_rule >= 0)
            k = snprintf(buf + len, n - len, "made so by rule '%s'", f->rules[f->nf_rule].text);
        else
            k = snprintf(buf + len, n - len, "computed so%s%s", f->n_rules ? ", before any rule acted" : "",
                         f->check_all ? ", from finite inputs (look at this node's weights)" : "");
        len += k > 0 ? FQ_MIN((size_t)k, n - len - 1) : 0;
        rc = f->nf_rule >= 0 ? 2 : 1;
    }
    if (f->wnf_rule >= 0 && len + 1 < n) {
        snprintf(buf + len, n - len, "%sweight rule '%s' left %lld NaN/Inf values in %s", len ? "; " : "",
                 f->rules[f->wnf_rule].text, (long long)f->wnf_count, f->wnf_tensor);
        if (!rc) rc = 3;
    }
    return rc;
}

void fq_fakequant_set_observer(fq_fakequant *f, fq_hook_fn fn, void *ud) {
    f->observer = fn;
    f->observer_ud = ud;
    rebuild_mask(f);
}

void fq_fakequant_attach(fq_fakequant *f, fq_ctx *c) { fq_ctx_set_hook(c, hook, f, f->mask); }

int fq_fakequant_apply_weights(fq_fakequant *f, fq_model *m, fq_err *e) {
    /* as many as the model has: counted first (no fixed cap) */
    int nw = fq_model_weights(m, NULL, 0);
    fq_weight **ws = fq_malloc((size_t)(nw > 0 ? nw : 1) * sizeof *ws, e);
    if (!ws) return -1;
    fq_model_weights(m, ws, nw);
    int rc = 0;
    uint64_t extra = 0;
    for (int i = 0; i < f->n_rules; i++) {
        rule *r = &f->rules[i];
        if (!r->is_weight || r->applied) continue;
        r->applied = 1;
        for (int k = 0; k < nw; k++) {
            fq_weight *w = ws[k];
            if (fnmatch(r->glob, w->name, 0) != 0) continue;
            const fq_type_traits *tt = fq_type_get(w->type);
            size_t n = (size_t)(w->n_in * w->n_out);
            float *dst = fq_malloc(n * sizeof(float), e);
            if (!dst) {
                rc = fq_err_prefix(e, "weight rule '%s': tensor '%s'", r->text, w->name);
                goto out;
            }
            for (int64_t row = 0; row < w->n_out; row++)
                tt->to_float((const char *)w->data + (size_t)row * w->row_bytes, dst + row * w->n_in, w->n_in);
            uint64_t stream = fq_fmix64(((uint64_t)i << 40) ^ 0xabcdefull ^ (uint64_t)k);
            fq_format_apply(r->fmt, dst, w->n_out, w->n_in, f->seed, stream, 0, &r->wst);
            if (f->wnf_rule < 0) {
                int64_t bad = 0;
                for (size_t q = 0; q < n; q++) bad += !isfinite(dst[q]);
                if (bad) {
                    f->wnf_rule = i;
                    f->wnf_count = bad;
                    snprintf(f->wnf_tensor, sizeof f->wnf_tensor, "%s", w->name);
                }
            }
            free(w->owned);
            w->owned = dst;
            w->data = dst;
            w->type = FQ_TYPE_F32;
            w->row_bytes = (size_t)w->n_in * sizeof(float);
            r->n_tensors++;
            r->w_bytes += n * sizeof(float);
            extra += n * sizeof(float);
            if (f->log)
                fprintf(f->log, "fake-quant weight %s %s: %zu elements\n", w->name, fq_format_str(r->fmt), n);
        }
    }
out:
    if (m->output_tied) m->output = m->tok_embd;
    if (extra && f->log)
        fprintf(f->log, "fake-quant: weight rules keep %.1f MiB of F32 weights in memory\n", extra / 1048576.0);
    free(ws);
    return rc;
}

void fq_fakequant_reset_stats(fq_fakequant *f) {
    for (int i = 0; i < f->n_rules; i++)
        for (size_t s = 0; s < nslots(f); s++) {
            memset(&f->rules[i].slots[s].st, 0, sizeof(fq_qstats));
            f->rules[i].slots[s].applications = 0;
        }
}

uint64_t fq_fakequant_applications(const fq_fakequant *f) {
    uint64_t n = 0;
    for (int i = 0; i < f->n_rules; i++)
        for (size_t s = 0; s < nslots(f); s++) n += f->rules[i].slots[s].applications;
    return n;
}

static double pct(uint64_t a, uint64_t n) { return n ? 100.0 * (double)a / (double)n : 0.0; }

static const char *mode_line(int exact) {
    return exact ? "arithmetic: exact (--exact): activations stay F32 apart from these rules"
                 : "arithmetic: llama.cpp-mirroring (default): besides these rules, every matmul input is "
                   "also rounded to the weight type's partner (Q8_0/Q8_1/Q8_K for quantized weights, F16/BF16 "
                   "for F16/BF16 weights)";
}

int fq_fakequant_report(const fq_fakequant *f, FILE *out, int exact) {
    if (!f->n_rules) return 0;
    fprintf(out, "\nfake-quant report (%s)\n", mode_line(exact));
    fprintf(out, "%-22s %-26s %8s %12s %11s %11s %8s %8s %8s\n", "node", "format", "apps", "elements",
            "rmse", "max|err|", "sqnr_db", "clip%", "flush%");
    int never = 0;
    for (int i = 0; i < f->n_rules; i++) {
        const rule *r = &f->rules[i];
        if (r->is_weight) {
            const fq_qstats *st = &r->wst;
            char label[96];
            snprintf(label, sizeof label, "weight:%s", r->glob);
            fprintf(out, "%-22s %-26s %8d %12llu %11.4e %11.4e %8.2f %8.3f %8.3f\n", label,
                    fq_format_str(r->fmt), r->n_tensors, (unsigned long long)st->n, fq_qstats_rmse(st),
                    st->max_err, fq_qstats_sqnr_db(st), pct(st->n_clipped, st->n), pct(st->n_flushed, st->n));
            continue;
        }
        for (int node = 0; node < FQ_NODE_COUNT; node++)
            for (int L = -1; L < f->n_layer; L++) {
                const slot *sl = &r->slots[sidx(f, node, L)];
                if (!sl->targeted) continue;
                char label[96];
                node_label(label, sizeof label, node, L);
                if (!sl->applications) {
                    fprintf(out, "%-22s %-26s %8s   NEVER FIRED\n", label, fq_format_str(r->fmt), "0");
                    never++;
                    continue;
                }
                const fq_qstats *st = &sl->st;
                fprintf(out, "%-22s %-26s %8llu %12llu %11.4e %11.4e %8.2f %8.3f %8.3f\n", label,
                        fq_format_str(r->fmt), (unsigned long long)sl->applications,
                        (unsigned long long)st->n, fq_qstats_rmse(st), st->max_err, fq_qstats_sqnr_db(st),
                        pct(st->n_clipped, st->n), pct(st->n_flushed, st->n));
            }
    }
    if (never)
        fprintf(out, "WARNING: %d (node, layer) target%s of the rules above never fired: those "
                     "nodes were never computed in this run, so the rule had no effect there\n",
                never, never == 1 ? "" : "s");
    return never;
}

static void stats_json(jsonw *w, const fq_qstats *st) {
    jsonw_key(w, "elements"); jsonw_int(w, (long long)st->n);
    jsonw_key(w, "rmse"); jsonw_num(w, fq_qstats_rmse(st));
    jsonw_key(w, "max_abs_err"); jsonw_num(w, st->max_err);
    jsonw_key(w, "max_abs_input"); jsonw_num(w, st->max_abs_x);
    jsonw_key(w, "sqnr_db"); jsonw_num(w, fq_qstats_sqnr_db(st));
    jsonw_key(w, "clipped_pct"); jsonw_num(w, pct(st->n_clipped, st->n));
    jsonw_key(w, "flushed_pct"); jsonw_num(w, pct(st->n_flushed, st->n));
    jsonw_key(w, "nan_produced"); jsonw_int(w, (long long)st->n_nan);
}

void fq_fakequant_json_nodes(const fq_fakequant *f, jsonw *w) {
    jsonw_arr_begin(w);
    for (int i = 0; i < f->n_rules; i++) {
        const rule *r = &f->rules[i];
        if (r->is_weight) {
            jsonw_obj_begin(w);
            jsonw_key(w, "rule"); jsonw_str(w, r->text);
            jsonw_key(w, "node"); jsonw_str(w, "weight");
            jsonw_key(w, "tensors"); jsonw_str(w, r->glob);
            jsonw_key(w, "format"); jsonw_str(w, fq_format_str(r->fmt));
            jsonw_key(w, "applications"); jsonw_int(w, r->n_tensors);
            stats_json(w, &r->wst);
            jsonw_obj_end(w);
            continue;
        }
        for (int node = 0; node < FQ_NODE_COUNT; node++)
            for (int L = -1; L < f->n_layer; L++) {
                const slot *sl = &r->slots[sidx(f, node, L)];
                if (!sl->targeted) continue;
                jsonw_obj_begin(w);
                jsonw_key(w, "rule"); jsonw_str(w, r->text);
                jsonw_key(w, "node"); jsonw_str(w, fq_node_name(node));
                jsonw_key(w, "layer"); jsonw_int(w, L);
                jsonw_key(w, "format"); jsonw_str(w, fq_format_str(r->fmt));
                jsonw_key(w, "applications"); jsonw_int(w, (long long)sl->applications);
                jsonw_key(w, "fired"); jsonw_bool(w, sl->applications > 0);
                stats_json(w, &sl->st);
                jsonw_obj_end(w);
            }
    }
    jsonw_arr_end(w);
}

char *fq_fakequant_json(const fq_fakequant *f, int exact) {
    jsonw w;
    jsonw_init(&w);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "arithmetic");
    jsonw_str(&w, exact ? "exact" : "llama.cpp");
    jsonw_key(&w, "note");
    jsonw_str(&w, mode_line(exact));
    jsonw_key(&w, "nodes");
    fq_fakequant_json_nodes(f, &w);
    jsonw_obj_end(&w);
    return jsonw_take(&w);
}

/* ---- for the public API's hooks (src/api.c) ------------------------------------------ */

int fq_fakequant_select(fq_fakequant *f, const char *sel, uint8_t *mask, fq_err *e) {
    if (parse_selection(f, sel, mask, e)) return fq_err_prefix(e, "selector '%s'", sel);
    return 0;
}

const uint8_t *fq_fakequant_mask(const fq_fakequant *f) { return f->mask; }

void fq_fakequant_hook(void *ud, const fq_hook_call *c) { hook(ud, c); }
