/* formats.c - the format library's front: spec parsing and canonical strings, the table
 * of named formats, descriptions for `fqlm formats`, statistics, and fq_format_apply,
 * which turns a format and a tensor shape into calls of the kernels in
 * formats_kernels.c (or their SIMD variants, chosen once from CPUID). */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>

#include "cpu.h"
#include "formats_internal.h"
#include "qtypes.h"

enum { FK_IDENT, FK_FLOAT, FK_MX, FK_NVFP4, FK_INT, FK_GGML };
enum { SP_IEEE, SP_FN, SP_FINITE };
enum { GR_TENSOR, GR_ROW, GR_COL, GR_GROUP };

#define FQ_GROUP_MAX (1 << 24)

struct fq_format {
    int kind;
    char name[24];  /* as listed: "fp8_e4m3", "e3m4", "int4", "q4_k" */
    char str[128];  /* canonical spec */
    int round;
    /* floats (FLOAT, and MX elements) */
    int ebits, mbits, specials, sat, subnormals;
    int def_specials, def_sat; /* the named format's defaults, for the canonical string */
    /* MX */
    int mx_int, mx_scale;
    /* NVFP4 */
    int tensor_scale;
    /* integers */
    int ibits, asym, gran, group;
    /* ggml */
    uint32_t gtype;
    int gact; /* 1: the engine's activation encoder (enc=act) */
    /* derived */
    fq_mfgrid grid, g8;
    fq_blockop op;
};

/* ---- the named formats ---- */

typedef struct named_fmt {
    const char *name;
    int kind;
    int ebits, mbits, specials; /* FLOAT and MX elements */
    int mx_int;                 /* MXINT8 */
    uint32_t gtype;             /* GGML */
} named_fmt;

static const named_fmt NAMED[] = {
    {"f32", FK_IDENT, 0, 0, 0, 0, 0},
    {"bf16", FK_FLOAT, 8, 7, SP_IEEE, 0, 0},
    {"fp16", FK_FLOAT, 5, 10, SP_IEEE, 0, 0},
    {"tf32", FK_FLOAT, 8, 10, SP_IEEE, 0, 0},
    {"fp8_e4m3", FK_FLOAT, 4, 3, SP_FN, 0, 0},
    {"fp8_e5m2", FK_FLOAT, 5, 2, SP_IEEE, 0, 0},
    {"fp6_e2m3", FK_FLOAT, 2, 3, SP_FINITE, 0, 0},
    {"fp6_e3m2", FK_FLOAT, 3, 2, SP_FINITE, 0, 0},
    {"fp4_e2m1", FK_FLOAT, 2, 1, SP_FINITE, 0, 0},
    {"mxfp8_e4m3", FK_MX, 4, 3, SP_FN, 0, 0},
    {"mxfp8_e5m2", FK_MX, 5, 2, SP_IEEE, 0, 0},
    {"mxfp6_e2m3", FK_MX, 2, 3, SP_FINITE, 0, 0},
    {"mxfp6_e3m2", FK_MX, 3, 2, SP_FINITE, 0, 0},
    {"mxfp4", FK_MX, 2, 1, SP_FINITE, 0, 0},
    {"mxint8", FK_MX, 0, 6, SP_FINITE, 1, 0},
    {"nvfp4", FK_NVFP4, 2, 1, SP_FINITE, 0, 0},
    {"q8_0", FK_GGML, 0, 0, 0, 0, FQ_TYPE_Q8_0},
    {"q8_1", FK_GGML, 0, 0, 0, 0, FQ_TYPE_Q8_1},
    {"q8_k", FK_GGML, 0, 0, 0, 0, FQ_TYPE_Q8_K},
    {"q4_0", FK_GGML, 0, 0, 0, 0, FQ_TYPE_Q4_0},
    {"q4_1", FK_GGML, 0, 0, 0, 0, FQ_TYPE_Q4_1},
    {"q5_0", FK_GGML, 0, 0, 0, 0, FQ_TYPE_Q5_0},
    {"q5_1", FK_GGML, 0, 0, 0, 0, FQ_TYPE_Q5_1},
    {"q2_k", FK_GGML, 0, 0, 0, 0, FQ_TYPE_Q2_K},
    {"q3_k", FK_GGML, 0, 0, 0, 0, FQ_TYPE_Q3_K},
    {"q4_k", FK_GGML, 0, 0, 0, 0, FQ_TYPE_Q4_K},
    {"q5_k", FK_GGML, 0, 0, 0, 0, FQ_TYPE_Q5_K},
    {"q6_k", FK_GGML, 0, 0, 0, 0, FQ_TYPE_Q6_K},
};

/* The `fqlm formats` table, in order. */
static const char *const LISTED[] = {
    "f32", "bf16", "fp16", "tf32", "fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp6_e3m2",
    "fp4_e2m1", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4", "mxint8",
    "nvfp4", "int2", "int3", "int4", "int5", "int6", "int7", "int8", "int16", "q8_0",
    "q8_1", "q8_k", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k",
};

static const char VALID_FORMATS[] =
    "f32, bf16, fp16, tf32, eXmY (1<=X<=8, 0<=Y<=23), fp8_e4m3, fp8_e5m2, fp6_e2m3, "
    "fp6_e3m2, fp4_e2m1, mxfp8_e4m3, mxfp8_e5m2, mxfp6_e2m3, mxfp6_e3m2, mxfp4, mxint8, "
    "nvfp4, int2..int8, int16 (intN, 2<=N<=16), q8_0, q8_1, q8_k, q4_0, q4_1, q5_0, q5_1, "
    "q2_k, q3_k, q4_k, q5_k, q6_k";

static const char *const ROUND_NAMES[] = {"rne", "rna", "rtz", "stochastic"};
static const char *const SPECIAL_NAMES[] = {"ieee", "fn", "finite"};
static const char *const MXS_NAMES[] = {"floor", "ceil", "rceil"};
static const char *const GRAN_NAMES[] = {"per_tensor", "per_row", "per_col", "group"};

const char *fq_format_list(int i) {
    if (i < 0 || (size_t)i >= FQ_ARRAY_LEN(LISTED)) return NULL;
    return LISTED[i];
}

/* ---- derived parameters ---- */

/* Exponent range and largest mantissa of an eXmY float; 0, or -1 with e set. */
static int float_range(int X, int M, int sp, int *emin, int *emax, uint32_t *maxmant,
                       const char *name, fq_err *e) {
    int bias = (1 << (X - 1)) - 1;
    *emin = 1 - bias;
    *maxmant = (1u << M) - 1;
    if (sp == SP_IEEE) {
        *emax = (1 << X) - 2 - bias;
    } else if (sp == SP_FN) {
        /* all-ones exponent and mantissa is NaN; with no mantissa bits that is the
         * whole top binade */
        if (M >= 1) {
            *emax = (1 << X) - 1 - bias;
            *maxmant = (1u << M) - 2;
        } else {
            *emax = (1 << X) - 2 - bias;
        }
    } else {
        *emax = (1 << X) - 1 - bias;
    }
    if (*emax < *emin)
        return fq_errf(e, "format '%s' has no normal numbers with %s (use fn or finite)", name,
                       SPECIAL_NAMES[sp]);
    if (*emax > 127)
        return fq_errf(e, "format '%s': with %s its largest values exceed F32's range (8 "
                       "exponent bits need ieee)", name, SPECIAL_NAMES[sp]);
    return 0;
}

static int build(fq_format *f, fq_err *e) {
    int emin, emax;
    uint32_t mm;
    memset(&f->op, 0, sizeof f->op);
    f->op.g = &f->grid;
    f->op.fixed.limp_b = f->op.fixed.limn_b = 0xffffffffu;
    switch (f->kind) {
    case FK_FLOAT: {
        if (float_range(f->ebits, f->mbits, f->specials, &emin, &emax, &mm, f->name, e)) return -1;
        int ovf = f->specials == SP_IEEE ? (f->sat ? 1 : 0) : f->specials == SP_FN ? (f->sat ? 1 : 2) : 1;
        int inf = f->specials == SP_IEEE ? 0 : f->specials == SP_FN ? (f->sat ? 1 : 2) : 1;
        fq_mfgrid_init(&f->grid, f->mbits, emin, emax, mm, ovf, inf, f->subnormals, f->round);
        f->op.rule = FQ_BR_FIXED;
        f->op.fixed.pre = FQ_PRE_NONE;
        break;
    }
    case FK_MX:
        if (f->mx_int) {
            emin = emax = 0;
            mm = 63; /* q / 64, |q| <= 127 */
        } else if (float_range(f->ebits, f->mbits, f->specials, &emin, &emax, &mm, f->name, e)) {
            return -1;
        }
        fq_mfgrid_init(&f->grid, f->mbits, emin, emax, mm, 1, 1, 1, f->round);
        f->op.rule = FQ_BR_MX;
        f->op.block = 32;
        f->op.nan_block = 1;
        f->op.mx_emax = emax;
        f->op.mx_rule = f->mx_scale;
        f->op.mx_maxmant = mm << (23 - f->mbits);
        f->op.mx_ymax_b = FQ_F32_MAX & ~((1u << (23 - f->mbits)) - 1);
        break;
    case FK_NVFP4:
        fq_mfgrid_init(&f->grid, 1, 0, 2, 1, 1, 1, 1, f->round);         /* e2m1 */
        fq_mfgrid_init(&f->g8, 3, -6, 8, 6, 1, 1, 1, FQ_ROUND_RNE);     /* e4m3 */
        f->op.rule = FQ_BR_NVFP4;
        f->op.block = 16;
        f->op.nan_block = 1;
        f->op.nv_g8 = &f->g8;
        f->op.nv_s_t = 1.0f;
        break;
    case FK_INT: {
        /* sym: |r| <= 2^(N-1)-1 is the grid M = N-2, emin = emax = N-2; asym needs
         * |r| <= 2^N-1 before the zero-point limits: M = N-1 */
        int M = f->asym ? f->ibits - 1 : f->ibits - 2;
        fq_mfgrid_init(&f->grid, M, M, M, (1u << M) - 1, 1, 1, 1, f->round);
        f->op.rule = f->asym ? FQ_BR_INTASYM : FQ_BR_INTSYM;
        f->op.int_q = f->asym ? (float)((1 << f->ibits) - 1) : (float)((1 << (f->ibits - 1)) - 1);
        f->op.block = f->gran == GR_GROUP ? f->group : 0;
        break;
    }
    default:
        break;
    }
    return 0;
}

/* ---- canonical string ---- */

static void canon(fq_format *f) {
    char *p = f->str, *end = f->str + sizeof f->str;
    int n = 0;
    p += snprintf(p, (size_t)(end - p), "%s", f->name);
#define OPT(...)                                                             \
    do {                                                                     \
        p += snprintf(p, (size_t)(end - p), "%s", n++ ? "," : ":");          \
        p += snprintf(p, (size_t)(end - p), __VA_ARGS__);                    \
    } while (0)
    if (f->kind == FK_FLOAT) {
        if (f->specials != f->def_specials) OPT("%s", SPECIAL_NAMES[f->specials]);
        int defsat = f->specials == SP_IEEE ? 0 : 1;
        if (f->sat != defsat) OPT("sat=%s", f->sat ? "on" : "off");
        if (!f->subnormals) OPT("subnormal=off");
    }
    if (f->kind == FK_MX && f->mx_scale != FQ_MXS_FLOOR) OPT("scale=%s", MXS_NAMES[f->mx_scale]);
    if (f->kind == FK_NVFP4 && !f->tensor_scale) OPT("tensor_scale=off");
    if (f->kind == FK_GGML && f->gact) OPT("enc=act");
    if (f->kind == FK_INT) {
        if (f->gran == GR_GROUP) OPT("group=%d", f->group);
        else if (f->gran != GR_TENSOR) OPT("%s", GRAN_NAMES[f->gran]);
        if (f->asym) OPT("asym");
    }
    if (f->round != FQ_ROUND_RNE) OPT("%s", f->round == FQ_ROUND_STOCHASTIC ? "round=stochastic"
                                           : f->round == FQ_ROUND_RNA ? "round=rna" : "round=rtz");
#undef OPT
}

/* ---- parsing ---- */

static const char *valid_options(int kind) {
    switch (kind) {
    case FK_FLOAT:
        return "round=rne|rna|rtz|stochastic, ieee, fn, finite, sat=on|off, subnormal=on|off";
    case FK_MX: return "round=rne|rna|rtz|stochastic, scale=floor|ceil|rceil";
    case FK_NVFP4: return "round=rne|rna|rtz|stochastic, tensor_scale=on|off";
    case FK_INT:
        return "round=rne|rna|rtz|stochastic, sym, asym, per_tensor, per_row, per_col, group=G";
    case FK_GGML: return "enc=ref|act (act: q8_0, q8_1, q8_k only)";
    default: return "none";
    }
}

static int pick(const char *v, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) return i;
    return -1;
}

static int onoff(const char *v) {
    return !strcmp(v, "on") ? 1 : !strcmp(v, "off") ? 0 : -1;
}

/* Reads a decimal integer in [lo, hi] from the whole of s. */
static int parse_int(const char *s, long lo, long hi, long *out) {
    if (!*s) return -1;
    long v = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s)) return -1;
        v = v * 10 + (*s - '0');
        if (v > hi) return -1;
    }
    if (v < lo) return -1;
    *out = v;
    return 0;
}

static int find_name(const char *name, fq_format *f) {
    for (size_t i = 0; i < FQ_ARRAY_LEN(NAMED); i++) {
        const named_fmt *d = &NAMED[i];
        if (strcmp(name, d->name)) continue;
        f->kind = d->kind;
        f->ebits = d->ebits;
        f->mbits = d->mbits;
        f->specials = f->def_specials = d->specials;
        f->mx_int = d->mx_int;
        f->gtype = d->gtype;
        return 0;
    }
    long x, y;
    char xs[8], ys[8];
    if (name[0] == 'e' && sscanf(name, "e%7[0-9]m%7[0-9]", xs, ys) == 2) {
        char back[24];
        snprintf(back, sizeof back, "e%sm%s", xs, ys);
        if (!strcmp(back, name) && !parse_int(xs, 1, 8, &x) && !parse_int(ys, 0, 23, &y) &&
            xs[0] != '0' && (ys[0] != '0' || !ys[1])) {
            f->kind = FK_FLOAT;
            f->ebits = (int)x;
            f->mbits = (int)y;
            f->specials = f->def_specials = SP_IEEE;
            return 0;
        }
    }
    if (!strncmp(name, "int", 3) && name[3] != '0' && !parse_int(name + 3, 2, 16, &x)) {
        f->kind = FK_INT;
        f->ibits = (int)x;
        return 0;
    }
    return -1;
}

int fq_format_parse(const char *spec, fq_format **out, fq_err *e) {
    *out = NULL;
    if (!spec || !*spec) return fq_errf(e, "empty format spec (valid formats: %s)", VALID_FORMATS);
    char buf[256];
    size_t len = strlen(spec);
    if (len >= sizeof buf) return fq_errf(e, "format spec too long (%zu characters)", len);
    for (size_t i = 0; i <= len; i++) buf[i] = (char)tolower((unsigned char)spec[i]);
    char *opts = strchr(buf, ':');
    if (opts) *opts++ = 0;

    fq_format *f = calloc(1, sizeof *f);
    if (!f) return fq_errf(e, "out of memory");
    if (strlen(buf) >= sizeof f->name || find_name(buf, f)) {
        fq_errf(e, "unknown format '%s' (valid formats: %s)", buf, VALID_FORMATS);
        goto fail;
    }
    snprintf(f->name, sizeof f->name, "%s", buf);
    f->round = FQ_ROUND_RNE;
    f->subnormals = 1;
    f->tensor_scale = 1;
    f->gran = GR_TENSOR;
    f->sat = f->specials == SP_IEEE ? 0 : 1;
    int set_round = 0, set_sp = 0, set_sat = 0, set_sub = 0, set_scale = 0, set_ts = 0,
        set_sym = 0, set_gran = 0;

    if (opts) {
        if (f->kind == FK_IDENT) {
            fq_errf(e, "format '%s' takes no options (got '%s')", f->name, opts);
            goto fail;
        }
        char *save = NULL;
        if (!*opts) {
            fq_errf(e, "format '%s': empty option list after ':' (valid options: %s)", f->name,
                    valid_options(f->kind));
            goto fail;
        }
        for (char *o = opts; o; o = save) {
            save = strchr(o, ',');
            if (save) *save++ = 0;
            char *v = strchr(o, '=');
            if (v) *v++ = 0;
            int dup = 0, bad = 0, ok = 1;
            if (f->kind == FK_GGML) {
                /* ggml blocks round as the engine's encoders do: only the encoder choice */
                if (strcmp(o, "enc") || !v) ok = 0;
                else if (!strcmp(v, "ref")) f->gact = 0;
                else if (!strcmp(v, "act") && fq_type_get(f->gtype)->from_float_act) f->gact = 1;
                else bad = 1;
                dup = set_round++;
            } else if (!strcmp(o, "round") && v) {
                int r = pick(v, ROUND_NAMES, 4);
                dup = set_round++;
                if (r < 0) bad = 1; else f->round = r;
            } else if (f->kind == FK_FLOAT && !v && pick(o, SPECIAL_NAMES, 3) >= 0) {
                dup = set_sp++;
                f->specials = pick(o, SPECIAL_NAMES, 3);
            } else if (f->kind == FK_FLOAT && !strcmp(o, "sat") && v) {
                dup = set_sat++;
                if (onoff(v) < 0) bad = 1; else f->sat = onoff(v);
            } else if (f->kind == FK_FLOAT && !strcmp(o, "subnormal") && v) {
                dup = set_sub++;
                if (onoff(v) < 0) bad = 1; else f->subnormals = onoff(v);
            } else if (f->kind == FK_MX && !strcmp(o, "scale") && v) {
                dup = set_scale++;
                int r = pick(v, MXS_NAMES, 3);
                if (r < 0) bad = 1; else f->mx_scale = r;
            } else if (f->kind == FK_NVFP4 && !strcmp(o, "tensor_scale") && v) {
                dup = set_ts++;
                if (onoff(v) < 0) bad = 1; else f->tensor_scale = onoff(v);
            } else if (f->kind == FK_INT && !v && (!strcmp(o, "sym") || !strcmp(o, "asym"))) {
                dup = set_sym++;
                f->asym = o[0] == 'a';
            } else if (f->kind == FK_INT && !v && pick(o, GRAN_NAMES, 3) >= 0) {
                dup = set_gran++;
                f->gran = pick(o, GRAN_NAMES, 3);
            } else if (f->kind == FK_INT && !strcmp(o, "group") && v) {
                dup = set_gran++;
                long g;
                f->gran = GR_GROUP;
                if (parse_int(v, 1, FQ_GROUP_MAX, &g)) bad = 1; else f->group = (int)g;
            } else {
                ok = 0;
            }
            if (!ok) {
                fq_errf(e, "format '%s': unknown option '%s%s%s' (valid options: %s)", f->name, o,
                        v ? "=" : "", v ? v : "", valid_options(f->kind));
                goto fail;
            }
            if (bad) {
                fq_errf(e, "format '%s': bad value '%s' for option '%s' (valid options: %s)",
                        f->name, v, o, valid_options(f->kind));
                goto fail;
            }
            if (dup) {
                fq_errf(e, "format '%s': option '%s' conflicts with an earlier one setting the "
                        "same property", f->name, o);
                goto fail;
            }
        }
    }
    if (f->kind == FK_FLOAT) {
        if (!set_sat) f->sat = f->specials == SP_IEEE ? 0 : 1;
        if (f->specials == SP_FINITE && !f->sat) {
            fq_errf(e, "format '%s': sat=off needs Inf or NaN to overflow to; 'finite' has "
                    "neither (use ieee or fn)", f->name);
            goto fail;
        }
    }
    if (f->kind == FK_GGML && !fq_ggml_available(f->gtype)) {
        fq_errf(e, "format '%s': the engine's %s encoder/decoder is not in this build",
                f->name, fq_type_name(f->gtype));
        goto fail;
    }
    if (build(f, e)) goto fail;
    canon(f);
    *out = f;
    return 0;
fail:
    free(f);
    return -1;
}

void fq_format_free(fq_format *f) { free(f); }

const char *fq_format_str(const fq_format *f) { return f->str; }

int fq_format_row_local(const fq_format *f) {
    if (f->kind == FK_INT) return f->gran == GR_ROW || f->gran == GR_GROUP;
    if (f->kind == FK_NVFP4) return !f->tensor_scale;
    return 1;
}

uint64_t fq_stream_id(const char *name, int layer) {
    const char *s = name ? name : "";
    return fq_mix64(fq_fnv1a(s, strlen(s)) ^ fq_mix64((uint64_t)(int64_t)layer + 1));
}

/* ---- statistics ---- */

void fq_qstats_merge(fq_qstats *into, const fq_qstats *from) {
    into->n += from->n;
    into->n_clipped += from->n_clipped;
    into->n_flushed += from->n_flushed;
    into->n_nan += from->n_nan;
    into->n_summed += from->n_summed;
    into->sum_x2 += from->sum_x2;
    into->sum_err2 += from->sum_err2;
    if (from->max_err > into->max_err) into->max_err = from->max_err;
    if (from->max_abs_x > into->max_abs_x) into->max_abs_x = from->max_abs_x;
}

double fq_qstats_rmse(const fq_qstats *s) {
    return s->n_summed ? sqrt(s->sum_err2 / (double)s->n_summed) : 0.0;
}

double fq_qstats_sqnr_db(const fq_qstats *s) {
    if (s->sum_x2 == 0.0) return NAN;
    if (s->sum_err2 == 0.0) return INFINITY;
    return 10.0 * log10(s->sum_x2 / s->sum_err2);
}

double fq_qstats_pct_clipped(const fq_qstats *s) {
    return s->n ? 100.0 * (double)s->n_clipped / (double)s->n : 0.0;
}

double fq_qstats_pct_flushed(const fq_qstats *s) {
    return s->n ? 100.0 * (double)s->n_flushed / (double)s->n : 0.0;
}

/* ---- kernel selection ---- */

static const fq_fmt_kernels K_GENERIC = {"generic", fq_blocked_generic, fq_bstat_generic,
                                         fq_intcols, fq_ident_generic};
static const fq_fmt_kernels K_AVX2 = {"avx2", fq_blocked_avx2, fq_bstat_avx2, fq_intcols_avx2,
                                      fq_ident_avx2};
static const fq_fmt_kernels K_AVX512 = {"avx512", fq_blocked_avx512, fq_bstat_avx512,
                                        fq_intcols_avx512, fq_ident_avx512};
fq_fmt_kernels fq_fmt_k = {"generic", fq_blocked_generic, fq_bstat_generic, fq_intcols,
                           fq_ident_generic};

static const fq_fmt_kernels *const K_LEVEL[FQ_ISA_COUNT] = {&K_GENERIC, &K_AVX2, &K_AVX512};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* The level cpu.c chose for every kernel family (cpu.h) */
static void init_kernels(void) { fq_fmt_k = *K_LEVEL[fq_cpu_isa()]; }

const char *fq_formats_init(void) {
    fq_qtypes_init(); /* the ggml decoders' SIMD variants */
    pthread_once(&init_once, init_kernels);
    return fq_fmt_k.name;
}

int fq_formats_set_isa(const char *name) {
    fq_formats_init();
    const int level = fq_cpu_isa_from_name(name);
    if (level < 0 || level > fq__cpu_isa_level()) return -1;
    fq_fmt_k = *K_LEVEL[level];
    return 0;
}

/* ---- applying ---- */

/* Statistics of the whole tensor, finite values only. */
static void tensor_bstat(const float *x, int64_t n, int lohi, fq_bstat *bs) {
    fq_fmt_k.bstat(x, n, lohi, bs);
    if (bs->amax_b >= FQ_F32_INF) bs->amax_b = fq_absmax_finite(x, n);
}

void fq_format_apply(const fq_format *f, float *x, int64_t nrows, int64_t ncols,
                     uint64_t seed, uint64_t stream, int64_t row0, fq_qstats *st) {
    fq_qstats dummy = {0};
    if (!st) st = &dummy;
    if (nrows <= 0 || ncols <= 0) return;
    fq_formats_init();
    int64_t n = nrows * ncols, idx0 = row0 * ncols;
    int sr = f->round == FQ_ROUND_STOCHASTIC;
    uint64_t key = sr ? fq_sr_key(seed, stream) : 0;
    fq_blocked_fn blk = fq_fmt_k.blocked; /* variants without stochastic rounding defer */
    fq_blockop op = f->op;
    switch (f->kind) {
    case FK_IDENT:
        fq_fmt_k.ident(x, n, st);
        return;
    case FK_FLOAT:
        blk(&op, x, n, key, idx0, st);
        return;
    case FK_GGML:
        fq_ggml_rows(f->gtype, f->gact, x, nrows, ncols, st);
        return;
    case FK_NVFP4:
        if (f->tensor_scale) {
            fq_bstat bs;
            tensor_bstat(x, n, 0, &bs);
            /* s_t = amax / (6 * 448); one that underflows F32 becomes the smallest F32, so
             * blocks still get a scale (amax = 0 gives s_t = 0: all results are zeros) */
            float amax = fq_u2f(bs.amax_b), s_t = amax / 2688.0f;
            if (amax > 0.0f && s_t == 0.0f) s_t = 0x1p-149f;
            op.nv_s_t = s_t;
        }
        break;
    case FK_INT:
        if (f->gran == GR_TENSOR) {
            fq_bstat bs;
            tensor_bstat(x, n, f->asym, &bs);
            fq_block_scaling(&op, &bs, &op.fixed);
            op.fixed_amax_b = bs.amax_b;
            op.rule = FQ_BR_FIXED;
            blk(&op, x, n, key, idx0, st);
            return;
        }
        if (f->gran == GR_COL) {
            (sr ? fq_intcols : fq_fmt_k.cols)(&op, x, nrows, ncols, key, idx0, st);
            return;
        }
        if (f->gran == GR_ROW) op.block = ncols;
        break;
    default:
        break;
    }
    /* blocks along rows: one call when every row holds whole blocks */
    if (ncols % op.block == 0) {
        blk(&op, x, n, key, idx0, st);
        return;
    }
    for (int64_t r = 0; r < nrows; r++) blk(&op, x + r * ncols, ncols, key, idx0 + r * ncols, st);
}

/* ---- descriptions ---- */

static const char *ggml_scale(uint32_t t) {
    switch (t) {
    case FQ_TYPE_Q8_0: case FQ_TYPE_Q4_0: case FQ_TYPE_Q5_0: return "F16 d";
    case FQ_TYPE_Q8_1: return "F16 d (and sum)";
    case FQ_TYPE_Q4_1: case FQ_TYPE_Q5_1: return "F16 d, min";
    case FQ_TYPE_Q8_K: return "F32 d";
    case FQ_TYPE_Q6_K: return "F16 d x int8 per 16";
    case FQ_TYPE_Q3_K: return "F16 d x 6-bit per 16";
    case FQ_TYPE_Q2_K: return "F16 d, dmin x 4-bit per 16";
    default: return "F16 d, dmin x 6-bit per 32";
    }
}

void fq_format_describe(const fq_format *f, fq_format_desc *d) {
    memset(d, 0, sizeof *d);
    d->max_finite = d->min_normal = d->min_subnormal = NAN;
    d->rounding = ROUND_NAMES[f->round];
    const fq_mfgrid *g = &f->grid;
    int grid_vals = 0;
    switch (f->kind) {
    case FK_IDENT:
        d->family = "identity";
        d->bits = 32;
        d->max_finite = 0x1.fffffep127;
        d->min_normal = 0x1p-126;
        d->min_subnormal = 0x1p-149;
        snprintf(d->scale, sizeof d->scale, "none");
        snprintf(d->specials, sizeof d->specials, "unchanged (counts only)");
        d->rounding = "none";
        break;
    case FK_FLOAT:
        d->family = "float";
        d->bits = 1 + f->ebits + f->mbits;
        grid_vals = 1;
        snprintf(d->scale, sizeof d->scale, "none");
        if (f->specials == SP_IEEE)
            snprintf(d->specials, sizeof d->specials, "Inf kept; overflow->%s",
                     f->sat ? "max" : "Inf");
        else if (f->specials == SP_FN)
            snprintf(d->specials, sizeof d->specials, "no Inf: Inf, overflow->%s",
                     f->sat ? "max" : "NaN");
        else
            snprintf(d->specials, sizeof d->specials, "no Inf/NaN: Inf, overflow->max");
        break;
    case FK_MX:
        d->family = "mx";
        d->bits = (f->mx_int ? 8 : 1 + f->ebits + f->mbits) + 8.0 / 32;
        d->block = 32;
        grid_vals = 1;
        snprintf(d->scale, sizeof d->scale, "E8M0 2^k, %s rule", MXS_NAMES[f->mx_scale]);
        snprintf(d->specials, sizeof d->specials, "saturate; NaN/Inf block->NaN");
        break;
    case FK_NVFP4:
        d->family = "nvfp4";
        d->bits = 4 + 8.0 / 16;
        d->block = 16;
        grid_vals = 1;
        snprintf(d->scale, sizeof d->scale, "UE4M3%s", f->tensor_scale ? " x F32 per tensor" : "");
        snprintf(d->specials, sizeof d->specials, "saturate; NaN/Inf block->NaN");
        break;
    case FK_INT: {
        d->family = "int";
        int extra = f->gran == GR_GROUP;
        d->bits = f->ibits + (extra ? (32.0 + (f->asym ? f->ibits : 0)) / f->group : 0);
        d->block = f->gran == GR_GROUP ? f->group : f->gran == GR_TENSOR ? -1
                 : f->gran == GR_ROW ? -2 : -3;
        d->max_finite = f->asym ? (double)((1 << f->ibits) - 1) : (double)((1 << (f->ibits - 1)) - 1);
        d->min_subnormal = 1;
        const char *where = f->gran == GR_TENSOR ? "tensor" : f->gran == GR_ROW ? "row"
                          : f->gran == GR_COL ? "column" : "group";
        if (f->asym)
            snprintf(d->scale, sizeof d->scale, "F32 (hi-lo)/%d, zero point, per %s",
                     (1 << f->ibits) - 1, where);
        else
            snprintf(d->scale, sizeof d->scale, "F32 amax/%d per %s", (1 << (f->ibits - 1)) - 1,
                     where);
        snprintf(d->specials, sizeof d->specials, "Inf, overflow->clip");
        break;
    }
    case FK_GGML: {
        const fq_type_traits *t = fq_type_get(f->gtype);
        d->family = "ggml";
        d->bits = 8.0 * (double)t->type_size / (double)t->blck;
        d->block = (int)t->blck;
        snprintf(d->scale, sizeof d->scale, "%s", ggml_scale(f->gtype));
        snprintf(d->specials, sizeof d->specials, "NaN/Inf block->NaN");
        d->rounding = f->gact ? "ggml act encoder" : "ggml encoder";
        break;
    }
    }
    if (grid_vals) {
        d->max_finite = fq_u2f(g->maxb);
        d->min_normal = f->mx_int ? NAN : ldexp(1.0, g->emin);
        d->min_subnormal = g->subnormals ? ldexp(1.0, g->emin - g->mbits) : NAN;
    }
}

const char *fq_format_help(void) {
    return
"Spec: FORMAT[:opt=value[,opt...]], e.g. int4:group=32,asym  fp8_e4m3:round=stochastic\n"
"      e3m4:fn,subnormal=off  mxfp4:scale=rceil\n"
"\n"
"Options of every format but f32 and the ggml blocks:\n"
"  round=rne       nearest, ties to even (default)\n"
"  round=rna       nearest, ties away from zero\n"
"  round=rtz       toward zero (an overflow gives the largest finite value)\n"
"  round=stochastic  away from zero with probability (|x| - lo) / (hi - lo), lo and hi\n"
"                  the neighbours of |x|; a 32-bit draw keyed by seed, hook and element\n"
"                  index only, so any split across threads gives the same result\n"
"Floats (bf16, fp16, tf32, fp8_*, fp6_*, fp4_e2m1, eXmY with 1<=X<=8, 0<=Y<=23;\n"
"  bias 2^(X-1)-1; eXmY is IEEE-style: e4m3 is not fp8_e4m3, which is e4m3:fn):\n"
"  ieee            top exponent is Inf/NaN; overflow -> Inf (default of eXmY, bf16,\n"
"                  fp16, tf32, fp8_e5m2)\n"
"  fn              finite + NaN: only S.1..1.1..1 is NaN, no Inf (OCP E4M3)\n"
"  finite          no Inf or NaN codes (OCP FP6/FP4)\n"
"  sat=on|off      overflow (and Inf, where the format has none) saturates to the\n"
"                  largest finite value; off: -> Inf (ieee) or NaN (fn). Default: off\n"
"                  for ieee, on for fn and finite. Inf inputs of ieee formats stay Inf\n"
"  subnormal=off   inputs below the smallest normal flush to signed zero (decided on\n"
"                  the input, before rounding)\n"
"MX (OCP MX v1.0: 32-element blocks along a row, one E8M0 scale 2^k, k in [-127,127];\n"
"  elements saturate; a block holding NaN or Inf becomes all NaN):\n"
"  scale=floor     k = floor(log2 amax) - emax_elem (the spec; default)\n"
"  scale=ceil      k = ceil(log2 amax) - emax_elem\n"
"  scale=rceil     smallest k with amax <= max_elem * 2^k (as cuBLAS)\n"
"  emax_elem: 8 e4m3, 15 e5m2, 2 e2m3, 4 e3m2, 2 e2m1, 0 int8; mxint8 elements q/64,\n"
"  |q| <= 127; amax = 0 gives k = -127\n"
"NVFP4 (16-element blocks, E2M1 elements): s_t = amax_tensor / 2688 (F32; tiny tensors\n"
"  get at least 2^-149), s_b = e4m3_rne(clamp(amax_b / 6 / s_t, 2^-6, 448)),\n"
"  y = e2m1(x / (s_b * s_t)) * (s_b * s_t), every step in F32; NaN/Inf block -> NaN\n"
"  tensor_scale=off  s_t = 1 (then rows are independent)\n"
"Integers int2..int16 (symmetric: scale = amax / (2^(N-1)-1), q = round(x / scale)\n"
"  clipped to [-(2^(N-1)-1), 2^(N-1)-1], y = q * scale, all F32; amax over finite\n"
"  values; Inf saturates; a zero scale gives signed zeros):\n"
"  per_tensor (default), per_row (per token), per_col (per channel), group=G (G\n"
"  consecutive elements of a row, the last group of a row may be shorter)\n"
"  asym            lo = min(0, min x), hi = max(0, max x), scale = (hi-lo)/(2^N-1)\n"
"                  (exact in double, then F32),\n"
"                  z = rne(-lo/scale) in [0, 2^N-1], q = clip(round(x/scale), -z,\n"
"                  2^N-1-z), y = q * scale\n"
"ggml blocks (q8_0 q8_1 q8_k q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k): the\n"
"  engine's reference encoder (ggml's quantize_row_*_ref: how a tensor is stored),\n"
"  then its decoder. A row tail shorter than a block is zero-padded to a full block;\n"
"  a block holding NaN/Inf -> all NaN; zeros keep their input's sign.\n"
"  enc=act         q8_0, q8_1, q8_k: the encoder llama.cpp's x86 backend applies to\n"
"                  matmul activations instead (q8_0/q8_1: ties to even, 127/amax)\n"
"f32: identity, counts only.\n"
"Everywhere: NaN stays NaN, a zero result keeps its input's sign, Inf follows the\n"
"format. Statistics: clipped = outside the range (saturated or overflowed to\n"
"Inf/NaN); flushed = non-zero input, zero result; RMSE and SQNR over the elements\n"
"whose input and result are finite.\n";
}
