/* cmd_sweep.c - `fqlm sweep`: every (node, layer, format) combination against the
 * baseline, on a text scored as `compare -f` scores it.
 *
 * The engine (selection, baseline with kept hidden states, one combination at a time) is
 * the library's (src/sweep.c), run here through the public API (fqlm_sweep_*) as a C or
 * Python user runs it; this file adds the files, resume, shards, --merge and MPI ranks.
 *
 * Files: DIR/results.csv gets one line per finished combination, appended with a single
 * write() and fsync'd; a rerun of the same command reads it, drops a trailing partial
 * line, and skips what is done. results.json, heatmap.svg and report.html are rebuilt
 * from the rows and replaced whole (temporary file + rename). DIR/sweep.conf records what
 * the numbers depend on (model, text, context, chunks, arithmetic, seed) so that a rerun
 * with other settings is refused instead of mixing results; the model is identified by a
 * hash of its bytes, not its path. DIR/sweep.lock (flock) keeps a second sweep out of the
 * directory while one runs. Ctrl-C abandons the running
 * combination, rewrites the summaries and exits with 130: every file stays valid. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "formats.h"
#include "jsonw.h"
#include "metrics.h"
#include "report.h"
#include "score.h"
#include "outdir.h"
#include "select.h"
#include "session.h"
#include "api_bridge.h"
#include "sweep.h"
#include "tokenizer.h"

#ifdef FQ_MPI
#include <mpi.h>
#include <time.h>
enum { TAG_READY = 1, TAG_ROW, TAG_FAIL, TAG_WORK };
/* Started by mpirun/srun (the launchers set these): a plain run of an MPI build stays a
 * plain process. */
static int mpi_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK") || getenv("SLURM_STEP_ID");
}
#endif

static volatile sig_atomic_t g_interrupted;
static void on_signal(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: fqlm sweep [-m MODEL] -f FILE --nodes LIST [--layers LIST] --formats LIST\n"
            "                  [-c CTX] [--chunks K] -o DIR [--no-reuse] [--shard I/N]\n"
            "       fqlm sweep --merge SHARD_DIR... -o DIR\n\n"
            "Runs every (node, layer, format) combination against the baseline on FILE, scored as\n"
            "`fqlm compare -f FILE` scores it (chunks of CTX tokens, every position), and writes\n"
            "  DIR/results.csv    one row per combination: mean KL, its standard error, median, p90,\n"
            "                     p99, max; top-1 agreement; perplexity of both runs and the ratio\n"
            "  DIR/results.json   the same, with the settings\n"
            "  DIR/heatmap.svg    layers x nodes, colour = log10 mean KL, one panel per format\n"
            "  DIR/report.html    one self-contained page: heatmaps, the most and least sensitive\n"
            "                     points, every result, and the command that made it\n"
            "Rerunning the same command skips the combinations already in results.csv (Ctrl-C\n"
            "leaves every file valid); DIR/sweep.conf records the settings and a hash of the model's\n"
            "bytes, and a rerun with others is refused. DIR/sweep.lock keeps a second sweep out of\n"
            "DIR while one runs. The baseline's hidden state entering each layer is computed\n"
            "once and each combination recomputes only from its first layer on.\n"
            "A combination whose logits hold NaN/Inf is reported (with where NaN/Inf first appeared)\n"
            "and its KL, top-1 and perplexity figures are nan; the exit status is then 3.\n"
            "Across machines: run `--shard I/N -o DIR/shard-I` for I = 0..N-1 (each anywhere, resumable),\n"
            "then `fqlm sweep --merge DIR/shard-* -o DIR`: it checks that the shards are of one sweep\n"
            "(model hash, text, settings, nodes, layers, formats) and complete (naming what a shard\n"
            "lacks), and writes the same files as one process would.\n\n"
            "  --nodes LIST            node names or globs, comma-separated (ffn_norm,attn_norm,\n"
            "                          'ffn_*', '*'); inp_embd, result_norm and result_output have no layer\n"
            "  --layers LIST           N, N-M, N,M,... or * for all (default: all)\n"
            "  --formats LIST          format specs, comma-separated (bf16,fp16,fp8_e4m3,int8);\n"
            "                          an option list may follow a format (int4:group=32,asym,bf16)\n"
            "  -c, --ctx-size N        tokens per chunk (default 512)\n"
            "  --chunks K              score the first K chunks only\n"
            "  -o, --out DIR           output directory (created if missing)\n"
            "  --no-reuse              compute every combination from scratch (for comparison)\n"
            "  --shard I/N             run shard I (counting from 0) of N: a fixed 1/N of the combinations,\n"
            "                          dealt out costliest first; one -o DIR per shard (batch arrays)\n"
            "  --progress / --no-progress   force the progress bar on or off (default: on a terminal)\n"
            "  --seeds K               stochastic rounding as an axis: seed S (--seed) sweeps everything into\n"
            "                          DIR/seed-S, seeds S+1..S+K-1 the round=stochastic formats into DIR/seed-N\n"
            "                          (each an ordinary resumable sweep), and DIR/seeds.csv gets the mean and\n"
            "                          sample sd of mean_kld, kld_p99, top1_agree, ppl_ratio per combination\n");
    cli_opts_help(f);
}

/* The selection's combinations (the axes of the outputs and of --merge), as the engine lists them (sweep.h). */
typedef fq_sweep_sel selection;
typedef fq_sweep_combo combo;
#define selection_free fq_sweep_sel_free
#define combo_label fq_sweep_combo_label
#define combo_start fq_sweep_combo_start
#define shard_pick fq_sweep_shard_pick

/* ---- CSV ------------------------------------------------------------------------------------ */

static const char *CSV_HEADER =
    "node,layer,format,first_layer,positions,mean_kld,kld_stderr,kld_median,kld_p90,kld_p99,max_kld,"
    "top1_agree,ppl_base,ppl_fq,ppl_ratio,dp_mean,max_abs_logit_diff,applications,seconds\n";
#define CSV_FIELDS 19

static void csv_field(rbuf *b, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) {
        rb_puts(b, s);
        return;
    }
    rb_puts(b, "\"");
    for (; *s; s++) {
        if (*s == '"') rb_puts(b, "\"\"");
        else rb_putn(b, s, 1);
    }
    rb_puts(b, "\"");
}

static void csv_num(rbuf *b, double v) {
    if (isnan(v)) rb_puts(b, ",nan");
    else if (isinf(v)) rb_puts(b, v > 0 ? ",inf" : ",-inf");
    else rb_printf(b, ",%.17g", v);
}

static void csv_row(rbuf *b, const sweep_row *r) {
    csv_field(b, r->node);
    rb_puts(b, ",");
    if (r->layer >= 0) rb_printf(b, "%d", r->layer);
    rb_puts(b, ",");
    csv_field(b, r->format);
    rb_printf(b, ",%d,%lld", r->first_layer, (long long)r->positions);
    csv_num(b, r->mean_kld);
    csv_num(b, r->kld_stderr);
    csv_num(b, r->kld_median);
    csv_num(b, r->kld_p90);
    csv_num(b, r->kld_p99);
    csv_num(b, r->max_kld);
    csv_num(b, r->top1_agree);
    csv_num(b, r->ppl_base);
    csv_num(b, r->ppl_fq);
    csv_num(b, r->ppl_ratio);
    csv_num(b, r->dp_mean);
    csv_num(b, r->max_abs_logit_diff);
    rb_printf(b, ",%lld", r->applications);
    csv_num(b, r->seconds);
    rb_puts(b, "\n");
}

/* Splits one CSV line (no newline) into at most max fields, unquoting in place. Returns
 * the count, or -1 on a malformed quote. */
static int csv_split(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == max) return -1;
        if (*p == '"') {
            char *w = ++p, *start = p;
            for (;;) {
                if (!*p) return -1;
                if (*p == '"') {
                    if (p[1] == '"') {
                        *w++ = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                *w++ = *p++;
            }
            *w = 0;
            fields[n++] = start;
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p) return -1;
            return n;
        }
        fields[n++] = p;
        char *c = strchr(p, ',');
        if (!c) return n;
        *c = 0;
        p = c + 1;
    }
}

static int parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end) return -1;
    *out = v;
    return 0;
}

/* An integer field: finite, whole and within [lo, hi] before any conversion (a damaged
 * file can hold 1e300 or inf, which no integer type can take). */
static int parse_whole(const char *s, double lo, double hi, double *out) {
    if (parse_double(s, out) || !(*out >= lo && *out <= hi) || *out != floor(*out)) return -1;
    return 0;
}

static int csv_parse_row(char *line, sweep_row *r) {
    char *f[CSV_FIELDS + 1];
    if (csv_split(line, f, CSV_FIELDS + 1) != CSV_FIELDS) return -1;
    memset(r, 0, sizeof *r);
    if (strlen(f[0]) >= sizeof r->node || strlen(f[2]) >= sizeof r->format || !*f[0] || !*f[2]) return -1;
    strcpy(r->node, f[0]);
    strcpy(r->format, f[2]);
    r->layer = -1;
    double v;
    if (*f[1]) {
        if (parse_whole(f[1], 0, 1 << 20, &v)) return -1;
        r->layer = (int)v;
    }
    double *num[] = {NULL, NULL, NULL, NULL, NULL, &r->mean_kld, &r->kld_stderr, &r->kld_median, &r->kld_p90,
                     &r->kld_p99, &r->max_kld, &r->top1_agree, &r->ppl_base, &r->ppl_fq, &r->ppl_ratio, &r->dp_mean,
                     &r->max_abs_logit_diff, NULL, &r->seconds};
    for (int i = 5; i < CSV_FIELDS; i++)
        if (num[i] && parse_double(f[i], num[i])) return -1;
    if (parse_whole(f[3], 0, 1 << 20, &v)) return -1;
    r->first_layer = (int)v;
    if (parse_whole(f[4], 0, 9007199254740992.0, &v)) return -1;
    r->positions = (int64_t)v;
    if (parse_whole(f[17], 0, 9007199254740992.0, &v)) return -1;
    r->applications = (long long)v;
    return 0;
}

typedef struct {
    sweep_row *v;
    int n, cap;
} row_list;

static int rows_push(row_list *l, const sweep_row *r) {
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 64;
        sweep_row *nv = realloc(l->v, (size_t)nc * sizeof *nv);
        if (!nv) return -1;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = *r;
    return 0;
}

static int rows_find(const row_list *l, const char *node, int layer, const char *fmt) {
    for (int i = 0; i < l->n; i++)
        if (l->v[i].layer == layer && !strcmp(l->v[i].node, node) && !strcmp(l->v[i].format, fmt)) return i;
    return -1;
}

/* Reads DIR/results.csv into rows: a trailing line without its newline (a write cut
 * short), everything from the line holding a NUL byte on (what a crash or power loss
 * leaves: the file is cut there), unreadable lines and repeated combinations are dropped,
 * and the file is rewritten whole without them. A missing or empty file is created with
 * the header. Returns 0, or 1 after printing an error. */
static int csv_load_ex(const char *path, row_list *rows, int readonly) {
    fq_err e;
    size_t len = 0;
    char *text = NULL;
    if (readonly && access(path, F_OK) != 0) return 0; /* a shard that has not started: no rows */
    if (access(path, F_OK) == 0) {
        text = fq_read_file(path, &len, &e);
        if (!text) {
            cli_error("%s", e.msg);
            return 1;
        }
    }
    if (!text || len == 0) {
        free(text);
        if (readonly) return 0;
        if (fq_write_file_atomic(path, CSV_HEADER, strlen(CSV_HEADER), &e)) {
            cli_error("%s", e.msg);
            return 1;
        }
        return 0;
    }
    const size_t hl = strlen(CSV_HEADER);
    if (len < hl || memcmp(text, CSV_HEADER, hl) != 0) {
        free(text);
        cli_error("%s exists but is not an fqlm sweep results file (its first line differs); "
                  "use another -o DIR", path);
        return 1;
    }
    int dropped = 0, partial = 0;
    size_t nul_at = 0, nul_cut = 0;
    const char *nul = memchr(text, 0, len);
    if (nul && (size_t)(nul - text) >= hl) {
        char *cut = (char *)nul;
        while (cut > text + hl && cut[-1] != '\n') cut--;
        nul_at = (size_t)(nul - text);
        nul_cut = len - (size_t)(cut - text);
        *cut = 0;
    }
    rbuf keep;
    rb_init(&keep);
    rb_puts(&keep, CSV_HEADER);
    char *p = text + hl;
    while (*p) {
        char *nl = strchr(p, '\n');
        if (!nl) {
            partial = 1;
            break;
        }
        *nl = 0;
        char *copy = strdup(p);
        sweep_row r;
        if (!copy || csv_parse_row(p, &r)) {
            dropped++;
        } else if (rows_find(rows, r.node, r.layer, r.format) >= 0) {
            dropped++;
        } else {
            if (rows_push(rows, &r)) {
                free(copy);
                free(text);
                rb_free(&keep);
                cli_error("out of memory reading %s", path);
                return 1;
            }
            rb_puts(&keep, copy);
            rb_puts(&keep, "\n");
        }
        free(copy);
        p = nl + 1;
    }
    free(text);
    int rc = 0;
    if (partial || dropped || nul_cut) {
        char what[3][128];
        int nw = 0;
        if (nul_cut)
            snprintf(what[nw++], sizeof what[0], "the %zu bytes from the line holding a NUL byte (offset %zu) on",
                     nul_cut, nul_at);
        if (partial) snprintf(what[nw++], sizeof what[0], "a partial last line");
        if (dropped)
            snprintf(what[nw++], sizeof what[0], "%d unreadable or repeated line%s", dropped, dropped == 1 ? "" : "s");
        fprintf(stderr, "fqlm: %s: dropping %s%s%s%s%s (those combinations run again)\n", path, what[0],
                nw > 1 ? (nw > 2 ? ", " : " and ") : "", nw > 1 ? what[1] : "", nw > 2 ? " and " : "",
                nw > 2 ? what[2] : "");
        if (!readonly && (keep.oom || fq_write_file_atomic(path, keep.s, keep.len, &e))) {
            cli_error("%s", keep.oom ? "out of memory" : e.msg);
            rc = 1;
        }
    }
    rb_free(&keep);
    return rc;
}
static int csv_load(const char *path, row_list *rows) { return csv_load_ex(path, rows, 0); }

/* Appends one line with a single write() and makes it durable. */
static int csv_append(int fd, const sweep_row *r, fq_err *e) {
    rbuf b;
    rb_init(&b);
    csv_row(&b, r);
    if (b.oom) {
        rb_free(&b);
        return fq_errf(e, "out of memory");
    }
    ssize_t w;
    do w = write(fd, b.s, b.len);
    while (w < 0 && errno == EINTR);
    int rc = 0;
    if (w != (ssize_t)b.len) rc = fq_errf(e, "appending to results.csv: %s", w < 0 ? strerror(errno) : "short write");
    else if (fsync(fd) != 0) rc = fq_errf(e, "fsync of results.csv: %s", strerror(errno));
    rb_free(&b);
    return rc;
}

/* ---- settings the numbers depend on ----------------------------------------------------------- */


/* ---- outputs ---------------------------------------------------------------------------------- */

typedef struct {
    const char *dir;
    const char *command, *model, *text_file;
    int exact, n_layer, ctx, n_chunks, reuse, n_total;
    int64_t positions;
    double ppl_base, ppl_base_err;
    const selection *sel;
    int64_t t_start;
} out_ctx;

/* Rebuilds results.json, heatmap.svg and report.html. *written gets one bit per file
 * written (OUT_JSON, OUT_SVG, OUT_HTML). Returns 0, or 1 after printing an error. */
enum { OUT_JSON = 1, OUT_SVG = 2, OUT_HTML = 4 };
static int write_outputs(const out_ctx *oc, const row_list *rows, int complete, unsigned *written) {
    fq_err e;
    int rc = 0;
    *written = 0;
    /* axes: the selection first, then whatever earlier runs added */
    const char *nodes[FQ_NODE_COUNT + 64];
    int n_nodes = 0;
    for (int i = 0; i < oc->sel->n_nodes; i++) nodes[n_nodes++] = fq_node_name(oc->sel->nodes[i]);
    for (int i = 0; i < rows->n && n_nodes < (int)FQ_ARRAY_LEN(nodes); i++) {
        int have = 0;
        for (int k = 0; k < n_nodes; k++) have |= !strcmp(nodes[k], rows->v[i].node);
        if (!have) nodes[n_nodes++] = rows->v[i].node;
    }
    int *layers = malloc((size_t)(oc->n_layer + 1) * sizeof(int));
    const char **formats = malloc((size_t)(oc->sel->n_formats + rows->n + 1) * sizeof(char *));
    if (!layers || !formats) {
        free(layers);
        free(formats);
        cli_error("out of memory");
        return 1;
    }
    int n_layers = 0, layerless = 0;
    for (int L = 0; L < oc->n_layer; L++) {
        int on = 0;
        for (int i = 0; i < oc->sel->n_layers; i++) on |= oc->sel->layers[i] == L;
        for (int i = 0; i < rows->n && !on; i++) on |= rows->v[i].layer == L;
        if (on) layers[n_layers++] = L;
    }
    for (int i = 0; i < oc->sel->n_nodes; i++) layerless |= !fq_node_has_layer(oc->sel->nodes[i]);
    for (int i = 0; i < rows->n; i++) layerless |= rows->v[i].layer < 0;
    if (layerless) layers[n_layers++] = -1;
    int n_formats = 0;
    for (int i = 0; i < oc->sel->n_formats; i++) formats[n_formats++] = oc->sel->formats[i];
    for (int i = 0; i < rows->n; i++) {
        int have = 0;
        for (int k = 0; k < n_formats; k++) have |= !strcmp(formats[k], rows->v[i].format);
        if (!have) formats[n_formats++] = rows->v[i].format;
    }
    report_sweep rs = {
        .command = oc->command, .model = oc->model, .text_file = oc->text_file,
        .arith = oc->exact ? "exact" : "llama.cpp-mirroring", .n_layer = oc->n_layer, .ctx = oc->ctx,
        .n_chunks = oc->n_chunks, .positions = oc->positions, .ppl_base = oc->ppl_base, .reuse = oc->reuse,
        .seconds = (fq_time_us() - oc->t_start) / 1e6, .n_total = oc->n_total, .complete = complete,
        .nodes = nodes, .n_nodes = n_nodes, .layers = layers, .n_layers = n_layers, .formats = formats,
        .n_formats = n_formats, .rows = rows->v, .n_rows = rows->n,
    };
    char path[4096];
    rbuf b;
    /* results.json */
    {
        jsonw w;
        jsonw_init(&w);
        jsonw_obj_begin(&w);
        jsonw_key(&w, "command"); jsonw_str(&w, oc->command);
        jsonw_key(&w, "model"); jsonw_str(&w, oc->model);
        jsonw_key(&w, "text_file"); jsonw_str(&w, oc->text_file);
        jsonw_key(&w, "arithmetic"); jsonw_str(&w, oc->exact ? "exact" : "llama.cpp");
        jsonw_key(&w, "n_layer"); jsonw_int(&w, oc->n_layer);
        jsonw_key(&w, "ctx"); jsonw_int(&w, oc->ctx);
        jsonw_key(&w, "chunks"); jsonw_int(&w, oc->n_chunks);
        jsonw_key(&w, "positions"); jsonw_int(&w, oc->positions);
        jsonw_key(&w, "reuse"); jsonw_bool(&w, oc->reuse);
        jsonw_key(&w, "combinations"); jsonw_int(&w, oc->n_total);
        jsonw_key(&w, "done"); jsonw_int(&w, rows->n);
        jsonw_key(&w, "complete"); jsonw_bool(&w, complete);
        jsonw_key(&w, "baseline");
        jsonw_obj_begin(&w);
        jsonw_key(&w, "ppl"); jsonw_num(&w, oc->ppl_base);
        jsonw_key(&w, "ppl_err"); jsonw_num(&w, oc->ppl_base_err);
        jsonw_obj_end(&w);
        jsonw_key(&w, "results");
        jsonw_arr_begin(&w);
        for (int i = 0; i < rows->n; i++) {
            const sweep_row *r = &rows->v[i];
            rbuf o;
            rb_init(&o);
            jsonw one;
            jsonw_init(&one);
            jsonw_obj_begin(&one);
            jsonw_key(&one, "node"); jsonw_str(&one, r->node);
            jsonw_key(&one, "layer");
            if (r->layer >= 0) jsonw_int(&one, r->layer);
            else jsonw_null(&one);
            jsonw_key(&one, "format"); jsonw_str(&one, r->format);
            jsonw_key(&one, "first_layer"); jsonw_int(&one, r->first_layer);
            jsonw_key(&one, "positions"); jsonw_int(&one, r->positions);
            const struct { const char *k; double v; } nums[] = {
                {"mean_kld", r->mean_kld}, {"kld_stderr", r->kld_stderr}, {"kld_median", r->kld_median},
                {"kld_p90", r->kld_p90}, {"kld_p99", r->kld_p99}, {"max_kld", r->max_kld},
                {"top1_agree", r->top1_agree}, {"ppl_base", r->ppl_base}, {"ppl_fq", r->ppl_fq},
                {"ppl_ratio", r->ppl_ratio}, {"dp_mean", r->dp_mean}, {"max_abs_logit_diff", r->max_abs_logit_diff},
                {"seconds", r->seconds}};
            for (size_t k = 0; k < FQ_ARRAY_LEN(nums); k++) {
                jsonw_key(&one, nums[k].k);
                o.len = 0;
                rb_json_num(&o, nums[k].v);
                jsonw_raw(&one, o.s ? o.s : "null");
            }
            jsonw_key(&one, "applications"); jsonw_int(&one, r->applications);
            jsonw_obj_end(&one);
            char *t = jsonw_take(&one);
            jsonw_raw(&w, t ? t : "null");
            free(t);
            jsonw_free(&one);
            rb_free(&o);
        }
        jsonw_arr_end(&w);
        jsonw_obj_end(&w);
        snprintf(path, sizeof path, "%s/results.json", oc->dir);
        if (jsonw_write_file(&w, path, &e)) {
            cli_error("%s", e.msg);
            rc = 1;
        } else {
            *written |= OUT_JSON;
        }
        jsonw_free(&w);
    }
    /* heatmap.svg */
    rb_init(&b);
    report_sweep_svg(&b, &rs, 1);
    snprintf(path, sizeof path, "%s/heatmap.svg", oc->dir);
    if (b.oom || fq_write_file_atomic(path, b.s, b.len, &e)) {
        cli_error("%s", b.oom ? "out of memory" : e.msg);
        rc = 1;
    } else {
        *written |= OUT_SVG;
    }
    rb_free(&b);
    /* report.html */
    rb_init(&b);
    report_sweep_html(&b, &rs);
    snprintf(path, sizeof path, "%s/report.html", oc->dir);
    if (b.oom || fq_write_file_atomic(path, b.s, b.len, &e)) {
        cli_error("%s", b.oom ? "out of memory" : e.msg);
        rc = 1;
    } else {
        *written |= OUT_HTML;
    }
    rb_free(&b);
    free(layers);
    free(formats);
    return rc;
}

/* ---- progress ----------------------------------------------------------------------------------- */

static void fmt_dur(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

/* The terminal's progress line: done is in combinations (fractional within one). */
static void bar(int tty, double done, int total, const char *what, double elapsed, double eta) {
    if (!tty) return;
    char e1[32], e2[32];
    fmt_dur(e1, sizeof e1, elapsed);
    fmt_dur(e2, sizeof e2, eta);
    const int W = 28;
    int fill = total ? (int)((double)W * done / total) : W;
    char b[64];
    for (int i = 0; i < W; i++) b[i] = i < fill ? '#' : '.';
    b[W] = 0;
    fprintf(stderr, "\r\033[K[%s] %d/%d %-28.28s %s elapsed, ETA %s", b, (int)done, total, what, e1, e2);
    fflush(stderr);
}

/* ---- the command ---------------------------------------------------------------------------------- */


/* "I/N" with 0 <= I < N. */
static int parse_shard(const char *v, int *I, int *N) {
    char *end;
    errno = 0;
    long i = strtol(v, &end, 10), n;
    if (end == v || *end != '/' || errno) goto bad;
    const char *q = end + 1;
    n = strtol(q, &end, 10);
    if (end == q || *end || errno) goto bad;
    if (n < 1 || n > 1000000) {
        cli_error("--shard %s: the shard count must be 1 to 1000000", v);
        return -1;
    }
    if (i < 0 || i >= n) {
        cli_error("--shard %s: the shard index counts from 0: use 0/%ld to %ld/%ld", v, n, n - 1, n);
        return -1;
    }
    *I = (int)i;
    *N = (int)n;
    return 0;
bad:
    cli_error("--shard: bad value '%s' (use I/N, e.g. 0/4 for the first of 4 shards)", v);
    return -1;
}

/* One combination of the sweep as the public API lists it. */
typedef struct {
    const char *node, *format;
    int layer;
    int L0;   /* the first layer it changes (its cost with reuse: NL - L0 + 1) */
} citem;

static void citem_label(char *buf, size_t n, const citem *c) {
    if (c->layer >= 0) snprintf(buf, n, "%s@%d=%s", c->node, c->layer, c->format);
    else snprintf(buf, n, "%s=%s", c->node, c->format);
}

static void row_from_api(sweep_row *r, const fqlm_sweep_row *a) {
    memset(r, 0, sizeof *r);
    snprintf(r->node, sizeof r->node, "%s", a->node);
    r->layer = a->layer;
    snprintf(r->format, sizeof r->format, "%s", a->format);
    r->first_layer = a->first_layer;
    r->positions = a->positions;
    r->mean_kld = a->mean_kld;
    r->kld_stderr = a->kld_stderr;
    r->kld_median = a->kld_median;
    r->kld_p90 = a->kld_p90;
    r->kld_p99 = a->kld_p99;
    r->max_kld = a->max_kld;
    r->top1_agree = a->top1_agree;
    r->ppl_base = a->ppl_base;
    r->ppl_fq = a->ppl_fq;
    r->ppl_ratio = a->ppl_ratio;
    r->dp_mean = a->dp_mean;
    r->max_abs_logit_diff = a->max_abs_logit_diff;
    r->applications = (long long)a->applications;
    r->seconds = a->seconds;
}

/* The progress callback of the baseline and of each combination: the bar within a
 * combination (with several chunks), and Ctrl-C. */
typedef struct {
    int tty, n_run, n_todo, units_cost;
    const char *label;
    double units_done, units_total;
    int64_t t_start, tc0;
} prog;

static int on_chunk(void *ud, int k, int n_chunks) {
    prog *p = ud;
    if (p && p->tty && p->label && n_chunks > 1) {
        const double u = p->units_cost * (double)(k + 1) / n_chunks;
        const double el = (fq_time_us() - p->tc0) / 1e6;
        bar(p->tty, p->n_run + (double)(k + 1) / n_chunks, p->n_todo, p->label, (fq_time_us() - p->t_start) / 1e6,
            el / (p->units_done + u) * (p->units_total - p->units_done - u));
    }
    return g_interrupted != 0;
}

#ifdef FQ_MPI
#include <pthread.h>
/* Rank 0's own worker: a thread computes combinations while the main thread serves the
 * other ranks (only the main thread calls MPI: MPI_THREAD_FUNNELED). */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fqlm_sweep *sw;
    int job;       /* combination to run, -1: none */
    int done;      /* the job finished: row / rc */
    int quit;
    int rc;
    fqlm_sweep_row row;
    char err[FQ_ERR_MAX];
} local_worker;

static void *local_main(void *arg) {
    local_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->quit && (w->job < 0 || w->done)) pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit) break;
        const int job = w->job;
        pthread_mutex_unlock(&w->mu);
        fqlm_sweep_row row;
        const int rc = fqlm_sweep_run(w->sw, job, &row, on_chunk, NULL);
        pthread_mutex_lock(&w->mu);
        w->rc = rc;
        if (rc == 0) w->row = row;
        else snprintf(w->err, sizeof w->err, "%s", rc < 0 ? fqlm_last_error() : "interrupted");
        w->done = 1;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}
#endif

static int cmd_sweep_merge(int argc, char **argv);
int cli_sweep_seeds(int argc, char **argv);

int cmd_sweep(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--merge")) return cmd_sweep_merge(argc, argv);
    for (int i = 1; i < argc; i++) /* sweep_seeds.c: K sweeps of their own, then DIR/seeds.csv */
        if (!strcmp(argv[i], "--seeds")) return cli_sweep_seeds(argc, argv);
    cli_opts o;
    cli_opts_defaults(&o);
    const char *nodes_arg = NULL, *layers_arg = "*", *formats_arg = NULL, *dir = NULL;
    int max_chunks = 0, reuse = 1, progress = -1, shard_i = 0, shard_n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--no-reuse")) { reuse = 0; continue; }
#ifdef FQ_MPI
        if (!strcmp(a, "--mpi-info")) { /* for tests and scripts: this build has MPI */
            printf("fqlm sweep: built with MPI\n");
            return 0;
        }
#endif
        if (!strcmp(a, "--progress")) { progress = 1; continue; }
        if (!strcmp(a, "--no-progress")) { progress = 0; continue; }
        if (!strcmp(a, "--shard")) {
            if (i + 1 >= argc) {
                cli_error("option --shard needs a value (I/N)");
                return 2;
            }
            if (parse_shard(argv[++i], &shard_i, &shard_n)) return 2;
            continue;
        }
        if (!strcmp(a, "--nodes") || !strcmp(a, "--layers") || !strcmp(a, "--formats") || !strcmp(a, "-o") ||
            !strcmp(a, "--out") || !strcmp(a, "--chunks")) {
            if (i + 1 >= argc) {
                cli_error("option %s needs a value", a);
                return 2;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--nodes")) nodes_arg = v;
            else if (!strcmp(a, "--layers")) layers_arg = v;
            else if (!strcmp(a, "--formats")) formats_arg = v;
            else if (!strcmp(a, "--chunks")) {
                long long k;
                if (cli_parse_int("--chunks", v, 1, 1 << 30, &k)) return 2;
                max_chunks = (int)k;
            } else dir = v;
            continue;
        }
        int r = cli_opts_parse(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r == 0) {
            cli_error("sweep: unknown option '%s' (see fqlm sweep --help)", a);
            return 2;
        }
    }
    if (o.n_rules || o.fq_ffn_norm || o.fq_logits || o.fq_layer || o.dump || o.fq_stats) {
        cli_error("sweep makes its own rules from --nodes, --layers and --formats (no --fq or --fake-quant options)");
        return 2;
    }
    if (o.json) {
        cli_error("sweep writes DIR/results.json itself (no --json)");
        return 2;
    }
    if (!nodes_arg || !formats_arg || !dir) {
        cli_error("sweep needs --nodes LIST, --formats LIST and -o DIR (see fqlm sweep --help)");
        return 2;
    }
    if (!*dir) {
        cli_error("-o: the output directory name is empty");
        return 2;
    }
    if (!o.prompt_file && !o.prompt) {
        cli_error("no text: give one with -f FILE");
        return 2;
    }
    if (o.n_ctx == 0) o.n_ctx = 512;
    const int tty = progress >= 0 ? progress : isatty(2);
    int64_t t_start = fq_time_us();

    int mpi_rank = 0, mpi_size = 1, mpi_on = 0, mpi_clean = 0;
#ifdef FQ_MPI
    if (mpi_launched()) {
        int prov;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &prov) != MPI_SUCCESS) {
            cli_error("MPI_Init failed");
            return 1;
        }
        mpi_on = 1;
        MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &mpi_size);
        if (mpi_size > 1 && shard_n) {
            if (mpi_rank == 0) cli_error("--shard splits a sweep over separate runs: under mpirun leave it out");
            MPI_Finalize();
            return 2;
        }
    }
#endif
    (void)mpi_clean;
    (void)mpi_on;
    cli_session s;
    int rc = cli_session_open(&s, &o, 0);
    if (rc) {
#ifdef FQ_MPI
        if (mpi_on) {
            if (mpi_size > 1) MPI_Abort(MPI_COMM_WORLD, rc);
            MPI_Finalize();
        }
#endif
        return rc;
    }
    fq_model *m = s.m;
    const int NL = m->hp.n_layer, V = m->hp.n_vocab;
    selection sel;
    memset(&sel, 0, sizeof sel);
    row_list rows = {0};
    citem *combos = NULL;
    int32_t *toks = NULL;
    size_t ntok = 0;
    fqlm_context *api_ctx = NULL;
    fqlm_sweep *sw = NULL;
    int csv_fd = -1, lock_fd = -1;
    rbuf cmdline, conf;
    rb_init(&cmdline);
    rb_init(&conf);
    fq_err e;
    char path[4096];
    struct sigaction sa = {0}, old_int, old_term;
    int handlers = 0;

    rc = 2;
    /* the selection's axes (the engine parses the same lists: errors are named here first) */
    if (fq_sweep_sel_parse(&sel, m, nodes_arg, layers_arg, formats_arg, &e)) {
        cli_error("--%s", e.msg);
        goto done;
    }
    rc = cli_prompt_tokens(&o, m, &toks, &ntok);
    if (rc) goto done;
    rc = 2;
    /* the engine, through the public API over this session's model and context */
    api_ctx = fq_api_context_wrap(m, s.ctx, o.sp.seed, o.exact, &e);
    if (!api_ctx) {
        cli_error("%s", e.msg);
        goto done;
    }
    {
        fqlm_sweep_params sp = fqlm_sweep_default_params();
        sp.nodes = nodes_arg;
        sp.layers = layers_arg;
        sp.formats = formats_arg;
        sp.chunk = o.n_ctx;
        sp.max_chunks = max_chunks;
        sp.reuse = reuse;
        sp.shard_index = shard_i;
        sp.shard_count = shard_n;
        if (ntok > INT32_MAX) {
            cli_error("%s: %zu tokens: more than a sweep takes", o.prompt_file ? o.prompt_file : "prompt", ntok);
            goto done;
        }
        sw = fqlm_sweep_new(api_ctx, toks, (int)ntok, &sp);
        if (!sw) {
            cli_error("%s: %s", o.prompt_file ? o.prompt_file : "prompt", fqlm_last_error());
            goto done;
        }
    }
    const int n_combo = fqlm_sweep_n_combos(sw), n_chunks = fqlm_sweep_n_chunks(sw);
    const int64_t n_tokens = fqlm_sweep_n_tokens(sw);
    combos = malloc((size_t)FQ_MAX(1, n_combo) * sizeof *combos);
    if (!combos) goto oom;
    for (int i = 0; i < n_combo; i++) {
        citem *c = &combos[i];
        fqlm_sweep_combo(sw, i, &c->node, &c->layer, &c->format, NULL);
        const combo cc = {fq_node_from_name(c->node), c->layer, 0};
        c->L0 = combo_start(&cc, NL);
    }

    /* output directory, settings, earlier results: rank 0's alone under MPI */
    if (mpi_rank == 0) {
    rc = 1;
    struct stat dst;
    if (report_mkdir_p(dir) || stat(dir, &dst) != 0 || !S_ISDIR(dst.st_mode)) {
        cli_error("cannot create the output directory '%s': %s", dir,
                  errno && errno != EEXIST ? strerror(errno) : "a file of that name is in the way");
        goto done;
    }
    lock_fd = cli_lock_dir(dir, "sweep");
    if (lock_fd < 0) goto done;
    report_command_line(&cmdline, argc, argv);
    {
        const char *mp = o.model ? o.model : cli_default_model();
        /* path and size do not identify a model rewritten in place: its bytes do */
        rb_printf(&conf, "model=%s\nmodel_bytes=%llu\nmodel_hash=%016llx\n", mp, (unsigned long long)m->gguf.size,
                  (unsigned long long)fq_content_hash(m->gguf.map, m->gguf.size));
        rb_printf(&conf, "text=%s\ntext_tokens=%zu\ntext_hash=%016llx\n", o.prompt_file ? o.prompt_file : "(prompt)", ntok,
                  (unsigned long long)fq_fnv1a(toks, ntok * sizeof(int32_t)));
        rb_printf(&conf, "ctx=%d\nchunks=%d\nbatch=%d\narithmetic=%s\ncache_type=%u\nseed=%llu\n", o.n_ctx, n_chunks,
                  o.n_batch, o.exact ? "exact" : "llama.cpp", o.cache_type, (unsigned long long)o.sp.seed);
        /* only when given: a sweep directory made without them resumes as before */
        if (o.cache_type_k != UINT32_MAX || o.cache_type_v != UINT32_MAX)
            rb_printf(&conf, "cache_type_k=%u\ncache_type_v=%u\n",
                      o.cache_type_k != UINT32_MAX ? o.cache_type_k : o.cache_type,
                      o.cache_type_v != UINT32_MAX ? o.cache_type_v : o.cache_type);
        if (shard_n) { /* what --merge checks and rebuilds the whole selection from */
            rb_printf(&conf, "shard_of=%d\nn_layer=%d\nreuse=%d\nlayers=", shard_n, NL, reuse);
            for (int i = 0; i < sel.n_layers; i++) rb_printf(&conf, "%s%d", i ? "," : "", sel.layers[i]);
            rb_puts(&conf, "\n");
            for (int i = 0; i < sel.n_nodes; i++) rb_printf(&conf, "node=%s\n", fq_node_name(sel.nodes[i]));
            for (int i = 0; i < sel.n_formats; i++) rb_printf(&conf, "format=%s\n", sel.formats[i]);
            rb_printf(&conf, "shard=%d\n", shard_i);
        }
    }
    snprintf(path, sizeof path, "%s/results.csv", dir);
    if (csv_load(path, &rows)) goto done;
    {
        char cpath[4096];
        snprintf(cpath, sizeof cpath, "%s/sweep.conf", dir);
        rc = cli_check_conf(cpath, conf.s ? conf.s : "", rows.n > 0 ? "results.csv" : NULL, "sweep");
        if (rc) goto done;
        rc = 1;
    }
    csv_fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (csv_fd < 0) {
        cli_error("%s: %s", path, strerror(errno));
        goto done;
    }
    }
    rc = 1;
    int n_todo = 0, n_have = 0;
    for (int i = 0; i < n_combo; i++) {
        if (rows_find(&rows, combos[i].node, combos[i].layer, combos[i].format) >= 0) n_have++;
        else n_todo++;
    }

    /* the baseline: logits of every position, and the hidden states combinations start from */
    const int n_need = fqlm_sweep_n_kept(sw);
    if (mpi_rank == 0)
    fprintf(stderr, "fqlm: sweep %s: %d layers; %s: %lld tokens in %d chunk%s of up to %d; %d combination%s "
                    "(%d already done); %s arithmetic; %d threads\n",
            o.model ? o.model : cli_default_model(), NL, o.prompt_file ? o.prompt_file : "prompt",
            (long long)n_tokens, n_chunks, n_chunks == 1 ? "" : "s", o.n_ctx, n_combo, n_combo == 1 ? "" : "s", n_have,
            o.exact ? "exact (F32 activations)" : "llama.cpp-mirroring", o.n_threads);
    if (shard_n)
        fprintf(stderr, "fqlm: shard %d of %d (counting from 0): these %d combinations of the sweep\n", shard_i, shard_n,
                n_combo);
    if (mpi_size > 1 && mpi_rank == 0)
        fprintf(stderr, "fqlm: MPI: %d ranks: rank 0 hands out the combinations (costliest first) and writes %s; "
                        "every rank computes them (rank 0 in a thread beside its message loop), %d threads each\n",
                mpi_size, dir, o.n_threads);
    if (reuse && mpi_rank == 0)
        fprintf(stderr, "fqlm: reuse: keeping the baseline's logits (%.1f MiB) and its hidden state entering %d "
                        "layer%s (%.1f MiB)\n",
                n_tokens * (double)V * 4 / 1048576.0, n_need, n_need == 1 ? "" : "s",
                n_tokens * (double)m->hp.n_embd * 4 * n_need / 1048576.0);

    sa.sa_handler = on_signal;
    g_interrupted = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    handlers = 1;

    int64_t tb0 = fq_time_us();
    double ppl_base = NAN, ppl_base_err = NAN;
    int64_t n_scored = 0, n_base_nonfinite = 0;
    int nf_combos = 0; /* combinations of this run whose logits held NaN/Inf */
    {
        const int r = fqlm_sweep_baseline(sw, on_chunk, NULL, &ppl_base, &ppl_base_err, &n_scored, &n_base_nonfinite);
        if (r < 0) {
            snprintf(e.msg, sizeof e.msg, "%s", fqlm_last_error());
            goto eval_fail;
        }
    }
    if (n_base_nonfinite) { /* the warning (where NaN/Inf first appeared), then the error */
        cli_nonfinite nf_base = {.what = "baseline"};
        for (int k = 0; k < n_chunks; k++) {
            int n;
            const float *bl;
            const int32_t *t = fqlm_sweep_chunk(sw, k, &n, &bl);
            cli_nonfinite_check(&nf_base, &s, &o, 0, bl, n, V, 0, t, n, NULL, 0);
        }
        cli_error("the baseline's own logits hold NaN/Inf at %lld of %lld positions (see the warning above): no "
                  "combination can be measured against them",
                  (long long)n_base_nonfinite, (long long)n_tokens);
        rc = CLI_EXIT_NONFINITE;
        goto done;
    }
    const double t_base = (fq_time_us() - tb0) / 1e6;
    if (!g_interrupted && mpi_rank == 0)
        fprintf(stderr, "fqlm: baseline: %.2f s, perplexity %.4f +/- %.4f over %lld scored positions\n", t_base,
                ppl_base, ppl_base_err, (long long)n_scored);
    if (shard_n && !g_interrupted) { /* --merge takes the baseline's figures from here */
        char bpath[4096], btxt[256];
        snprintf(bpath, sizeof bpath, "%s/sweep.baseline", dir);
        int bn = snprintf(btxt, sizeof btxt, "ppl=%.17g\nppl_err=%.17g\npositions=%lld\n", ppl_base, ppl_base_err,
                          (long long)n_tokens);
        if (fq_write_file_atomic(bpath, btxt, (size_t)bn, &e)) {
            cli_error("%s", e.msg);
            rc = 1;
            goto done;
        }
    }

    out_ctx oc = {.dir = dir, .command = cmdline.s ? cmdline.s : "", .model = o.model ? o.model : cli_default_model(),
                  .text_file = o.prompt_file ? o.prompt_file : "(prompt)", .exact = o.exact, .n_layer = NL,
                  .ctx = o.n_ctx, .n_chunks = n_chunks, .reuse = reuse, .n_total = n_combo, .positions = n_tokens,
                  .ppl_base = ppl_base, .ppl_base_err = ppl_base_err, .sel = &sel, .t_start = t_start};

    /* the combinations */
    double units_total = 0, units_done = 0;
    for (int i = 0; i < n_combo; i++) {
        const citem *c = &combos[i];
        if (rows_find(&rows, c->node, c->layer, c->format) >= 0) continue;
        units_total += reuse ? NL - c->L0 + 1 : NL + 1;
    }
    int64_t tc0 = fq_time_us(), last_write = 0;
    int n_run = 0, written_all = 0;
    unsigned written = 0;
    rc = 0;
#ifdef FQ_MPI
    if (mpi_size > 1 && mpi_rank > 0) { /* a worker: combinations in, rows out */
        MPI_Send(NULL, 0, MPI_CHAR, 0, TAG_READY, MPI_COMM_WORLD);
        for (;;) {
            int idx;
            MPI_Recv(&idx, 1, MPI_INT, 0, TAG_WORK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (idx < 0 || idx >= n_combo) break;
            fqlm_sweep_row arow;
            sweep_row row;
            rbuf b;
            rb_init(&b);
            if (fqlm_sweep_run(sw, idx, &arow, NULL, NULL)) {
                const char *msg = fqlm_last_error();
                MPI_Send(msg, (int)strlen(msg), MPI_CHAR, 0, TAG_FAIL, MPI_COMM_WORLD);
            } else {
                row_from_api(&row, &arow);
                csv_row(&b, &row);
                if (b.oom) MPI_Send("out of memory", 13, MPI_CHAR, 0, TAG_FAIL, MPI_COMM_WORLD);
                else MPI_Send(b.s, (int)b.len, MPI_CHAR, 0, TAG_ROW, MPI_COMM_WORLD);
            }
            rb_free(&b);
        }
        mpi_clean = 1;
        goto done;
    }
    if (mpi_size > 1) { /* rank 0: the plan, the files, and a worker thread of its own */
        int *order = malloc((size_t)FQ_MAX(1, n_todo) * sizeof(int));
        int *by_rank = calloc((size_t)mpi_size, sizeof(int));
        double *secs = calloc((size_t)mpi_size, sizeof(double));
        int *busy = malloc((size_t)mpi_size * sizeof(int));
        local_worker lw = {.sw = sw, .job = -1};
        pthread_t lt;
        int have_thread = 0;
        if (order && by_rank && secs && busy && !pthread_mutex_init(&lw.mu, NULL)) {
            if (pthread_cond_init(&lw.cv, NULL)) pthread_mutex_destroy(&lw.mu);
            else if (pthread_create(&lt, NULL, local_main, &lw)) {
                pthread_cond_destroy(&lw.cv);
                pthread_mutex_destroy(&lw.mu);
            } else have_thread = 1;
        }
        if (!have_thread) {
            free(order); free(by_rank); free(secs); free(busy);
            goto oom;
        }
        int n_order = 0;
        for (int i = 0; i < n_combo; i++)
            if (rows_find(&rows, combos[i].node, combos[i].layer, combos[i].format) < 0) order[n_order++] = i;
        for (int a = 1; a < n_order; a++) /* costliest (earliest first layer) first, stable */
            for (int b = a; b > 0 && combos[order[b]].L0 < combos[order[b - 1]].L0; b--) {
                int t = order[b];
                order[b] = order[b - 1];
                order[b - 1] = t;
            }
        int next_i = 0, active = mpi_size - 1, failed = 0;
        for (int r = 0; r < mpi_size; r++) busy[r] = -1;
        while (active > 0 || busy[0] >= 0) {
            if (g_interrupted) { /* rows so far are on disk; the summaries too, then everybody stops */
                unsigned w;
                write_outputs(&oc, &rows, 0, &w);
                fprintf(stderr, "\nfqlm: interrupted: %d of %d combinations in %s/results.csv; rerun the same command "
                                "to finish\n", rows.n, n_combo, dir);
                MPI_Abort(MPI_COMM_WORLD, 130);
            }
            /* rank 0's own thread: collect what it finished, give it the next */
            pthread_mutex_lock(&lw.mu);
            int src = -1, lrc = 0;
            fqlm_sweep_row lrow;
            char lerr[FQ_ERR_MAX];
            if (lw.done) {
                src = 0;
                lrc = lw.rc;
                lrow = lw.row;
                snprintf(lerr, sizeof lerr, "%s", lw.err);
                lw.done = 0;
                lw.job = -1;
            }
            pthread_mutex_unlock(&lw.mu);
            char *msg = NULL;
            int tag = 0;
            if (src < 0) {
                int flag = 0;
                MPI_Status st;
                MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
                if (flag) {
                    int len = 0;
                    MPI_Get_count(&st, MPI_CHAR, &len);
                    msg = malloc((size_t)len + 1);
                    if (!msg) MPI_Abort(MPI_COMM_WORLD, 1);
                    MPI_Recv(msg, len, MPI_CHAR, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                    msg[len] = 0;
                    src = st.MPI_SOURCE;
                    tag = st.MPI_TAG;
                }
            }
            if (src < 0) {
                if (busy[0] < 0 && !failed && next_i < n_order) { /* rank 0's thread is idle: work for it */
                    pthread_mutex_lock(&lw.mu);
                    lw.job = busy[0] = order[next_i++];
                    pthread_cond_signal(&lw.cv);
                    pthread_mutex_unlock(&lw.mu);
                    continue;
                }
                struct timespec ts = {0, 2000000}; /* wait without spinning a core the workers need */
                nanosleep(&ts, NULL);
                continue;
            }
            sweep_row row;
            int got = 0;
            if (src == 0) {
                if (lrc) {
                    cli_error("rank 0: %s", lerr);
                    failed = rc = 1;
                } else {
                    row_from_api(&row, &lrow);
                    got = 1;
                }
            } else if (tag == TAG_ROW) {
                msg[strcspn(msg, "\n")] = 0;
                if (csv_parse_row(msg, &row) || busy[src] < 0) {
                    cli_error("rank %d sent an unreadable row", src);
                    failed = rc = 1;
                } else got = 1;
            } else if (tag == TAG_FAIL) {
                cli_error("rank %d: %s", src, msg);
                failed = rc = 1;
            }
            if (got) {
                if (csv_append(csv_fd, &row, &e) || rows_push(&rows, &row)) {
                    cli_error("%s", e.msg);
                    failed = rc = 1;
                } else {
                    n_run++;
                    by_rank[src]++;
                    secs[src] += row.seconds;
                    units_done += reuse ? NL - combos[busy[src]].L0 + 1 : NL + 1;
                    const double el = (fq_time_us() - tc0) / 1e6;
                    char eta[32], label[256];
                    fmt_dur(eta, sizeof eta, el / units_done * (units_total - units_done));
                    citem_label(label, sizeof label, &combos[busy[src]]);
                    fprintf(stderr, "sweep: [%d/%d] %-32s mean KL %.3e  top-1 %6.2f%%  ppl x%.6f  (rank %d, %.2f s%s%s)\n",
                            n_run, n_todo, label, row.mean_kld, 100 * row.top1_agree, row.ppl_ratio, src, row.seconds,
                            n_run < n_todo ? ", ETA " : "", n_run < n_todo ? eta : "");
                    if (fq_time_us() - last_write > 2000000) {
                        if (write_outputs(&oc, &rows, 0, &written)) rc = 1;
                        last_write = fq_time_us();
                    }
                }
            }
            free(msg);
            busy[src] = -1;
            if (src > 0) {
                int idx = -1;
                if (!failed && next_i < n_order) idx = busy[src] = order[next_i++];
                MPI_Send(&idx, 1, MPI_INT, src, TAG_WORK, MPI_COMM_WORLD);
                if (idx < 0) active--;
            }
        }
        pthread_mutex_lock(&lw.mu);
        lw.quit = 1;
        pthread_cond_signal(&lw.cv);
        pthread_mutex_unlock(&lw.mu);
        pthread_join(lt, NULL);
        pthread_cond_destroy(&lw.cv);
        pthread_mutex_destroy(&lw.mu);
        const double el = (fq_time_us() - tc0) / 1e6;
        for (int r = 0; r < mpi_size; r++)
            fprintf(stderr, "fqlm: rank %d: %d combination%s, %.2f s computing (%.1f combinations/hour over %.1f s)\n",
                    r, by_rank[r], by_rank[r] == 1 ? "" : "s", secs[r], el > 0 ? by_rank[r] * 3600.0 / el : 0.0, el);
        free(order);
        free(by_rank);
        free(secs);
        free(busy);
        mpi_clean = 1;
        goto finish;
    }
#endif
    for (int i = 0; i < n_combo && !g_interrupted; i++) {
        const citem *c = &combos[i];
        if (rows_find(&rows, c->node, c->layer, c->format) >= 0) continue;
        char label[256];
        citem_label(label, sizeof label, c);
        const double elapsed = (fq_time_us() - tc0) / 1e6;
        bar(tty, n_run, n_todo, label, (fq_time_us() - t_start) / 1e6,
            units_done > 0 ? elapsed / units_done * (units_total - units_done) : NAN);
        prog pg = {.tty = tty, .n_run = n_run, .n_todo = n_todo, .units_cost = reuse ? NL - c->L0 + 1 : NL + 1,
                   .label = label, .units_done = units_done, .units_total = units_total, .t_start = t_start, .tc0 = tc0};
        fqlm_sweep_row arow;
        const int r = fqlm_sweep_run(sw, i, &arow, on_chunk, &pg);
        if (r < 0) {
            snprintf(e.msg, sizeof e.msg, "%s", fqlm_last_error());
            goto eval_fail;
        }
        if (r > 0 || g_interrupted) break; /* this combination is abandoned, not written */
        if (arow.n_nonfinite && nf_combos++ == 0) {
            if (tty) fprintf(stderr, "\r\033[K");
            fprintf(stderr, "fqlm: warning: %s: NaN/Inf logits at %lld of %lld positions; NaN/Inf first appeared at %s\n",
                    label, (long long)arow.n_nonfinite, (long long)arow.positions,
                    *arow.nonfinite_at ? arow.nonfinite_at : "a node after the rule's (the rule's own output was finite)");
        }
        sweep_row row;
        row_from_api(&row, &arow);
        if (csv_append(csv_fd, &row, &e) || rows_push(&rows, &row)) {
            if (tty) fputc('\n', stderr);
            cli_error("%s", e.msg);
            rc = 1;
            goto finish;
        }
        n_run++;
        units_done += reuse ? NL - c->L0 + 1 : NL + 1;
        const double el = (fq_time_us() - tc0) / 1e6;
        char eta[32];
        fmt_dur(eta, sizeof eta, el / units_done * (units_total - units_done));
        if (tty) fprintf(stderr, "\r\033[K");
        char nfs[64] = "";
        if (arow.n_nonfinite)
            snprintf(nfs, sizeof nfs, "  NaN/Inf logits at %lld positions", (long long)arow.n_nonfinite);
        fprintf(stderr, "sweep: [%d/%d] %-32s mean KL %.3e  top-1 %6.2f%%  ppl x%.6f  (%.2f s%s%s)%s%s\n", n_run, n_todo,
                label, row.mean_kld, 100 * row.top1_agree, row.ppl_ratio, row.seconds, n_run < n_todo ? ", ETA " : "",
                n_run < n_todo ? eta : "", row.applications ? "" : "  NEVER FIRED", nfs);
        if (fq_time_us() - last_write > 2000000) {
            if (write_outputs(&oc, &rows, 0, &written)) rc = 1;
            last_write = fq_time_us();
        }
    }
    if (tty) fprintf(stderr, "\r\033[K");
finish:
    {
        int complete = !g_interrupted && rc == 0;
        if (complete)
            for (int i = 0; i < n_combo; i++)
                if (rows_find(&rows, combos[i].node, combos[i].layer, combos[i].format) < 0) complete = 0;
        if (write_outputs(&oc, &rows, complete, &written) && !rc) rc = 1;
        written_all = 1;
        const double t_combo = (fq_time_us() - tc0) / 1e6;
        if (g_interrupted) {
            fprintf(stderr, "fqlm: interrupted: %d of %d combinations in %s/results.csv; rerun the same command to "
                            "finish\n",
                    rows.n, n_combo, dir);
            rc = 130;
            goto done;
        }
        /* summary */
        printf("sweep: %d combination%s run in %.2f s (%.3f s each; %s), %d already done; baseline %.2f s; total %.2f s\n",
               n_run, n_run == 1 ? "" : "s", t_combo, n_run ? t_combo / n_run : 0.0,
               reuse ? "each from its first layer on, baseline hidden states reused" : "each from scratch", n_have,
               t_base, (fq_time_us() - t_start) / 1e6);
        printf("baseline perplexity %.4f over %lld positions\n", oc.ppl_base, (long long)n_scored);
        /* most and least sensitive of this selection */
        int *idx = malloc((size_t)FQ_MAX(1, n_combo) * sizeof(int));
        int ni = 0;
        if (idx) {
            for (int i = 0; i < n_combo; i++) {
                int r = rows_find(&rows, combos[i].node, combos[i].layer, combos[i].format);
                if (r >= 0) idx[ni++] = r;
            }
#define SORT_KLD(r) (isnan((r).mean_kld) ? INFINITY : (r).mean_kld) /* NaN/Inf logits: most sensitive */
            for (int a = 1; a < ni; a++) /* insertion sort by mean KL, largest first */
                for (int b2 = a; b2 > 0 && !(SORT_KLD(rows.v[idx[b2]]) <= SORT_KLD(rows.v[idx[b2 - 1]])); b2--) {
                    int t = idx[b2];
                    idx[b2] = idx[b2 - 1];
                    idx[b2 - 1] = t;
                }
            const int show = FQ_MIN(5, ni);
            for (int pass = 0; pass < 2 && ni; pass++) {
                printf("%s sensitive:\n", pass ? "least" : "most");
                for (int k = 0; k < show; k++) {
                    const sweep_row *r = &rows.v[idx[pass ? ni - 1 - k : k]];
                    char lab[256];
                    if (r->layer >= 0) snprintf(lab, sizeof lab, "%s@%d=%s", r->node, r->layer, r->format);
                    else snprintf(lab, sizeof lab, "%s=%s", r->node, r->format);
                    printf("  %-34s mean KL %.3e +/- %.1e  p99 %.3e  top-1 %6.2f%%  ppl x%.6f\n", lab, r->mean_kld,
                           r->kld_stderr, r->kld_p99, 100 * r->top1_agree, r->ppl_ratio);
                }
            }
            free(idx);
        }
        /* name only what is on disk now (a full disk can stop the summaries) */
        printf("wrote %s/results.csv%s%s%s\n", dir, written & OUT_JSON ? ", " : "", written & OUT_JSON ? dir : "",
               written & OUT_JSON ? "/results.json" : "");
        if (written & OUT_SVG) printf("heatmap: %s/heatmap.svg\n", dir);
        if (written & OUT_HTML) printf("report:  %s/report.html\n", dir);
        if (written != (OUT_JSON | OUT_SVG | OUT_HTML))
            printf("not written (see the errors above): %s%s%s\n", written & OUT_JSON ? "" : "results.json ",
                   written & OUT_SVG ? "" : "heatmap.svg ", written & OUT_HTML ? "" : "report.html");
        /* rows of this selection (this run's or resumed) whose logits held NaN/Inf: their figures are nan */
        int n_bad = 0;
        for (int i = 0; i < n_combo; i++) {
            int r = rows_find(&rows, combos[i].node, combos[i].layer, combos[i].format);
            if (r >= 0 && rows.v[r].positions > 0 && isnan(rows.v[r].mean_kld)) n_bad++;
        }
        if (n_bad) {
            printf("NOT VALID: %d combination%s had NaN/Inf logits (%d in this run): their KL, top-1 and perplexity "
                   "figures are nan\n", n_bad, n_bad == 1 ? "" : "s", nf_combos);
            if (!rc) rc = CLI_EXIT_NONFINITE;
        }
    }
    goto done;
oom:
    cli_error("out of memory");
    rc = 1;
    goto done;
eval_fail:
    if (tty) fputc('\n', stderr);
    cli_error("%s", e.msg);
    rc = 1;
done:
    (void)written_all;
#ifdef FQ_MPI
    if (mpi_on) {
        if (mpi_size > 1 && !mpi_clean) MPI_Abort(MPI_COMM_WORLD, rc ? rc : 1);
        MPI_Finalize();
    }
#endif
    if (handlers) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
    }
    if (csv_fd >= 0) close(csv_fd);
    if (lock_fd >= 0) close(lock_fd);
    fqlm_sweep_free(sw);
    fqlm_context_free(api_ctx);
    free(toks);
    free(combos);
    free(rows.v);
    selection_free(&sel);
    rb_free(&cmdline);
    rb_free(&conf);
    cli_session_close(&s);
    return rc;
}

/* ---- --merge: the shards of one sweep into one directory ------------------------------------------ */

/* The value of "key=" in a sweep.conf text, copied into buf; NULL when absent. */
static const char *conf_get(const char *conf, const char *key, char *buf, size_t n) {
    const size_t kl = strlen(key);
    for (const char *p = conf; p && *p;) {
        const char *nl = strchr(p, '\n');
        const size_t ll = nl ? (size_t)(nl - p) : strlen(p);
        if (ll > kl && !strncmp(p, key, kl) && p[kl] == '=') {
            snprintf(buf, n, "%.*s", (int)(ll - kl - 1), p + kl + 1);
            return buf;
        }
        p = nl ? nl + 1 : NULL;
    }
    return NULL;
}

/* Where the line "key=..." starts in conf (at the start or after a newline), or NULL. */
static const char *conf_line(const char *conf, const char *key) {
    const size_t kl = strlen(key);
    for (const char *p = conf; p && *p;) {
        if (!strncmp(p, key, kl) && p[kl] == '=') return p;
        p = strchr(p, '\n');
        if (p) p++;
    }
    return NULL;
}

typedef struct {
    const char *dir;
    char *conf;
    int index, lock_fd, have_base;
    double ppl, ppl_err;
    long long positions;
    row_list rows;
} shard_dir;

/* Prints up to 8 labels of the combinations in c[0..n) that rows lack, then "and K more". */
static void print_lacking(const selection *sel, const combo *c, int n, const row_list *rows, int *n_lack) {
    int shown = 0, lack = 0;
    char line[2048] = "";
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        if (rows && rows_find(rows, fq_node_name(c[i].node), c[i].layer, sel->formats[c[i].fmt]) >= 0) continue;
        lack++;
        if (shown < 8) {
            char lab[256];
            combo_label(lab, sizeof lab, sel, &c[i]);
            int w = snprintf(line + used, sizeof line - used, "%s%s", shown ? ", " : "", lab);
            if (w > 0 && (size_t)w < sizeof line - used) used += (size_t)w;
            shown++;
        }
    }
    *n_lack = lack;
    if (lack > shown) fprintf(stderr, "    %s, and %d more\n", line, lack - shown);
    else if (lack) fprintf(stderr, "    %s\n", line);
}

static int cmd_sweep_merge(int argc, char **argv) {
    const char *out = NULL;
    int64_t t_start = fq_time_us();
    shard_dir *sh = calloc((size_t)argc, sizeof *sh);
    int nd = 0, rc = 2;
    selection sel;
    memset(&sel, 0, sizeof sel);
    combo *combos = NULL, *part = NULL;
    row_list merged = {0};
    rbuf cmdline;
    rb_init(&cmdline);
    int out_lock = -1;
    char *common = NULL;
    fq_err e;
    char path[4096], v[4096];
    if (!sh) {
        cli_error("out of memory");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--merge") || !strcmp(a, "--progress") || !strcmp(a, "--no-progress")) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(sh);
            return 0;
        }
        if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            if (i + 1 >= argc) {
                cli_error("option %s needs a value", a);
                goto done;
            }
            out = argv[++i];
            continue;
        }
        if (a[0] == '-') {
            cli_error("sweep --merge takes the shard directories and -o DIR only (not '%s': the settings come from "
                      "the shards)", a);
            goto done;
        }
        sh[nd].dir = a;
        sh[nd].lock_fd = -1;
        nd++;
    }
    if (!out || !*out || !nd) {
        cli_error("usage: fqlm sweep --merge SHARD_DIR... -o DIR (the directories of `fqlm sweep --shard I/N`)");
        goto done;
    }
    /* each shard: its settings, which shard it is, its rows */
    for (int k = 0; k < nd; k++) {
        shard_dir *d = &sh[k];
        if (!strcmp(d->dir, out)) {
            cli_error("--merge: the output directory %s is also given as a shard: merge into another directory", out);
            goto done;
        }
        snprintf(path, sizeof path, "%s/sweep.conf", d->dir);
        size_t len;
        if (access(path, F_OK) != 0) {
            cli_error("%s: no sweep.conf: not the directory of a `fqlm sweep --shard` run (or that shard never "
                      "started)", d->dir);
            goto done;
        }
        if (!(d->conf = fq_read_file(path, &len, &e))) {
            cli_error("%s", e.msg);
            rc = 1;
            goto done;
        }
        const char *sl = conf_line(d->conf, "shard");
        long idx = -1;
        if (!conf_line(d->conf, "shard_of") || !sl || sscanf(sl, "shard=%ld", &idx) != 1) {
            cli_error("%s was not made with --shard I/N (its sweep.conf names no shard): nothing to merge", d->dir);
            goto done;
        }
        d->index = (int)idx;
        /* the same sweep: every setting but the shard's own index */
        const char *a = sh[0].conf, *b = d->conf;
        const char *ea = conf_line(a, "shard"), *eb = sl;
        while (k > 0) {
            const char *na = strchr(a, '\n'), *nb = strchr(b, '\n');
            const size_t la = na ? (size_t)(na - a) : strlen(a), lb = nb ? (size_t)(nb - b) : strlen(b);
            const int enda = a >= ea, endb = b >= eb;
            if (enda && endb) break;
            if (enda != endb || la != lb || memcmp(a, b, la)) {
                cli_error("%s and %s are shards of different sweeps: %s has '%.*s', %s has '%.*s'", sh[0].dir, d->dir,
                          sh[0].dir, enda ? 7 : (int)la, enda ? "nothing" : a, d->dir, endb ? 7 : (int)lb,
                          endb ? "nothing" : b);
                goto done;
            }
            a += la + 1;
            b += lb + 1;
        }
        for (int j = 0; j < k; j++)
            if (sh[j].index == d->index) {
                cli_error("%s and %s are both shard %d", sh[j].dir, d->dir, d->index);
                goto done;
            }
        rc = 1;
        if ((d->lock_fd = cli_lock_dir(d->dir, "sweep")) < 0) goto done; /* a shard still running is not merged */
        snprintf(path, sizeof path, "%s/results.csv", d->dir);
        if (csv_load_ex(path, &d->rows, 1)) goto done;
        snprintf(path, sizeof path, "%s/sweep.baseline", d->dir);
        char *bt = access(path, F_OK) == 0 ? fq_read_file(path, &len, &e) : NULL;
        if (bt && conf_get(bt, "ppl", v, sizeof v) && !parse_double(v, &d->ppl) &&
            conf_get(bt, "ppl_err", v, sizeof v) && !parse_double(v, &d->ppl_err) &&
            conf_get(bt, "positions", v, sizeof v) && sscanf(v, "%lld", &d->positions) == 1)
            d->have_base = 1;
        free(bt);
        rc = 2;
    }
    /* the whole selection, from the settings */
    const char *c0 = sh[0].conf;
    int N = 0, NL = 0, reuse = 1, ctx = 0, chunks = 0;
    if (!conf_get(c0, "shard_of", v, sizeof v) || sscanf(v, "%d", &N) != 1 || N < 1 ||
        !conf_get(c0, "n_layer", v, sizeof v) || sscanf(v, "%d", &NL) != 1 || NL < 1 || NL > 1 << 20 ||
        !conf_get(c0, "reuse", v, sizeof v) || sscanf(v, "%d", &reuse) != 1 || !conf_get(c0, "ctx", v, sizeof v) ||
        sscanf(v, "%d", &ctx) != 1 || !conf_get(c0, "chunks", v, sizeof v) || sscanf(v, "%d", &chunks) != 1) {
        cli_error("%s/sweep.conf is damaged (shard_of, n_layer, reuse, ctx or chunks missing or unreadable)", sh[0].dir);
        goto done;
    }
    for (int k = 0; k < nd; k++)
        if (sh[k].index < 0 || sh[k].index >= N) {
            cli_error("%s/sweep.conf: shard %d of %d is out of range", sh[k].dir, sh[k].index, N);
            goto done;
        }
    sel.layers = malloc((size_t)NL * sizeof(int));
    sel.formats = calloc(strlen(c0) + 1, sizeof(char *));
    if (!sel.layers || !sel.formats) goto oom;
    if (conf_get(c0, "layers", v, sizeof v))
        for (char *p = v, *end; *p; p = *end ? end + 1 : end) {
            long L = strtol(p, &end, 10);
            if (end == p || L < 0 || L >= NL || sel.n_layers >= NL) break;
            sel.layers[sel.n_layers++] = (int)L;
        }
    for (const char *p = c0; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p) {
        const char *nl = strchr(p, '\n');
        const int ll = nl ? (int)(nl - p) : (int)strlen(p);
        if (ll > 5 && !strncmp(p, "node=", 5)) {
            snprintf(v, sizeof v, "%.*s", ll - 5, p + 5);
            int id = fq_node_from_name(v);
            if (id < 0 || sel.n_nodes >= FQ_NODE_COUNT) {
                cli_error("%s/sweep.conf: unknown node '%s' (made by another fqlm version?)", sh[0].dir, v);
                goto done;
            }
            sel.nodes[sel.n_nodes++] = id;
        } else if (ll > 7 && !strncmp(p, "format=", 7)) {
            if (!(sel.formats[sel.n_formats] = strndup(p + 7, (size_t)ll - 7))) goto oom;
            sel.n_formats++;
        }
    }
    if (!sel.n_nodes || !sel.n_formats) {
        cli_error("%s/sweep.conf names no node or no format", sh[0].dir);
        goto done;
    }
    combos = malloc((size_t)sel.n_formats * sel.n_nodes * (sel.n_layers + 1) * sizeof *combos);
    part = malloc((size_t)sel.n_formats * sel.n_nodes * (sel.n_layers + 1) * sizeof *combos);
    if (!combos || !part) goto oom;
    int n_combo = 0;
    for (int f = 0; f < sel.n_formats; f++)
        for (int k = 0; k < sel.n_nodes; k++) {
            const int node = sel.nodes[k];
            if (!fq_node_has_layer(node)) {
                combos[n_combo++] = (combo){node, -1, f};
                continue;
            }
            for (int li = 0; li < sel.n_layers; li++) combos[n_combo++] = (combo){node, sel.layers[li], f};
        }
    /* every shard present and finished: name what is missing */
    int problems = 0;
    for (int I = 0; I < N; I++) {
        memcpy(part, combos, (size_t)n_combo * sizeof *combos);
        const int np = shard_pick(part, n_combo, NL, I, N);
        const shard_dir *d = NULL;
        for (int k = 0; k < nd; k++)
            if (sh[k].index == I) d = &sh[k];
        int lack = 0;
        if (!d) {
            fprintf(stderr, "fqlm: sweep --merge: shard %d/%d is not given; its %d combination%s:\n", I, N, np,
                    np == 1 ? "" : "s");
            print_lacking(&sel, part, np, NULL, &lack);
            problems++;
            continue;
        }
        for (int i = 0; i < np; i++)
            if (rows_find(&d->rows, fq_node_name(part[i].node), part[i].layer, sel.formats[part[i].fmt]) < 0) lack++;
        if (lack) {
            fprintf(stderr, "fqlm: sweep --merge: shard %d/%d (%s) is partial: %d of its %d combinations missing "
                            "(rerun its command to finish it):\n", I, N, d->dir, lack, np);
            print_lacking(&sel, part, np, &d->rows, &lack);
            problems++;
        } else if (!d->have_base) {
            fprintf(stderr, "fqlm: sweep --merge: shard %d/%d (%s): sweep.baseline is missing or unreadable (rerun "
                            "its command)\n", I, N, d->dir);
            problems++;
        }
    }
    if (problems) {
        cli_error("sweep --merge: %d of %d shard%s missing or unfinished (see above): nothing written", problems, N,
                  N == 1 ? "" : "s");
        rc = 1;
        goto done;
    }
    for (int k = 1; k < nd; k++)
        if (sh[k].ppl != sh[0].ppl || sh[k].positions != sh[0].positions)
            fprintf(stderr, "fqlm: warning: the baselines of %s and %s differ (perplexity %.17g and %.17g)\n",
                    sh[0].dir, sh[k].dir, sh[0].ppl, sh[k].ppl);
    /* the rows, in the order one process writes them */
    for (int i = 0; i < n_combo; i++) {
        const char *nn = fq_node_name(combos[i].node), *ff = sel.formats[combos[i].fmt];
        for (int k = 0; k < nd; k++) {
            int r = rows_find(&sh[k].rows, nn, combos[i].layer, ff);
            if (r >= 0) {
                if (rows_push(&merged, &sh[k].rows.v[r])) goto oom;
                break;
            }
        }
    }
    /* the output directory: the settings one process would have recorded there */
    rc = 1;
    struct stat dst;
    if (report_mkdir_p(out) || stat(out, &dst) != 0 || !S_ISDIR(dst.st_mode)) {
        cli_error("cannot create the output directory '%s': %s", out,
                  errno && errno != EEXIST ? strerror(errno) : "a file of that name is in the way");
        goto done;
    }
    if ((out_lock = cli_lock_dir(out, "sweep")) < 0) goto done;
    if (!(common = strndup(c0, (size_t)(conf_line(c0, "shard_of") - c0)))) goto oom;
    snprintf(path, sizeof path, "%s/sweep.conf", out);
    if ((rc = cli_check_conf(path, common, NULL, "sweep"))) goto done;
    rc = 1;
    {
        rbuf b;
        rb_init(&b);
        rb_puts(&b, CSV_HEADER);
        for (int i = 0; i < merged.n; i++) csv_row(&b, &merged.v[i]);
        snprintf(path, sizeof path, "%s/results.csv", out);
        if (b.oom || fq_write_file_atomic(path, b.s, b.len, &e)) {
            cli_error("%s", b.oom ? "out of memory" : e.msg);
            rb_free(&b);
            goto done;
        }
        rb_free(&b);
    }
    report_command_line(&cmdline, argc, argv);
    char model[4096] = "", text[4096] = "", arith[64] = "";
    conf_get(c0, "model", model, sizeof model);
    conf_get(c0, "text", text, sizeof text);
    conf_get(c0, "arithmetic", arith, sizeof arith);
    out_ctx oc = {.dir = out, .command = cmdline.s ? cmdline.s : "", .model = model, .text_file = text,
                  .exact = !strcmp(arith, "exact"), .n_layer = NL, .ctx = ctx, .n_chunks = chunks, .reuse = reuse,
                  .n_total = n_combo, .positions = sh[0].positions, .ppl_base = sh[0].ppl,
                  .ppl_base_err = sh[0].ppl_err, .sel = &sel, .t_start = t_start};
    unsigned written = 0;
    rc = write_outputs(&oc, &merged, 1, &written) ? 1 : 0;
    printf("sweep --merge: %d shard%s, %d combinations into %s/results.csv%s%s%s\n", N, N == 1 ? "" : "s", merged.n,
           out, written & OUT_JSON ? ", results.json" : "", written & OUT_SVG ? ", heatmap.svg" : "",
           written & OUT_HTML ? ", report.html" : "");
    int n_bad = 0;
    for (int i = 0; i < merged.n; i++) n_bad += merged.v[i].positions > 0 && isnan(merged.v[i].mean_kld);
    if (n_bad) {
        printf("NOT VALID: %d combination%s had NaN/Inf logits: their KL, top-1 and perplexity figures are nan\n",
               n_bad, n_bad == 1 ? "" : "s");
        if (!rc) rc = CLI_EXIT_NONFINITE;
    }
    goto done;
oom:
    cli_error("out of memory");
    rc = 1;
done:
    for (int k = 0; k < nd; k++) {
        free(sh[k].conf);
        free(sh[k].rows.v);
        if (sh[k].lock_fd >= 0) close(sh[k].lock_fd);
    }
    free(sh);
    if (out_lock >= 0) close(out_lock);
    free(common);
    free(combos);
    free(part);
    free(merged.v);
    selection_free(&sel);
    rb_free(&cmdline);
    return rc;
}

int cli_sweep_read_rows(const char *dir, sweep_row **out, int *n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/results.csv", dir);
    row_list rows = {0};
    *out = NULL;
    *n = 0;
    if (access(path, F_OK) != 0) {
        cli_error("%s: no sweep results there (%s)", dir, strerror(errno));
        return 1;
    }
    if (csv_load_ex(path, &rows, 1)) {
        free(rows.v);
        return 1;
    }
    *out = rows.v;
    *n = rows.n;
    return 0;
}
