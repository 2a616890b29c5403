/* cmd_diff.c - `fqlm diff`: where the error comes from. A reference model A and another run
 * B (a second file of the same shape, A with fake-quant rules, or both) on the same tokens,
 * compared node by node in two modes (nodediff.h): the per-node error table, the layer that
 * adds the most, KL / top-1 / perplexity ratio as compare reports them, and JSON, CSV, SVG
 * and Markdown outputs. */
#include <fnmatch.h>
#include <math.h>
#include <string.h>

#include "cli.h"
#include "jsonw.h"
#include "metrics.h"
#include "nodediff.h"
#include "fakequant.h"
#include "qtypes.h"
#include "report.h"
#include "score.h"
#include "session.h"
#include "tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: fqlm diff -m A.gguf [--vs B.gguf] [--fq RULE ...] (-p TEXT | -f FILE) [-c CTX] [--chunks K]\n"
            "                 [--nodes SEL] [--mode both|propagated|local] [--json FILE] [--csv FILE]\n"
            "                 [--svg FILE] [--report FILE.md]\n\n"
            "Runs A (the reference) and B (--vs: another file of the same architecture and shape, e.g. a\n"
            "quantized copy; without --vs: A itself) with B's fake-quant rules (--fq) on the same tokens,\n"
            "teacher-forced, and reports for every node at every layer the error of B against A:\n"
            "  rel_l2 = ||b-a||/||a||, cosine similarity, max |b-a|, SQNR (dB), the fraction of elements\n"
            "  whose relative error exceeds 1%%, and rmse (as the fake-quant table's);\n"
            "then mean KL(A||B), top-1 agreement and the perplexity ratio B/A as compare reports them.\n"
            "Two modes (columns say which):\n"
            "  propagated  B runs on its own: the error a run of B really carries at each node;\n"
            "  local       B's layer L is fed A's residual stream (A's layer input): the error each\n"
            "              layer adds by itself. KL etc. come from the propagated run when it is made.\n"
            "Statistics accumulate in double while the text streams through, one forward step at a time.\n\n"
            "  --vs B.gguf           the second model (default: A again)\n"
            "  --nodes SEL           compare only these nodes: NODES[@LAYERS] as a rule selects them\n"
            "                        (names, globs, comma lists; repeatable). Default: every node\n"
            "  --mode M              both (default), propagated or local\n"
            "  -c, --ctx-size N      with -f: tokens per chunk (default 512)\n"
            "  --chunks K            with -f: the first K chunks only\n"
            "  --json FILE           {\"mode_columns\", \"nodes\": [{node, layer, mode, rel_l2, cosine, max_abs,\n"
            "                        sqnr_db, frac_rel_gt_1pct, rmse, elements, nonfinite}], \"mean_kld\",\n"
            "                        \"top1_agree\", \"ppl_ratio\", ...} (layer -1: a node without a layer)\n"
            "  --csv FILE            the same rows as CSV\n"
            "  --svg FILE            error (log scale) against layer, one line per node kind, both modes\n"
            "  --report FILE.md      the per-layer table (the layer adding the most error marked) and all rows\n"
            "Models of another architecture, shape or vocabulary are refused, naming the first difference.\n"
            "Exit status 3 when logits held NaN/Inf (their KL is not given).\n");
    cli_opts_help(f);
}

/* --nodes NODES[@LAYERS] into mask (hook-mask layout). 0, or -1 after printing an error. */
static int parse_nodes(const fq_model *m, const char *sel, uint8_t *mask) {
    const int nl = m->hp.n_layer;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", sel);
    char *at = strchr(buf, '@');
    if (at) *at++ = 0;
    uint8_t *layers = calloc((size_t)nl + 1, 1);
    if (!layers) return -1;
    if (!at || !strcmp(at, "*") || !strcmp(at, "-1")) {
        memset(layers, 1, (size_t)nl + 1);
    } else {
        for (char *p = at; *p;) {
            char *end;
            long a = strtol(p, &end, 10), b = a;
            if (end == p) goto bad_layers;
            p = end;
            if (*p == '-') {
                b = strtol(p + 1, &end, 10);
                if (end == p + 1) goto bad_layers;
                p = end;
            }
            if (*p && *p != ',') goto bad_layers;
            if (*p) p++;
            for (long L = FQ_MIN(a, b); L <= FQ_MAX(a, b); L++) {
                if (L < 0 || L >= nl) {
                    cli_error("--nodes '%s': layer %ld out of range: the model has layers 0-%d", sel, L, nl - 1);
                    free(layers);
                    return -1;
                }
                layers[L + 1] = 1;
            }
        }
        layers[0] = 1; /* nodes without a layer are selected by name alone */
    }
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int hit = 0;
        for (int node = 0; node < FQ_NODE_COUNT; node++) {
            if (!fq_node_in_model(m, node)) continue;
            const int exact = fq_node_from_name(tok) == node;
            if (!exact && fnmatch(tok, fq_node_name(node), 0)) continue;
            hit = 1;
            for (int L = -1; L < nl; L++) {
                if ((L < 0) == fq_node_has_layer(node)) continue;
                if (layers[L + 1]) mask[(size_t)node * (size_t)(nl + 1) + (size_t)(L + 1)] = 1;
            }
        }
        if (!hit) {
            char list[2048];
            fq_node_list(m, list, sizeof list);
            cli_error("--nodes '%s': '%s' names no node of this model (its nodes: %s)", sel, tok, list);
            free(layers);
            return -1;
        }
    }
    free(layers);
    return 0;
bad_layers:
    cli_error("--nodes '%s': bad layer list (use N, N-M, N,M,... or *)", sel);
    free(layers);
    return -1;
}

typedef struct diff_out {
    const fq_diff *d;
    int n_layer;
    const char *model_a, *model_b, *rules, *command, *scored;
    fq_metrics_summary ms;
    int64_t tokens;
    int chunks, ctx, step;
    double ms_total;
    int worst_layer;     /* -1: none */
    double worst_val;
    const char *worst_how;
} diff_out;

static const char *mode_name(int mode) { return mode == FQ_DIFF_LOCAL ? "local" : "propagated"; }

static void node_label(char *buf, size_t n, int node, int layer) {
    if (layer < 0) snprintf(buf, n, "%s", fq_node_name(node));
    else snprintf(buf, n, "%s-%d", fq_node_name(node), layer);
}

/* The error a layer adds: local rel_l2 of l_out (else the largest local rel_l2 in the layer);
 * without local mode the growth of propagated l_out's rel_l2 over the layer before. */
static void find_worst(diff_out *o) {
    const fq_diff *d = o->d;
    const int modes = fq_diff_modes(d);
    o->worst_layer = -1;
    o->worst_val = -1;
    double prev = 0;
    for (int L = 0; L < o->n_layer; L++) {
        double v = -1, lout = -1;
        for (int i = 0; i < fq_diff_n_rows(d); i++) {
            int node, layer;
            fq_diff_row(d, i, &node, &layer);
            if (layer != L) continue;
            fq_diff_stats st;
            fq_diff_row_stats(d, i, (modes & FQ_DIFF_LOCAL) ? FQ_DIFF_LOCAL : FQ_DIFF_PROPAGATED, &st);
            if (!isfinite(st.rel_l2)) continue;
            if (node == FQ_NODE_L_OUT) lout = st.rel_l2;
            v = fmax(v, st.rel_l2);
        }
        if (lout >= 0) v = lout;
        if (!(modes & FQ_DIFF_LOCAL)) {
            if (lout < 0) continue;
            v = lout - prev;
            prev = lout;
        }
        if (v > o->worst_val) {
            o->worst_val = v;
            o->worst_layer = L;
        }
    }
    o->worst_how = (modes & FQ_DIFF_LOCAL) ? "local rel_l2 of the layer's output (l_out)"
                                          : "growth of the propagated rel_l2 of l_out over the layer";
    if (o->worst_val <= 0) o->worst_layer = -1;
}

static void print_text(FILE *f, const diff_out *o) {
    const fq_diff *d = o->d;
    const int modes = fq_diff_modes(d);
    fprintf(f, "%-22s", "node");
    for (int k = 0; k < 2; k++) {
        const int mode = k ? FQ_DIFF_LOCAL : FQ_DIFF_PROPAGATED;
        if (!(modes & mode)) continue;
        fprintf(f, " | %-10s %10s %10s %9s %10s %7s", mode_name(mode), "rel_l2", "cosine", "sqnr_db", "max|b-a|",
                ">1%");
    }
    fputc('\n', f);
    for (int i = 0; i < fq_diff_n_rows(d); i++) {
        int node, layer;
        fq_diff_row(d, i, &node, &layer);
        char label[64];
        node_label(label, sizeof label, node, layer);
        fprintf(f, "%-22s", label);
        for (int k = 0; k < 2; k++) {
            const int mode = k ? FQ_DIFF_LOCAL : FQ_DIFF_PROPAGATED;
            fq_diff_stats st;
            if (fq_diff_row_stats(d, i, mode, &st)) continue;
            fprintf(f, " | %-10s %10.3e %10.7f %9.2f %10.3e %6.2f%%", "", st.rel_l2, st.cosine, st.sqnr_db, st.max_abs,
                    100 * st.frac_rel_gt_1pct);
            if (st.nonfinite) fprintf(f, " (%lld NaN/Inf)", (long long)st.nonfinite);
        }
        fputc('\n', f);
    }
    if (o->worst_layer >= 0)
        fprintf(f, "layer adding the most error: %d (%s %.3e)\n", o->worst_layer, o->worst_how, o->worst_val);
    else
        fprintf(f, "no layer adds any error\n");
    const fq_metrics_summary *m = &o->ms;
    fprintf(f, "logits (%s run): mean KL %.6g +- %.2g nats, top-1 agreement %.4f%%, ppl A %.4f, ppl B %.4f, ratio %.6f",
            (modes & FQ_DIFF_PROPAGATED) ? "propagated" : "local", m->mean_kld, m->kld_stderr, 100 * m->top1_agree,
            m->ppl_base, m->ppl_fq, m->ppl_ratio);
    if (m->n_nonfinite) fprintf(f, " (%lld positions with NaN/Inf logits)", (long long)m->n_nonfinite);
    fputc('\n', f);
}

static void jnum(jsonw *w, const char *key, double v) {
    jsonw_key(w, key);
    jsonw_num17(w, v);
}

static int write_json(const char *path, const diff_out *o) {
    const fq_diff *d = o->d;
    const int modes = fq_diff_modes(d);
    jsonw w;
    jsonw_init(&w);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "command"); jsonw_str(&w, o->command);
    jsonw_key(&w, "model_a"); jsonw_str(&w, o->model_a);
    jsonw_key(&w, "model_b"); jsonw_str(&w, o->model_b);
    jsonw_key(&w, "rules"); jsonw_str(&w, o->rules);
    jsonw_key(&w, "scored"); jsonw_str(&w, o->scored);
    jsonw_key(&w, "tokens"); jsonw_int(&w, o->tokens);
    jsonw_key(&w, "chunks"); jsonw_int(&w, o->chunks);
    jsonw_key(&w, "ctx"); jsonw_int(&w, o->ctx);
    jsonw_key(&w, "step_tokens"); jsonw_int(&w, o->step);
    jsonw_key(&w, "mode_columns");
    jsonw_arr_begin(&w);
    if (modes & FQ_DIFF_PROPAGATED) jsonw_str(&w, "propagated");
    if (modes & FQ_DIFF_LOCAL) jsonw_str(&w, "local");
    jsonw_arr_end(&w);
    jsonw_key(&w, "nodes");
    jsonw_arr_begin(&w);
    for (int i = 0; i < fq_diff_n_rows(d); i++) {
        int node, layer;
        fq_diff_row(d, i, &node, &layer);
        for (int k = 0; k < 2; k++) {
            const int mode = k ? FQ_DIFF_LOCAL : FQ_DIFF_PROPAGATED;
            fq_diff_stats st;
            if (fq_diff_row_stats(d, i, mode, &st)) continue;
            jsonw_obj_begin(&w);
            jsonw_key(&w, "node"); jsonw_str(&w, fq_node_name(node));
            jsonw_key(&w, "layer"); jsonw_int(&w, layer);
            jsonw_key(&w, "mode"); jsonw_str(&w, mode_name(mode));
            jnum(&w, "rel_l2", st.rel_l2);
            jnum(&w, "cosine", st.cosine);
            jnum(&w, "max_abs", st.max_abs);
            jnum(&w, "sqnr_db", st.sqnr_db);
            jnum(&w, "frac_rel_gt_1pct", st.frac_rel_gt_1pct);
            jnum(&w, "rmse", st.rmse);
            jsonw_key(&w, "elements"); jsonw_int(&w, st.elements);
            jsonw_key(&w, "nonfinite"); jsonw_int(&w, st.nonfinite);
            jsonw_obj_end(&w);
        }
    }
    jsonw_arr_end(&w);
    jsonw_key(&w, "worst_layer");
    if (o->worst_layer >= 0) jsonw_int(&w, o->worst_layer);
    else jsonw_null(&w);
    jsonw_key(&w, "metrics_mode"); jsonw_str(&w, (modes & FQ_DIFF_PROPAGATED) ? "propagated" : "local");
    jsonw_key(&w, "positions"); jsonw_int(&w, o->ms.n_pos);
    jsonw_key(&w, "nonfinite_positions"); jsonw_int(&w, o->ms.n_nonfinite);
    jnum(&w, "mean_kld", o->ms.mean_kld);
    jnum(&w, "kld_stderr", o->ms.kld_stderr);
    jnum(&w, "kld_p99", o->ms.kld_p99);
    jnum(&w, "max_kld", o->ms.max_kld);
    jnum(&w, "top1_agree", o->ms.top1_agree);
    jnum(&w, "ppl_a", o->ms.ppl_base);
    jnum(&w, "ppl_b", o->ms.ppl_fq);
    jnum(&w, "ppl_ratio", o->ms.ppl_ratio);
    jnum(&w, "time_ms", o->ms_total);
    const fq_fakequant *fq = fq_diff_fakequant(d, (modes & FQ_DIFF_PROPAGATED) ? FQ_DIFF_PROPAGATED : FQ_DIFF_LOCAL);
    char *fq_js = fq ? fq_fakequant_json(fq, 0) : NULL;
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

static void csv_num(rbuf *b, double v) {
    if (isnan(v)) rb_puts(b, ",nan");
    else if (isinf(v)) rb_puts(b, v > 0 ? ",inf" : ",-inf");
    else rb_printf(b, ",%.17g", v);
}

static void make_csv(rbuf *b, const diff_out *o) {
    const fq_diff *d = o->d;
    rb_puts(b, "node,layer,mode,rel_l2,cosine,max_abs,sqnr_db,frac_rel_gt_1pct,rmse,elements,nonfinite\n");
    for (int i = 0; i < fq_diff_n_rows(d); i++) {
        int node, layer;
        fq_diff_row(d, i, &node, &layer);
        for (int k = 0; k < 2; k++) {
            const int mode = k ? FQ_DIFF_LOCAL : FQ_DIFF_PROPAGATED;
            fq_diff_stats st;
            if (fq_diff_row_stats(d, i, mode, &st)) continue;
            rb_printf(b, "%s,%d,%s", fq_node_name(node), layer, mode_name(mode));
            csv_num(b, st.rel_l2);
            csv_num(b, st.cosine);
            csv_num(b, st.max_abs);
            csv_num(b, st.sqnr_db);
            csv_num(b, st.frac_rel_gt_1pct);
            csv_num(b, st.rmse);
            rb_printf(b, ",%lld,%lld\n", (long long)st.elements, (long long)st.nonfinite);
        }
    }
}

/* Error (rel_l2, log scale) against layer: one line per node kind, solid propagated, dashed
 * local; values of 0 sit on the bottom edge (marked "0"). */
static void make_svg(rbuf *b, const diff_out *o) {
    const fq_diff *d = o->d;
    const int nl = o->n_layer, nr = fq_diff_n_rows(d);
    double lo = INFINITY, hi = -INFINITY;
    int kinds[FQ_NODE_COUNT], nk = 0;
    for (int i = 0; i < nr; i++) {
        int node, layer;
        fq_diff_row(d, i, &node, &layer);
        if (layer < 0) continue;
        int seen = 0;
        for (int k = 0; k < nk; k++) seen |= kinds[k] == node;
        if (!seen) kinds[nk++] = node;
        for (int k = 0; k < 2; k++) {
            fq_diff_stats st;
            if (fq_diff_row_stats(d, i, k ? FQ_DIFF_LOCAL : FQ_DIFF_PROPAGATED, &st)) continue;
            if (st.rel_l2 > 0 && isfinite(st.rel_l2)) {
                lo = fmin(lo, st.rel_l2);
                hi = fmax(hi, st.rel_l2);
            }
        }
    }
    if (!isfinite(lo)) lo = 1e-8, hi = 1e-7;
    double dlo = floor(log10(lo)) - 1, dhi = ceil(log10(hi));
    if (dhi <= dlo) dhi = dlo + 1;
    const int W = 760, PL = 70, PR = 190, PT = 54, PB = 50, H = 434; /* PT: title, subtitle, then the marker label */
    const int pw = W - PL - PR, ph = H - PT - PB;
    rb_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                 "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
              W, H, W, H);
    rb_puts(b, "<text x=\"10\" y=\"18\" font-size=\"13\">");
    rb_xml(b, "fqlm diff: rel_l2 = ||b-a||/||a|| per node (solid: propagated, dashed: local)");
    rb_puts(b, "</text>\n<text x=\"10\" y=\"32\" fill=\"#555\">");
    char sub[600];
    snprintf(sub, sizeof sub, "A %s; B %s%s%s", o->model_a, o->model_b, o->rules[0] ? " with " : "", o->rules);
    rb_xml(b, sub);
    rb_puts(b, "</text>\n");
#define XOF(L) (PL + (nl > 1 ? (double)(L) * pw / (nl - 1) : pw / 2.0))
#define YOF(v) (PT + ph - ((v) > 0 ? (log10(v) - dlo) / (dhi - dlo) : 0.0) * ph)
    rb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>\n", PL, PT, pw, ph);
    for (int dec = (int)dlo; dec <= (int)dhi; dec++) {
        double y = YOF(pow(10, dec));
        rb_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>", PL, PL + pw, y, y);
        if (dec > (int)dlo) /* the bottom edge (a decade below every value) holds the zeros: labelled "0" */
            rb_printf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">1e%d</text>\n", PL - 4, y + 4, dec);
    }
    rb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" fill=\"#777\">0</text>\n", PL - 4, PT + ph + 4);
    const int tick = nl > 24 ? (nl + 11) / 12 : 1;
    for (int L = 0; L < nl; L += tick)
        rb_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", XOF(L), PT + ph + 16, L);
    rb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">layer</text>\n", PL + pw / 2, PT + ph + 36);
    if (o->worst_layer >= 0)
        rb_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#d00\" stroke-dasharray=\"2,3\"/>"
                     "<text x=\"%.1f\" y=\"%d\" fill=\"#d00\" text-anchor=\"middle\">most error added</text>\n",
                  XOF(o->worst_layer), XOF(o->worst_layer), PT, PT + ph, XOF(o->worst_layer), PT - 4);
    for (int k = 0; k < nk; k++) {
        const int node = kinds[k];
        char color[32];
        snprintf(color, sizeof color, "hsl(%d,70%%,%d%%)", (k * 360 / FQ_MAX(nk, 1) + 7 * k) % 360, k % 2 ? 35 : 45);
        for (int mk = 0; mk < 2; mk++) {
            const int mode = mk ? FQ_DIFF_LOCAL : FQ_DIFF_PROPAGATED;
            if (!(fq_diff_modes(d) & mode)) continue;
            rb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"%s points=\"", color,
                      mk ? " stroke-dasharray=\"5,3\"" : "");
            for (int i = 0; i < nr; i++) {
                int nd, layer;
                fq_diff_row(d, i, &nd, &layer);
                fq_diff_stats st;
                if (nd != node || layer < 0 || fq_diff_row_stats(d, i, mode, &st) || !(st.rel_l2 >= 0) ||
                    isinf(st.rel_l2))
                    continue;
                rb_printf(b, "%.1f,%.1f ", XOF(layer), YOF(st.rel_l2));
            }
            rb_puts(b, "\"/>\n");
        }
        const int ly = PT + 6 + k * 14;
        rb_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>", PL + pw + 10,
                  PL + pw + 30, ly, ly, color);
        rb_printf(b, "<text x=\"%d\" y=\"%d\">", PL + pw + 34, ly + 4);
        rb_xml(b, fq_node_name(node));
        rb_puts(b, "</text>\n");
    }
#undef XOF
#undef YOF
    rb_puts(b, "</svg>\n");
}

static void md_num(rbuf *b, double v) {
    if (isnan(v)) rb_puts(b, " n/a |");
    else rb_printf(b, " %.3e |", v);
}

static void make_md(rbuf *b, const diff_out *o) {
    const fq_diff *d = o->d;
    const int modes = fq_diff_modes(d);
    rb_puts(b, "# fqlm diff\n\n");
    rb_puts(b, "- command: `");
    rb_puts(b, o->command);
    rb_puts(b, "`\n- A (reference): ");
    rb_md(b, o->model_a);
    rb_puts(b, "\n- B: ");
    rb_md(b, o->model_b);
    if (o->rules[0]) {
        rb_puts(b, " with `");
        rb_puts(b, o->rules);
        rb_puts(b, "`");
    }
    rb_puts(b, "\n- scored: ");
    rb_md(b, o->scored);
    rb_printf(b, "\n- modes: %s%s%s\n", (modes & FQ_DIFF_PROPAGATED) ? "propagated (B runs on its own)" : "",
              modes == 3 ? ", " : "", (modes & FQ_DIFF_LOCAL) ? "local (B's layer L fed A's residual stream)" : "");
    rb_printf(b, "- logits (%s run): mean KL %.6g nats (+- %.2g), top-1 agreement %.4f%%, perplexity A %.4f, B %.4f, "
                 "ratio %.6f\n\n",
              (modes & FQ_DIFF_PROPAGATED) ? "propagated" : "local", o->ms.mean_kld, o->ms.kld_stderr,
              100 * o->ms.top1_agree, o->ms.ppl_base, o->ms.ppl_fq, o->ms.ppl_ratio);
    rb_puts(b, "## Per layer\n\n");
    if (o->worst_layer >= 0)
        rb_printf(b, "The layer adding the most error is **%d** (%s %.3e), marked below.\n\n", o->worst_layer,
                  o->worst_how, o->worst_val);
    rb_puts(b, "| layer | l_out rel_l2 (propagated) | l_out rel_l2 (local) | largest local node | |\n"
               "|---:|---:|---:|---|---|\n");
    for (int L = 0; L < o->n_layer; L++) {
        double pv = NAN, lv = NAN, best = -1;
        char bestn[64] = "n/a";
        for (int i = 0; i < fq_diff_n_rows(d); i++) {
            int node, layer;
            fq_diff_row(d, i, &node, &layer);
            if (layer != L) continue;
            fq_diff_stats sp, sl;
            int hp = !fq_diff_row_stats(d, i, FQ_DIFF_PROPAGATED, &sp);
            int hl = !fq_diff_row_stats(d, i, FQ_DIFF_LOCAL, &sl);
            if (node == FQ_NODE_L_OUT) {
                if (hp) pv = sp.rel_l2;
                if (hl) lv = sl.rel_l2;
            }
            if (hl && sl.rel_l2 > best) {
                best = sl.rel_l2;
                snprintf(bestn, sizeof bestn, "%s (%.3e)", fq_node_name(node), sl.rel_l2);
            }
        }
        rb_printf(b, "| %d |", L);
        md_num(b, pv);
        md_num(b, lv);
        rb_printf(b, " %s | %s |\n", bestn, L == o->worst_layer ? "**most error added**" : "");
    }
    rb_puts(b, "\n## Every node\n\n| node | layer | mode | rel_l2 | cosine | sqnr_db | max abs | >1% rel |\n"
               "|---|---:|---|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < fq_diff_n_rows(d); i++) {
        int node, layer;
        fq_diff_row(d, i, &node, &layer);
        for (int k = 0; k < 2; k++) {
            const int mode = k ? FQ_DIFF_LOCAL : FQ_DIFF_PROPAGATED;
            fq_diff_stats st;
            if (fq_diff_row_stats(d, i, mode, &st)) continue;
            rb_printf(b, "| %s | %d | %s | %.3e | %.7f | %.2f | %.3e | %.2f%% |\n", fq_node_name(node), layer,
                      mode_name(mode), st.rel_l2, st.cosine, st.sqnr_db, st.max_abs, 100 * st.frac_rel_gt_1pct);
        }
    }
}

static int write_buf(const char *opt, const char *path, rbuf *b) {
    fq_err e;
    if (b->oom || fq_write_file_atomic(path, b->s ? b->s : "", b->len, &e)) {
        cli_error("%s: %s", opt, b->oom ? "out of memory" : e.msg);
        return 1;
    }
    return 0;
}

int cmd_diff(int argc, char **argv) {
    cli_opts o;
    cli_opts_defaults(&o);
    const char *vs = NULL, *csv = NULL, *svg = NULL, *report = NULL, *nodes[32];
    int n_nodes = 0, max_chunks = 0, modes = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--vs") || !strcmp(a, "--csv") || !strcmp(a, "--svg") || !strcmp(a, "--report") ||
            !strcmp(a, "--nodes") || !strcmp(a, "--chunks") || !strcmp(a, "--mode")) {
            if (i + 1 >= argc) {
                cli_error("option %s needs a value", a);
                return 2;
            }
            const char *v = argv[++i];
            const char **slot = !strcmp(a, "--vs") ? &vs : !strcmp(a, "--csv") ? &csv : !strcmp(a, "--svg") ? &svg
                                : !strcmp(a, "--report") ? &report : NULL;
            if (slot) {
                if (*slot) {
                    cli_error("%s given twice", a);
                    return 2;
                }
                *slot = v;
            } else if (!strcmp(a, "--nodes")) {
                if (n_nodes == 32) {
                    cli_error("--nodes: at most 32 selections");
                    return 2;
                }
                nodes[n_nodes++] = v;
            } else if (!strcmp(a, "--chunks")) {
                long long x;
                if (cli_parse_int("--chunks", v, 1, 1 << 30, &x)) return 2;
                max_chunks = (int)x;
            } else {
                if (!strcmp(v, "both")) modes = FQ_DIFF_PROPAGATED | FQ_DIFF_LOCAL;
                else if (!strcmp(v, "propagated")) modes = FQ_DIFF_PROPAGATED;
                else if (!strcmp(v, "local")) modes = FQ_DIFF_LOCAL;
                else {
                    cli_error("--mode '%s': use both, propagated or local", v);
                    return 2;
                }
            }
            continue;
        }
        int r = cli_opts_parse(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r == 0) {
            cli_error("diff: unknown option '%s' (see fqlm diff --help)", a);
            return 2;
        }
    }
    if (cli_opts_check(&o)) return 2;
    if (o.fq_ffn_norm || o.fq_logits || o.fq_layer || o.dump || o.fq_stats) {
        cli_error("diff takes fake-quant rules as --fq NODES[@LAYERS]=FORMAT (not --fake-quant*, --dump, --fq-stats)");
        return 2;
    }
    if (!o.prompt && !o.prompt_file) {
        cli_error("no input: give a text with -p TEXT or a file to score with -f FILE");
        return 2;
    }
    const int from_file = o.prompt_file != NULL && o.prompt == NULL;
    if (from_file && o.n_ctx == 0) o.n_ctx = 512;
    const char *path_a = o.model ? o.model : cli_default_model();
    const char *path_b = vs ? vs : path_a;
    if (!vs && !o.n_rules)
        fprintf(stderr, "fqlm: note: no --vs and no --fq: B is A itself (every figure should be exactly zero)\n");

    rbuf cmdline, rules, out;
    rb_init(&cmdline);
    rb_init(&rules);
    rb_init(&out);
    report_command_line(&cmdline, argc, argv);
    for (int i = 0; i < o.n_rules; i++) rb_printf(&rules, "%s%s", i ? " " : "", o.rules[i]);
    fq_err e;
    int rc = 1;
    fq_model *ma = NULL, *mb = NULL;
    fq_diff *d = NULL;
    uint8_t *mask = NULL;
    int32_t *toks = NULL, *next = NULL;
    size_t np = 0;
    cli_chunks ch;
    memset(&ch, 0, sizeof ch);
    const int64_t t_start = fq_time_us();
    ma = fq_model_load(path_a, &e);
    if (!ma) goto fail_e;
    mb = fq_model_load(path_b, &e);
    if (!mb) goto fail_e;
    if (fq_diff_check_models(ma, mb, &e)) {
        cli_error("%s and %s cannot be compared node by node: %s", path_a, path_b, e.msg);
        goto done;
    }
    if (n_nodes) {
        mask = calloc(fq_hook_mask_size(ma), 1);
        if (!mask) {
            cli_error("out of memory");
            goto done;
        }
        for (int i = 0; i < n_nodes; i++)
            if (parse_nodes(ma, nodes[i], mask)) {
                rc = 2;
                goto done;
            }
    }
    rc = cli_prompt_tokens(&o, ma, &toks, &np);
    if (rc) goto done;
    rc = 2;
    if (np == 0) {
        cli_error("the input gives no tokens");
        goto done;
    }
    const int32_t bos = fq_tokenizer_adds_bos(ma->tok) ? fq_tokenizer_bos(ma->tok) : -1;
    char scored[600];
    if (from_file) {
        if (cli_chunks_make(&ch, toks, np, o.n_ctx, max_chunks, bos, &e)) {
            cli_error("%s: %s", o.prompt_file, e.msg);
            goto done;
        }
        snprintf(scored, sizeof scored, "%s (%zu tokens; %d chunk%s of up to %d tokens, all positions)",
                 o.prompt_file, np, ch.n, ch.n == 1 ? "" : "s", o.n_ctx);
    } else {
        if (cli_chunks_make(&ch, toks, np, (int)FQ_MAX(np, 2), 1, bos, &e)) {
            cli_error("%s", e.msg);
            goto done;
        }
        snprintf(scored, sizeof scored, "the prompt (%zu tokens)", np);
    }
    rc = 1;
    int max_len = 0;
    for (int k = 0; k < ch.n; k++) max_len = FQ_MAX(max_len, cli_chunk_len(&ch, k));
    fq_diff_params dp = {.modes = modes, .nodes = mask, .rules = o.rules, .n_rules = o.n_rules, .seed = o.sp.seed};
    dp.ctx = (fq_ctx_params){.n_ctx = max_len, .n_threads = o.n_threads, .exact = o.exact,
                             .cache_type = o.cache_type, .n_batch = o.n_batch};
    if (o.cache_type_k != UINT32_MAX || o.cache_type_v != UINT32_MAX) {
        dp.ctx.kv_split = 1;
        dp.ctx.cache_type_k = o.cache_type_k != UINT32_MAX ? o.cache_type_k : o.cache_type;
        dp.ctx.cache_type_v = o.cache_type_v != UINT32_MAX ? o.cache_type_v : o.cache_type;
    }
    if (o.n_rules) { /* a bad rule is a usage error */
        fq_fakequant *chk = fq_fakequant_new(mb, &e);
        if (!chk) goto fail_e;
        for (int i = 0; i < o.n_rules; i++)
            if (fq_fakequant_add_rule(chk, o.rules[i], &e)) {
                fq_fakequant_free(chk);
                cli_error("%s", e.msg);
                rc = 2;
                goto done;
            }
        fq_fakequant_free(chk);
    }
    d = fq_diff_new(ma, mb, &dp, &e);
    if (!d) goto fail_e;
    const int dm = fq_diff_modes(d);
    fprintf(stderr, "fqlm: diff A %s vs B %s%s%s: %d layers; %s; %s arithmetic; %d chunk%s; %d tokens per step\n", path_a,
            path_b, rules.s ? " with " : "", rules.s ? rules.s : "", ma->hp.n_layer,
            dm == 3 ? "propagated and local modes" : dm == 1 ? "propagated mode" : "local mode",
            o.exact ? "exact" : "llama.cpp-mirroring", ch.n, ch.n == 1 ? "" : "s", fq_diff_step_tokens(d));
    next = fq_malloc((size_t)max_len * sizeof(int32_t), &e);
    if (!next) goto fail_e;
    for (int k = 0; k < ch.n; k++) {
        cli_chunk_next(&ch, k, next);
        if (fq_diff_eval(d, cli_chunk_tok(&ch, k), cli_chunk_len(&ch, k), next, &e)) goto fail_e;
        if (ch.n > 1 && o.verbose) fprintf(stderr, "fqlm: compared chunk %d of %d\n", k + 1, ch.n);
    }
    diff_out R;
    memset(&R, 0, sizeof R);
    R.d = d;
    R.n_layer = ma->hp.n_layer;
    R.model_a = path_a;
    R.model_b = path_b;
    R.rules = rules.s ? rules.s : "";
    R.command = cmdline.s ? cmdline.s : "";
    R.scored = scored;
    R.tokens = ch.n_tokens;
    R.chunks = ch.n;
    R.ctx = max_len;
    R.step = fq_diff_step_tokens(d);
    if (fq_diff_metrics(d, &R.ms, &e)) goto fail_e;
    R.ms_total = (fq_time_us() - t_start) / 1e3;
    find_worst(&R);
    print_text(stdout, &R);
    fflush(stdout);
    rc = 0;
    if (o.json && write_json(o.json, &R)) rc = 1;
    if (csv) {
        rb_free(&out);
        make_csv(&out, &R);
        if (write_buf("--csv", csv, &out)) rc = 1;
    }
    if (svg) {
        rb_free(&out);
        make_svg(&out, &R);
        if (write_buf("--svg", svg, &out)) rc = 1;
    }
    if (report) {
        rb_free(&out);
        make_md(&out, &R);
        if (write_buf("--report", report, &out)) rc = 1;
    }
    if (!rc && R.ms.n_nonfinite) {
        fprintf(stderr, "fqlm: %lld positions held NaN/Inf logits: their KL is not given (exit status %d)\n",
                (long long)R.ms.n_nonfinite, CLI_EXIT_NONFINITE);
        rc = CLI_EXIT_NONFINITE;
    }
    goto done;
fail_e:
    cli_error("%s", e.msg);
    rc = 1;
done:
    fq_diff_free(d);
    fq_model_free(mb);
    fq_model_free(ma);
    free(mask);
    free(toks);
    free(next);
    cli_chunks_free(&ch);
    rb_free(&cmdline);
    rb_free(&rules);
    rb_free(&out);
    return rc;
}
