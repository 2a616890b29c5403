/* formats_kernels.c - the portable C kernels of the format library: the blocked grid
 * kernel (every float, MX, NVFP4 and integer format), per-column integer scales, and the
 * ggml block formats through the engine's encoders and decoders. The SIMD variants in
 * src/arch/x86/ must match the blocked kernel bit for bit. */
#include "formats_internal.h"
#include "qtypes.h"

void fq_bstat_generic(const float *x, int64_t n, int lohi, fq_bstat *bs) {
    uint32_t m = 0;
    float lo = 0.0f, hi = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        uint32_t a = fq_f2u(x[i]) & 0x7fffffffu;
        if (a > m) m = a;
        if (lohi && a < FQ_F32_INF) {
            if (x[i] < lo) lo = x[i];
            if (x[i] > hi) hi = x[i];
        }
    }
    bs->amax_b = m;
    bs->lo = lo;
    bs->hi = hi;
}

void fq_blocked_generic(const fq_blockop *op, float *x, int64_t n, uint64_t key,
                        int64_t idx0, fq_qstats *st) {
    if (n <= 0) return;
    fq_sacc a = {0};
    const fq_mfgrid *g = op->g;
    int sr = g->mode == FQ_ROUND_STOCHASTIC;
    int64_t bs = op->rule == FQ_BR_FIXED ? n : op->block;
    for (int64_t b0 = 0; b0 < n; b0 += bs) {
        int64_t m = FQ_MIN(bs, n - b0);
        float *p = x + b0;
        fq_scaling sc;
        if (op->rule == FQ_BR_FIXED) {
            sc = op->fixed;
        } else {
            fq_bstat st8;
            fq_bstat_generic(p, m, op->rule == FQ_BR_INTASYM, &st8);
            if (fq_block_prepare(op, p, m, &st8, &sc, &a)) continue;
        }
        for (int64_t i = 0; i < m; i++) {
            int fl = 0;
            uint32_t rnd = sr ? fq_draw(key, (uint64_t)(idx0 + b0 + i)) : 0;
            float y = fq_elem(g, &sc, p[i], rnd, &fl);
            fq_sacc_add(&a, p[i], y, fl);
            p[i] = y;
        }
    }
    fq_sacc_flush(&a, n, st);
}

void fq_ident_generic(const float *x, int64_t n, fq_qstats *st) {
    fq_sacc a = {0};
    for (int64_t i = 0; i < n; i++) fq_sacc_add(&a, x[i], x[i], 0);
    fq_sacc_flush(&a, n, st);
}

void fq_intcols(const fq_blockop *op, float *x, int64_t nrows, int64_t ncols, uint64_t key,
                int64_t idx0, fq_qstats *st) {
    enum { CH = 256 }; /* columns at a time, so their scales live on the stack */
    fq_sacc a = {0};
    const fq_mfgrid *g = op->g;
    int sr = g->mode == FQ_ROUND_STOCHASTIC;
    for (int64_t c0 = 0; c0 < ncols; c0 += CH) {
        int64_t cn = FQ_MIN((int64_t)CH, ncols - c0);
        fq_bstat bs[CH];
        fq_scaling sc[CH];
        for (int64_t c = 0; c < cn; c++) bs[c] = (fq_bstat){0, 0.0f, 0.0f};
        for (int64_t r = 0; r < nrows; r++) {
            const float *p = x + r * ncols + c0;
            for (int64_t c = 0; c < cn; c++) {
                uint32_t v = fq_f2u(p[c]) & 0x7fffffffu;
                if (v >= FQ_F32_INF) continue; /* scales come from finite values */
                if (v > bs[c].amax_b) bs[c].amax_b = v;
                if (p[c] < bs[c].lo) bs[c].lo = p[c];
                if (p[c] > bs[c].hi) bs[c].hi = p[c];
            }
        }
        for (int64_t c = 0; c < cn; c++) fq_block_scaling(op, &bs[c], &sc[c]);
        for (int64_t r = 0; r < nrows; r++) {
            float *p = x + r * ncols + c0;
            for (int64_t c = 0; c < cn; c++) {
                int fl = 0;
                uint32_t rnd = sr ? fq_draw(key, (uint64_t)(idx0 + r * ncols + c0 + c)) : 0;
                float y = fq_elem(g, &sc[c], p[c], rnd, &fl);
                fq_sacc_add(&a, p[c], y, fl);
                p[c] = y;
            }
        }
    }
    fq_sacc_flush(&a, nrows * ncols, st);
}

/* ---- ggml block formats ---- */

/* ggml has no decoder for Q8_1 and Q8_K (they only ever feed dot products): d * q. */
static void dec_q8_1(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 32; i++, b += 36) {
        uint16_t h;
        memcpy(&h, b, 2);
        float d = fq_fp16_to_f32(h);
        for (int j = 0; j < 32; j++) dst[i * 32 + j] = d * (float)(int8_t)b[4 + j];
    }
}

static void dec_q8_k(const void *src, float *dst, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / 256; i++, b += 292) {
        float d;
        memcpy(&d, b, 4);
        for (int j = 0; j < 256; j++) dst[i * 256 + j] = d * (float)(int8_t)b[4 + j];
    }
}

typedef void (*fq_dec_fn)(const void *src, float *dst, int64_t n);

int fq_ggml_available(uint32_t type) {
    const fq_type_traits *t = fq_type_get(type);
    if (!t || !t->from_float) return 0;
    return t->to_float || type == FQ_TYPE_Q8_1 || type == FQ_TYPE_Q8_K;
}

/* Encodes and decodes each block of each row with the engine's functions. A block holding
 * NaN or Inf becomes all NaN (the encoders are undefined there); a row tail shorter than a
 * block is zero-padded to a full block and only its own elements are written back. */
void fq_ggml_rows(uint32_t type, int act, float *x, int64_t nrows, int64_t ncols,
                  fq_qstats *st) {
    const fq_type_traits *t = fq_type_get(type);
    FQ_ASSERT(fq_ggml_available(type) && t->blck <= FQ_QK_K && t->type_size <= 512);
    void (*enc)(const float *, void *, int64_t) = act ? t->from_float_act : t->from_float;
    FQ_ASSERT(enc);
    fq_dec_fn dec = t->to_float ? t->to_float : type == FQ_TYPE_Q8_1 ? dec_q8_1 : dec_q8_k;
    int64_t bk = t->blck;
    uint64_t qbuf[512 / 8];
    float in[FQ_QK_K], out[FQ_QK_K];
    fq_sacc a = {0};
    for (int64_t r = 0; r < nrows; r++) {
        float *row = x + r * ncols;
        for (int64_t b0 = 0; b0 < ncols; b0 += bk) {
            int64_t m = FQ_MIN(bk, ncols - b0);
            float *p = row + b0;
            fq_bstat bs;
            fq_bstat_generic(p, m, 0, &bs);
            if (bs.amax_b >= FQ_F32_INF) {
                fq_nan_block(p, m, &a);
                continue;
            }
            memcpy(in, p, (size_t)m * sizeof(float));
            for (int64_t i = m; i < bk; i++) in[i] = 0.0f;
            enc(in, qbuf, bk);
            dec(qbuf, out, bk);
            for (int64_t i = 0; i < m; i++) {
                /* zeros keep their input's sign, as in every other format */
                float y = out[i] == 0.0f ? copysignf(0.0f, p[i]) : out[i];
                fq_sacc_add(&a, p[i], y, 0);
                p[i] = y;
            }
        }
    }
    fq_sacc_flush(&a, nrows * ncols, st);
}
