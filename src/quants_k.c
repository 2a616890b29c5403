/* quants_k.c - portable C kernels for the K-quants (256-element super-blocks) and Q8_K:
 * decode bit-exact with ggml's dequantize_row_*, reference encoders as ggml's
 * quantize_row_*_ref (what llama-quantize writes without an imatrix: the
 * make_qkx2_quants / make_q3_quants / make_qx_quants searches), dots with Q8_K activations.
 *
 * Dot products: each super-block gives exact integer sums (isum over scale * q8 * q, and
 * for the types with mins summs over min * bsum); the float part is one fixed expression per
 * super-block accumulated in order. SIMD variants compute the same integers and finish
 * with the same float expression, so they return the same bits as these. */
#include "qtypes.h"

#include <math.h>
#include <string.h>

#define GROUP_MAX_EPS 1e-15f

/* ---- scale unpacking shared by decode, encode and dot ------------------------------- */

/* Q4_K/Q5_K: 8 six-bit scales and 8 six-bit mins in 12 bytes (ggml's get_scale_min_k4) */
static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q3_K: 16 six-bit scales biased by 32: low nibbles in bytes 0..7, high pairs in 8..11 */
static inline int scale_q3_K(const uint8_t *sc, int j) {
    const int lo = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
    const int hi = (sc[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

/* ---- Q2_K ----------------------------------------------------------------------------- */

void fq_decode_q2_K(const void *src, float *y, int64_t n) {
    const fq_block_q2_K *x = src;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        const float d = fq__h2f(x[i].d), min = fq__h2f(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int k = 0; k < FQ_QK_K; k += 128) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++) {
                    const uint8_t sc = x[i].scales[is++];
                    const float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                    for (int l = 0; l < 16; l++) *y++ = dl * ((q[l + 16 * half] >> shift) & 3) - ml;
                }
            }
            q += 32;
        }
    }
}

static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                              float *the_min, uint8_t *Laux, float rmin, float rdelta,
                              int nstep, bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        const int l = fq__nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)FQ_MAX(0, FQ_MIN(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    /* try nstep+1 slightly different grid spacings, fitting scale and min by least squares */
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = fq__nearest_int(iscale * (x[i] - min));
            l = FQ_MAX(0, FQ_MIN(nmax, l));
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

void fq_encode_q2_K(const float *x, void *dst, int64_t n) {
    fq_block_q2_K *y = dst;
    uint8_t L[FQ_QK_K], Laux[16];
    float weights[16], mins[FQ_QK_K / 16], scales[FQ_QK_K / 16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < FQ_QK_K / 16; ++j) {
            for (int l = 0; l < 16; ++l) weights[l] = fabsf(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux,
                                         -0.5f, 0.1f, 15, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < FQ_QK_K / 16; ++j) {
                y[i].scales[j] = (uint8_t)fq__nearest_int(iscale * scales[j]);
            }
            y[i].d = fq_f32_to_fp16(max_scale / q4scale);
        } else {
            for (int j = 0; j < FQ_QK_K / 16; ++j) y[i].scales[j] = 0;
            y[i].d = fq_f32_to_fp16(0.f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < FQ_QK_K / 16; ++j) {
                const int l = fq__nearest_int(iscale * mins[j]);
                y[i].scales[j] |= (uint8_t)(l << 4);
            }
            y[i].dmin = fq_f32_to_fp16(max_min / q4scale);
        } else {
            y[i].dmin = fq_f32_to_fp16(0.f);
        }
        /* requantize against the scales as stored (4-bit, F16 super-scale) */
        for (int j = 0; j < FQ_QK_K / 16; ++j) {
            const float d = fq__h2f(y[i].d) * (y[i].scales[j] & 0xF);
            if (!d) continue;
            const float dm = fq__h2f(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ++ii) {
                const int l = fq__nearest_int((x[16 * j + ii] + dm) / d);
                L[16 * j + ii] = (uint8_t)FQ_MAX(0, FQ_MIN(3, l));
            }
        }
        for (int j = 0; j < FQ_QK_K; j += 128) {
            for (int l = 0; l < 32; ++l) {
                y[i].qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) |
                                               (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
            }
        }
        x += FQ_QK_K;
    }
}

void fq_vec_dot_q2_K_q8_K(int64_t n, float *s, const void *vx, const void *vy) {
    const fq_block_q2_K *x = vx;
    const fq_block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        const uint8_t *q2 = x[i].qs, *sc = x[i].scales;
        const int8_t *q8 = y[i].qs;
        int summs = 0;
        for (int j = 0; j < 16; j++) summs += y[i].bsums[j] * (sc[j] >> 4);
        int isum = 0, is = 0;
        for (int k = 0; k < FQ_QK_K / 128; k++) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++) {
                    int isuml = 0;
                    for (int l = 16 * half; l < 16 * half + 16; l++) {
                        isuml += q8[l] * ((q2[l] >> shift) & 3);
                    }
                    isum += (sc[is++] & 0xF) * isuml;
                }
                q8 += 32;
            }
            q2 += 32;
        }
        const float dall = y[i].d * fq__h2f(x[i].d);
        const float dmin = y[i].d * fq__h2f(x[i].dmin);
        sumf += dall * (float)isum - dmin * (float)summs;
    }
    *s = sumf;
}

void fq_vec_dot_q2_K_f32(int64_t n, float *s, const void *x, const float *y) {
    fq__dot_decoded(n, s, x, y, sizeof(fq_block_q2_K), FQ_QK_K, fq_decode_q2_K);
}

/* ---- Q3_K ----------------------------------------------------------------------------- */

void fq_decode_q3_K(const void *src, float *y, int64_t n) {
    const fq_block_q3_K *x = src;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        const float d_all = fq__h2f(x[i].d);
        const uint8_t *q = x[i].qs, *hm = x[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int k = 0; k < FQ_QK_K; k += 128) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++) {
                    const float dl = d_all * scale_q3_K(x[i].scales, is++);
                    for (int l = 16 * half; l < 16 * half + 16; l++) {
                        *y++ = dl * (((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                    }
                }
                m <<= 1;
            }
            q += 32;
        }
    }
}

/* ggml's make_q3_quants with do_rmse: start from the max-based grid, then move single
 * values to the level that improves the weighted (x^2) least-squares fit, up to 5 passes. */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = fq__nearest_int(iscale * x[i]);
        l = FQ_MAX(-nmax, FQ_MIN(nmax - 1, l));
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; ++itry) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = fq__nearest_int(x[i] * sl2 / slx);
                new_l = FQ_MAX(-nmax, FQ_MIN(nmax - 1, new_l));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

void fq_encode_q3_K(const float *x, void *dst, int64_t n) {
    fq_block_q3_K *y = dst;
    int8_t L[FQ_QK_K];
    float scales[FQ_QK_K / 16];
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < FQ_QK_K / 16; ++j) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            const float scale = fabsf(scales[j]);
            if (scale > amax) { amax = scale; max_scale = scales[j]; }
        }
        memset(y[i].scales, 0, 12);
        if (max_scale) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < FQ_QK_K / 16; ++j) {
                int8_t l = (int8_t)fq__nearest_int(iscale * scales[j]);
                l = (int8_t)(FQ_MAX(-32, FQ_MIN(31, l)) + 32);
                if (j < 8) {
                    y[i].scales[j] = l & 0xF;
                } else {
                    y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                }
                l >>= 4;
                y[i].scales[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            y[i].d = fq_f32_to_fp16(1 / iscale);
        } else {
            y[i].d = fq_f32_to_fp16(0.f);
        }
        for (int j = 0; j < FQ_QK_K / 16; ++j) {
            const float d = fq__h2f(y[i].d) * scale_q3_K(y[i].scales, j);
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii) {
                const int l = fq__nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(FQ_MAX(-4, FQ_MIN(3, l)) + 4);
            }
        }
        /* high bit of values 0..31 into bit 0 of hmask[0..31], of 32..63 into bit 1, ... */
        memset(y[i].hmask, 0, FQ_QK_K / 8);
        int m = 0;
        uint8_t hm = 1;
        for (int j = 0; j < FQ_QK_K; ++j) {
            if (L[j] > 3) {
                y[i].hmask[m] |= hm;
                L[j] -= 4;
            }
            if (++m == FQ_QK_K / 8) {
                m = 0;
                hm <<= 1;
            }
        }
        for (int j = 0; j < FQ_QK_K; j += 128) {
            for (int l = 0; l < 32; ++l) {
                y[i].qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) |
                                               (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
            }
        }
        x += FQ_QK_K;
    }
}

void fq_vec_dot_q3_K_q8_K(int64_t n, float *s, const void *vx, const void *vy) {
    const fq_block_q3_K *x = vx;
    const fq_block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        const uint8_t *q3 = x[i].qs, *hm = x[i].hmask;
        const int8_t *q8 = y[i].qs;
        int isum = 0, is = 0;
        uint8_t m = 1;
        for (int k = 0; k < FQ_QK_K / 128; k++) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++) {
                    int isuml = 0;
                    for (int l = 16 * half; l < 16 * half + 16; l++) {
                        isuml += q8[l] * (((q3[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                    }
                    isum += scale_q3_K(x[i].scales, is++) * isuml;
                }
                q8 += 32;
                m <<= 1;
            }
            q3 += 32;
        }
        sumf += (fq__h2f(x[i].d) * y[i].d) * (float)isum;
    }
    *s = sumf;
}

void fq_vec_dot_q3_K_f32(int64_t n, float *s, const void *x, const float *y) {
    fq__dot_decoded(n, s, x, y, sizeof(fq_block_q3_K), FQ_QK_K, fq_decode_q3_K);
}

/* ---- Q4_K ----------------------------------------------------------------------------- */

void fq_decode_q4_K(const void *src, float *y, int64_t n) {
    const fq_block_q4_K *x = src;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        const uint8_t *q = x[i].qs;
        const float d = fq__h2f(x[i].d), min = fq__h2f(x[i].dmin);
        uint8_t sc, m;
        for (int is = 0; is < 8; is += 2) {
            scale_min_k4(is, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
            q += 32;
        }
    }
}

/* Packs 8 six-bit scales and mins the way scale_min_k4 reads them. */
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

/* Shared front half of the Q4_K / Q5_K reference encoders: per 32 values a scale and a min
 * from make_qkx2_quants, quantized to 6 bits against the super-block maxima; then every
 * value requantized against the stored scales. L receives levels 0..nmax. */
static void encode_k_scales(const float *x, int nmax, float rmin, int nstep, uint8_t *scales12,
                            fq_half *d_out, fq_half *dmin_out, uint8_t *L) {
    uint8_t Laux[32];
    float weights[32], mins[FQ_QK_K / 32], scales[FQ_QK_K / 32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < FQ_QK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                     rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < FQ_QK_K / 32; ++j) {
        uint8_t ls = (uint8_t)fq__nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)fq__nearest_int(inv_min * mins[j]);
        ls = FQ_MIN(63, ls);
        lm = FQ_MIN(63, lm);
        pack_scale_min_k4(scales12, j, ls, lm);
    }
    *d_out = fq_f32_to_fp16(max_scale / 63.f);
    *dmin_out = fq_f32_to_fp16(max_min / 63.f);
    uint8_t sc, m;
    for (int j = 0; j < FQ_QK_K / 32; ++j) {
        scale_min_k4(j, scales12, &sc, &m);
        const float d = fq__h2f(*d_out) * sc;
        if (!d) continue;
        const float dm = fq__h2f(*dmin_out) * m;
        for (int ii = 0; ii < 32; ++ii) {
            const int l = fq__nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)FQ_MAX(0, FQ_MIN(nmax, l));
        }
    }
}

void fq_encode_q4_K(const float *x, void *dst, int64_t n) {
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

/* isum and summs of one Q4_K/Q5_K super-block from its 256 unsigned levels */
static void dot_k_levels(const uint8_t *scales12, const uint8_t *a, const fq_block_q8_K *y,
                         int *isum_out, int *summs_out) {
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; j++) scale_min_k4(j, scales12, &sc[j], &mn[j]);
    int summs = 0;
    for (int j = 0; j < 16; j++) summs += y->bsums[j] * mn[j / 2];
    int isum = 0;
    for (int j = 0; j < 8; j++) {
        int s32 = 0;
        for (int l = 0; l < 32; l++) s32 += y->qs[32 * j + l] * a[32 * j + l];
        isum += sc[j] * s32;
    }
    *isum_out = isum;
    *summs_out = summs;
}

void fq_vec_dot_q4_K_q8_K(int64_t n, float *s, const void *vx, const void *vy) {
    const fq_block_q4_K *x = vx;
    const fq_block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        uint8_t a[FQ_QK_K];
        for (int j = 0; j < FQ_QK_K / 64; j++) {
            for (int l = 0; l < 32; l++) {
                a[64 * j + l] = x[i].qs[32 * j + l] & 0xF;
                a[64 * j + 32 + l] = x[i].qs[32 * j + l] >> 4;
            }
        }
        int isum, summs;
        dot_k_levels(x[i].scales, a, &y[i], &isum, &summs);
        const float d = fq__h2f(x[i].d) * y[i].d;
        const float dmin = fq__h2f(x[i].dmin) * y[i].d;
        sumf += d * (float)isum - dmin * (float)summs;
    }
    *s = sumf;
}

void fq_vec_dot_q4_K_f32(int64_t n, float *s, const void *x, const float *y) {
    fq__dot_decoded(n, s, x, y, sizeof(fq_block_q4_K), FQ_QK_K, fq_decode_q4_K);
}

/* ---- Q5_K ----------------------------------------------------------------------------- */

void fq_decode_q5_K(const void *src, float *y, int64_t n) {
    const fq_block_q5_K *x = src;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        const float d = fq__h2f(x[i].d), min = fq__h2f(x[i].dmin);
        uint8_t sc, m, u1 = 1, u2 = 2;
        for (int is = 0; is < 8; is += 2) {
            scale_min_k4(is, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32;
            u1 <<= 2;
            u2 <<= 2;
        }
    }
}

void fq_encode_q5_K(const float *x, void *dst, int64_t n) {
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
                if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
                if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 <<= 2;
            m2 <<= 2;
            ql += 32;
        }
        x += FQ_QK_K;
    }
}

void fq_vec_dot_q5_K_q8_K(int64_t n, float *s, const void *vx, const void *vy) {
    const fq_block_q5_K *x = vx;
    const fq_block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        uint8_t a[FQ_QK_K];
        for (int j = 0; j < FQ_QK_K / 64; j++) {
            const uint8_t m1 = (uint8_t)(1u << (2 * j)), m2 = (uint8_t)(2u << (2 * j));
            for (int l = 0; l < 32; l++) {
                const uint8_t q = x[i].qs[32 * j + l], h = x[i].qh[l];
                a[64 * j + l] = (uint8_t)((q & 0xF) + (h & m1 ? 16 : 0));
                a[64 * j + 32 + l] = (uint8_t)((q >> 4) + (h & m2 ? 16 : 0));
            }
        }
        int isum, summs;
        dot_k_levels(x[i].scales, a, &y[i], &isum, &summs);
        const float d = fq__h2f(x[i].d) * y[i].d;
        const float dmin = fq__h2f(x[i].dmin) * y[i].d;
        sumf += d * (float)isum - dmin * (float)summs;
    }
    *s = sumf;
}

void fq_vec_dot_q5_K_f32(int64_t n, float *s, const void *x, const float *y) {
    fq__dot_decoded(n, s, x, y, sizeof(fq_block_q5_K), FQ_QK_K, fq_decode_q5_K);
}

/* ---- Q6_K ----------------------------------------------------------------------------- */

/* the 256 signed levels (-32..31) of a Q6_K super-block, in element order */
static void q6_K_levels(const fq_block_q6_K *x, int8_t *a) {
    const uint8_t *ql = x->ql, *qh = x->qh;
    for (int k = 0; k < FQ_QK_K; k += 128) {
        for (int l = 0; l < 32; ++l) {
            a[k + l + 0] = (int8_t)(((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            a[k + l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            a[k + l + 64] = (int8_t)(((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            a[k + l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
        ql += 64;
        qh += 32;
    }
}

void fq_decode_q6_K(const void *src, float *y, int64_t n) {
    const fq_block_q6_K *x = src;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        const float d = fq__h2f(x[i].d);
        int8_t a[FQ_QK_K];
        q6_K_levels(&x[i], a);
        /* element e has scale e/16; d * sc first, then the level, as ggml */
        for (int e = 0; e < FQ_QK_K; e++) y[e] = d * x[i].scales[e / 16] * a[e];
        y += FQ_QK_K;
    }
}

/* ggml's make_qx_quants with rmse_type 1 and no importance weights (w = x^2): a signed
 * grid from the max, then 18 nearby grid spacings, keeping the best least-squares fit. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = fq__nearest_int(iscale * x[i]);
        l = FQ_MAX(-nmax, FQ_MIN(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = fq__nearest_int(iscale * x[i]);
            l = FQ_MAX(-nmax, FQ_MIN(nmax - 1, l));
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                const int l = fq__nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + FQ_MAX(-nmax, FQ_MIN(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

void fq_encode_q6_K(const float *x, void *dst, int64_t n) {
    fq_block_q6_K *y = dst;
    int8_t L[FQ_QK_K];
    float scales[FQ_QK_K / 16];
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < FQ_QK_K / 16; ++ib) {
            const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
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
        for (int ib = 0; ib < FQ_QK_K / 16; ++ib) {
            y[i].scales[ib] = (int8_t)FQ_MIN(127, fq__nearest_int(iscale * scales[ib]));
        }
        for (int j = 0; j < FQ_QK_K / 16; ++j) {
            const float d = fq__h2f(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii) {
                const int l = fq__nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(FQ_MAX(-32, FQ_MIN(31, l)) + 32);
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

void fq_vec_dot_q6_K_q8_K(int64_t n, float *s, const void *vx, const void *vy) {
    const fq_block_q6_K *x = vx;
    const fq_block_q8_K *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        int8_t a[FQ_QK_K];
        q6_K_levels(&x[i], a);
        int isum = 0;
        for (int j = 0; j < 16; j++) {
            int s16 = 0;
            for (int l = 0; l < 16; l++) s16 += y[i].qs[16 * j + l] * a[16 * j + l];
            isum += x[i].scales[j] * s16;
        }
        sumf += (fq__h2f(x[i].d) * y[i].d) * (float)isum;
    }
    *s = sumf;
}

void fq_vec_dot_q6_K_f32(int64_t n, float *s, const void *x, const float *y) {
    fq__dot_decoded(n, s, x, y, sizeof(fq_block_q6_K), FQ_QK_K, fq_decode_q6_K);
}

/* ---- Q8_K (activation format of the K-quants) ---------------------------------------- */

void fq_decode_q8_K(const void *src, float *y, int64_t n) {
    const fq_block_q8_K *x = src;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        for (int j = 0; j < FQ_QK_K; ++j) *y++ = x[i].d * x[i].qs[j];
    }
}

/* quantize_row_q8_K_ref, which llama.cpp's x86 backend also uses for activations: scale
 * -127/max of the signed extreme, round half to even, d = 1/iscale kept in F32. */
void fq_encode_q8_K(const float *x, void *dst, int64_t n) {
    fq_block_q8_K *y = dst;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        float max = 0, amax = 0;
        for (int j = 0; j < FQ_QK_K; ++j) {
            const float ax = fabsf(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
        if (!amax) {
            /* ggml leaves bsums as they were; zeros keep our output deterministic */
            memset(&y[i], 0, sizeof y[i]);
            x += FQ_QK_K;
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < FQ_QK_K; ++j) {
            const int v = fq__nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)FQ_MIN(127, v);
        }
        for (int j = 0; j < FQ_QK_K / 16; ++j) {
            int sum = 0;
            for (int ii = 0; ii < 16; ++ii) sum += y[i].qs[j * 16 + ii];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
        x += FQ_QK_K;
    }
}

void fq_vec_dot_q8_K_q8_K(int64_t n, float *s, const void *vx, const void *vy) {
    const fq_block_q8_K *x = vx, *y = vy;
    float sumf = 0;
    for (int64_t i = 0; i < n / FQ_QK_K; i++) {
        int isum = 0;
        for (int j = 0; j < FQ_QK_K; j++) isum += x[i].qs[j] * y[i].qs[j];
        sumf += (x[i].d * y[i].d) * (float)isum;
    }
    *s = sumf;
}

void fq_vec_dot_q8_K_f32(int64_t n, float *s, const void *x, const float *y) {
    fq__dot_decoded(n, s, x, y, sizeof(fq_block_q8_K), FQ_QK_K, fq_decode_q8_K);
}
