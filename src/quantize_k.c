/* quantize_k.c - Q4_K and Q5_K encoders equal bit for bit to the reference ones
 * (fq_encode_q4_K / fq_encode_q5_K in quants_k.c, ggml's quantize_row_q*_K_ref), several
 * times faster, for converting whole models.
 *
 * Why the reference is slow: make_qkx2_quants fits a scale and a min to 32 values by trying
 * 16 to 21 grid spacings, and every try is a chain of dependent float additions: the CPU
 * waits on add latency, not on arithmetic. Here the 8 sub-blocks of a super-block run in the
 * lanes of a vector (GCC vector extensions: SSE2 at the baseline, no ISA flags needed):
 * each lane performs exactly the reference's operations in the reference's order (no
 * reassociation, no FMA: the library is built with -std=c11, which keeps fp-contract off),
 * branches become per-lane selects. tests/test_quantize.c checks the bytes against the
 * reference on random and adversarial data. */
#include <math.h>
#include <string.h>

#include "qtypes.h"
#include "quantize.h"

/* 4 lanes: 16-byte vectors are native at the SSE2 baseline; GCC lowers selects on wider
 * ones lane by lane. A super-block's 8 sub-blocks form two groups of 4. */
#define NL 4
typedef float v8f __attribute__((vector_size(4 * NL)));
typedef int32_t v8i __attribute__((vector_size(4 * NL)));

static inline v8f splat(float f) { return (v8f){f, f, f, f}; }
static inline v8i splati(int32_t i) { return (v8i){i, i, i, i}; }
static inline v8f sel(v8i m, v8f a, v8f b) { return (v8f)(((v8i)a & m) | ((v8i)b & ~m)); }
static inline v8f cvt(v8i l) { return __builtin_convertvector(l, v8f); }
/* fq__nearest_int per lane: round half to even through the float adder */
static inline v8i nearest8(v8f f) {
    v8f v = f + splat(12582912.f);
    return ((v8i)v & splati(0x007fffff)) - splati(0x00400000);
}
/* nearest8 clamped to [0, nmax], as a float (exact: |l| <= 2^22). The clamp runs on floats:
 * SSE2 has float min/max but no 32-bit integer ones, and GCC would go scalar. */
static inline v8f level8(v8f f, int nmax) {
    v8f l = cvt(nearest8(f));
    l = sel(l < splat(0), splat(0), l);
    return sel(l > splat((float)nmax), splat((float)nmax), l);
}

/* make_qkx2_quants(32, nmax, x, weights, L, &the_min, Laux, rmin, 0.1f, nstep, false) for
 * the 8 sub-blocks of a super-block: group g, lane j holds sub-block NL * g + j, X[i][g]
 * its element i. The two groups are independent chains the CPU overlaps. */
#define NG (8 / NL)
#define FOR_G _Pragma("GCC unroll 2") for (int g = 0; g < NG; ++g)
static void qkx2_lanes(int nmax, const v8f X[32][NG], const v8f W[32][NG], float rmin, int nstep,
                       v8f L[32][NG], v8f scale_out[NG], v8f the_min_out[NG]) {
    const float rdelta = 0.1f;
    v8f min[NG], max[NG], sum_w[NG], sum_x[NG], min0[NG], range[NG], iscale[NG], scale[NG];
    v8f best_error[NG];
    v8i flat[NG];
    FOR_G {
        min[g] = max[g] = X[0][g];
        sum_w[g] = W[0][g];
        sum_x[g] = sum_w[g] * X[0][g];
    }
    for (int i = 1; i < 32; ++i) FOR_G {
        min[g] = sel(X[i][g] < min[g], X[i][g], min[g]);
        max[g] = sel(X[i][g] > max[g], X[i][g], max[g]);
        const v8f w = W[i][g];
        sum_w[g] += w;
        sum_x[g] += w * X[i][g];
    }
    FOR_G {
        min[g] = sel(min[g] > splat(0), splat(0), min[g]);
        flat[g] = max[g] == min[g]; /* the reference returns early: L = 0, scale 0 */
        min0[g] = min[g];
        iscale[g] = splat((float)nmax) / sel(flat[g], splat(1), max[g] - min[g]);
        scale[g] = splat(1) / iscale[g];
        best_error[g] = splat(0);
    }
    for (int i = 0; i < 32; ++i) FOR_G {
        L[i][g] = level8(iscale[g] * (X[i][g] - min[g]), nmax);
        v8f diff = scale[g] * L[i][g] + min[g] - X[i][g];
        diff = diff * diff;
        best_error[g] += W[i][g] * diff;
    }
    v8f Laux[32][NG];
    for (int is = 0; is <= nstep; ++is) {
        const float num = rmin + rdelta * is + nmax;
        v8f sum_l[NG], sum_l2[NG], sum_xl[NG], this_scale[NG], this_min[NG], cur_error[NG];
        v8i upd[NG];
        FOR_G {
            range[g] = sel(flat[g], splat(1), max[g] - min[g]); /* min moves with each fit */
            iscale[g] = splat(num) / range[g];
            sum_l[g] = sum_l2[g] = sum_xl[g] = splat(0);
        }
        for (int i = 0; i < 32; ++i) FOR_G {
            Laux[i][g] = level8(iscale[g] * (X[i][g] - min[g]), nmax);
            const v8f w = W[i][g], l = Laux[i][g];
            sum_l[g] += w * l;
            sum_l2[g] += w * l * l;
            sum_xl[g] += w * l * X[i][g];
        }
        FOR_G {
            const v8f D = sum_w[g] * sum_l2[g] - sum_l[g] * sum_l[g];
            upd[g] = (D > splat(0)) & ~flat[g];
            this_scale[g] = (sum_w[g] * sum_xl[g] - sum_x[g] * sum_l[g]) / D;
            this_min[g] = (sum_l2[g] * sum_x[g] - sum_l[g] * sum_xl[g]) / D;
            const v8i pos = this_min[g] > splat(0);
            this_min[g] = sel(pos, splat(0), this_min[g]);
            this_scale[g] = sel(pos, sum_xl[g] / sum_l2[g], this_scale[g]);
            cur_error[g] = splat(0);
        }
        for (int i = 0; i < 32; ++i) FOR_G {
            v8f diff = this_scale[g] * Laux[i][g] + this_min[g] - X[i][g];
            diff = diff * diff;
            cur_error[g] += W[i][g] * diff;
        }
        FOR_G {
            upd[g] &= cur_error[g] < best_error[g];
            v8i any = upd[g];
            if (!(any[0] | any[1] | any[2] | any[3])) continue;
            for (int i = 0; i < 32; ++i) L[i][g] = sel(upd[g], Laux[i][g], L[i][g]);
            best_error[g] = sel(upd[g], cur_error[g], best_error[g]);
            scale[g] = sel(upd[g], this_scale[g], scale[g]);
            min[g] = sel(upd[g], this_min[g], min[g]);
        }
    }
    FOR_G {
        for (int i = 0; i < 32; ++i) L[i][g] = sel(flat[g], splat(0), L[i][g]);
        scale_out[g] = sel(flat[g], splat(0), scale[g]);
        the_min_out[g] = -sel(flat[g], min0[g], min[g]);
    }
}

static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

static void pack_scale_min_k4(uint8_t *out, int j, uint8_t ls, uint8_t lm) {
    if (j < 4) {
        out[j] = ls;
        out[j + 4] = lm;
    } else {
        out[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        out[j - 4] |= (uint8_t)((ls >> 4) << 6);
        out[j - 0] |= (uint8_t)((lm >> 4) << 6);
    }
}

/* The reference's encode_k_scales for one super-block of 256 values. */
static void encode_k_scales(const float *x, int nmax, float rmin, int nstep, uint8_t *scales12,
                            fq_half *d_out, fq_half *dmin_out, uint8_t *Lout) {
    float scales[8], mins[8], max_scale = 0, max_min = 0;
    v8f X[32][NG], W[32][NG], L[32][NG], sc8[NG], mn8[NG], sum_x2[NG], av_x[NG];
    for (int i = 0; i < 32; ++i)
        FOR_G for (int j = 0; j < NL; ++j) X[i][g][j] = x[32 * (NL * g + j) + i];
    FOR_G sum_x2[g] = splat(0);
    for (int i = 0; i < 32; ++i) FOR_G sum_x2[g] += X[i][g] * X[i][g];
    FOR_G for (int j = 0; j < NL; ++j) av_x[g][j] = sqrtf(sum_x2[g][j] / 32);
    for (int i = 0; i < 32; ++i)
        FOR_G W[i][g] = av_x[g] + (v8f)((v8i)X[i][g] & splati(0x7fffffff)); /* fabsf */
    qkx2_lanes(nmax, X, W, rmin, nstep, L, sc8, mn8);
    FOR_G for (int j = 0; j < NL; ++j) {
        scales[NL * g + j] = sc8[g][j];
        mins[NL * g + j] = mn8[g][j];
        for (int i = 0; i < 32; ++i) Lout[32 * (NL * g + j) + i] = (uint8_t)L[i][g][j]; /* 0..nmax */
    }
    for (int j = 0; j < 8; ++j) {
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; ++j) {
        uint8_t ls = (uint8_t)fq__nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)fq__nearest_int(inv_min * mins[j]);
        ls = FQ_MIN(63, ls);
        lm = FQ_MIN(63, lm);
        pack_scale_min_k4(scales12, j, ls, lm);
    }
    *d_out = fq_f32_to_fp16(max_scale / 63.f);
    *dmin_out = fq_f32_to_fp16(max_min / 63.f);
    uint8_t sc, m;
    for (int j = 0; j < 8; ++j) {
        scale_min_k4(j, scales12, &sc, &m);
        const float d = fq__h2f(*d_out) * sc;
        if (!d) continue;
        const float dm = fq__h2f(*dmin_out) * m;
        for (int ii = 0; ii < 32; ii += NL) {
            v8f v;
            memcpy(&v, x + 32 * j + ii, sizeof v);
            v8f l = level8((v + splat(dm)) / splat(d), nmax);
            for (int k = 0; k < NL; ++k) Lout[32 * j + ii + k] = (uint8_t)l[k];
        }
    }
}

void fq__encode_q4_K_fast(const float *x, void *dst, int64_t n) {
    fq_block_q4_K *y = dst;
    uint8_t L[FQ_QK_K];
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        memset(y[i].scales, 0, 12);
        encode_k_scales(x, 15, -1.f, 20, y[i].scales, &y[i].d, &y[i].dmin, L);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < FQ_QK_K; j += 64) {
            for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
            q += 32;
        }
        x += FQ_QK_K;
    }
}

void fq__encode_q5_K_fast(const float *x, void *dst, int64_t n) {
    fq_block_q5_K *y = dst;
    uint8_t L[FQ_QK_K];
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        memset(y[i].scales, 0, 12);
        encode_k_scales(x, 31, -0.5f, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
        uint8_t *qh = y[i].qh, *ql = y[i].qs;
        memset(qh, 0, FQ_QK_K / 8);
        uint8_t m1 = 1, m2 = 2;
        for (int k = 0; k < FQ_QK_K; k += 64) {
            for (int j = 0; j < 32; ++j) {
                int l1 = L[k + j], l2 = L[k + j + 32];
                if (l1 > 15) {
                    l1 -= 16;
                    qh[j] |= m1;
                }
                if (l2 > 15) {
                    l2 -= 16;
                    qh[j] |= m2;
                }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 <<= 2;
            m2 <<= 2;
            ql += 32;
        }
        x += FQ_QK_K;
    }
}

/* ---- Q6_K ------------------------------------------------------------------------------ */

#define GROUP_MAX_EPS 1e-15f

/* levels of make_qx_quants: nearest, clamped to [-32, 31] (as floats, exact) */
static inline v8f level6(v8f f) {
    v8f l = cvt(nearest8(f));
    l = sel(l < splat(-32), splat(-32), l);
    return sel(l > splat(31), splat(31), l);
}

/* make_qx_quants(16, 32, x, L) for 8 sub-blocks of 16 (group g, lane j: sub-block
 * NL * g + j; X[i][g] its element i): the scale, and the iscale whose levels the reference
 * leaves in L (L = 32 + level6(iscale * x), or 0 where the block is all but zero). */
static void qx_lanes(const v8f X[16][NG], v8f scale_out[NG], v8f iscale_out[NG], v8i small_out[NG]) {
    const int nmax = 32;
    v8f amax[NG], max[NG], iscale[NG], sumlx[NG], suml2[NG], scale[NG], best[NG], best_is[NG];
    v8i small[NG];
    FOR_G amax[g] = max[g] = splat(0);
    for (int i = 0; i < 16; ++i) FOR_G {
        const v8f ax = (v8f)((v8i)X[i][g] & splati(0x7fffffff));
        const v8i gt = ax > amax[g];
        amax[g] = sel(gt, ax, amax[g]);
        max[g] = sel(gt, X[i][g], max[g]);
    }
    FOR_G {
        small[g] = amax[g] < splat(GROUP_MAX_EPS);
        max[g] = sel(small[g], splat(1), max[g]);
        iscale[g] = splat((float)-nmax) / max[g];
        sumlx[g] = suml2[g] = splat(0);
    }
    for (int i = 0; i < 16; ++i) FOR_G {
        const v8f l = level6(iscale[g] * X[i][g]);
        const v8f w = X[i][g] * X[i][g];
        sumlx[g] += w * X[i][g] * l;
        suml2[g] += w * l * l;
    }
    FOR_G {
        scale[g] = sel(suml2[g] != splat(0), sumlx[g] / suml2[g], splat(0));
        best[g] = scale[g] * sumlx[g];
        best_is[g] = iscale[g];
    }
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        const float num = -(nmax + 0.1f * is);
        FOR_G {
            iscale[g] = splat(num) / max[g];
            sumlx[g] = suml2[g] = splat(0);
        }
        for (int i = 0; i < 16; ++i) FOR_G {
            const v8f l = level6(iscale[g] * X[i][g]);
            const v8f w = X[i][g] * X[i][g];
            sumlx[g] += w * X[i][g] * l;
            suml2[g] += w * l * l;
        }
        FOR_G {
            const v8i upd = (suml2[g] > splat(0)) & (sumlx[g] * sumlx[g] > best[g] * suml2[g]);
            scale[g] = sel(upd, sumlx[g] / suml2[g], scale[g]);
            best[g] = sel(upd, scale[g] * sumlx[g], best[g]);
            best_is[g] = sel(upd, iscale[g], best_is[g]);
        }
    }
    FOR_G {
        scale_out[g] = sel(small[g], splat(0), scale[g]);
        iscale_out[g] = best_is[g];
        small_out[g] = small[g];
    }
}

void fq__encode_q6_K_fast(const float *x, void *dst, int64_t n) {
    fq_block_q6_K *y = dst;
    int8_t L[FQ_QK_K];
    float scales[FQ_QK_K / 16], iscales[FQ_QK_K / 16];
    int small[FQ_QK_K / 16];
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        for (int h = 0; h < 2; ++h) {
            v8f X[16][NG], sc[NG], isc[NG];
            v8i sm[NG];
            for (int k = 0; k < 16; ++k)
                FOR_G for (int j = 0; j < NL; ++j) X[k][g][j] = x[16 * (8 * h + NL * g + j) + k];
            qx_lanes(X, sc, isc, sm);
            FOR_G for (int j = 0; j < NL; ++j) {
                scales[8 * h + NL * g + j] = sc[g][j];
                iscales[8 * h + NL * g + j] = isc[g][j];
                small[8 * h + NL * g + j] = sm[g][j] != 0;
            }
        }
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < FQ_QK_K / 16; ++ib) {
            const float scale = scales[ib];
            if (fabsf(scale) > max_abs_scale) {
                max_abs_scale = fabsf(scale);
                max_scale = scale;
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof(fq_block_q6_K));
            y[i].d = fq_f32_to_fp16(0.f);
            x += FQ_QK_K;
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = fq_f32_to_fp16(1 / iscale);
        for (int ib = 0; ib < FQ_QK_K / 16; ++ib)
            y[i].scales[ib] = (int8_t)FQ_MIN(127, fq__nearest_int(iscale * scales[ib]));
        for (int j = 0; j < FQ_QK_K / 16; ++j) {
            const float d = fq__h2f(y[i].d) * y[i].scales[j];
            /* d == 0: the reference keeps make_qx_quants' levels */
            for (int ii = 0; ii < 16; ii += NL) {
                v8f v;
                memcpy(&v, x + 16 * j + ii, sizeof v);
                const v8f l = d ? level6(v / splat(d)) : level6(splat(iscales[j]) * v);
                for (int k = 0; k < NL; ++k)
                    L[16 * j + ii + k] = (int8_t)(!d && small[j] ? 0 : (int)l[k] + 32);
            }
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < FQ_QK_K; j += 128) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l + 0] & 0xF, q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                  ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
            ql += 64;
            qh += 32;
        }
        x += FQ_QK_K;
    }
}
