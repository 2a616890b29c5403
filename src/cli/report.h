/* report.h - what compare and sweep write for people: the compare report (text and
 * Markdown), the sweep heatmap (SVG, one panel per format) and the sweep's HTML page.
 * Everything is built in memory and written whole by the caller. */
#ifndef FQ_CLI_REPORT_H
#define FQ_CLI_REPORT_H

#include <stdio.h>

#include "metrics.h"

/* A growing text buffer; oom is set (and further output dropped) when memory runs out. */
typedef struct rbuf {
    char *s;
    size_t len, cap;
    int oom;
} rbuf;

void rb_init(rbuf *b);
void rb_free(rbuf *b);
void rb_printf(rbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rb_putn(rbuf *b, const char *s, size_t n);
void rb_puts(rbuf *b, const char *s);
/* s with & < > " ' escaped for XML and HTML text or attributes. */
void rb_xml(rbuf *b, const char *s);
/* s for a Markdown table cell or inline text: | and backslash escaped, newlines as spaces. */
void rb_md(rbuf *b, const char *s);

/* A double as JSON with 17 significant digits (round-trips exactly); null if not finite. */
void rb_json_num(rbuf *b, double v);

/* ---- compare ---------------------------------------------------------------------- */

typedef struct report_timing {
    double load_ms;
    double prompt_ms;      /* prompt (or, without generation, the scored chunks) */
    int n_prompt;
    double eval_ms;        /* generated tokens, one at a time */
    int n_eval;
    double score_ms;       /* the teacher-forced pass (after generation) */
    int n_score;
    double total_ms;
} report_timing;

typedef struct report_compare {
    const char *command;   /* the command line, shell-quoted */
    const char *model;
    const char *config;    /* the fake-quant rules, joined with spaces */
    int exact;
    const char *kv_cache;  /* "f32" or "f16" */
    int n_layer;
    /* generation (has_gen) */
    int has_gen;
    unsigned long long seed;
    double temp;
    int n_predict;
    const char *text_base, *text_fq;   /* prompt + continuation */
    int n_gen_base, n_gen_fq;
    int first_diff;        /* index into the generated tokens; -1: identical */
    const char *diff_base, *diff_fq;   /* the two tokens at first_diff, as text */
    /* scoring */
    const char *scored;    /* what was scored, in words */
    int n_chunks, ctx;
    fq_metrics_summary m;
    report_timing t_base, t_fq;
    const char *node_table; /* fq_fakequant_report output */
    int64_t nonfinite_gen;  /* generation steps whose logits held NaN/Inf (both runs) */
} report_compare;

void report_compare_text(FILE *f, const report_compare *r);
void report_compare_md(rbuf *b, const report_compare *r);

/* ---- sweep ------------------------------------------------------------------------ */

typedef struct sweep_row {
    char node[32];
    int layer;             /* -1: a node without a layer */
    char format[160];      /* canonical spec */
    int first_layer;       /* where recomputation started (n_layer: only the output) */
    int64_t positions;
    double mean_kld, kld_stderr, kld_median, kld_p90, kld_p99, max_kld;
    double top1_agree, ppl_base, ppl_fq, ppl_ratio, dp_mean, max_abs_logit_diff;
    long long applications;
    double seconds;
} sweep_row;

typedef struct report_sweep {
    const char *command, *model, *text_file;
    const char *arith;     /* "llama.cpp-mirroring" or "exact" */
    int n_layer, ctx, n_chunks;
    int64_t positions;
    double ppl_base;
    int reuse;
    double seconds;        /* wall time of this run */
    int n_total;           /* combinations asked for */
    int complete;          /* every combination asked for is in rows */
    /* axes, in display order */
    const char *const *nodes;
    int n_nodes;
    const int *layers;     /* may include -1 (nodes without a layer): shown last */
    int n_layers;
    const char *const *formats;
    int n_formats;
    const sweep_row *rows;
    int n_rows;
} report_sweep;

/* The heatmap: layers (rows) x nodes (columns), colour = log10 mean KL on one scale for
 * every panel, one panel per format, one <rect class="cell"> per (node, layer, format)
 * of the axes (class "cell missing" where no result exists yet, or the node has no such
 * layer: then no cell is drawn). standalone: an SVG file (XML declaration, xmlns); else
 * an <svg> element to inline in HTML. */
void report_sweep_svg(rbuf *b, const report_sweep *s, int standalone);
/* A self-contained HTML page: summary, command, heatmap, most and least sensitive points,
 * all results. No external resource. */
void report_sweep_html(rbuf *b, const report_sweep *s);

/* mkdir -p: 0, or -1 with errno set. */
int report_mkdir_p(const char *dir);

/* Shell-quotes argv into one line ("fqlm sweep -m 'my model.gguf' ..."). */
void report_command_line(rbuf *b, int argc, char **argv);

#endif
