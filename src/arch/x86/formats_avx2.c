/* formats_avx2.c - AVX2 variant of the blocked grid kernel (formats_kernels.c): eight
 * elements at a time, bit-identical to the scalar fq_elem, statistics in the same pass.
 *
 * Two ways to round, chosen per grid:
 *  - grids with one quantum everywhere (integers, MXINT8: emin == emax) round with
 *    vroundps on v / quantum, which handles ties and tiny values in one instruction;
 *  - minifloats round on the bits: a vector whose lanes all lie in the normal range
 *    takes a short path with a constant shift; otherwise every lane gets its own shift
 *    (wider below the smallest normal) and the tiny, flush, overflow and special cases
 *    are blended in. */
#include <immintrin.h>

#include "formats_internal.h"

typedef struct gc8 {
    __m256i shift, ebn, minsub, tthr, ovf, inf, ftz, maxb, hmask, lsbor, lsbmask, infclip;
    __m256i fmask, fadd, lo, rng; /* the short path: ~mask, rounding add, range test */
    __m128i fcnt;                 /* the short path's shift count */
    __m256 qinv, q;               /* fixed-quantum grids: 1 / quantum and quantum */
    int fixedq, mode;
} gc8;

static void gc8_init(gc8 *c, const fq_mfgrid *g) {
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
    c->fmask = _mm256_set1_epi32((int)~mask);
    c->fadd = _mm256_set1_epi32(m == FQ_ROUND_RTZ ? 0 : (int)(mask >> 1));
    c->fcnt = _mm_cvtsi32_si128((int)g->shift);
    c->lo = _mm256_set1_epi32((int)g->minnorm_b);
    c->rng = _mm256_set1_epi32((int)(g->maxb - g->minnorm_b));
    c->fixedq = g->emin == g->emax;
    c->q = _mm256_set1_ps(fq_pow2f(g->emin - g->mbits));
    c->qinv = _mm256_set1_ps(fq_pow2f(g->mbits - g->emin));
    c->mode = m;
}

typedef struct acc8 {
    __m256d sx2a, sx2b, se2a, se2b, mea, meb;
    __m256 mx;
    __m256i clip, flush, nan, fin;
    int64_t nvec;
} acc8;

static void acc8_init(acc8 *a) {
    a->sx2a = a->sx2b = a->se2a = a->se2b = a->mea = a->meb = _mm256_setzero_pd();
    a->mx = _mm256_setzero_ps();
    a->clip = a->flush = a->nan = a->fin = _mm256_setzero_si256();
    a->nvec = 0;
}

static uint64_t hsum_epi32(__m256i v) {
    int32_t t[8];
    _mm256_storeu_si256((__m256i *)t, v);
    uint64_t s = 0;
    for (int i = 0; i < 8; i++) s += (uint32_t)t[i];
    return s;
}

/* Moves the vector sums into s. */
static void acc8_flush(acc8 *a, fq_sacc *s) {
    double d[4];
    float f[8];
    __m256d x2 = _mm256_add_pd(a->sx2a, a->sx2b), e2 = _mm256_add_pd(a->se2a, a->se2b);
    _mm256_storeu_pd(d, x2);
    s->sx2 += (d[0] + d[1]) + (d[2] + d[3]);
    _mm256_storeu_pd(d, e2);
    s->se2 += (d[0] + d[1]) + (d[2] + d[3]);
    _mm256_storeu_ps(f, a->mx);
    for (int i = 0; i < 8; i++) if (f[i] > s->mx) s->mx = f[i];
    _mm256_storeu_pd(d, _mm256_max_pd(a->mea, a->meb));
    for (int i = 0; i < 4; i++) if (d[i] > s->me) s->me = d[i];
    s->clip += hsum_epi32(a->clip);
    s->flush += hsum_epi32(a->flush);
    s->nan += hsum_epi32(a->nan);
    s->fin += hsum_epi32(a->fin);
    acc8_init(a);
}

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* The general bit-rounding of |v| (av); *over gets the lanes that overflowed. */
static ALWAYS_INLINE __m256i round_bits(const gc8 *c, __m256i av, __m256i *over) {
    const __m256i one = _mm256_set1_epi32(1), zero = _mm256_setzero_si256();
    __m256i e = _mm256_max_epi32(_mm256_srli_epi32(av, 23), one);
    __m256i s = _mm256_add_epi32(c->shift, _mm256_max_epi32(_mm256_sub_epi32(c->ebn, e), zero));
    __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, s), one);
    __m256i lsb = _mm256_and_si256(_mm256_or_si256(_mm256_srlv_epi32(av, s), c->lsbor), c->lsbmask);
    __m256i add = _mm256_add_epi32(_mm256_and_si256(_mm256_srli_epi32(mask, 1), c->hmask), lsb);
    __m256i r = _mm256_andnot_si256(mask, _mm256_add_epi32(av, add));
    __m256i tiny = _mm256_cmpgt_epi32(s, _mm256_set1_epi32(23));
    __m256i rt = _mm256_and_si256(_mm256_cmpgt_epi32(av, c->tthr), c->minsub);
    r = _mm256_blendv_epi8(r, rt, tiny);
    r = _mm256_andnot_si256(_mm256_cmpgt_epi32(c->ftz, av), r);
    *over = _mm256_cmpgt_epi32(r, c->maxb);
    return _mm256_blendv_epi8(r, c->ovf, *over);
}

/* Rounding of |v| on a grid with one quantum (exact: the quantum is a power of two). */
static ALWAYS_INLINE __m256i round_fixedq(const gc8 *c, __m256 v, __m256i av, __m256i *over) {
    __m256 a = _mm256_mul_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), v), c->qinv), r;
    if (c->mode == FQ_ROUND_RNE) {
        r = _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    } else {
        r = _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        if (c->mode == FQ_ROUND_RNA) {
            __m256 up = _mm256_cmp_ps(_mm256_sub_ps(a, r), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
            r = _mm256_add_ps(r, _mm256_and_ps(up, _mm256_set1_ps(1.0f)));
        }
    }
    __m256i rb = _mm256_castps_si256(_mm256_mul_ps(r, c->q));
    rb = _mm256_andnot_si256(_mm256_cmpgt_epi32(c->ftz, av), rb);
    *over = _mm256_cmpgt_epi32(rb, c->maxb);
    return _mm256_blendv_epi8(rb, c->ovf, *over);
}

typedef struct lanesc {
    __m256 s_in, s_out;
    __m256i ymax, limp, limn;
} lanesc;

/* One vector of 8: load, round, store, statistics. pre and lim are constants at every
 * call site, so each combination compiles to its own straight-line code. */
static ALWAYS_INLINE void step8(const gc8 *c, float *p, int pre, int lim, const lanesc *L,
                                acc8 *a) {
    const __m256i absm = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(FQ_F32_INF);
    const __m256i fmax = _mm256_set1_epi32(FQ_F32_MAX), ones = _mm256_set1_epi32(-1);
    __m256 x = _mm256_loadu_ps(p);
    __m256i xb = _mm256_castps_si256(x);
    __m256i ax = _mm256_and_si256(xb, absm), sign = _mm256_andnot_si256(absm, xb);
    __m256 v = x;
    if (pre == FQ_PRE_MUL) v = _mm256_mul_ps(x, L->s_in);
    if (pre == FQ_PRE_DIV) v = _mm256_div_ps(x, L->s_in);
    __m256i av = pre == FQ_PRE_NONE ? ax : _mm256_and_si256(_mm256_castps_si256(v), absm);
    __m256i r, clip;
    int quick = 0;
    if (!c->fixedq) {
        __m256i t = _mm256_sub_epi32(av, c->lo);
        __m256i inr = _mm256_cmpeq_epi32(_mm256_min_epu32(t, c->rng), t);
        quick = _mm256_movemask_ps(_mm256_castsi256_ps(inr)) == 0xff;
    }
    if (quick) { /* every lane normal and within range: no special case can occur */
        __m256i lsb = _mm256_and_si256(_mm256_or_si256(_mm256_srl_epi32(av, c->fcnt), c->lsbor),
                                       c->lsbmask);
        r = _mm256_and_si256(_mm256_add_epi32(_mm256_add_epi32(av, c->fadd), lsb), c->fmask);
        clip = _mm256_setzero_si256();
    } else {
        __m256i over;
        r = c->fixedq ? round_fixedq(c, v, av, &over) : round_bits(c, av, &over);
        __m256i special = _mm256_cmpgt_epi32(av, fmax);
        __m256i isinf = _mm256_cmpeq_epi32(av, inf);
        r = _mm256_blendv_epi8(r, c->inf, isinf);
        clip = _mm256_or_si256(_mm256_andnot_si256(special, over),
                               _mm256_and_si256(isinf, c->infclip));
    }
    if (lim) {
        __m256i l = _mm256_blendv_epi8(L->limp, L->limn, xb);
        __m256i rc = _mm256_min_epu32(r, l);
        clip = _mm256_or_si256(clip, _mm256_andnot_si256(_mm256_cmpeq_epi32(rc, r), ones));
        r = rc;
    }
    __m256i yb = r;
    if (pre != FQ_PRE_NONE) {
        __m256 y = _mm256_mul_ps(_mm256_castsi256_ps(r), L->s_out);
        yb = _mm256_min_epu32(_mm256_castps_si256(y), L->ymax);
    }
    __m256i out = _mm256_or_si256(yb, sign);
    __m256i isnanx = _mm256_cmpgt_epi32(ax, inf);
    out = _mm256_blendv_epi8(out, xb, isnanx);
    _mm256_storeu_si256((__m256i *)p, out);

    /* statistics */
    __m256i fin = _mm256_andnot_si256(
        _mm256_or_si256(_mm256_cmpgt_epi32(ax, fmax), _mm256_cmpgt_epi32(yb, fmax)), ones);
    /* masks are -1 per lane: subtracting counts up */
    a->clip = _mm256_sub_epi32(a->clip, _mm256_andnot_si256(isnanx, clip));
    a->flush = _mm256_sub_epi32(
        a->flush, _mm256_andnot_si256(_mm256_or_si256(_mm256_cmpeq_epi32(ax, _mm256_setzero_si256()), isnanx),
                                      _mm256_cmpeq_epi32(yb, _mm256_setzero_si256())));
    a->nan = _mm256_sub_epi32(a->nan, _mm256_andnot_si256(isnanx, _mm256_cmpgt_epi32(yb, inf)));
    a->fin = _mm256_sub_epi32(a->fin, fin);
    __m256 xm = _mm256_and_ps(x, _mm256_castsi256_ps(fin));
    __m256 ym = _mm256_and_ps(_mm256_castsi256_ps(out), _mm256_castsi256_ps(fin));
    a->mx = _mm256_max_ps(a->mx, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), xm));
    __m256d xl = _mm256_cvtps_pd(_mm256_castps256_ps128(xm));
    __m256d xh = _mm256_cvtps_pd(_mm256_extractf128_ps(xm, 1));
    /* the error in double: y - x is exact there, as in the scalar path */
    __m256d yl = _mm256_cvtps_pd(_mm256_castps256_ps128(ym));
    __m256d yh = _mm256_cvtps_pd(_mm256_extractf128_ps(ym, 1));
    __m256d el = _mm256_sub_pd(yl, xl), eh = _mm256_sub_pd(yh, xh);
    a->sx2a = _mm256_fmadd_pd(xl, xl, a->sx2a);
    a->sx2b = _mm256_fmadd_pd(xh, xh, a->sx2b);
    a->se2a = _mm256_fmadd_pd(el, el, a->se2a);
    a->se2b = _mm256_fmadd_pd(eh, eh, a->se2b);
    const __m256d nzd = _mm256_set1_pd(-0.0);
    a->mea = _mm256_max_pd(a->mea, _mm256_andnot_pd(nzd, el));
    a->meb = _mm256_max_pd(a->meb, _mm256_andnot_pd(nzd, eh));
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

#define RUN(PRE, LIM)                                                      \
    do {                                                                   \
        for (; i + 8 <= m; i += 8) step8(&c, p + i, PRE, LIM, &L, &a);     \
    } while (0)

static void run_block(const gc8 *cc, const fq_mfgrid *g, const fq_scaling *sc, float *p,
                      int64_t m, acc8 *aa, fq_sacc *s) {
    const gc8 c = *cc;
    acc8 a = *aa;
    lanesc L;
    L.s_in = _mm256_set1_ps(sc->s_in);
    L.s_out = _mm256_set1_ps(sc->s_out);
    L.ymax = _mm256_set1_epi32((int)sc->ymax_b);
    L.limp = _mm256_set1_epi32((int)sc->limp_b);
    L.limn = _mm256_set1_epi32((int)sc->limn_b);
    int lim = sc->limp_b != 0xffffffffu || sc->limn_b != 0xffffffffu;
    int64_t i = 0;
    switch (sc->pre * 2 + lim) {
    case FQ_PRE_NONE * 2: RUN(FQ_PRE_NONE, 0); break;
    case FQ_PRE_NONE * 2 + 1: RUN(FQ_PRE_NONE, 1); break;
    case FQ_PRE_MUL * 2: RUN(FQ_PRE_MUL, 0); break;
    case FQ_PRE_MUL * 2 + 1: RUN(FQ_PRE_MUL, 1); break;
    case FQ_PRE_DIV * 2: RUN(FQ_PRE_DIV, 0); break;
    default: RUN(FQ_PRE_DIV, 1); break;
    }
    a.nvec += m / 8;
    tail_scalar(g, sc, p, i, m, s);
    *aa = a;
}

void fq_bstat_avx2(const float *x, int64_t n, int lohi, fq_bstat *bs) {
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
    uint32_t t[8];
    float fl[8], fh[8];
    _mm256_storeu_si256((__m256i *)t, m);
    _mm256_storeu_ps(fl, lo);
    _mm256_storeu_ps(fh, hi);
    fq_bstat r;
    fq_bstat_generic(x + i, n - i, lohi, &r);
    for (int k = 0; k < 8; k++) {
        if (t[k] > r.amax_b) r.amax_b = t[k];
        if (fl[k] < r.lo) r.lo = fl[k];
        if (fh[k] > r.hi) r.hi = fh[k];
    }
    *bs = r;
}

void fq_blocked_avx2(const fq_blockop *op, float *x, int64_t n, uint64_t key, int64_t idx0,
                     fq_qstats *st) {
    const fq_mfgrid *g = op->g;
    if (n <= 0) return;
    if (g->mode == FQ_ROUND_STOCHASTIC || g->mbits == 23) { /* scalar only */
        fq_blocked_generic(op, x, n, key, idx0, st);
        return;
    }
    gc8 c;
    gc8_init(&c, g);
    acc8 a;
    acc8_init(&a);
    fq_sacc s = {0};
    int64_t bs = op->rule == FQ_BR_FIXED ? n : op->block;
    for (int64_t b0 = 0; b0 < n; b0 += bs) {
        int64_t m = FQ_MIN(bs, n - b0);
        float *p = x + b0;
        fq_scaling sc;
        if (op->rule == FQ_BR_FIXED) {
            sc = op->fixed;
        } else {
            fq_bstat b;
            fq_bstat_avx2(p, m, op->rule == FQ_BR_INTASYM, &b);
            if (fq_block_prepare(op, p, m, &b, &sc, &s)) continue;
        }
        run_block(&c, g, &sc, p, m, &a, &s);
        if (a.nvec > (1 << 24)) acc8_flush(&a, &s); /* before the lane counters wrap */
    }
    acc8_flush(&a, &s);
    fq_sacc_flush(&s, n, st);
}
