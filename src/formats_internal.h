/* formats_internal.h - what the format kernels share: the minifloat grid in F32 bit
 * terms, per-block scale rules, the scalar element kernel every path falls back on, and
 * the table of SIMD variants. Private to formats*.c and src/arch/x86/formats_*.c.
 *
 * Every format that rounds to a floating-point or integer grid is one fq_mfgrid: an
 * exponent range [emin, emax], M mantissa bits, a largest finite value, and what
 * overflow and Inf become. Integers are grids too: intN is M = N-2, emin = emax = N-2
 * (0..2^(N-2)-1 are the "subnormals", 2^(N-2)..2^(N-1)-1 the one binade of normals), so
 * ties, saturation and stochastic rounding share one implementation. Scaled formats
 * divide (or multiply by a power of two) before rounding and multiply after. */
#ifndef FQ_FORMATS_INTERNAL_H
#define FQ_FORMATS_INTERNAL_H

#include <math.h>
#include <string.h>

#include "formats.h"

#define FQ_F32_INF 0x7f800000u
#define FQ_F32_QNAN 0x7fc00000u
#define FQ_F32_MAX 0x7f7fffffu

static inline uint32_t fq_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float fq_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* 2^e as F32 for -149 <= e <= 127 (exact, subnormal below -126). */
static inline float fq_pow2f(int e) {
    return e >= -126 ? fq_u2f((uint32_t)(e + 127) << 23) : fq_u2f(1u << (e + 149));
}

/* A rounding grid in F32 bit terms. Positive F32 bit patterns are ordered like their
 * values, so rounding is integer arithmetic on |x|'s bits: in the normal range keep the
 * top M mantissa bits; below the smallest normal the quantum is fixed (the smallest
 * subnormal), which is a wider shift on the same bits. */
typedef struct fq_mfgrid {
    int mbits;          /* M: mantissa bits, 0..23 */
    int emin, emax;     /* unbiased exponent range of normals */
    uint32_t shift;     /* 23 - M */
    int32_t ebn;        /* F32 biased exponent of the smallest normal, >= 1 */
    uint32_t minnorm_b; /* bits of the smallest normal */
    uint32_t maxb;      /* bits of the largest finite value */
    uint32_t minsub_b;  /* bits of the smallest subnormal */
    uint32_t hminsub_b; /* bits of half of it (0 when not an F32: no input lies below) */
    uint32_t ovf_b;     /* result of a finite overflow under this grid's rounding */
    uint32_t inf_b;     /* result of an Inf input: Inf, the largest value, or NaN */
    int subnormals;     /* 0: inputs below the smallest normal flush to zero */
    int mode;           /* enum fq_round */
} fq_mfgrid;

/* Fills g; maxmant is the mantissa field (M bits) of the largest finite value. inf_kind:
 * 0 keep Inf (IEEE formats), 1 saturate, 2 NaN. ovf_kind the same for finite overflow. */
static inline void fq_mfgrid_init(fq_mfgrid *g, int mbits, int emin, int emax,
                                  uint32_t maxmant, int ovf_kind, int inf_kind,
                                  int subnormals, int mode) {
    memset(g, 0, sizeof *g);
    g->mbits = mbits;
    g->emin = emin;
    g->emax = emax;
    g->shift = (uint32_t)(23 - mbits);
    g->ebn = emin + 127;
    g->minnorm_b = (uint32_t)g->ebn << 23;
    g->maxb = ((uint32_t)(emax + 127) << 23) | (maxmant << g->shift);
    g->minsub_b = fq_f2u(fq_pow2f(emin - mbits));
    g->hminsub_b = emin - mbits - 1 >= -149 ? fq_f2u(fq_pow2f(emin - mbits - 1)) : 0;
    static const uint32_t kinds[3] = {FQ_F32_INF, 0, FQ_F32_QNAN};
    /* IEEE 754: toward zero, an overflow gives the largest finite value */
    int ok = mode == FQ_ROUND_RTZ ? 1 : ovf_kind;
    g->ovf_b = ok == 1 ? g->maxb : kinds[ok];
    g->inf_b = inf_kind == 1 ? g->maxb : kinds[inf_kind];
    g->subnormals = subnormals;
    g->mode = mode;
}

/* How a block's values reach the grid: v = x (NONE), x * s_in (MUL, a power of two),
 * x / s_in (DIV); the result is r * s_out with |r * s_out| kept <= ymax_b. */
enum { FQ_PRE_NONE = 0, FQ_PRE_MUL = 1, FQ_PRE_DIV = 2 };

typedef struct fq_scaling {
    int pre;
    float s_in, s_out;
    uint32_t ymax_b;
    /* bounds on the rounded magnitude for positive / negative inputs (asymmetric
     * integers: 2^N-1-z and z); 0xffffffff when the grid's own range is the bound */
    uint32_t limp_b, limn_b;
} fq_scaling;
/* A zero scale (an all-zero block) is s_in = 1, s_out = 0: every result is then a zero
 * with its input's sign, Inf included, and no division by zero happens. */

/* Flags of one element for the statistics. */
enum { FQ_EF_CLIP = 1, FQ_EF_NAN = 2 };

/* Rounds |v|'s bits av (finite) on grid g. rnd: 32 random bits (stochastic only).
 * Sets FQ_EF_CLIP in *fl on overflow. Returns the result's bits (no sign). */
static inline uint32_t fq_mf_round(const fq_mfgrid *g, uint32_t av, uint32_t rnd, int *fl) {
    uint32_t E = av >> 23, Ee = E ? E : 1, s = g->shift, r, lsbsrc = av;
    if (av < g->minnorm_b) {
        if (!g->subnormals) return 0;
        s += (uint32_t)(g->ebn - (int32_t)Ee);
        /* ties to even look at the multiple of the quantum: at s = 23 its low bit is
         * the implicit one, not bit 23 of the pattern (the exponent's) */
        if (E) lsbsrc |= 0x800000u;
        if (s >= 24) { /* |v| below the smallest subnormal: 0 or that subnormal */
            switch (g->mode) {
            case FQ_ROUND_RNE: return av > g->hminsub_b ? g->minsub_b : 0;
            case FQ_ROUND_RNA: return av >= g->hminsub_b && av ? g->minsub_b : 0;
            case FQ_ROUND_RTZ: return 0;
            default: {
                /* probability |v| / minsub as a 32-bit fixed-point fraction */
                uint32_t sig = E ? (av & 0x7fffffu) | 0x800000u : av;
                uint32_t f = s <= 32 ? sig << (32 - s) : (s < 64 ? sig >> (s - 32) : 0);
                return rnd < f ? g->minsub_b : 0;
            }
            }
        }
    }
    if (s == 0) {
        r = av;
    } else {
        uint32_t mask = (1u << s) - 1;
        switch (g->mode) {
        case FQ_ROUND_RNE: r = (av + (mask >> 1) + ((lsbsrc >> s) & 1)) & ~mask; break;
        case FQ_ROUND_RNA: r = (av + (mask >> 1) + 1) & ~mask; break;
        case FQ_ROUND_RTZ: r = av & ~mask; break;
        default: {
            uint32_t f = (av & mask) << (32 - s);
            r = (av & ~mask) + (rnd < f ? mask + 1 : 0);
        }
        }
    }
    if (r > g->maxb) {
        *fl |= FQ_EF_CLIP;
        return g->ovf_b;
    }
    return r;
}

/* Statistics of a run of elements, in doubles (the scalar paths). */
typedef struct fq_sacc {
    uint64_t clip, flush, nan, fin;
    double sx2, se2, me, mx;
} fq_sacc;

static inline void fq_sacc_add(fq_sacc *a, float x, float y, int fl) {
    uint32_t ax = fq_f2u(x) & 0x7fffffffu, ay = fq_f2u(y) & 0x7fffffffu;
    if (fl & FQ_EF_CLIP) a->clip++;
    if (ax && !ay) a->flush++;
    if (ay > FQ_F32_INF && ax <= FQ_F32_INF) a->nan++;
    if (ax < FQ_F32_INF && ay < FQ_F32_INF) {
        a->fin++;
        double dx = x, de = (double)y - dx, ae = fabs(de), adx = fabs(dx);
        a->sx2 += dx * dx;
        a->se2 += de * de;
        if (ae > a->me) a->me = ae;
        if (adx > a->mx) a->mx = adx;
    }
}

static inline void fq_sacc_flush(const fq_sacc *a, int64_t n, fq_qstats *st) {
    st->n += (uint64_t)n;
    st->n_clipped += a->clip;
    st->n_flushed += a->flush;
    st->n_nan += a->nan;
    st->n_summed += a->fin;
    st->sum_x2 += a->sx2;
    st->sum_err2 += a->se2;
    if (a->me > st->max_err) st->max_err = a->me;
    if (a->mx > st->max_abs_x) st->max_abs_x = a->mx;
}

/* One element through scaling and grid: the scalar kernel, and the reference every SIMD
 * variant must match bit for bit. Returns the result and sets *fl. */
static inline float fq_elem(const fq_mfgrid *g, const fq_scaling *sc, float x, uint32_t rnd,
                            int *fl) {
    uint32_t u = fq_f2u(x), sign = u & 0x80000000u, ax = u & 0x7fffffffu;
    if (ax > FQ_F32_INF) return x; /* NaN stays NaN, payload and all */
    float v = x;
    if (sc->pre == FQ_PRE_MUL) v = x * sc->s_in;
    else if (sc->pre == FQ_PRE_DIV) v = x / sc->s_in;
    uint32_t av = fq_f2u(v) & 0x7fffffffu, r;
    if (av == FQ_F32_INF) { /* an Inf input, or a finite one that overflowed the division */
        r = g->inf_b;
        if (r != FQ_F32_INF) *fl |= FQ_EF_CLIP;
    } else {
        r = fq_mf_round(g, av, rnd, fl);
    }
    uint32_t lim = sign ? sc->limn_b : sc->limp_b;
    if (r > lim) {
        r = lim;
        *fl |= FQ_EF_CLIP;
    }
    if (sc->pre != FQ_PRE_NONE && r <= FQ_F32_INF) {
        r = fq_f2u(fq_u2f(r) * sc->s_out);
        if (r > sc->ymax_b) { /* past F32's range: the largest value F32 can hold */
            r = sc->ymax_b;
            *fl |= FQ_EF_CLIP;
        }
    }
    return fq_u2f(r | sign);
}

/* ---- per-block scale rules ---- */

enum { FQ_BR_FIXED = 0, FQ_BR_MX, FQ_BR_NVFP4, FQ_BR_INTSYM, FQ_BR_INTASYM };
enum { FQ_MXS_FLOOR = 0, FQ_MXS_CEIL, FQ_MXS_RCEIL };

typedef struct fq_blockop {
    const fq_mfgrid *g; /* element grid */
    int rule;           /* FQ_BR_* */
    int64_t block;      /* elements per block along a row (not FIXED) */
    int nan_block;      /* 1: a block holding NaN or Inf becomes all NaN */
    fq_scaling fixed;   /* FIXED: the scaling of every element */
    uint32_t fixed_amax_b; /* FIXED with a scale: the tensor's largest finite |x| bits (lets
                            * SIMD variants pick their statistics precision) */
    int mx_emax, mx_rule;
    uint32_t mx_maxmant; /* mantissa field (23 bits) of the element's largest value */
    uint32_t mx_ymax_b;  /* largest F32 on the element's mantissa grid */
    float nv_s_t;        /* NVFP4 tensor scale */
    const fq_mfgrid *nv_g8; /* NVFP4: the E4M3 grid of block scales (RNE, saturating) */
    float int_q;         /* INTSYM: 2^(N-1) - 1; INTASYM: 2^N - 1 */
} fq_blockop;

/* What a block's scale is computed from. amax_b: largest |x| bits over all values
 * (>= FQ_F32_INF when NaN or Inf is present); lo, hi: min(0, min x) and max(0, max x)
 * over the finite values (asymmetric integers only). */
typedef struct fq_bstat {
    uint32_t amax_b;
    float lo, hi;
} fq_bstat;

/* OCP MX: the shared exponent of a block whose largest finite magnitude has bits amax_b,
 * clamped to E8M0's range [-127, 127]. floor: floor(log2 amax) - emax_elem (the spec);
 * ceil: ceil(log2 amax) - emax_elem; rceil: the smallest k with amax <= max_elem * 2^k. */
static inline int fq_mx_exp(const fq_blockop *op, uint32_t amax_b) {
    if (amax_b == 0) return -127;
    int fl;
    uint32_t mant;
    if (amax_b >> 23) {
        fl = (int)(amax_b >> 23) - 127;
        mant = amax_b & 0x7fffffu;
    } else { /* subnormal: normalise */
        int p = 31 - __builtin_clz(amax_b);
        fl = p - 149;
        mant = (amax_b << (23 - p)) & 0x7fffffu;
    }
    int k = fl - op->mx_emax;
    if (op->mx_rule == FQ_MXS_CEIL) k += mant != 0;
    else if (op->mx_rule == FQ_MXS_RCEIL) k += mant > op->mx_maxmant;
    return k < -127 ? -127 : k > 127 ? 127 : k;
}

/* NVFP4 block scale s_b = e4m3(clamp(amax_b / 6 / s_t, 2^-6, 448)), all in F32. */
static inline float fq_nvfp4_sb(const fq_blockop *op, float amax) {
    float v = amax / 6.0f / op->nv_s_t;
    if (!(v >= 0x1p-6f)) v = 0x1p-6f;
    if (v > 448.0f) v = 448.0f;
    int fl = 0;
    return fq_u2f(fq_mf_round(op->nv_g8, fq_f2u(v), 0, &fl));
}

/* Scaling by a (positive) scale s: v = x / s, y = r * s; s = 0 (an all-zero block, or a
 * scale that underflowed) gives signed zeros. */
static inline void fq_scaling_div(fq_scaling *sc, float s) {
    sc->pre = FQ_PRE_DIV;
    sc->s_in = s == 0.0f ? 1.0f : s;
    sc->s_out = s;
    sc->ymax_b = FQ_F32_MAX;
    sc->limp_b = sc->limn_b = 0xffffffffu;
}

/* Asymmetric integers: scale = (hi - lo) / (2^N - 1) (exact difference and quotient in
 * double, then F32), zero point z = rne(-lo / scale) clamped to [0, 2^N - 1] (F32);
 * the rounded value r = round(x / scale) is kept within [-z, 2^N - 1 - z]. */
static inline void fq_scaling_asym(fq_scaling *sc, float lo, float hi, float qr) {
    float s = (float)(((double)hi - (double)lo) / qr);
    fq_scaling_div(sc, s);
    if (s == 0.0f) return;
    float z = rintf(-lo / s);
    z = z < 0.0f ? 0.0f : z > qr ? qr : z;
    sc->limp_b = fq_f2u(qr - z);
    sc->limn_b = fq_f2u(z);
}

/* The scaling of a block from its statistics (finite values only). */
static inline __attribute__((always_inline)) void fq_block_scaling(const fq_blockop *op,
                                                                  const fq_bstat *bs,
                                                                  fq_scaling *sc) {
    switch (op->rule) {
    case FQ_BR_MX: {
        int k = fq_mx_exp(op, bs->amax_b);
        sc->pre = FQ_PRE_MUL;
        sc->s_in = fq_pow2f(-k);
        sc->s_out = fq_pow2f(k);
        sc->ymax_b = op->mx_ymax_b;
        sc->limp_b = sc->limn_b = 0xffffffffu;
        break;
    }
    case FQ_BR_NVFP4:
        fq_scaling_div(sc, fq_nvfp4_sb(op, fq_u2f(bs->amax_b)) * op->nv_s_t);
        break;
    case FQ_BR_INTSYM:
        fq_scaling_div(sc, fq_u2f(bs->amax_b) / op->int_q);
        break;
    case FQ_BR_INTASYM:
        fq_scaling_asym(sc, bs->lo, bs->hi, op->int_q);
        break;
    default:
        *sc = op->fixed;
    }
}

/* Largest finite |x| bits of x[0..n) (NaN and Inf skipped). */
static inline uint32_t fq_absmax_finite(const float *x, int64_t n) {
    uint32_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t a = fq_f2u(x[i]) & 0x7fffffffu;
        if (a < FQ_F32_INF && a > m) m = a;
    }
    return m;
}

/* Makes a block all NaN (NaN inputs keep their bits, the others keep their sign). */
static inline void fq_nan_block(float *x, int64_t n, fq_sacc *a) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = fq_f2u(x[i]);
        if ((u & 0x7fffffffu) > FQ_F32_INF) continue;
        x[i] = fq_u2f(FQ_F32_QNAN | (u & 0x80000000u));
        a->nan++;
    }
}

/* The part of a block every variant shares: a NaN block is done here (returns 1);
 * otherwise fills *sc (returns 0). */
static inline int fq_block_prepare(const fq_blockop *op, float *x, int64_t n, fq_bstat *bs,
                                   fq_scaling *sc, fq_sacc *a) {
    if (bs->amax_b >= FQ_F32_INF) {
        if (op->nan_block) {
            fq_nan_block(x, n, a);
            return 1;
        }
        bs->amax_b = fq_absmax_finite(x, n);
    }
    fq_block_scaling(op, bs, sc);
    return 0;
}

/* ---- stochastic rounding draws ---- */

/* fq_mix64 (splitmix64's output function) is in common.h */
/* The key of one application: every draw is fq_draw(key, element index). */
static inline uint64_t fq_sr_key(uint64_t seed, uint64_t stream) {
    return fq_mix64(seed ^ fq_mix64(stream + 0x9e3779b97f4a7c15ull));
}
static inline uint32_t fq_draw(uint64_t key, uint64_t idx) {
    return (uint32_t)(fq_mix64(key + idx * 0x9e3779b97f4a7c15ull) >> 32);
}

/* ---- kernels and their SIMD variants ---- */

/* Rounds one row segment x[0..n) with op (blocks start at x[0]). key/idx0: stochastic
 * draws (element i uses fq_draw(key, idx0 + i)). Adds to *st. */
typedef void (*fq_blocked_fn)(const fq_blockop *op, float *x, int64_t n, uint64_t key,
                              int64_t idx0, fq_qstats *st);
/* Block statistics of x[0..n); lo/hi only when lohi is 1. */
typedef void (*fq_bstat_fn)(const float *x, int64_t n, int lohi, fq_bstat *bs);

/* Integers with one scale per column of an nrows x ncols matrix (x[0] has index idx0). */
typedef void (*fq_cols_fn)(const fq_blockop *op, float *x, int64_t nrows, int64_t ncols,
                           uint64_t key, int64_t idx0, fq_qstats *st);
/* Statistics of an unchanged tensor (the identity format). */
typedef void (*fq_ident_fn)(const float *x, int64_t n, fq_qstats *st);

typedef struct fq_fmt_kernels {
    const char *name;
    fq_blocked_fn blocked; /* every rounding mode but stochastic */
    fq_bstat_fn bstat;
    fq_cols_fn cols;       /* every rounding mode but stochastic */
    fq_ident_fn ident;
} fq_fmt_kernels;

extern fq_fmt_kernels fq_fmt_k; /* the variant in use */

void fq_blocked_generic(const fq_blockop *op, float *x, int64_t n, uint64_t key,
                        int64_t idx0, fq_qstats *st);
void fq_bstat_generic(const float *x, int64_t n, int lohi, fq_bstat *bs);
void fq_intcols(const fq_blockop *op, float *x, int64_t nrows, int64_t ncols, uint64_t key,
                int64_t idx0, fq_qstats *st);
void fq_ident_generic(const float *x, int64_t n, fq_qstats *st);
/* ggml block types: 1 when the engine's encoder (and a decoder) exist in this build. */
int fq_ggml_available(uint32_t type);
/* act: the activation encoder (from_float_act) instead of the reference one. */
void fq_ggml_rows(uint32_t type, int act, float *x, int64_t nrows, int64_t ncols,
                  fq_qstats *st);

void fq_blocked_avx2(const fq_blockop *op, float *x, int64_t n, uint64_t key, int64_t idx0,
                     fq_qstats *st);
void fq_bstat_avx2(const float *x, int64_t n, int lohi, fq_bstat *bs);
void fq_intcols_avx2(const fq_blockop *op, float *x, int64_t nrows, int64_t ncols,
                     uint64_t key, int64_t idx0, fq_qstats *st);
void fq_ident_avx2(const float *x, int64_t n, fq_qstats *st);
void fq_blocked_avx512(const fq_blockop *op, float *x, int64_t n, uint64_t key,
                       int64_t idx0, fq_qstats *st);
void fq_bstat_avx512(const float *x, int64_t n, int lohi, fq_bstat *bs);
void fq_intcols_avx512(const fq_blockop *op, float *x, int64_t nrows, int64_t ncols,
                       uint64_t key, int64_t idx0, fq_qstats *st);
void fq_ident_avx512(const float *x, int64_t n, fq_qstats *st);

#endif
