/* formats_avx2.c - AVX2 variant of the blocked grid kernel (formats_kernels.c): eight
 * elements at a time, bit-identical to the scalar fq_elem, statistics in the same pass.
 *
 * Each vector takes one of two paths: a short one when every lane is in the range where
 * nothing special can happen (finite, no overflow that does not saturate, float
 * statistics safe), and a long one that blends in tiny values, flushes, overflow, Inf and
 * NaN lane by lane. How a lane is rounded depends on the grid (see gc8_init): by its own
 * quantum with the FP adder or vroundps, or by integer arithmetic on the bits.
 * Blocks (MX, NVFP4, integer groups) get their scales in a first pass over a run of
 * blocks and their elements in a second. Stochastic rounding falls back to the scalar
 * kernel here (the AVX-512 variant has it). */
#include <immintrin.h>

#include "formats_internal.h"

/* Float statistics are exact enough (a relative 1e-6) and much cheaper than double ones,
 * but x^2 must neither overflow nor vanish: they are used where every |x| lies in
 * [2^-40, 2^40] (or is zero); elsewhere the sums are taken in double. */
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define FS_LO 0x2b800000 /* 2^-40 */
#define FS_HI 0x53800000 /* 2^40 */
#define FLOAT_FLUSH 32   /* vectors per lane summed in float before moving to double */

typedef struct gc8 {
    __m256i shift, ebn, minsub, tthr, ovf, inf, ftz, maxb, hmask, lsbor, lsbmask, infclip, lo;
    __m256i fmask, fadd;     /* the quick bit path: ~mask and the rounding add */
    __m256i qlo, qrng;       /* the quick pq path's range of |v| bits: [qlo, qlo + qrng] or 0 */
    __m256i blo, brng;       /* the quick bit path's range (normal lanes) */
    __m256i etop, mvec, k254, m23; /* per-lane quanta: exponent cap, M, 254, 23 - M */
    __m128i fcnt;            /* the quick bit path's shift count */
    int pq, satq, mode;
} gc8;

/* Two ways to round, chosen per grid:
 *  - pq (per-lane quantum): the quantum of each lane, 2^(max(e, emin) - M), is a normal
 *    F32 and so is its inverse; then r = round(|v| / quantum) * quantum with vroundps,
 *    exact, and ties, tiny values and binade carries come out right by themselves. Every
 *    grid with M >= 1 but those with 8 exponent bits (whose subnormal quanta are F32
 *    subnormals);
 *  - bits: integer arithmetic on the pattern, as fq_mf_round, with a short path for
 *    vectors whose lanes are all normal.
 * pre_none: the values reach the grid unscaled, so the quick range also keeps float
 * statistics safe. */
static void gc8_init(gc8 *c, const fq_mfgrid *g, int pre_none) {
    int m = g->mode;
    uint32_t mask = (1u << g->shift) - 1;
    c->shift = _mm256_set1_epi32((int)g->shift);
    c->ebn = _mm256_set1_epi32(g->ebn);
    c->minsub = _mm256_set1_epi32((int)g->minsub_b);
    uint32_t t = INT32_MAX;
    if (g->hminsub_b && m == FQ_ROUND_RNE) t = g->hminsub_b;
    if (g->hminsub_b && m == FQ_ROUND_RNA) t = g->hminsub_b - 1;
    c->tthr = _mm256_set1_epi32((int)t);
    c->ovf = _mm256_set1_epi32((int)g->ovf_b);
    c->inf = _mm256_set1_epi32((int)g->inf_b);
    c->ftz = _mm256_set1_epi32(g->subnormals ? 0 : (int)g->minnorm_b);
    c->maxb = _mm256_set1_epi32((int)g->maxb);
    c->hmask = _mm256_set1_epi32(m == FQ_ROUND_RTZ ? 0 : -1);
    c->lsbor = _mm256_set1_epi32(m == FQ_ROUND_RNA);
    c->lsbmask = _mm256_set1_epi32(m != FQ_ROUND_RTZ);
    c->infclip = _mm256_set1_epi32(g->inf_b != FQ_F32_INF ? -1 : 0);
    c->lo = _mm256_set1_epi32((int)g->minnorm_b);
    c->fmask = _mm256_set1_epi32((int)~mask);
    c->fadd = _mm256_set1_epi32(m == FQ_ROUND_RTZ ? 0 : (int)(mask >> 1));
    c->fcnt = _mm_cvtsi32_si128((int)g->shift);
    /* M = 0: ties between binades go by the exponent's parity (fq_mf_round), which the
     * quantum multiple does not see */
    c->pq = g->mbits >= 1 && g->mbits <= 22 && g->ebn - g->mbits >= 1 &&
            g->emax + 151 - g->mbits <= 254; /* 2^(e+23-M) of round_pq stays finite */
    c->etop = _mm256_set1_epi32(g->emax + 128);
    c->mvec = _mm256_set1_epi32(g->mbits);
    c->k254 = _mm256_set1_epi32(254);
    c->m23 = _mm256_set1_epi32(23 - g->mbits);
    c->mode = m;
    /* quick bit path: normal lanes; quick pq path: any finite lane when overflow
     * saturates (a min clamps it), else up to the largest value. Zeros pass both. With
     * unscaled values both also keep float statistics safe. */
    c->satq = c->pq && g->ovf_b == g->maxb;
    uint32_t blo = g->minnorm_b, bhi = g->maxb, lo = 0, hi = c->satq ? FQ_F32_MAX : g->maxb;
    if (pre_none) {
        blo = blo > FS_LO ? blo : FS_LO;
        bhi = bhi < FS_HI ? bhi : FS_HI;
        lo = FS_LO;
        hi = hi < FS_HI ? hi : FS_HI;
    }
    if (blo > bhi) blo = bhi = 0; /* no quick path: only zeros would pass */
    if (!c->pq || lo > hi) lo = hi = 0;
    c->blo = _mm256_set1_epi32((int)blo);
    c->brng = _mm256_set1_epi32((int)(bhi - blo));
    c->qlo = _mm256_set1_epi32((int)lo);
    c->qrng = _mm256_set1_epi32((int)(hi - lo));
}

typedef struct acc8 {
    __m256d sx2a, sx2b, se2a, se2b, mea, meb; /* double sums and max error */
    __m256 fx2, fe2, fme, mx;                 /* float sums (moved to double every
                                               * FLOAT_FLUSH vectors), max error, max |x| */
    __m256i clip, flush, nan, fin;            /* lane counters (the long path) */
    int64_t nfin;                             /* finite pairs counted by the quick path */
    int nf;                                   /* vectors since the float sums moved */
} acc8;

static void acc8_init(acc8 *a) {
    a->sx2a = a->sx2b = a->se2a = a->se2b = a->mea = a->meb = _mm256_setzero_pd();
    a->fx2 = a->fe2 = a->fme = a->mx = _mm256_setzero_ps();
    a->clip = a->flush = a->nan = a->fin = _mm256_setzero_si256();
    a->nfin = 0;
    a->nf = 0;
}

/* Moves the float sums into the double ones. */
static ALWAYS_INLINE void acc8_fold(acc8 *a) {
    a->sx2a = _mm256_add_pd(a->sx2a, _mm256_cvtps_pd(_mm256_castps256_ps128(a->fx2)));
    a->sx2b = _mm256_add_pd(a->sx2b, _mm256_cvtps_pd(_mm256_extractf128_ps(a->fx2, 1)));
    a->se2a = _mm256_add_pd(a->se2a, _mm256_cvtps_pd(_mm256_castps256_ps128(a->fe2)));
    a->se2b = _mm256_add_pd(a->se2b, _mm256_cvtps_pd(_mm256_extractf128_ps(a->fe2, 1)));
    a->fx2 = a->fe2 = _mm256_setzero_ps();
    a->nf = 0;
}

static uint64_t hsum_epi32(__m256i v) {
    uint32_t t[8];
    _mm256_storeu_si256((__m256i *)t, v);
    uint64_t s = 0;
    for (int i = 0; i < 8; i++) s += t[i];
    return s;
}

/* Moves every vector sum into s and clears a. */
static void acc8_flush(acc8 *a, fq_sacc *s) {
    double d[4];
    float f[8];
    acc8_fold(a);
    _mm256_storeu_pd(d, _mm256_add_pd(a->sx2a, a->sx2b));
    s->sx2 += (d[0] + d[1]) + (d[2] + d[3]);
    _mm256_storeu_pd(d, _mm256_add_pd(a->se2a, a->se2b));
    s->se2 += (d[0] + d[1]) + (d[2] + d[3]);
    _mm256_storeu_ps(f, a->mx);
    for (int i = 0; i < 8; i++) if (f[i] > s->mx) s->mx = f[i];
    _mm256_storeu_ps(f, a->fme);
    for (int i = 0; i < 8; i++) if (f[i] > s->me) s->me = f[i];
    _mm256_storeu_pd(d, _mm256_max_pd(a->mea, a->meb));
    for (int i = 0; i < 4; i++) if (d[i] > s->me) s->me = d[i];
    s->clip += hsum_epi32(a->clip);
    s->flush += hsum_epi32(a->flush);
    s->nan += hsum_epi32(a->nan);
    s->fin += hsum_epi32(a->fin) + (uint64_t)a->nfin;
    acc8_init(a);
}

/* Sums of x^2 and (y - x)^2, max |y - x|, max |x| (non-finite lanes already zeroed). */
static ALWAYS_INLINE void stats_float(acc8 *a, __m256 x, __m256 y) {
    const __m256 nz = _mm256_set1_ps(-0.0f);
    __m256 e = _mm256_sub_ps(y, x);
    a->fx2 = _mm256_fmadd_ps(x, x, a->fx2);
    a->fe2 = _mm256_fmadd_ps(e, e, a->fe2);
    a->fme = _mm256_max_ps(a->fme, _mm256_andnot_ps(nz, e));
    a->mx = _mm256_max_ps(a->mx, _mm256_andnot_ps(nz, x));
}

static ALWAYS_INLINE void stats_double(acc8 *a, __m256 x, __m256 y) {
    const __m256d nzd = _mm256_set1_pd(-0.0);
    a->mx = _mm256_max_ps(a->mx, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x));
    __m256d xl = _mm256_cvtps_pd(_mm256_castps256_ps128(x));
    __m256d xh = _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
    /* y - x is exact in double, as in the scalar path */
    __m256d el = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(y)), xl);
    __m256d eh = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(y, 1)), xh);
    a->sx2a = _mm256_fmadd_pd(xl, xl, a->sx2a);
    a->sx2b = _mm256_fmadd_pd(xh, xh, a->sx2b);
    a->se2a = _mm256_fmadd_pd(el, el, a->se2a);
    a->se2b = _mm256_fmadd_pd(eh, eh, a->se2b);
    a->mea = _mm256_max_pd(a->mea, _mm256_andnot_pd(nzd, el));
    a->meb = _mm256_max_pd(a->meb, _mm256_andnot_pd(nzd, eh));
}

/* All lanes of the unsigned a zero or within [lo, lo + rng]. Zeros are checked only when
 * the plain range test fails: they are rare in most tensors, common in a few (softmax). */
static ALWAYS_INLINE int all_in(__m256i a, __m256i lo, __m256i rng) {
    __m256i t = _mm256_sub_epi32(a, lo);
    __m256i ok = _mm256_cmpeq_epi32(_mm256_min_epu32(t, rng), t);
    if (_mm256_movemask_ps(_mm256_castsi256_ps(ok)) == 0xff) return 1;
    ok = _mm256_or_si256(ok, _mm256_cmpeq_epi32(a, _mm256_setzero_si256()));
    return _mm256_movemask_ps(_mm256_castsi256_ps(ok)) == 0xff;
}

/* The general bit-rounding of |v| (av); *over gets the lanes that overflowed. */
static ALWAYS_INLINE __m256i round_bits(const gc8 *c, __m256i av, __m256i *over) {
    const __m256i one = _mm256_set1_epi32(1), zero = _mm256_setzero_si256();
    __m256i e = _mm256_max_epi32(_mm256_srli_epi32(av, 23), one);
    __m256i s = _mm256_add_epi32(c->shift, _mm256_max_epi32(_mm256_sub_epi32(c->ebn, e), zero));
    __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, s), one);
    /* below the smallest normal the tie looks at the multiple's low bit: at s = 23 that
     * is the implicit bit, not the exponent's (see fq_mf_round) */
    __m256i sub = _mm256_and_si256(_mm256_cmpgt_epi32(c->lo, av),
                                   _mm256_cmpgt_epi32(av, _mm256_set1_epi32(0x7fffff)));
    __m256i src = _mm256_or_si256(av, _mm256_and_si256(sub, _mm256_set1_epi32(0x800000)));
    __m256i lsb = _mm256_and_si256(_mm256_or_si256(_mm256_srlv_epi32(src, s), c->lsbor), c->lsbmask);
    __m256i add = _mm256_add_epi32(_mm256_and_si256(_mm256_srli_epi32(mask, 1), c->hmask), lsb);
    __m256i r = _mm256_andnot_si256(mask, _mm256_add_epi32(av, add));
    __m256i tiny = _mm256_cmpgt_epi32(s, _mm256_set1_epi32(23));
    __m256i rt = _mm256_and_si256(_mm256_cmpgt_epi32(av, c->tthr), c->minsub);
    r = _mm256_blendv_epi8(r, rt, tiny);
    r = _mm256_andnot_si256(_mm256_cmpgt_epi32(c->ftz, av), r);
    *over = _mm256_cmpgt_epi32(r, c->maxb);
    return _mm256_blendv_epi8(r, c->ovf, *over);
}

/* Rounding of |v| with each lane's own quantum (see gc8_init): exact, as every scaling
 * is by a power of two. Lanes past the top binade get its quantum, so they round to
 * values past the largest and are caught as overflow. */
static ALWAYS_INLINE __m256i round_pq(const gc8 *c, __m256i av) {
    __m256i e = _mm256_min_epi32(_mm256_max_epi32(_mm256_srli_epi32(av, 23), c->ebn), c->etop);
    if (c->mode == FQ_ROUND_RNE) {
        /* ties to even by the adder: |v| + 2^(eq+23) rounds at the quantum 2^eq, and
         * subtracting it back is exact (M <= 22 keeps |v| below it in range) */
        __m256 big = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e, c->m23), 23));
        __m256 r = _mm256_sub_ps(_mm256_add_ps(_mm256_castsi256_ps(av), big), big);
        return _mm256_andnot_si256(_mm256_cmpgt_epi32(c->ftz, av), _mm256_castps_si256(r));
    }
    __m256i eq = _mm256_sub_epi32(e, c->mvec);
    __m256 q = _mm256_castsi256_ps(_mm256_slli_epi32(eq, 23));
    __m256 qi = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_sub_epi32(c->k254, eq), 23));
    __m256 a = _mm256_mul_ps(_mm256_castsi256_ps(av), qi), r;
    if (c->mode == FQ_ROUND_RNE) {
        r = _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    } else {
        r = _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        if (c->mode == FQ_ROUND_RNA) {
            __m256 up = _mm256_cmp_ps(_mm256_sub_ps(a, r), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
            r = _mm256_add_ps(r, _mm256_and_ps(up, _mm256_set1_ps(1.0f)));
        }
    }
    __m256i rb = _mm256_castps_si256(_mm256_mul_ps(r, q));
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(c->ftz, av), rb);
}

typedef struct lanesc {
    __m256 s_in, s_out;
    __m256i ymax, limp, limn;
} lanesc;

/* Bounds the rounded magnitude by the sign's limit (asymmetric integers). */
static ALWAYS_INLINE __m256i apply_lim(__m256i r, __m256 x, const lanesc *L, __m256i *clip) {
    __m256i l = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(L->limp),
                                                     _mm256_castsi256_ps(L->limn), x));
    __m256i rc = _mm256_min_epu32(r, l);
    *clip = _mm256_or_si256(*clip, _mm256_xor_si256(_mm256_cmpeq_epi32(rc, r), _mm256_set1_epi32(-1)));
    return rc;
}

/* r * s_out, kept within ymax. */
static ALWAYS_INLINE __m256i post_scale(__m256i r, const lanesc *L, __m256i *clip) {
    __m256i yy = _mm256_castps_si256(_mm256_mul_ps(_mm256_castsi256_ps(r), L->s_out));
    __m256i yb = _mm256_min_epu32(yy, L->ymax);
    *clip = _mm256_or_si256(*clip, _mm256_xor_si256(_mm256_cmpeq_epi32(yb, yy), _mm256_set1_epi32(-1)));
    return yb;
}

/* One vector of 8: load, round, store, statistics. pre, lim and fstat are constants at
 * every call site, so each combination compiles to straight-line code. fstat: float
 * statistics are safe for this block (scaled formats; unscaled ones decide per vector). */
static ALWAYS_INLINE void step8(const gc8 *c, float *p, int pre, int lim, int fstat,
                                const lanesc *L, acc8 *a) {
    const __m256i absm = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(FQ_F32_INF);
    const __m256i fmax = _mm256_set1_epi32(FQ_F32_MAX), zero = _mm256_setzero_si256();
    __m256 x = _mm256_loadu_ps(p);
    __m256i xb = _mm256_castps_si256(x);
    __m256i ax = _mm256_and_si256(xb, absm), sign = _mm256_andnot_si256(absm, xb);
    __m256 v = x;
    if (pre == FQ_PRE_MUL) v = _mm256_mul_ps(x, L->s_in);
    if (pre == FQ_PRE_DIV) v = _mm256_div_ps(x, L->s_in);
    __m256i av = pre == FQ_PRE_NONE ? ax : _mm256_and_si256(_mm256_castps_si256(v), absm);
    __m256i r, clip = zero;
    /* 1: every lane normal and in range (the bit path); 2: every lane finite and, unless
     * overflow saturates, in range (the pq path); 0: the long path */
    int path = all_in(av, c->blo, c->brng) ? 1 : c->pq && all_in(av, c->qlo, c->qrng) ? 2 : 0;
    if (path) {
        if (path == 2) {
            r = round_pq(c, av);
            if (c->satq) { /* saturate */
                __m256i rc = _mm256_min_epu32(r, c->maxb);
                clip = _mm256_xor_si256(_mm256_cmpeq_epi32(rc, r), _mm256_set1_epi32(-1));
                r = rc;
            }
        } else {
            __m256i lsb = _mm256_and_si256(
                _mm256_or_si256(_mm256_srl_epi32(av, c->fcnt), c->lsbor), c->lsbmask);
            r = _mm256_and_si256(_mm256_add_epi32(_mm256_add_epi32(av, c->fadd), lsb), c->fmask);
        }
        if (lim) r = apply_lim(r, x, L, &clip);
        __m256i yb = pre != FQ_PRE_NONE ? post_scale(r, L, &clip) : r;
        __m256 y = _mm256_castsi256_ps(_mm256_or_si256(yb, sign));
        _mm256_storeu_ps(p, y);
        if (lim || pre != FQ_PRE_NONE || c->satq) a->clip = _mm256_sub_epi32(a->clip, clip);
        if (path == 2 || pre != FQ_PRE_NONE) /* small values may round to zero */
            a->flush = _mm256_sub_epi32(a->flush, _mm256_andnot_si256(_mm256_cmpeq_epi32(ax, zero),
                                                                      _mm256_cmpeq_epi32(yb, zero)));
        a->nfin += 8;
        if (pre == FQ_PRE_NONE || fstat) stats_float(a, x, y);
        else stats_double(a, x, y);
        return;
    }
    __m256i over;
    r = c->pq ? round_pq(c, av) : round_bits(c, av, &over);
    if (c->pq) {
        over = _mm256_cmpgt_epi32(r, c->maxb);
        r = _mm256_blendv_epi8(r, c->ovf, over);
    }
    __m256i special = _mm256_cmpgt_epi32(av, fmax);
    __m256i isinf = _mm256_cmpeq_epi32(av, inf);
    r = _mm256_blendv_epi8(r, c->inf, isinf);
    clip = _mm256_or_si256(_mm256_andnot_si256(special, over), _mm256_and_si256(isinf, c->infclip));
    if (lim) r = apply_lim(r, x, L, &clip);
    /* scaled grids saturate: r is finite here unless x is NaN, which is replaced below */
    __m256i yb = pre != FQ_PRE_NONE ? post_scale(r, L, &clip) : r;
    __m256i isnanx = _mm256_cmpgt_epi32(ax, inf);
    __m256i out = _mm256_blendv_epi8(_mm256_or_si256(yb, sign), xb, isnanx);
    _mm256_storeu_si256((__m256i *)p, out);

    __m256i fin = _mm256_cmpeq_epi32(_mm256_or_si256(_mm256_cmpgt_epi32(ax, fmax),
                                                     _mm256_cmpgt_epi32(yb, fmax)), zero);
    a->clip = _mm256_sub_epi32(a->clip, _mm256_andnot_si256(isnanx, clip));
    a->flush = _mm256_sub_epi32(
        a->flush, _mm256_andnot_si256(_mm256_or_si256(_mm256_cmpeq_epi32(ax, zero), isnanx),
                                      _mm256_cmpeq_epi32(yb, zero)));
    a->nan = _mm256_sub_epi32(a->nan, _mm256_andnot_si256(isnanx, _mm256_cmpgt_epi32(yb, inf)));
    a->fin = _mm256_sub_epi32(a->fin, fin);
    __m256 xm = _mm256_and_ps(x, _mm256_castsi256_ps(fin));
    __m256 ym = _mm256_and_ps(_mm256_castsi256_ps(out), _mm256_castsi256_ps(fin));
    int safe = fstat;
    if (pre == FQ_PRE_NONE) {
        __m256i axm = _mm256_and_si256(ax, fin);
        __m256i t = _mm256_sub_epi32(axm, _mm256_set1_epi32(FS_LO));
        __m256i ok = _mm256_or_si256(_mm256_cmpeq_epi32(_mm256_min_epu32(t, _mm256_set1_epi32(FS_HI - FS_LO)), t),
                                     _mm256_cmpeq_epi32(axm, zero));
        safe = _mm256_movemask_ps(_mm256_castsi256_ps(ok)) == 0xff;
    }
    if (safe) stats_float(a, xm, ym);
    else stats_double(a, xm, ym);
}

/* Elements [i, m) of p one at a time with the scalar kernel. */
static void tail_scalar(const fq_mfgrid *g, const fq_scaling *sc, float *p, int64_t i,
                        int64_t m, fq_sacc *s) {
    for (; i < m; i++) {
        int fl = 0;
        float y = fq_elem(g, sc, p[i], 0, &fl);
        fq_sacc_add(s, p[i], y, fl);
        p[i] = y;
    }
}

/* Float statistics are safe for a block whose largest |x| is in [2^-40, 2^40] (or 0). */
static ALWAYS_INLINE int block_fstat(uint32_t amax_b) {
    return amax_b == 0 || (amax_b >= FS_LO && amax_b <= FS_HI);
}

static ALWAYS_INLINE void lanes_set(lanesc *L, const fq_scaling *sc) {
    L->s_in = _mm256_set1_ps(sc->s_in);
    L->s_out = _mm256_set1_ps(sc->s_out);
    L->ymax = _mm256_set1_epi32((int)sc->ymax_b);
    L->limp = _mm256_set1_epi32((int)sc->limp_b);
    L->limn = _mm256_set1_epi32((int)sc->limn_b);
}

/* The whole vectors of one block; returns how many elements they covered. The tail is
 * left to the scalar kernel by the caller, outside the vector loops: a call in those
 * loops would make the compiler keep the accumulators in memory. */
static ALWAYS_INLINE int64_t run_block(const gc8 *c, const fq_scaling *sc, int pre, int lim,
                                       int fstat, float *p, int64_t m, acc8 *a) {
    lanesc L;
    lanes_set(&L, sc);
    int64_t i = 0;
    if (fstat) {
        for (; i + 8 <= m; i += 8) {
            step8(c, p + i, pre, lim, 1, &L, a);
            if (++a->nf == FLOAT_FLUSH) acc8_fold(a);
        }
    } else {
        for (; i + 8 <= m; i += 8) {
            step8(c, p + i, pre, lim, 0, &L, a);
            if (++a->nf == FLOAT_FLUSH) acc8_fold(a);
        }
    }
    return i;
}

static ALWAYS_INLINE void bstat8(const float *x, int64_t n, int lohi, fq_bstat *bs) {
    const __m256i absm = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(FQ_F32_INF);
    __m256i m = _mm256_setzero_si256();
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256i a = _mm256_and_si256(_mm256_castps_si256(v), absm);
        m = _mm256_max_epu32(m, a);
        if (lohi) { /* non-finite lanes count as 0, which lo and hi hold already */
            __m256 f = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_cmpgt_epi32(inf, a)));
            lo = _mm256_min_ps(lo, f);
            hi = _mm256_max_ps(hi, f);
        }
    }
    __m128i m4 = _mm_max_epu32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1));
    m4 = _mm_max_epu32(m4, _mm_shuffle_epi32(m4, 0x4e));
    m4 = _mm_max_epu32(m4, _mm_shuffle_epi32(m4, 0xb1));
    uint32_t mx = (uint32_t)_mm_cvtsi128_si32(m4);
    float l = 0.0f, h = 0.0f;
    if (lohi) {
        __m128 l4 = _mm_min_ps(_mm256_castps256_ps128(lo), _mm256_extractf128_ps(lo, 1));
        __m128 h4 = _mm_max_ps(_mm256_castps256_ps128(hi), _mm256_extractf128_ps(hi, 1));
        l4 = _mm_min_ps(l4, _mm_shuffle_ps(l4, l4, 0x4e));
        h4 = _mm_max_ps(h4, _mm_shuffle_ps(h4, h4, 0x4e));
        l4 = _mm_min_ps(l4, _mm_shuffle_ps(l4, l4, 0xb1));
        h4 = _mm_max_ps(h4, _mm_shuffle_ps(h4, h4, 0xb1));
        l = _mm_cvtss_f32(l4);
        h = _mm_cvtss_f32(h4);
    }
    for (; i < n; i++) {
        uint32_t a = fq_f2u(x[i]) & 0x7fffffffu;
        if (a > mx) mx = a;
        if (lohi && a < FQ_F32_INF) {
            if (x[i] < l) l = x[i];
            if (x[i] > h) h = x[i];
        }
    }
    bs->amax_b = mx;
    bs->lo = l;
    bs->hi = h;
}

/* The whole call for one (pre, lim) combination, both constants after inlining. */
static ALWAYS_INLINE void blocked_body(const fq_blockop *op, const gc8 *c, float *x, int64_t n,
                                       int pre, int lim, acc8 *a, fq_sacc *s) {
    const fq_mfgrid *g = op->g;
    if (op->rule == FQ_BR_FIXED) {
        int fstat = block_fstat(op->fixed_amax_b);
        for (int64_t b0 = 0; b0 < n; b0 += 1 << 20) { /* chunks keep the lane counters small */
            int64_t m = FQ_MIN(n - b0, 1 << 20);
            int64_t done = run_block(c, &op->fixed, pre, lim, fstat, x + b0, m, a);
            acc8_flush(a, s);
            tail_scalar(g, &op->fixed, x + b0, done, m, s);
        }
        return;
    }
    /* Two passes over a run of blocks: first every block's scale, then the elements. The
     * scales (scalar divisions for NVFP4 and integers) are then independent of each
     * other and of the vector work, instead of one long chain per block. */
    enum { RUN = 64 };
    int lohi = op->rule == FQ_BR_INTASYM;
    int64_t bk = op->block;
    for (int64_t r0 = 0; r0 < n; r0 += RUN * bk) {
        int64_t rn = FQ_MIN(RUN * bk, n - r0);
        fq_scaling sc[RUN];
        int fs[RUN];
        for (int64_t j = 0, b0 = 0; b0 < rn; j++, b0 += bk) {
            int64_t m = FQ_MIN(bk, rn - b0);
            fq_bstat b;
            bstat8(x + r0 + b0, m, lohi, &b);
            fs[j] = fq_block_prepare(op, x + r0 + b0, m, &b, &sc[j], s) ? -1
                                                                          : block_fstat(b.amax_b);
        }
        int64_t done[RUN];
        for (int64_t j = 0, b0 = 0; b0 < rn; j++, b0 += bk)
            done[j] = fs[j] < 0 ? bk : run_block(c, &sc[j], pre, lim, fs[j], x + r0 + b0,
                                                 FQ_MIN(bk, rn - b0), a);
        for (int64_t j = 0, b0 = 0; b0 < rn; j++, b0 += bk)
            if (done[j] < FQ_MIN(bk, rn - b0))
                tail_scalar(g, &sc[j], x + r0 + b0, done[j], FQ_MIN(bk, rn - b0), s);
        if (r0 % (1 << 20) < RUN * bk) acc8_flush(a, s); /* before the lane counters wrap */
    }
    acc8_flush(a, s);
}

void fq_bstat_avx2(const float *x, int64_t n, int lohi, fq_bstat *bs) {
    bstat8(x, n, lohi, bs);
}

void fq_blocked_avx2(const fq_blockop *op, float *x, int64_t n, uint64_t key, int64_t idx0,
                     fq_qstats *st) {
    const fq_mfgrid *g = op->g;
    if (n <= 0) return;
    if (g->mode == FQ_ROUND_STOCHASTIC || g->mbits == 23) { /* scalar only */
        fq_blocked_generic(op, x, n, key, idx0, st);
        return;
    }
    /* the scaling kind and the asymmetric limits are the same for every block */
    int fixed = op->rule == FQ_BR_FIXED;
    int pre = fixed ? op->fixed.pre : op->rule == FQ_BR_MX ? FQ_PRE_MUL : FQ_PRE_DIV;
    int lim = fixed ? op->fixed.limp_b != 0xffffffffu || op->fixed.limn_b != 0xffffffffu
                    : op->rule == FQ_BR_INTASYM;
    gc8 c;
    gc8_init(&c, g, pre == FQ_PRE_NONE);
    acc8 a;
    acc8_init(&a);
    fq_sacc s = {0};
    switch (pre * 2 + lim) {
    case FQ_PRE_NONE * 2: blocked_body(op, &c, x, n, FQ_PRE_NONE, 0, &a, &s); break;
    case FQ_PRE_NONE * 2 + 1: blocked_body(op, &c, x, n, FQ_PRE_NONE, 1, &a, &s); break;
    case FQ_PRE_MUL * 2: blocked_body(op, &c, x, n, FQ_PRE_MUL, 0, &a, &s); break;
    case FQ_PRE_MUL * 2 + 1: blocked_body(op, &c, x, n, FQ_PRE_MUL, 1, &a, &s); break;
    case FQ_PRE_DIV * 2: blocked_body(op, &c, x, n, FQ_PRE_DIV, 0, &a, &s); break;
    default: blocked_body(op, &c, x, n, FQ_PRE_DIV, 1, &a, &s); break;
    }
    fq_sacc_flush(&s, n, st);
}

/* Integers with one scale per column: the column statistics of a run of columns over all
 * rows first, then each row's vectors with the scales of their lanes. */
void fq_intcols_avx2(const fq_blockop *op, float *x, int64_t nrows, int64_t ncols,
                     uint64_t key, int64_t idx0, fq_qstats *st) {
    enum { CH = 256 };
    const fq_mfgrid *g = op->g;
    if (g->mode == FQ_ROUND_STOCHASTIC || nrows <= 0 || ncols <= 0) {
        fq_intcols(op, x, nrows, ncols, key, idx0, st);
        return;
    }
    const __m256i absm = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(FQ_F32_INF);
    int lohi = op->rule == FQ_BR_INTASYM;
    gc8 c;
    gc8_init(&c, g, 0);
    acc8 a;
    acc8_init(&a);
    fq_sacc s = {0};
    for (int64_t c0 = 0; c0 < ncols; c0 += CH) {
        int64_t cn = FQ_MIN((int64_t)CH, ncols - c0), cv = cn & ~(int64_t)7;
        uint32_t amax[CH];
        float lo[CH], hi[CH], sin[CH], sout[CH];
        uint32_t limp[CH], limn[CH];
        memset(amax, 0, sizeof amax);
        memset(lo, 0, sizeof lo);
        memset(hi, 0, sizeof hi);
        for (int64_t r = 0; r < nrows; r++) {
            const float *p = x + r * ncols + c0;
            for (int64_t j = 0; j < cv; j += 8) {
                __m256 v = _mm256_loadu_ps(p + j);
                __m256i av = _mm256_and_si256(_mm256_castps_si256(v), absm);
                __m256i f = _mm256_cmpgt_epi32(inf, av); /* scales come from finite values */
                __m256i m = _mm256_loadu_si256((const __m256i *)(amax + j));
                _mm256_storeu_si256((__m256i *)(amax + j), _mm256_max_epu32(m, _mm256_and_si256(av, f)));
                if (lohi) {
                    __m256 vf = _mm256_and_ps(v, _mm256_castsi256_ps(f));
                    _mm256_storeu_ps(lo + j, _mm256_min_ps(_mm256_loadu_ps(lo + j), vf));
                    _mm256_storeu_ps(hi + j, _mm256_max_ps(_mm256_loadu_ps(hi + j), vf));
                }
            }
            for (int64_t j = cv; j < cn; j++) {
                uint32_t v = fq_f2u(p[j]) & 0x7fffffffu;
                if (v >= FQ_F32_INF) continue;
                if (v > amax[j]) amax[j] = v;
                if (p[j] < lo[j]) lo[j] = p[j];
                if (p[j] > hi[j]) hi[j] = p[j];
            }
        }
        fq_scaling sc[CH];
        int fstat = 1;
        for (int64_t j = 0; j < cn; j++) {
            fq_bstat b = {amax[j], lo[j], hi[j]};
            fq_block_scaling(op, &b, &sc[j]);
            sin[j] = sc[j].s_in;
            sout[j] = sc[j].s_out;
            limp[j] = sc[j].limp_b;
            limn[j] = sc[j].limn_b;
            fstat &= block_fstat(amax[j]);
        }
        lanesc L;
        L.ymax = _mm256_set1_epi32((int)FQ_F32_MAX);
        for (int64_t r = 0; r < nrows; r++) {
            float *p = x + r * ncols + c0;
            for (int64_t j = 0; j < cv; j += 8) {
                L.s_in = _mm256_loadu_ps(sin + j);
                L.s_out = _mm256_loadu_ps(sout + j);
                L.limp = _mm256_loadu_si256((const __m256i *)(limp + j));
                L.limn = _mm256_loadu_si256((const __m256i *)(limn + j));
                if (lohi) {
                    if (fstat) step8(&c, p + j, FQ_PRE_DIV, 1, 1, &L, &a);
                    else step8(&c, p + j, FQ_PRE_DIV, 1, 0, &L, &a);
                } else {
                    if (fstat) step8(&c, p + j, FQ_PRE_DIV, 0, 1, &L, &a);
                    else step8(&c, p + j, FQ_PRE_DIV, 0, 0, &L, &a);
                }
                if (++a.nf == FLOAT_FLUSH) acc8_fold(&a);
            }
        }
        acc8_flush(&a, &s);
        for (int64_t r = 0; r < nrows && cv < cn; r++)
            for (int64_t j = cv; j < cn; j++) tail_scalar(g, &sc[j], x + r * ncols + c0 + j, 0, 1, &s);
    }
    fq_sacc_flush(&s, nrows * ncols, st);
}

void fq_ident_avx2(const float *x, int64_t n, fq_qstats *st) {
    const __m256i absm = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(FQ_F32_INF);
    acc8 a;
    acc8_init(&a);
    fq_sacc s = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256i av = _mm256_and_si256(_mm256_castps_si256(v), absm);
        __m256i fin = _mm256_cmpgt_epi32(inf, av);
        __m256 xm = _mm256_and_ps(v, _mm256_castsi256_ps(fin));
        a.fin = _mm256_sub_epi32(a.fin, fin);
        /* y = x: only x^2 and max |x| to add */
        __m256i axm = _mm256_and_si256(av, fin);
        if (all_in(axm, _mm256_set1_epi32(FS_LO), _mm256_set1_epi32(FS_HI - FS_LO))) {
            a.fx2 = _mm256_fmadd_ps(xm, xm, a.fx2);
            a.mx = _mm256_max_ps(a.mx, _mm256_castsi256_ps(axm));
        } else {
            stats_double(&a, xm, xm);
        }
        if (++a.nf == FLOAT_FLUSH) acc8_fold(&a);
        if ((i & ((1 << 24) - 1)) == 0) acc8_flush(&a, &s);
    }
    for (; i < n; i++) fq_sacc_add(&s, x[i], x[i], 0);
    acc8_flush(&a, &s);
    fq_sacc_flush(&s, n, st);
}
