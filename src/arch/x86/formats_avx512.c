/* formats_avx512.c - AVX-512 variant of the blocked grid kernel (formats_kernels.c):
 * sixteen elements at a time, bit-identical to the scalar fq_elem, statistics in the same
 * pass. The same design as formats_avx2.c (read that first), with mask registers for the
 * lane conditions; it also does stochastic rounding on per-lane-quantum grids, with the
 * draws computed eight 64-bit lanes at a time (vpmullq) exactly as fq_draw does. */
#include <immintrin.h>

#include "formats_internal.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define FS_LO 0x2b800000 /* 2^-40: float statistics below this are not trusted */
#define FS_HI 0x53800000 /* 2^40 */
#define FLOAT_FLUSH 32   /* vectors per lane summed in float before moving to double */

typedef struct gc16 {
    __m512i shift, ebn, minsub, tthr, ovf, inf, ftz, maxb, hmask, lsbor, lsbmask, lo;
    __m512i fmask, fadd, qlo, qrng, blo, brng, etop, mvec, k254, m23;
    __m128i scnt; /* 32 - shift: stochastic rounding on the quick bit path */
    __m128i fcnt;
    __mmask16 infclip; /* all ones when an Inf input becomes finite (clipped) */
    uint64_t key;      /* stochastic rounding: the draws' key */
    int pq, satq, mode;
} gc16;

static void gc16_init(gc16 *c, const fq_mfgrid *g, int pre_none) {
    int m = g->mode;
    uint32_t mask = (1u << g->shift) - 1;
    c->shift = _mm512_set1_epi32((int)g->shift);
    c->ebn = _mm512_set1_epi32(g->ebn);
    c->minsub = _mm512_set1_epi32((int)g->minsub_b);
    uint32_t t = INT32_MAX;
    if (g->hminsub_b && m == FQ_ROUND_RNE) t = g->hminsub_b;
    if (g->hminsub_b && m == FQ_ROUND_RNA) t = g->hminsub_b - 1;
    c->tthr = _mm512_set1_epi32((int)t);
    c->ovf = _mm512_set1_epi32((int)g->ovf_b);
    c->inf = _mm512_set1_epi32((int)g->inf_b);
    c->ftz = _mm512_set1_epi32(g->subnormals ? 0 : (int)g->minnorm_b);
    c->maxb = _mm512_set1_epi32((int)g->maxb);
    c->hmask = _mm512_set1_epi32(m == FQ_ROUND_RTZ ? 0 : -1);
    c->lsbor = _mm512_set1_epi32(m == FQ_ROUND_RNA);
    c->lsbmask = _mm512_set1_epi32(m != FQ_ROUND_RTZ);
    c->infclip = g->inf_b != FQ_F32_INF ? 0xffff : 0;
    c->lo = _mm512_set1_epi32((int)g->minnorm_b);
    c->fmask = _mm512_set1_epi32((int)~mask);
    c->fadd = _mm512_set1_epi32(m == FQ_ROUND_RTZ ? 0 : (int)(mask >> 1));
    c->fcnt = _mm_cvtsi32_si128((int)g->shift);
    c->pq = g->mbits >= 1 && g->mbits <= 22 && g->ebn - g->mbits >= 1 &&
            g->emax + 151 - g->mbits <= 254; /* 2^(e+23-M) of round_pq stays finite */
    c->etop = _mm512_set1_epi32(g->emax + 128);
    c->mvec = _mm512_set1_epi32(g->mbits);
    c->k254 = _mm512_set1_epi32(254);
    c->m23 = _mm512_set1_epi32(23 - g->mbits);
    c->mode = m;
    c->satq = c->pq && g->ovf_b == g->maxb;
    uint32_t blo = g->minnorm_b, bhi = g->maxb, lo = 0, hi = c->satq ? FQ_F32_MAX : g->maxb;
    if (pre_none) {
        blo = blo > FS_LO ? blo : FS_LO;
        bhi = bhi < FS_HI ? bhi : FS_HI;
        lo = FS_LO;
        hi = hi < FS_HI ? hi : FS_HI;
    }
    if (blo > bhi) blo = bhi = 0;
    if (!c->pq || lo > hi) lo = hi = 0;
    c->blo = _mm512_set1_epi32((int)blo);
    c->brng = _mm512_set1_epi32((int)(bhi - blo));
    c->qlo = _mm512_set1_epi32((int)lo);
    c->qrng = _mm512_set1_epi32((int)(hi - lo));
    c->scnt = _mm_cvtsi32_si128((int)(32 - g->shift));
}

typedef struct acc16 {
    __m512d sx2a, sx2b, se2a, se2b, mea, meb;
    __m512 fx2, fe2, fme, mx;
    __m512i clip, flush, nan, fin;
    int64_t nfin;
    int nf;
} acc16;

static void acc16_init(acc16 *a) {
    a->sx2a = a->sx2b = a->se2a = a->se2b = a->mea = a->meb = _mm512_setzero_pd();
    a->fx2 = a->fe2 = a->fme = a->mx = _mm512_setzero_ps();
    a->clip = a->flush = a->nan = a->fin = _mm512_setzero_si512();
    a->nfin = 0;
    a->nf = 0;
}

static ALWAYS_INLINE void acc16_fold(acc16 *a) {
    a->sx2a = _mm512_add_pd(a->sx2a, _mm512_cvtps_pd(_mm512_castps512_ps256(a->fx2)));
    a->sx2b = _mm512_add_pd(a->sx2b, _mm512_cvtps_pd(_mm512_extractf32x8_ps(a->fx2, 1)));
    a->se2a = _mm512_add_pd(a->se2a, _mm512_cvtps_pd(_mm512_castps512_ps256(a->fe2)));
    a->se2b = _mm512_add_pd(a->se2b, _mm512_cvtps_pd(_mm512_extractf32x8_ps(a->fe2, 1)));
    a->fx2 = a->fe2 = _mm512_setzero_ps();
    a->nf = 0;
}

static uint64_t hsum_epi32(__m512i v) {
    uint32_t t[16];
    _mm512_storeu_si512((void *)t, v);
    uint64_t s = 0;
    for (int i = 0; i < 16; i++) s += t[i];
    return s;
}

static void acc16_flush(acc16 *a, fq_sacc *s) {
    double d[8];
    float f[16];
    acc16_fold(a);
    _mm512_storeu_pd(d, _mm512_add_pd(a->sx2a, a->sx2b));
    s->sx2 += ((d[0] + d[1]) + (d[2] + d[3])) + ((d[4] + d[5]) + (d[6] + d[7]));
    _mm512_storeu_pd(d, _mm512_add_pd(a->se2a, a->se2b));
    s->se2 += ((d[0] + d[1]) + (d[2] + d[3])) + ((d[4] + d[5]) + (d[6] + d[7]));
    _mm512_storeu_ps(f, a->mx);
    for (int i = 0; i < 16; i++) if (f[i] > s->mx) s->mx = f[i];
    _mm512_storeu_ps(f, a->fme);
    for (int i = 0; i < 16; i++) if (f[i] > s->me) s->me = f[i];
    _mm512_storeu_pd(d, _mm512_max_pd(a->mea, a->meb));
    for (int i = 0; i < 8; i++) if (d[i] > s->me) s->me = d[i];
    s->clip += hsum_epi32(a->clip);
    s->flush += hsum_epi32(a->flush);
    s->nan += hsum_epi32(a->nan);
    s->fin += hsum_epi32(a->fin) + (uint64_t)a->nfin;
    acc16_init(a);
}

static ALWAYS_INLINE void stats_float(acc16 *a, __m512 x, __m512 y) {
    __m512 e = _mm512_sub_ps(y, x);
    a->fx2 = _mm512_fmadd_ps(x, x, a->fx2);
    a->fe2 = _mm512_fmadd_ps(e, e, a->fe2);
    a->fme = _mm512_max_ps(a->fme, _mm512_abs_ps(e));
    a->mx = _mm512_max_ps(a->mx, _mm512_abs_ps(x));
}

static ALWAYS_INLINE void stats_double(acc16 *a, __m512 x, __m512 y) {
    a->mx = _mm512_max_ps(a->mx, _mm512_abs_ps(x));
    __m512d xl = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
    __m512d xh = _mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1));
    __m512d el = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(y)), xl);
    __m512d eh = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(y, 1)), xh);
    a->sx2a = _mm512_fmadd_pd(xl, xl, a->sx2a);
    a->sx2b = _mm512_fmadd_pd(xh, xh, a->sx2b);
    a->se2a = _mm512_fmadd_pd(el, el, a->se2a);
    a->se2b = _mm512_fmadd_pd(eh, eh, a->se2b);
    a->mea = _mm512_max_pd(a->mea, _mm512_abs_pd(el));
    a->meb = _mm512_max_pd(a->meb, _mm512_abs_pd(eh));
}

/* Lanes of the unsigned a that are zero or within [lo, lo + rng] (zeros checked only
 * when some lane is outside the range). */
static ALWAYS_INLINE __mmask16 lanes_in(__m512i a, __m512i lo, __m512i rng) {
    __mmask16 k = _mm512_cmple_epu32_mask(_mm512_sub_epi32(a, lo), rng);
    if (k == 0xffff) return k;
    return k | _mm512_cmpeq_epi32_mask(a, _mm512_setzero_si512());
}

static ALWAYS_INLINE __m512i round_bits(const gc16 *c, __m512i av, __mmask16 *over) {
    const __m512i one = _mm512_set1_epi32(1), zero = _mm512_setzero_si512();
    __m512i e = _mm512_max_epi32(_mm512_srli_epi32(av, 23), one);
    __m512i s = _mm512_add_epi32(c->shift, _mm512_max_epi32(_mm512_sub_epi32(c->ebn, e), zero));
    __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, s), one);
    /* below the smallest normal a tie looks at the multiple's low bit: at s = 23 the
     * implicit bit, not the exponent's (see fq_mf_round) */
    __mmask16 sub = _mm512_cmplt_epu32_mask(av, c->lo) &
                    _mm512_cmpgt_epu32_mask(av, _mm512_set1_epi32(0x7fffff));
    __m512i src = _mm512_mask_or_epi32(av, sub, av, _mm512_set1_epi32(0x800000));
    __m512i lsb = _mm512_and_si512(_mm512_or_si512(_mm512_srlv_epi32(src, s), c->lsbor), c->lsbmask);
    __m512i add = _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(mask, 1), c->hmask), lsb);
    __m512i r = _mm512_andnot_si512(mask, _mm512_add_epi32(av, add));
    __mmask16 tiny = _mm512_cmpgt_epi32_mask(s, _mm512_set1_epi32(23));
    __m512i rt = _mm512_maskz_mov_epi32(_mm512_cmpgt_epi32_mask(av, c->tthr), c->minsub);
    r = _mm512_mask_mov_epi32(r, tiny, rt);
    r = _mm512_maskz_mov_epi32(_mm512_cmpge_epu32_mask(av, c->ftz), r);
    *over = _mm512_cmpgt_epi32_mask(r, c->maxb);
    return _mm512_mask_mov_epi32(r, *over, c->ovf);
}

/* fq_draw for the 16 elements idx .. idx + 15: the same 64-bit mix, eight lanes at a
 * time (vpmullq). */
static ALWAYS_INLINE __m512i draws16(uint64_t key, int64_t idx) {
    const __m512i g = _mm512_set1_epi64((long long)0x9e3779b97f4a7c15ull);
    const __m512i m1 = _mm512_set1_epi64((long long)0xbf58476d1ce4e5b9ull);
    const __m512i m2 = _mm512_set1_epi64((long long)0x94d049bb133111ebull);
    __m512i i0 = _mm512_add_epi64(_mm512_set1_epi64(idx), _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
    __m512i i1 = _mm512_add_epi64(i0, _mm512_set1_epi64(8));
    __m256i h[2];
    for (int k = 0; k < 2; k++) {
        __m512i z = _mm512_add_epi64(_mm512_set1_epi64((long long)key), _mm512_mullo_epi64(k ? i1 : i0, g));
        z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 30));
        z = _mm512_mullo_epi64(z, m1);
        z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 27));
        z = _mm512_mullo_epi64(z, m2);
        z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
        h[k] = _mm512_cvtepi64_epi32(_mm512_srli_epi64(z, 32));
    }
    return _mm512_inserti64x4(_mm512_castsi256_si512(h[0]), h[1], 1);
}

/* rnd: the lanes' 32-bit draws (stochastic rounding only). */
static ALWAYS_INLINE __m512i round_pq(const gc16 *c, __m512i av, __m512i rnd) {
    __m512i e = _mm512_min_epi32(_mm512_max_epi32(_mm512_srli_epi32(av, 23), c->ebn), c->etop);
    if (c->mode == FQ_ROUND_RNE) { /* the adder rounds at the quantum (see formats_avx2.c) */
        __m512 big = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(e, c->m23), 23));
        __m512 r = _mm512_sub_ps(_mm512_add_ps(_mm512_castsi512_ps(av), big), big);
        return _mm512_maskz_mov_epi32(_mm512_cmpge_epu32_mask(av, c->ftz), _mm512_castps_si512(r));
    }
    __m512i eq = _mm512_sub_epi32(e, c->mvec);
    __m512 q = _mm512_castsi512_ps(_mm512_slli_epi32(eq, 23));
    __m512 qi = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_sub_epi32(c->k254, eq), 23));
    __m512 a = _mm512_mul_ps(_mm512_castsi512_ps(av), qi), r;
    if (c->mode == FQ_ROUND_STOCHASTIC) {
        /* up with probability frac, as fq_mf_round: frac * 2^32 against the draw (the
         * product is exact and the conversion truncates, as the scalar shift does) */
        r = _mm512_roundscale_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        __m512i f = _mm512_cvttps_epu32(_mm512_mul_ps(_mm512_sub_ps(a, r), _mm512_set1_ps(0x1p32f)));
        r = _mm512_mask_add_ps(r, _mm512_cmplt_epu32_mask(rnd, f), r, _mm512_set1_ps(1.0f));
    } else if (c->mode == FQ_ROUND_RNE) {
        r = _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    } else {
        r = _mm512_roundscale_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        if (c->mode == FQ_ROUND_RNA) {
            __mmask16 up = _mm512_cmp_ps_mask(_mm512_sub_ps(a, r), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
            r = _mm512_mask_add_ps(r, up, r, _mm512_set1_ps(1.0f));
        }
    }
    __m512i rb = _mm512_castps_si512(_mm512_mul_ps(r, q));
    return _mm512_maskz_mov_epi32(_mm512_cmpge_epu32_mask(av, c->ftz), rb);
}

typedef struct lanesc {
    __m512 s_in, s_out;
    __m512i ymax, limp, limn;
} lanesc;

static ALWAYS_INLINE __m512i apply_lim(__m512i r, __m512i xb, const lanesc *L, __mmask16 *clip) {
    __mmask16 neg = _mm512_movepi32_mask(xb);
    __m512i l = _mm512_mask_mov_epi32(L->limp, neg, L->limn);
    *clip |= _mm512_cmpgt_epu32_mask(r, l);
    return _mm512_min_epu32(r, l);
}

static ALWAYS_INLINE __m512i post_scale(__m512i r, const lanesc *L, __mmask16 *clip) {
    __m512i yy = _mm512_castps_si512(_mm512_mul_ps(_mm512_castsi512_ps(r), L->s_out));
    *clip |= _mm512_cmpgt_epu32_mask(yy, L->ymax);
    return _mm512_min_epu32(yy, L->ymax);
}

static ALWAYS_INLINE __m512i count(__m512i c, __mmask16 k) {
    return _mm512_mask_sub_epi32(c, k, c, _mm512_set1_epi32(-1));
}

static ALWAYS_INLINE void step16(const gc16 *c, float *p, int pre, int lim, int fstat,
                                 const lanesc *L, acc16 *a, __m512i rnd) {
    const __m512i absm = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(FQ_F32_INF);
    const __m512i fmax = _mm512_set1_epi32(FQ_F32_MAX), zero = _mm512_setzero_si512();
    __m512 x = _mm512_loadu_ps(p);
    __m512i xb = _mm512_castps_si512(x);
    __m512i ax = _mm512_and_si512(xb, absm), sign = _mm512_andnot_si512(absm, xb);
    __m512 v = x;
    if (pre == FQ_PRE_MUL) v = _mm512_mul_ps(x, L->s_in);
    if (pre == FQ_PRE_DIV) v = _mm512_div_ps(x, L->s_in);
    __m512i av = pre == FQ_PRE_NONE ? ax : _mm512_and_si512(_mm512_castps_si512(v), absm);
    __m512i r;
    __mmask16 clip = 0;
    int path = lanes_in(av, c->blo, c->brng) == 0xffff                    ? 1
               : c->pq && lanes_in(av, c->qlo, c->qrng) == 0xffff ? 2 : 0;
    if (path) {
        if (path == 2) {
            r = round_pq(c, av, rnd);
            if (c->satq) {
                clip = _mm512_cmpgt_epu32_mask(r, c->maxb);
                r = _mm512_min_epu32(r, c->maxb);
            }
        } else if (c->mode == FQ_ROUND_STOCHASTIC) { /* as fq_mf_round: the cut bits vs the draw */
            __m512i f = _mm512_sll_epi32(_mm512_andnot_si512(c->fmask, av), c->scnt);
            r = _mm512_and_si512(av, c->fmask);
            r = _mm512_mask_sub_epi32(r, _mm512_cmplt_epu32_mask(rnd, f), r, c->fmask);
        } else {
            __m512i lsb = _mm512_and_si512(
                _mm512_or_si512(_mm512_srl_epi32(av, c->fcnt), c->lsbor), c->lsbmask);
            r = _mm512_and_si512(_mm512_add_epi32(_mm512_add_epi32(av, c->fadd), lsb), c->fmask);
        }
        if (lim) r = apply_lim(r, xb, L, &clip);
        __m512i yb = pre != FQ_PRE_NONE ? post_scale(r, L, &clip) : r;
        __m512 y = _mm512_castsi512_ps(_mm512_or_si512(yb, sign));
        _mm512_storeu_ps(p, y);
        if (lim || pre != FQ_PRE_NONE || c->satq) a->clip = count(a->clip, clip);
        if (path == 2 || pre != FQ_PRE_NONE) /* v may underflow to a zero lane */
            a->flush = count(a->flush, _mm512_test_epi32_mask(ax, ax) &
                                           _mm512_cmpeq_epi32_mask(yb, zero));
        a->nfin += 16;
        if (pre == FQ_PRE_NONE || fstat) stats_float(a, x, y);
        else stats_double(a, x, y);
        return;
    }
    __mmask16 over;
    if (c->pq) {
        r = round_pq(c, av, rnd);
        over = _mm512_cmpgt_epi32_mask(r, c->maxb);
        r = _mm512_mask_mov_epi32(r, over, c->ovf);
    } else {
        r = round_bits(c, av, &over);
    }
    __mmask16 special = _mm512_cmpgt_epi32_mask(av, fmax);
    __mmask16 isinf = _mm512_cmpeq_epi32_mask(av, inf);
    r = _mm512_mask_mov_epi32(r, isinf, c->inf);
    clip = (over & ~special) | (isinf & c->infclip);
    if (lim) r = apply_lim(r, xb, L, &clip);
    __m512i yb = pre != FQ_PRE_NONE ? post_scale(r, L, &clip) : r;
    __mmask16 isnanx = _mm512_cmpgt_epi32_mask(ax, inf);
    __m512i out = _mm512_mask_mov_epi32(_mm512_or_si512(yb, sign), isnanx, xb);
    _mm512_storeu_si512((void *)p, out);

    __mmask16 fin = _mm512_cmple_epi32_mask(ax, fmax) & _mm512_cmple_epi32_mask(yb, fmax);
    a->clip = count(a->clip, clip & ~isnanx);
    a->flush = count(a->flush, _mm512_test_epi32_mask(ax, ax) & ~isnanx &
                                   _mm512_cmpeq_epi32_mask(yb, zero));
    a->nan = count(a->nan, _mm512_cmpgt_epi32_mask(yb, inf) & ~isnanx);
    a->fin = count(a->fin, fin);
    __m512 xm = _mm512_maskz_mov_ps(fin, x);
    __m512 ym = _mm512_maskz_mov_ps(fin, _mm512_castsi512_ps(out));
    int safe = fstat;
    if (pre == FQ_PRE_NONE) {
        __m512i axm = _mm512_maskz_mov_epi32(fin, ax);
        safe = lanes_in(axm, _mm512_set1_epi32(FS_LO), _mm512_set1_epi32(FS_HI - FS_LO)) == 0xffff;
    }
    if (safe) stats_float(a, xm, ym);
    else stats_double(a, xm, ym);
}

/* Elements [i, m) of p with the scalar kernel; p[0] has index idx (stochastic draws). */
static void tail_scalar(const fq_mfgrid *g, const fq_scaling *sc, float *p, int64_t i,
                        int64_t m, uint64_t key, int64_t idx, fq_sacc *s) {
    for (; i < m; i++) {
        int fl = 0;
        uint32_t rnd = g->mode == FQ_ROUND_STOCHASTIC ? fq_draw(key, (uint64_t)(idx + i)) : 0;
        float y = fq_elem(g, sc, p[i], rnd, &fl);
        fq_sacc_add(s, p[i], y, fl);
        p[i] = y;
    }
}

static ALWAYS_INLINE int block_fstat(uint32_t amax_b) {
    return amax_b == 0 || (amax_b >= FS_LO && amax_b <= FS_HI);
}

/* The whole vectors of one block; returns how many elements they covered. The tail is
 * left to the scalar kernel by the caller, outside the vector loops: a call in those
 * loops would make the compiler keep the accumulators in memory. */
static ALWAYS_INLINE int64_t run_block(const gc16 *c, const fq_scaling *sc, int pre, int lim,
                                       int fstat, float *p, int64_t m, int64_t idx, acc16 *a) {
    lanesc L;
    L.s_in = _mm512_set1_ps(sc->s_in);
    L.s_out = _mm512_set1_ps(sc->s_out);
    L.ymax = _mm512_set1_epi32((int)sc->ymax_b);
    L.limp = _mm512_set1_epi32((int)sc->limp_b);
    L.limn = _mm512_set1_epi32((int)sc->limn_b);
    int64_t i = 0;
    if (fstat) {
        for (; i + 16 <= m; i += 16) {
            __m512i rnd = c->mode == FQ_ROUND_STOCHASTIC ? draws16(c->key, idx + i) : L.limp;
            step16(c, p + i, pre, lim, 1, &L, a, rnd);
            if (++a->nf == FLOAT_FLUSH) acc16_fold(a);
        }
    } else {
        for (; i + 16 <= m; i += 16) {
            __m512i rnd = c->mode == FQ_ROUND_STOCHASTIC ? draws16(c->key, idx + i) : L.limp;
            step16(c, p + i, pre, lim, 0, &L, a, rnd);
            if (++a->nf == FLOAT_FLUSH) acc16_fold(a);
        }
    }
    return i;
}

static ALWAYS_INLINE void bstat16(const float *x, int64_t n, int lohi, fq_bstat *bs) {
    const __m512i absm = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(FQ_F32_INF);
    __m512i m = _mm512_setzero_si512();
    __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512i a = _mm512_and_si512(_mm512_castps_si512(v), absm);
        m = _mm512_max_epu32(m, a);
        if (lohi) { /* non-finite lanes count as 0, which lo and hi hold already */
            __m512 f = _mm512_maskz_mov_ps(_mm512_cmplt_epi32_mask(a, inf), v);
            lo = _mm512_min_ps(lo, f);
            hi = _mm512_max_ps(hi, f);
        }
    }
    uint32_t mx = _mm512_reduce_max_epu32(m);
    float l = lohi ? _mm512_reduce_min_ps(lo) : 0.0f, h = lohi ? _mm512_reduce_max_ps(hi) : 0.0f;
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

static ALWAYS_INLINE void blocked_body(const fq_blockop *op, const gc16 *c, float *x, int64_t n,
                                       int64_t idx0, int pre, int lim, acc16 *a, fq_sacc *s) {
    const fq_mfgrid *g = op->g;
    if (op->rule == FQ_BR_FIXED) {
        int fstat = block_fstat(op->fixed_amax_b);
        for (int64_t b0 = 0; b0 < n; b0 += 1 << 20) { /* chunks keep the lane counters small */
            int64_t m = FQ_MIN(n - b0, 1 << 20);
            int64_t done = run_block(c, &op->fixed, pre, lim, fstat, x + b0, m, idx0 + b0, a);
            acc16_flush(a, s);
            tail_scalar(g, &op->fixed, x + b0, done, m, c->key, idx0 + b0, s);
        }
        return;
    }
    /* scales of a run of blocks first, then the elements (see formats_avx2.c) */
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
            bstat16(x + r0 + b0, m, lohi, &b);
            fs[j] = fq_block_prepare(op, x + r0 + b0, m, &b, &sc[j], s) ? -1
                                                                          : block_fstat(b.amax_b);
        }
        int64_t done[RUN];
        for (int64_t j = 0, b0 = 0; b0 < rn; j++, b0 += bk)
            done[j] = fs[j] < 0 ? bk : run_block(c, &sc[j], pre, lim, fs[j], x + r0 + b0,
                                                 FQ_MIN(bk, rn - b0), idx0 + r0 + b0, a);
        for (int64_t j = 0, b0 = 0; b0 < rn; j++, b0 += bk)
            if (done[j] < FQ_MIN(bk, rn - b0))
                tail_scalar(g, &sc[j], x + r0 + b0, done[j], FQ_MIN(bk, rn - b0), c->key,
                            idx0 + r0 + b0, s);
        if (r0 % (1 << 20) < RUN * bk) acc16_flush(a, s); /* before the lane counters wrap */
    }
    acc16_flush(a, s);
}

void fq_bstat_avx512(const float *x, int64_t n, int lohi, fq_bstat *bs) {
    bstat16(x, n, lohi, bs);
}

void fq_blocked_avx512(const fq_blockop *op, float *x, int64_t n, uint64_t key,
                       int64_t idx0, fq_qstats *st) {
    const fq_mfgrid *g = op->g;
    if (n <= 0) return;
    int fixed = op->rule == FQ_BR_FIXED;
    int pre = fixed ? op->fixed.pre : op->rule == FQ_BR_MX ? FQ_PRE_MUL : FQ_PRE_DIV;
    int lim = fixed ? op->fixed.limp_b != 0xffffffffu || op->fixed.limn_b != 0xffffffffu
                    : op->rule == FQ_BR_INTASYM;
    gc16 c;
    gc16_init(&c, g, pre == FQ_PRE_NONE);
    c.key = key;
    /* stochastic rounding runs here on per-lane quanta only; M = 23 never rounds */
    if ((g->mode == FQ_ROUND_STOCHASTIC && !c.pq) || g->mbits == 23) {
        fq_blocked_generic(op, x, n, key, idx0, st);
        return;
    }
    acc16 a;
    acc16_init(&a);
    fq_sacc s = {0};
    switch (pre * 2 + lim) {
    case FQ_PRE_NONE * 2: blocked_body(op, &c, x, n, idx0, FQ_PRE_NONE, 0, &a, &s); break;
    case FQ_PRE_NONE * 2 + 1: blocked_body(op, &c, x, n, idx0, FQ_PRE_NONE, 1, &a, &s); break;
    case FQ_PRE_MUL * 2: blocked_body(op, &c, x, n, idx0, FQ_PRE_MUL, 0, &a, &s); break;
    case FQ_PRE_MUL * 2 + 1: blocked_body(op, &c, x, n, idx0, FQ_PRE_MUL, 1, &a, &s); break;
    case FQ_PRE_DIV * 2: blocked_body(op, &c, x, n, idx0, FQ_PRE_DIV, 0, &a, &s); break;
    default: blocked_body(op, &c, x, n, idx0, FQ_PRE_DIV, 1, &a, &s); break;
    }
    fq_sacc_flush(&s, n, st);
}

/* Integers with one scale per column (see formats_avx2.c). */
void fq_intcols_avx512(const fq_blockop *op, float *x, int64_t nrows, int64_t ncols,
                       uint64_t key, int64_t idx0, fq_qstats *st) {
    enum { CH = 256 };
    const fq_mfgrid *g = op->g;
    if (g->mode == FQ_ROUND_STOCHASTIC || nrows <= 0 || ncols <= 0) {
        fq_intcols(op, x, nrows, ncols, key, idx0, st);
        return;
    }
    const __m512i absm = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(FQ_F32_INF);
    int lohi = op->rule == FQ_BR_INTASYM;
    gc16 c;
    gc16_init(&c, g, 0);
    acc16 a;
    acc16_init(&a);
    fq_sacc s = {0};
    for (int64_t c0 = 0; c0 < ncols; c0 += CH) {
        int64_t cn = FQ_MIN((int64_t)CH, ncols - c0), cv = cn & ~(int64_t)15;
        uint32_t amax[CH], limp[CH], limn[CH];
        float lo[CH], hi[CH], sin[CH], sout[CH];
        memset(amax, 0, sizeof amax);
        memset(lo, 0, sizeof lo);
        memset(hi, 0, sizeof hi);
        for (int64_t r = 0; r < nrows; r++) {
            const float *p = x + r * ncols + c0;
            for (int64_t j = 0; j < cv; j += 16) {
                __m512 v = _mm512_loadu_ps(p + j);
                __m512i av = _mm512_and_si512(_mm512_castps_si512(v), absm);
                __mmask16 f = _mm512_cmplt_epi32_mask(av, inf); /* scales from finite values */
                __m512i m = _mm512_loadu_si512((const void *)(amax + j));
                _mm512_storeu_si512((void *)(amax + j), _mm512_mask_max_epu32(m, f, m, av));
                if (lohi) {
                    __m512 vf = _mm512_maskz_mov_ps(f, v);
                    _mm512_storeu_ps(lo + j, _mm512_min_ps(_mm512_loadu_ps(lo + j), vf));
                    _mm512_storeu_ps(hi + j, _mm512_max_ps(_mm512_loadu_ps(hi + j), vf));
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
        L.ymax = _mm512_set1_epi32((int)FQ_F32_MAX);
        for (int64_t r = 0; r < nrows; r++) {
            float *p = x + r * ncols + c0;
            for (int64_t j = 0; j < cv; j += 16) {
                L.s_in = _mm512_loadu_ps(sin + j);
                L.s_out = _mm512_loadu_ps(sout + j);
                L.limp = _mm512_loadu_si512((const void *)(limp + j));
                L.limn = _mm512_loadu_si512((const void *)(limn + j));
                if (lohi) {
                    if (fstat) step16(&c, p + j, FQ_PRE_DIV, 1, 1, &L, &a, L.limp);
                    else step16(&c, p + j, FQ_PRE_DIV, 1, 0, &L, &a, L.limp);
                } else {
                    if (fstat) step16(&c, p + j, FQ_PRE_DIV, 0, 1, &L, &a, L.limp);
                    else step16(&c, p + j, FQ_PRE_DIV, 0, 0, &L, &a, L.limp);
                }
                if (++a.nf == FLOAT_FLUSH) acc16_fold(&a);
            }
        }
        acc16_flush(&a, &s);
        for (int64_t r = 0; r < nrows && cv < cn; r++)
            for (int64_t j = cv; j < cn; j++) tail_scalar(g, &sc[j], x + r * ncols + c0 + j, 0, 1, 0, 0, &s);
    }
    fq_sacc_flush(&s, nrows * ncols, st);
}

void fq_ident_avx512(const float *x, int64_t n, fq_qstats *st) {
    const __m512i absm = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(FQ_F32_INF);
    acc16 a;
    acc16_init(&a);
    fq_sacc s = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512i av = _mm512_and_si512(_mm512_castps_si512(v), absm);
        __mmask16 fin = _mm512_cmplt_epi32_mask(av, inf);
        __m512 xm = _mm512_maskz_mov_ps(fin, v);
        a.fin = count(a.fin, fin);
        __m512i axm = _mm512_maskz_mov_epi32(fin, av);
        if (lanes_in(axm, _mm512_set1_epi32(FS_LO), _mm512_set1_epi32(FS_HI - FS_LO)) == 0xffff) {
            a.fx2 = _mm512_fmadd_ps(xm, xm, a.fx2);
            a.mx = _mm512_max_ps(a.mx, _mm512_castsi512_ps(axm));
        } else {
            stats_double(&a, xm, xm);
        }
        if (++a.nf == FLOAT_FLUSH) acc16_fold(&a);
        if ((i & ((1 << 24) - 1)) == 0) acc16_flush(&a, &s);
    }
    for (; i < n; i++) fq_sacc_add(&s, x[i], x[i], 0);
    acc16_flush(&a, &s);
    fq_sacc_flush(&s, n, st);
}
