/* report.c - text, Markdown, SVG and HTML writers for compare and sweep. */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- buffer ----------------------------------------------------------------------------- */

void rb_init(rbuf *b) { memset(b, 0, sizeof *b); }

void rb_free(rbuf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}

static int rb_reserve(rbuf *b, size_t extra) {
    if (b->oom) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t nc = b->cap ? b->cap : 4096;
    while (nc < b->len + extra + 1) nc *= 2;
    char *ns = realloc(b->s, nc);
    if (!ns) {
        b->oom = 1;
        return -1;
    }
    b->s = ns;
    b->cap = nc;
    return 0;
}

void rb_putn(rbuf *b, const char *s, size_t n) {
    if (rb_reserve(b, n)) return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void rb_puts(rbuf *b, const char *s) { rb_putn(b, s, strlen(s)); }

void rb_printf(rbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        rb_putn(b, tmp, (size_t)n);
        return;
    }
    if (rb_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void rb_xml(rbuf *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': rb_puts(b, "&amp;"); break;
        case '<': rb_puts(b, "&lt;"); break;
        case '>': rb_puts(b, "&gt;"); break;
        case '"': rb_puts(b, "&quot;"); break;
        case '\'': rb_puts(b, "&#39;"); break;
        default:
            /* control characters are not allowed in XML 1.0 */
            if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t') rb_puts(b, "?");
            else rb_putn(b, s, 1);
        }
    }
}

void rb_md(rbuf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '|' || *s == '\\' || *s == '`' || *s == '*' || *s == '_' || *s == '<') {
            rb_putn(b, "\\", 1);
            rb_putn(b, s, 1);
        } else if (*s == '\n' || *s == '\r') {
            rb_puts(b, " ");
        } else {
            rb_putn(b, s, 1);
        }
    }
}

void rb_json_num(rbuf *b, double v) {
    if (!isfinite(v)) rb_puts(b, "null");
    else rb_printf(b, "%.17g", v);
}

int report_mkdir_p(const char *dir) {
    if (!*dir) { /* no name: nothing to create (and no byte after the terminator to read) */
        errno = ENOENT;
        return -1;
    }
    char *d = strdup(dir);
    if (!d) return -1;
    for (char *p = d + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(d, 0777) != 0 && errno != EEXIST) {
            free(d);
            return -1;
        }
        *p = '/';
    }
    int rc = mkdir(d, 0777) != 0 && errno != EEXIST ? -1 : 0;
    free(d);
    return rc;
}

void report_command_line(rbuf *b, int argc, char **argv) {
    rb_puts(b, "fqlm");
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int plain = *a != 0;
        for (const char *p = a; *p; p++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,@+%", *p))
                plain = 0;
        rb_puts(b, " ");
        if (plain) {
            rb_puts(b, a);
            continue;
        }
        rb_puts(b, "'");
        for (const char *p = a; *p; p++) {
            if (*p == '\'') rb_puts(b, "'\\''");
            else rb_putn(b, p, 1);
        }
        rb_puts(b, "'");
    }
}

/* ---- compare ------------------------------------------------------------------------------ */

static double tps(int n, double ms) { return ms > 0 ? 1e3 * n / ms : 0.0; }

static void fmt_rate(char *buf, size_t n, double ms, int tokens) {
    if (tokens <= 0) snprintf(buf, n, "-");
    else snprintf(buf, n, "%.2f ms (%d tok, %.1f tok/s)", ms, tokens, tps(tokens, ms));
}

typedef struct {
    const char *label;
    char base[96], fq[96];
} timing_line;

static int timing_lines(const report_compare *r, timing_line *out) {
    int n = 0;
    const report_timing *a = &r->t_base, *b = &r->t_fq;
    out[n].label = "load";
    snprintf(out[n].base, sizeof out[n].base, "%.2f ms", a->load_ms);
    snprintf(out[n].fq, sizeof out[n].fq, "%.2f ms", b->load_ms);
    n++;
    out[n].label = r->has_gen ? "prompt eval" : "prompt eval (scored chunks)";
    fmt_rate(out[n].base, sizeof out[n].base, a->prompt_ms, a->n_prompt);
    fmt_rate(out[n].fq, sizeof out[n].fq, b->prompt_ms, b->n_prompt);
    n++;
    out[n].label = "eval";
    fmt_rate(out[n].base, sizeof out[n].base, a->eval_ms, a->n_eval);
    fmt_rate(out[n].fq, sizeof out[n].fq, b->eval_ms, b->n_eval);
    n++;
    if (r->has_gen) {
        out[n].label = "teacher-forced scoring";
        fmt_rate(out[n].base, sizeof out[n].base, a->score_ms, a->n_score);
        fmt_rate(out[n].fq, sizeof out[n].fq, b->score_ms, b->n_score);
        n++;
    }
    out[n].label = "total";
    snprintf(out[n].base, sizeof out[n].base, "%.2f ms", a->total_ms);
    snprintf(out[n].fq, sizeof out[n].fq, "%.2f ms", b->total_ms);
    n++;
    return n;
}

static void fmt_pct(char *buf, size_t n, double frac) {
    if (isnan(frac)) snprintf(buf, n, "n/a");
    else snprintf(buf, n, "%.2f%%", 100.0 * frac);
}

static const char *diff_line(const report_compare *r, char *buf, size_t n) {
    if (r->first_diff < 0)
        snprintf(buf, n, "identical: all %d generated tokens agree", r->n_gen_base);
    else {
        /* the tokens are model output, quoted: shown escaped (fq_show) */
        char a[64], b[64];
        const char *da = r->diff_base ? r->diff_base : "", *db = r->diff_fq ? r->diff_fq : "";
        snprintf(buf, n, "first difference at generated token %d (baseline \"%s\", fake-quant \"%s\")",
                 r->first_diff, fq_show(a, sizeof a, da, strlen(da)), fq_show(b, sizeof b, db, strlen(db)));
    }
    return buf;
}

void report_compare_text(FILE *f, const report_compare *r) {
    const fq_metrics_summary *m = &r->m;
    char buf[512];
    fprintf(f, "fqlm compare\n");
    fprintf(f, "  model        %s (%d layers)\n", r->model, r->n_layer);
    fprintf(f, "  fake-quant   %s\n", r->config);
    fprintf(f, "  arithmetic   %s\n", r->exact ? "exact (F32 activations)" : "llama.cpp-mirroring");
    if (r->kv_cache) fprintf(f, "  KV cache     %s\n", r->kv_cache);
    if (r->has_gen) {
        fprintf(f, "\ngeneration (%d tokens asked, seed %llu, temp %.2f; same sampling for both)\n",
                r->n_predict, r->seed, r->temp);
        /* generated text as run prints it: escaped on a terminal (fq_write_text) */
        const int term = isatty(fileno(f));
        fputs("  baseline    ", f);
        fq_write_text(f, r->text_base, strlen(r->text_base), term);
        fputs("\n  fake-quant  ", f);
        fq_write_text(f, r->text_fq, strlen(r->text_fq), term);
        fputc('\n', f);
        fprintf(f, "  %s\n", diff_line(r, buf, sizeof buf));
    }
    fprintf(f, "\ndistribution metrics, teacher-forced over %s\n", r->scored);
    fprintf(f, "  (%lld positions, %lld with a next token; double precision from F32 logits)\n",
            (long long)m->n_pos, (long long)m->n_scored);
    if (m->n_nonfinite)
        fprintf(f, "  NOT VALID: %lld of %lld positions have NaN/Inf logits (baseline %lld, fake-quant %lld): "
                   "they have no KL, top-1 or p(next) figure, so none is given\n",
                (long long)m->n_nonfinite, (long long)m->n_pos, (long long)m->n_nonfinite_base,
                (long long)m->n_nonfinite_fq);
    fprintf(f, "  KL(base||fq)       mean %.4g +/- %.2g (s.e.)   median %.4g   p90 %.4g   p99 %.4g   max %.4g\n",
            m->mean_kld, m->kld_stderr, m->kld_median, m->kld_p90, m->kld_p99, m->max_kld);
    fmt_pct(buf, sizeof buf, m->top1_agree);
    fprintf(f, "  top-1 agreement    %s (%lld of %lld)\n", buf, (long long)m->n_top1, (long long)m->n_pos);
    fprintf(f, "  perplexity         baseline %.4f +/- %.4f   fake-quant %.4f +/- %.4f   ratio %.6f\n",
            m->ppl_base, m->ppl_base_err, m->ppl_fq, m->ppl_fq_err, m->ppl_ratio);
    fprintf(f, "  p(next) change     mean %+.3g   p1 %+.3g   p5 %+.3g   median %+.3g   p95 %+.3g   p99 %+.3g\n",
            m->dp_mean, m->dp_p1, m->dp_p5, m->dp_median, m->dp_p95, m->dp_p99);
    fprintf(f, "  max |logit change| %.4g\n", m->max_abs_logit_diff);
    timing_line tl[8];
    int nt = timing_lines(r, tl);
    fprintf(f, "\ntimings\n  %-28s %-40s %s\n", "", "baseline", "fake-quant");
    for (int i = 0; i < nt; i++) fprintf(f, "  %-28s %-40s %s\n", tl[i].label, tl[i].base, tl[i].fq);
    if (r->node_table && *r->node_table) {
        fprintf(f, "\nper-node error table of the fake-quant run (%s)", r->has_gen ? "teacher-forced pass" : "scored chunks");
        fputs(r->node_table, f);
    }
}

void report_compare_md(rbuf *b, const report_compare *r) {
    const fq_metrics_summary *m = &r->m;
    char buf[512];
    rb_puts(b, "## fqlm compare: ");
    rb_md(b, r->config);
    rb_puts(b, "\n\n");
    rb_puts(b, "```\n");
    rb_puts(b, r->command);
    rb_puts(b, "\n```\n\n");
    rb_puts(b, "| | |\n| --- | --- |\n| model | ");
    rb_md(b, r->model);
    rb_printf(b, " (%d layers) |\n| fake-quant | `%s` |\n| arithmetic | %s |\n", r->n_layer, r->config,
              r->exact ? "exact (F32 activations)" : "llama.cpp-mirroring");
    if (r->kv_cache) rb_printf(b, "| KV cache | %s |\n", r->kv_cache);
    if (r->has_gen) {
        rb_printf(b, "\n### Generation\n\n%d tokens asked, seed %llu, temp %.2f, the same sampling for both runs.\n\n",
                  r->n_predict, r->seed, r->temp);
        rb_puts(b, "| run | text |\n| --- | --- |\n| baseline | ");
        rb_md(b, r->text_base);
        rb_puts(b, " |\n| fake-quant | ");
        rb_md(b, r->text_fq);
        rb_puts(b, " |\n\n");
        rb_md(b, diff_line(r, buf, sizeof buf));
        rb_puts(b, ".\n");
    }
    rb_puts(b, "\n### Distribution metrics\n\nTeacher-forced over ");
    rb_md(b, r->scored);
    rb_printf(b, ": %lld positions, %lld with a next token; computed in double precision from F32 logits.\n\n",
              (long long)m->n_pos, (long long)m->n_scored);
    if (m->n_nonfinite)
        rb_printf(b, "**Not valid:** %lld of %lld positions have NaN/Inf logits (baseline %lld, fake-quant %lld); "
                     "they have no KL, top-1 or p(next) figure, so none is given.\n\n",
                  (long long)m->n_nonfinite, (long long)m->n_pos, (long long)m->n_nonfinite_base,
                  (long long)m->n_nonfinite_fq);
    rb_puts(b, "| metric | value |\n| --- | --- |\n");
    rb_printf(b, "| mean KL(base\\|\\|fq) | %.4g ± %.2g (s.e.) |\n", m->mean_kld, m->kld_stderr);
    rb_printf(b, "| KL median / p90 / p99 / max | %.4g / %.4g / %.4g / %.4g |\n", m->kld_median, m->kld_p90,
              m->kld_p99, m->max_kld);
    fmt_pct(buf, sizeof buf, m->top1_agree);
    rb_printf(b, "| top-1 agreement | %s (%lld of %lld) |\n", buf, (long long)m->n_top1, (long long)m->n_pos);
    rb_printf(b, "| perplexity, baseline | %.4f ± %.4f |\n", m->ppl_base, m->ppl_base_err);
    rb_printf(b, "| perplexity, fake-quant | %.4f ± %.4f |\n", m->ppl_fq, m->ppl_fq_err);
    rb_printf(b, "| perplexity ratio | %.6f |\n", m->ppl_ratio);
    rb_printf(b, "| p(next token) change: mean | %+.3g |\n", m->dp_mean);
    rb_printf(b, "| p(next token) change: p1 / p5 / median / p95 / p99 | %+.3g / %+.3g / %+.3g / %+.3g / %+.3g |\n",
              m->dp_p1, m->dp_p5, m->dp_median, m->dp_p95, m->dp_p99);
    rb_printf(b, "| max \\|logit change\\| | %.4g |\n", m->max_abs_logit_diff);
    timing_line tl[8];
    int nt = timing_lines(r, tl);
    rb_puts(b, "\n### Timings\n\n| | baseline | fake-quant |\n| --- | --- | --- |\n");
    for (int i = 0; i < nt; i++) rb_printf(b, "| %s | %s | %s |\n", tl[i].label, tl[i].base, tl[i].fq);
    if (r->node_table && *r->node_table) {
        rb_printf(b, "\n### Per-node error table (%s)\n\n```", r->has_gen ? "teacher-forced pass" : "scored chunks");
        rb_puts(b, r->node_table);
        rb_puts(b, "```\n");
    }
}

/* ---- heatmap ------------------------------------------------------------------------------ */

/* viridis, 10 stops */
static const unsigned char VIRIDIS[10][3] = {
    {0x44, 0x01, 0x54}, {0x48, 0x28, 0x78}, {0x3e, 0x49, 0x89}, {0x31, 0x68, 0x8e}, {0x26, 0x82, 0x8e},
    {0x1f, 0x9e, 0x89}, {0x35, 0xb7, 0x79}, {0x6e, 0xce, 0x58}, {0xb5, 0xde, 0x2b}, {0xfd, 0xe7, 0x25},
};

static void colour(double t, char out[8]) {
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    double x = t * 9.0;
    int i = (int)x;
    if (i >= 9) i = 8;
    double f = x - i;
    int rgb[3];
    for (int k = 0; k < 3; k++) rgb[k] = (int)lround(VIRIDIS[i][k] + f * (VIRIDIS[i + 1][k] - VIRIDIS[i][k]));
    snprintf(out, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

static const sweep_row *find_row(const report_sweep *s, const char *node, int layer, const char *fmt) {
    for (int i = s->n_rows - 1; i >= 0; i--) {
        const sweep_row *r = &s->rows[i];
        if (r->layer == layer && !strcmp(r->node, node) && !strcmp(r->format, fmt)) return r;
    }
    return NULL;
}

/* Whether (node, layer) is a combination: layered nodes at layers >= 0, the others at -1.
 * A node counts as layerless when some row or none of the axis layers says so. */
static int node_layerless(const report_sweep *s, const char *node) {
    for (int i = 0; i < s->n_rows; i++)
        if (!strcmp(s->rows[i].node, node)) return s->rows[i].layer < 0;
    /* no row yet: the names llama.cpp gives nodes without a layer */
    return !strcmp(node, "inp_embd") || !strcmp(node, "result_norm") || !strcmp(node, "result_output");
}

static void scale_range(const report_sweep *s, double *lo, double *hi, int *any_zero, int *any_bad) {
    double mn = INFINITY, mx = -INFINITY;
    *any_zero = *any_bad = 0;
    for (int i = 0; i < s->n_rows; i++) {
        double k = s->rows[i].mean_kld;
        if (!isfinite(k)) *any_bad = 1;
        else if (k <= 0) *any_zero = 1;
        else {
            double l = log10(k);
            if (l < mn) mn = l;
            if (l > mx) mx = l;
        }
    }
    if (!isfinite(mn)) mn = -8, mx = -1;
    *lo = floor(mn);
    *hi = ceil(mx);
    if (*hi <= *lo) *hi = *lo + 1;
}

#define CELL_W 30
#define CELL_H 20
#define LEFT 64
#define TOP 44
#define BOTTOM 96
#define PANEL_GAP 28
#define BAR_W 16

static void cell_title(rbuf *b, const char *node, int layer, const char *fmt, const sweep_row *r) {
    rb_puts(b, "<title>");
    rb_xml(b, node);
    if (layer >= 0) rb_printf(b, "@%d", layer);
    rb_puts(b, " = ");
    rb_xml(b, fmt);
    if (!r) rb_puts(b, ": not done yet");
    else
        rb_printf(b, ": mean KL %.3g \u00b1 %.2g, p99 %.3g, max %.3g, top-1 %.2f%%, ppl ratio %.6f",
                  r->mean_kld, r->kld_stderr, r->kld_p99, r->max_kld, 100 * r->top1_agree, r->ppl_ratio);
    rb_puts(b, "</title>");
}

void report_sweep_svg(rbuf *b, const report_sweep *s, int standalone) {
    double lo, hi;
    int any_zero, any_bad;
    scale_range(s, &lo, &hi, &any_zero, &any_bad);
    const int gw = s->n_nodes * CELL_W, gh = s->n_layers * CELL_H;
    const int panel_w = LEFT + gw + PANEL_GAP;
    int per_row = panel_w > 0 ? FQ_MAX(1, 1100 / panel_w) : 1;
    if (per_row > s->n_formats) per_row = FQ_MAX(1, s->n_formats);
    const int n_prow = (s->n_formats + per_row - 1) / FQ_MAX(1, per_row);
    const int panel_h = TOP + gh + BOTTOM;
    const int legend_w = 150;
    const int width = per_row * panel_w + legend_w + 10;
    const int height = FQ_MAX(1, n_prow) * panel_h + 30;
    if (standalone) rb_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    rb_printf(b, "<svg%s width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"11\">\n",
              standalone ? " xmlns=\"http://www.w3.org/2000/svg\"" : "", width, height, width, height);
    rb_puts(b, "<style>.cell{stroke:#fff;stroke-width:1}.missing{fill:#e8e8e8}.lbl{fill:#222}"
               ".ttl{font-size:13px;font-weight:bold}</style>\n");
    rb_puts(b, "<text x=\"8\" y=\"18\" class=\"ttl\">mean KL(base||fq) per position, log10 scale: layers (rows) x nodes (columns)</text>\n");
    for (int fi = 0; fi < s->n_formats; fi++) {
        const int px = (fi % per_row) * panel_w, py = 24 + (fi / per_row) * panel_h;
        const int gx = px + LEFT, gy = py + TOP;
        rb_printf(b, "<g class=\"panel\"><text x=\"%d\" y=\"%d\" class=\"ttl\">format ", gx, py + 20);
        rb_xml(b, s->formats[fi]);
        rb_puts(b, "</text>\n");
        /* axis titles */
        rb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 %d %d)\">layer</text>\n",
                  px + 14, gy + gh / 2, px + 14, gy + gh / 2);
        rb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">node</text>\n", gx + gw / 2, gy + gh + BOTTOM - 8);
        for (int li = 0; li < s->n_layers; li++) {
            const int L = s->layers[li];
            rb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"lbl\">", gx - 5, gy + li * CELL_H + CELL_H / 2 + 4);
            if (L >= 0) rb_printf(b, "%d", L);
            else rb_puts(b, "(none)");
            rb_puts(b, "</text>\n");
        }
        for (int ni = 0; ni < s->n_nodes; ni++) {
            const int cx = gx + ni * CELL_W + CELL_W / 2, cy = gy + gh + 8;
            rb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" transform=\"rotate(-50 %d %d)\" class=\"lbl\">", cx,
                      cy, cx, cy);
            rb_xml(b, s->nodes[ni]);
            rb_puts(b, "</text>\n");
        }
        for (int ni = 0; ni < s->n_nodes; ni++) {
            const int layerless = node_layerless(s, s->nodes[ni]);
            for (int li = 0; li < s->n_layers; li++) {
                const int L = s->layers[li];
                if ((L < 0) != layerless) continue;
                const sweep_row *r = find_row(s, s->nodes[ni], L, s->formats[fi]);
                const int x = gx + ni * CELL_W, y = gy + li * CELL_H;
                char fill[8] = "#e8e8e8";
                const char *cls = "cell missing";
                if (r) {
                    cls = "cell";
                    if (!isfinite(r->mean_kld)) snprintf(fill, sizeof fill, "#b00020");
                    else if (r->mean_kld <= 0) snprintf(fill, sizeof fill, "#ffffff");
                    else colour((log10(r->mean_kld) - lo) / (hi - lo), fill);
                }
                rb_printf(b, "<rect class=\"%s\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\">", cls, x, y,
                          CELL_W, CELL_H, fill);
                cell_title(b, s->nodes[ni], L, s->formats[fi], r);
                rb_puts(b, "</rect>\n");
                if (r && r->mean_kld <= 0)
                    rb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"9\">0</text>\n", x + CELL_W / 2,
                              y + CELL_H / 2 + 3);
            }
        }
        rb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n", gx, gy, gw, gh);
        rb_puts(b, "</g>\n");
    }
    /* colour scale */
    const int bx = per_row * panel_w + 10, by = 24 + TOP, bh = FQ_MAX(120, FQ_MIN(gh, 300));
    rb_printf(b, "<g class=\"colorbar\"><text x=\"%d\" y=\"%d\">mean KL (nats)</text>\n", bx, by - 10);
    const int steps = 48;
    for (int i = 0; i < steps; i++) {
        char fill[8];
        colour(1.0 - (i + 0.5) / steps, fill);
        rb_printf(b, "<rect x=\"%d\" y=\"%.2f\" width=\"%d\" height=\"%.2f\" fill=\"%s\"/>\n", bx, by + (double)bh * i / steps,
                  BAR_W, (double)bh / steps + 0.5, fill);
    }
    rb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n", bx, by, BAR_W, bh);
    const int n_dec = (int)(hi - lo);
    const int every = n_dec > 8 ? (n_dec + 7) / 8 : 1;
    for (int d = 0; d <= n_dec; d += every) {
        const double y = by + bh - (double)bh * d / n_dec;
        rb_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#222\"/>", bx + BAR_W, y, bx + BAR_W + 4, y);
        rb_printf(b, "<text x=\"%d\" y=\"%.1f\" class=\"lbl\">1e%d</text>\n", bx + BAR_W + 7, y + 4, (int)lo + d);
    }
    int ly = by + bh + 22;
    rb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"#ffffff\" stroke=\"#888\"/><text x=\"%d\" y=\"%d\">0 (no change)</text>\n",
              bx, ly, bx + 18, ly + 10);
    ly += 18;
    rb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"#e8e8e8\"/><text x=\"%d\" y=\"%d\">not done yet</text>\n", bx,
              ly, bx + 18, ly + 10);
    if (any_bad) {
        ly += 18;
        rb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"#b00020\"/><text x=\"%d\" y=\"%d\">Inf / NaN</text>\n", bx,
                  ly, bx + 18, ly + 10);
    }
    (void)any_zero;
    rb_puts(b, "</g>\n</svg>\n");
}

/* ---- HTML page ---------------------------------------------------------------------------- */

static int cmp_kld_desc(const void *a, const void *b) {
    const sweep_row *x = *(const sweep_row *const *)a, *y = *(const sweep_row *const *)b;
    double kx = isnan(x->mean_kld) ? INFINITY : x->mean_kld, ky = isnan(y->mean_kld) ? INFINITY : y->mean_kld;
    return kx < ky ? 1 : kx > ky ? -1 : 0;
}

static void html_row(rbuf *b, const sweep_row *r, int rank) {
    rb_puts(b, "<tr>");
    if (rank > 0) rb_printf(b, "<td>%d</td>", rank);
    rb_puts(b, "<td>");
    rb_xml(b, r->node);
    rb_puts(b, "</td><td>");
    if (r->layer >= 0) rb_printf(b, "%d", r->layer);
    else rb_puts(b, "&#8211;");
    rb_puts(b, "</td><td><code>");
    rb_xml(b, r->format);
    rb_printf(b, "</code></td><td>%.4g</td><td>%.2g</td><td>%.4g</td><td>%.4g</td><td>%.2f%%</td><td>%.6f</td></tr>\n",
              r->mean_kld, r->kld_stderr, r->kld_p99, r->max_kld, 100 * r->top1_agree, r->ppl_ratio);
}

static void html_table(rbuf *b, const sweep_row *const *rows, int n, int ranked) {
    rb_puts(b, "<table><thead><tr>");
    if (ranked) rb_puts(b, "<th>#</th>");
    rb_puts(b, "<th>node</th><th>layer</th><th>format</th><th>mean KL</th><th>s.e.</th><th>p99 KL</th>"
               "<th>max KL</th><th>top-1</th><th>ppl ratio</th></tr></thead><tbody>\n");
    for (int i = 0; i < n; i++) html_row(b, rows[i], ranked ? i + 1 : 0);
    rb_puts(b, "</tbody></table>\n");
}

void report_sweep_html(rbuf *b, const report_sweep *s) {
    rb_puts(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>fqlm sweep: ");
    rb_xml(b, s->model);
    rb_puts(b, "</title>\n<style>\n"
               "body{font-family:sans-serif;margin:2em;max-width:1400px;color:#222}\n"
               "table{border-collapse:collapse;margin:0.5em 0 1.5em}\n"
               "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}\n"
               "th{background:#f2f2f2}td:nth-child(-n+4){text-align:left}\n"
               "pre{background:#f6f6f6;padding:0.7em;overflow-x:auto;white-space:pre-wrap}\n"
               ".note{color:#666;font-size:13px}\n"
               "</style></head><body>\n");
    rb_puts(b, "<h1>fqlm sweep</h1>\n<p>Model <code>");
    rb_xml(b, s->model);
    rb_puts(b, "</code>, text <code>");
    rb_xml(b, s->text_file);
    rb_printf(b, "</code>: %d chunk%s of up to %d tokens, %lld positions scored; %s arithmetic. "
                 "Baseline perplexity %.4f. %d result%s; the command's %d combinations %s; %s.</p>\n",
              s->n_chunks, s->n_chunks == 1 ? "" : "s", s->ctx, (long long)s->positions, s->arith, s->ppl_base, s->n_rows,
              s->n_rows == 1 ? "" : "s", s->n_total,
              s->complete ? "are all done" : "are not all done yet (rerun the command to finish)",
              s->reuse ? "baseline hidden states reused" : "every combination computed from scratch");
    rb_puts(b, "<p>Each combination rounds one node at one layer to one format; its figures compare the next-token "
               "distributions with the baseline's at every position (KL in nats per position, computed in double "
               "precision from F32 logits).</p>\n<h2>Command</h2>\n<pre>");
    rb_xml(b, s->command);
    rb_puts(b, "</pre>\n<h2>Heatmap</h2>\n");
    report_sweep_svg(b, s, 0);
    const sweep_row **sorted = malloc((size_t)FQ_MAX(1, s->n_rows) * sizeof *sorted);
    if (!sorted) {
        b->oom = 1;
        return;
    }
    for (int i = 0; i < s->n_rows; i++) sorted[i] = &s->rows[i];
    qsort(sorted, (size_t)s->n_rows, sizeof *sorted, cmp_kld_desc);
    const int k = FQ_MIN(10, s->n_rows);
    rb_printf(b, "<h2>Most sensitive</h2>\n<p class=\"note\">The %d combinations with the largest mean KL.</p>\n", k);
    html_table(b, sorted, k, 1);
    const sweep_row **least = malloc((size_t)FQ_MAX(1, k) * sizeof *least);
    if (!least) {
        free(sorted);
        b->oom = 1;
        return;
    }
    for (int i = 0; i < k; i++) least[i] = sorted[s->n_rows - 1 - i];
    rb_printf(b, "<h2>Least sensitive</h2>\n<p class=\"note\">The %d combinations with the smallest mean KL.</p>\n", k);
    html_table(b, least, k, 1);
    free(least);
    rb_puts(b, "<h2>All results</h2>\n<details><summary>in the order they were computed</summary>\n");
    for (int i = 0; i < s->n_rows; i++) sorted[i] = &s->rows[i];
    html_table(b, sorted, s->n_rows, 0);
    rb_puts(b, "</details>\n");
    free(sorted);
    rb_printf(b, "<p class=\"note\">Written by fqlm sweep in %.1f s; results.csv and results.json beside this page "
                 "hold every figure.</p>\n</body></html>\n",
              s->seconds);
}
