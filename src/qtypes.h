/* qtypes.h - ggml tensor types: block layouts, decode to F32, reference encoders, dot
 * products of a weight row with an activation row in the weight type's partner format.
 *
 * Type ids mirror ggml's (and so GGUF's) numbering; the enum is append-only.
 * One trait table indexed by type (see STYLE.md): new types are table entries. */
#ifndef FQ_QTYPES_H
#define FQ_QTYPES_H

#include "common.h"
#include "cpu.h"

#include <math.h>
#include <string.h>

enum fq_type {
    FQ_TYPE_F32 = 0, FQ_TYPE_F16 = 1, FQ_TYPE_Q4_0 = 2, FQ_TYPE_Q4_1 = 3,
    /* 4, 5: removed Q4_2, Q4_3 */
    FQ_TYPE_Q5_0 = 6, FQ_TYPE_Q5_1 = 7, FQ_TYPE_Q8_0 = 8, FQ_TYPE_Q8_1 = 9,
    FQ_TYPE_Q2_K = 10, FQ_TYPE_Q3_K = 11, FQ_TYPE_Q4_K = 12, FQ_TYPE_Q5_K = 13,
    FQ_TYPE_Q6_K = 14, FQ_TYPE_Q8_K = 15,
    /* 16..29: IQ types and integer types we do not support (names known for messages) */
    FQ_TYPE_BF16 = 30,
    FQ_TYPE_COUNT = 40
};

#define FQ_QK 32     /* block size of the *_0 / *_1 formats */
#define FQ_QK_K 256  /* super-block size of the K-quants */

/* the --exact tile's signature (vec_dot_f32_mn below) */
typedef void (*fq__dotmn_f32_fn)(int64_t n, float *s, size_t bs, const void *x, size_t bx, int nrx,
                                 const float *y, size_t by, int nry);

typedef struct fq_type_traits {
    const char *name;        /* "Q4_K", as ggml names it; NULL for unknown ids */
    int supported;           /* 1 when decode and dot product exist */
    int64_t blck;            /* elements per block */
    size_t type_size;        /* bytes per block */
    /* decode n elements (n a multiple of blck) to F32, bit-exact with ggml */
    void (*to_float)(const void *src, float *dst, int64_t n);
    /* reference encoder (as ggml's quantize_row_*_ref), n a multiple of blck; NULL if
     * the type has none */
    void (*from_float)(const float *src, void *dst, int64_t n);
    /* partner activation type for the default (llama.cpp-mirroring) mode */
    int vec_dot_type;
    /* dot product of n elements: x in this type (weight row), y in vec_dot_type */
    void (*vec_dot)(int64_t n, float *s, const void *x, const void *y);
    /* dot product of n elements: x in this type, y plain F32 (the --exact mode):
     * equal to decoding x and summing x[i]*y[i] in F32 */
    void (*vec_dot_f32)(int64_t n, float *s, const void *x, const float *y);
    /* activation encoder: n F32 values (a multiple of blck) to this type exactly as
     * llama.cpp's x86 CPU backend converts a matmul's activation row (Q8_0/Q8_1 round
     * half to even with the 127/amax multiplier, unlike from_float). Set for every type
     * that is some type's vec_dot_type; NULL otherwise. */
    void (*from_float_act)(const float *src, void *dst, int64_t n);
    /* One weight row against nrc (1..FQ_DOT_N_MAX) activation rows: for k < nrc,
     * s[k*bs] = vec_dot(n, x, (const char *)y + k*by), the same bits. The weight blocks are
     * unpacked once for all nrc rows (batched prompts). bs counts floats, by bytes. */
    void (*vec_dot_n)(int64_t n, float *s, size_t bs, const void *x, const void *y, size_t by,
                      int nrc);
    /* Register tile: nrx (1..max(FQ_DOT_MX, mn_x)) weight rows x + i*bx against nry
     * (1..FQ_DOT_NY)
     * activation rows y + j*by: s[j*bs + i] = vec_dot(n, x + i*bx, y + j*by), the same
     * bits. With forward's y[t][n_out] layout: s = &out[t0*n_out + r0], bs = n_out,
     * bx = weight row bytes, by = activation row bytes. */
    void (*vec_dot_mn)(int64_t n, float *s, size_t bs, const void *x, size_t bx, int nrx,
                       const void *y, size_t by, int nry);
    /* the tile vec_dot_mn runs best with at the chosen ISA level (nrx, nry); smaller
     * edges are fine. mn_x <= FQ_DOT_MXL; above FQ_DOT_MX the kernel takes the rows in
     * groups itself and shares each token's preparation among them */
    int mn_x, mn_y;
    /* weight rows per vec_dot_mn call for ONE activation row (nry = 1), the decode path:
     * forward calls it over consecutive groups of mv_x rows (the last may be smaller) */
    int mv_x;
    /* --exact mode register tile, or NULL: s[j*bs + i] = vec_dot_f32(n, x + i*bx, y + j*by),
     * the same bits, y plain F32 (by in bytes), tiles of mn_x x mn_y as vec_dot_mn */
    fq__dotmn_f32_fn vec_dot_f32_mn;
    /* 1 when vec_dot(n, x, a) == vec_dot_f32(n, x, to_float(a)) bit for bit for any row a of
     * vec_dot_type (F16, BF16: both multiply the decoded values, then add, in one order), so
     * a prompt may run on its activations encoded and decoded back to F32 once */
    int act_dec;
    /* the tile on such decoded activations, or NULL (then vec_dot_f32_mn): the same bits as
     * vec_dot_mn on the encoded rows. F16: F16 x F16 products are exact in F32, so the
     * product and the add may be one fused multiply-add. BF16: the same holds only where
     * every product is exact (fq__bf16_fused_ok on the rows' and tokens' spans); the caller
     * checks that, and takes vec_dot_f32_mn where it does not hold. Unlike the other
     * tiles it takes any nrx >= 1 (the backend passes a whole row tile) */
    fq__dotmn_f32_fn vec_dot_dec_mn;
} fq_type_traits;

#define FQ_DOT_N_MAX 8 /* most activation rows per vec_dot_n call */
#define FQ_DOT_MX 8    /* most weight rows per vec_dot_mn call, unless its mn_x is more */
#define FQ_DOT_MXL 32  /* most weight rows per vec_dot_mn call of any kernel (its mn_x) */
#define FQ_DOT_NY 16   /* most activation rows per vec_dot_mn call */

/* Traits of a type id, or NULL when the id is out of range. traits->name is NULL for ids
 * that never existed; supported is 0 for types we know by name but cannot compute. */
const fq_type_traits *fq_type_get(uint32_t type);
/* "Q4_K"; known-but-unsupported ids by name too ("IQ2_XS"); "unknown type N" otherwise.
 * Never NULL. */
const char *fq_type_name(uint32_t type);
/* The same traits with the portable C kernels only, whatever fq_qtypes_init chose (for
 * tests comparing SIMD variants with the reference). NULL when out of range. */
const fq_type_traits *fq_type_get_generic(uint32_t type);
/* Bytes of a row of n elements; 0 when n is not a multiple of the block size. */
size_t fq_row_size(uint32_t type, int64_t n);

/* Scalar conversions, bit-exact with ggml (F16: IEEE binary16 round-to-nearest-even;
 * BF16: round-to-nearest-even, NaN kept quiet). */
float fq_fp16_to_f32(uint16_t h);
uint16_t fq_f32_to_fp16(float f);
float fq_bf16_to_f32(uint16_t h);
uint16_t fq_f32_to_bf16(float f);

/* Puts the SIMD variants of the level fq_cpu_isa() chose (cpu.h: CPUID, FQLM_ISA,
 * FQLM_FORCE_GENERIC) into the table, once (idempotent, thread-safe to call before threads
 * start). Returns that level's name ("avx512", "avx2", "generic"). */
const char *fq_qtypes_init(void);

/* ---- internal: block layouts and kernels (quants.c, quants_k.c, src/arch/, tests) ------
 * Layouts are ggml's (ggml-common.h); every field little-endian, F16 scales as raw bits. */
typedef uint16_t fq_half;

typedef struct { fq_half d; uint8_t qs[FQ_QK / 2]; } fq_block_q4_0;
typedef struct { fq_half d, m; uint8_t qs[FQ_QK / 2]; } fq_block_q4_1;
typedef struct { fq_half d; uint8_t qh[4]; uint8_t qs[FQ_QK / 2]; } fq_block_q5_0;
typedef struct { fq_half d, m; uint8_t qh[4]; uint8_t qs[FQ_QK / 2]; } fq_block_q5_1;
typedef struct { fq_half d; int8_t qs[FQ_QK]; } fq_block_q8_0;
typedef struct { fq_half d, s; int8_t qs[FQ_QK]; } fq_block_q8_1; /* s = d * sum(qs) */
typedef struct {
    uint8_t scales[FQ_QK_K / 16]; /* low nibble scale, high nibble min, per 16 values */
    uint8_t qs[FQ_QK_K / 4];
    fq_half d, dmin;
} fq_block_q2_K;
typedef struct {
    uint8_t hmask[FQ_QK_K / 8];   /* high bit, set = +0, clear = -4 */
    uint8_t qs[FQ_QK_K / 4];      /* low 2 bits */
    uint8_t scales[12];           /* 16 6-bit scales, biased by 32 */
    fq_half d;
} fq_block_q3_K;
typedef struct {
    fq_half d, dmin;
    uint8_t scales[12];           /* 8 6-bit scales and 8 6-bit mins */
    uint8_t qs[FQ_QK_K / 2];
} fq_block_q4_K;
typedef struct {
    fq_half d, dmin;
    uint8_t scales[12];
    uint8_t qh[FQ_QK_K / 8];
    uint8_t qs[FQ_QK_K / 2];
} fq_block_q5_K;
typedef struct {
    uint8_t ql[FQ_QK_K / 2];
    uint8_t qh[FQ_QK_K / 4];
    int8_t scales[FQ_QK_K / 16];
    fq_half d;
} fq_block_q6_K;
typedef struct {
    float d;
    int8_t qs[FQ_QK_K];
    int16_t bsums[FQ_QK_K / 16];  /* sum of each 16 qs */
} fq_block_q8_K;

_Static_assert(sizeof(fq_block_q4_0) == 18, "block_q4_0 size");
_Static_assert(sizeof(fq_block_q4_1) == 20, "block_q4_1 size");
_Static_assert(sizeof(fq_block_q5_0) == 22, "block_q5_0 size");
_Static_assert(sizeof(fq_block_q5_1) == 24, "block_q5_1 size");
_Static_assert(sizeof(fq_block_q8_0) == 34, "block_q8_0 size");
_Static_assert(sizeof(fq_block_q8_1) == 36, "block_q8_1 size");
_Static_assert(sizeof(fq_block_q2_K) == 84, "block_q2_K size");
_Static_assert(sizeof(fq_block_q3_K) == 110, "block_q3_K size");
_Static_assert(sizeof(fq_block_q4_K) == 144, "block_q4_K size");
_Static_assert(sizeof(fq_block_q5_K) == 176, "block_q5_K size");
_Static_assert(sizeof(fq_block_q6_K) == 210, "block_q6_K size");
_Static_assert(sizeof(fq_block_q8_K) == 292, "block_q8_K size");

/* F16 -> F32 without tables or branches on the hot path: exact for every pattern, NaN
 * payloads kept. Inline so that kernels decoding a scale per block pay no call. */
static inline float fq__h2f(fq_half h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, em = h & 0x7fffu, bits;
    float f;
    if (em >= 0x7c00u) {
        bits = 0x7f800000u | ((em & 0x3ffu) << 13);
    } else if (em >= 0x0400u) {
        bits = (em << 13) + 0x38000000u; /* rebias the exponent 15 -> 127 */
    } else {
        f = (float)em * 0x1p-24f;        /* subnormal or zero: exact in F32 */
        memcpy(&bits, &f, 4);
    }
    bits |= sign;
    memcpy(&f, &bits, 4);
    return f;
}
static inline float fq__bf2f(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Generic kernels (always compiled). Decode: fq_decode_<t>; reference encoders:
 * fq_encode_<t>; activation encoders: fq_encode_act_<t>; dots: fq_vec_dot_<w>_<a>. */
#define FQ__CODEC(t)                                                                 \
    void fq_decode_##t(const void *src, float *dst, int64_t n);                      \
    void fq_encode_##t(const float *src, void *dst, int64_t n);
#define FQ__KERNELS(t) FQ__CODEC(t)                                                  \
    void fq_vec_dot_##t##_f32(int64_t n, float *s, const void *x, const float *y);
FQ__CODEC(f32) FQ__KERNELS(f16) FQ__KERNELS(bf16)
FQ__KERNELS(q4_0) FQ__KERNELS(q4_1) FQ__KERNELS(q5_0) FQ__KERNELS(q5_1)
FQ__KERNELS(q8_0) FQ__KERNELS(q8_1)
FQ__KERNELS(q2_K) FQ__KERNELS(q3_K) FQ__KERNELS(q4_K) FQ__KERNELS(q5_K) FQ__KERNELS(q6_K)
FQ__KERNELS(q8_K)
#undef FQ__KERNELS
#undef FQ__CODEC
/* F32 weights in exact mode: products rounded then added (fq_vec_dot_f32_f32, the default
 * mode, uses fused multiply-adds as llama.cpp does) */
void fq_vec_dot_f32_f32x(int64_t n, float *s, const void *x, const float *y);

void fq_encode_act_f16(const float *src, void *dst, int64_t n);
void fq_encode_act_bf16(const float *src, void *dst, int64_t n);
void fq_encode_act_q8_0(const float *src, void *dst, int64_t n);
void fq_encode_act_q8_1(const float *src, void *dst, int64_t n);
/* Q8_K activations are fq_encode_q8_K (llama.cpp uses the reference on x86 too) */

#define FQ__DOT(w, a) void fq_vec_dot_##w##_##a(int64_t n, float *s, const void *x, const void *y);
FQ__DOT(f32, f32) FQ__DOT(f16, f16) FQ__DOT(bf16, bf16)
FQ__DOT(q4_0, q8_0) FQ__DOT(q5_0, q8_0) FQ__DOT(q8_0, q8_0)
FQ__DOT(q4_1, q8_1) FQ__DOT(q5_1, q8_1) FQ__DOT(q8_1, q8_1)
FQ__DOT(q2_K, q8_K) FQ__DOT(q3_K, q8_K) FQ__DOT(q4_K, q8_K) FQ__DOT(q5_K, q8_K)
FQ__DOT(q6_K, q8_K) FQ__DOT(q8_K, q8_K)
#undef FQ__DOT
/* the generic multi-row dots: loops over the generic vec_dot of each pair */
#define FQ__DOT(w, a)                                                                      \
    void fq_vec_dot_n_##w##_##a(int64_t n, float *s, size_t bs, const void *x,             \
                                const void *y, size_t by, int nrc);                       \
    void fq_vec_dot_mn_##w##_##a(int64_t n, float *s, size_t bs, const void *x, size_t bx, \
                                 int nrx, const void *y, size_t by, int nry);
FQ__DOT(f32, f32) FQ__DOT(f16, f16) FQ__DOT(bf16, bf16)
FQ__DOT(q4_0, q8_0) FQ__DOT(q5_0, q8_0) FQ__DOT(q8_0, q8_0)
FQ__DOT(q4_1, q8_1) FQ__DOT(q5_1, q8_1) FQ__DOT(q8_1, q8_1)
FQ__DOT(q2_K, q8_K) FQ__DOT(q3_K, q8_K) FQ__DOT(q4_K, q8_K) FQ__DOT(q5_K, q8_K)
FQ__DOT(q6_K, q8_K) FQ__DOT(q8_K, q8_K)
#undef FQ__DOT

/* Shared helpers of the generic kernels. The F32 dot keeps 8 partial sums (element i in
 * sum i % 8, multiply then add, no FMA) reduced as ((s0+s4)+(s2+s6))+((s1+s5)+(s3+s7)),
 * the order an 8-lane SIMD loop gives, so SIMD F32/F16/BF16 dots equal the reference. */
void fq__dot8_acc(float acc[8], const float *x, const float *y, int64_t n);
float fq__hsum8(const float acc[8]);

/* The decode tiles read the rows of the caller's next group ahead: the len bytes from address
 * a (every 64-byte line) prefetched into L2, a returned advanced past them. An address, not a
 * pointer: past the last group it lies beyond the weights (a prefetch never faults). */
static inline uintptr_t fq__prefetch_l2(uintptr_t a, size_t len) {
#pragma GCC unroll 16
    for (size_t o = 0; o < len; o += 64) __builtin_prefetch((const void *)(a + o), 0, 2);
    return a + len;
}
/* Exact-mode dot of any type: decodes FQ__CHUNK elements at a time into a stack buffer and
 * feeds fq__dot8_acc, so it equals the F32 dot of the decoded row bit for bit. */
#define FQ__CHUNK 256
void fq__dot_decoded(int64_t n, float *s, const void *x, const float *y, size_t blck_bytes,
                     int64_t blck, void (*decode)(const void *, float *, int64_t));

/* ggml's nearest_int: round half to even through the float adder (|f| <= 2^22). */
static inline int fq__nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}
/* cvtps2dq: round half to even; NaN and out-of-range give INT32_MIN, as the hardware. */
static inline int32_t fq__cvt_rne_i32(float f) {
    if (fabsf(f) <= 4194303.f) return fq__nearest_int(f);
    if (!(fabsf(f) < 2147483648.f)) return INT32_MIN;
    return (int32_t)rintf(f); /* default rounding mode: nearest even */
}

/* Per-ISA variants (src/arch/x86/); only called after fq_qtypes_init checked CPUID. */
typedef void (*fq__dot_fn)(int64_t n, float *s, const void *x, const void *y);
typedef void (*fq__act_fn)(const float *src, void *dst, int64_t n);
typedef void (*fq__dec_fn)(const void *src, float *dst, int64_t n);
typedef void (*fq__dotf_fn)(int64_t n, float *s, const void *x, const float *y);
typedef void (*fq__dotn_fn)(int64_t n, float *s, size_t bs, const void *x, const void *y,
                            size_t by, int nrc);
/* The exponent span of BF16 values: hi = the largest exponent field of a finite nonzero
 * value, lo = the smallest, where a denormal (field 0) counts as 1 (0 and 255 when there is
 * none; zeros, Inf and NaN do not count). Merged into *s, so one span may cover several rows. */
typedef struct {
    uint8_t hi, lo;
} fq__bf16_span;
#define FQ_BF16_SPAN_EMPTY ((fq__bf16_span){0, 255})
/* (the ISA level's kernel where it has one; the same result) */
void fq__bf16_span_of(const uint16_t *h, int64_t n, fq__bf16_span *s);
void fq__bf16_span_of_generic(const uint16_t *h, int64_t n, fq__bf16_span *s);
static inline void fq__bf16_span_merge(fq__bf16_span *s, fq__bf16_span o) {
    if (o.hi > s->hi) s->hi = o.hi;
    if (o.lo < s->lo) s->lo = o.lo;
}
/* 1 when every product of a value of span w and one of span a is exact in F32, so a fused
 * multiply-add gives the bits of the product rounded and then added: a BF16 value is m * 2^q
 * with m < 2^8 and q >= max(e, 1) - 134 (e its exponent field), below 2^(e - 126); the
 * product has at most 16 significant bits, and is exact when it stays below 2^128
 * (w.hi + a.hi <= 380) and its last bit at or above 2^-149, F32's least denormal
 * (w.lo + a.lo >= 119). Zeros, Inf and NaN give the same bits either way. */
static inline int fq__bf16_fused_ok(fq__bf16_span w, fq__bf16_span a) {
    return w.hi + a.hi <= 380 && w.lo + a.lo >= 119;
}

typedef void (*fq__dotmn_fn)(int64_t n, float *s, size_t bs, const void *x, size_t bx, int nrx,
                             const void *y, size_t by, int nry);
typedef struct fq__isa_kernels {
    fq__dot_fn vec_dot[FQ_TYPE_COUNT];   /* NULL: keep the generic kernel */
    fq__act_fn from_float_act[FQ_TYPE_COUNT];
    fq__dec_fn to_float[FQ_TYPE_COUNT];
    fq__dotf_fn vec_dot_f32[FQ_TYPE_COUNT];
    /* a level that sets vec_dot[t] sets these too (a loop over its vec_dot at least), so
     * the live table never mixes one level's vec_dot with another's vec_dot_n */
    fq__dotn_fn vec_dot_n[FQ_TYPE_COUNT];
    fq__dotmn_fn vec_dot_mn[FQ_TYPE_COUNT];
    int mn_x[FQ_TYPE_COUNT], mn_y[FQ_TYPE_COUNT]; /* 0: keep */
    int mv_x[FQ_TYPE_COUNT];                      /* 0: keep */
    fq__dotmn_f32_fn vec_dot_f32_mn[FQ_TYPE_COUNT]; /* NULL: keep */
    fq__dotmn_f32_fn vec_dot_dec_mn[FQ_TYPE_COUNT]; /* NULL: keep */
    void (*bf16_span)(const uint16_t *h, int64_t n, fq__bf16_span *s); /* NULL: keep */
    /* iters x 12 independent 8-lane F32 fused multiply-adds on registers (the float
     * tiles' compute ceiling, for `fqlm bench kernels`); returns a value that depends on
     * them all. NULL: keep */
    float (*fma_peak)(int64_t iters);
} fq__isa_kernels;
/* the live level's fma_peak, or NULL where the level has none (generic) */
float (*fq__fma_peak_fn(void))(int64_t iters);
void fq__isa_fill_avx2(fq__isa_kernels *k);
void fq__isa_fill_avx512(fq__isa_kernels *k);
/* the decode/prompt dots of quants_dot_*.c, called by the fills above after their own */
void fq__isa_fill_dot_avx2(fq__isa_kernels *k);
void fq__isa_fill_dot_avx512(fq__isa_kernels *k);
/* the K-quant tiles of mm_kq_*.c (Q2_K, Q3_K, Q5_K), called last by the fills above */
void fq__isa_fill_mmkq_avx2(fq__isa_kernels *k);
void fq__isa_fill_mmkq_avx512(fq__isa_kernels *k);
/* the 32-element block tiles of mm_q32_*.c (Q8_0, Q4_0, Q5_0, Q4_1, Q5_1) */
void fq__isa_fill_mmq32_avx2(fq__isa_kernels *k);
void fq__isa_fill_mmq32_avx512(fq__isa_kernels *k);
/* the float types' register tiles (mm_float_*.c), called at the end of fq__isa_fill */
void fq__isa_fill_mmfloat_avx2(fq__isa_kernels *k);
void fq__isa_fill_mmfloat_avx512(fq__isa_kernels *k);

#endif
