/* qtypes.c - the type-trait table and scalar F16/BF16 conversions.
 * Kernels (decode, encode, dot products) live in quants.c; SIMD variants in src/arch/. */
#include "qtypes.h"

#include <pthread.h>
#include <string.h>

/* Every supported type's row: name, block geometry and its portable kernels. The macro
 * builds both the live table (SIMD pointers patched in by fq_qtypes_init) and the generic
 * one that tests compare against. */
#define FQ__ROW(T, t, NAME, BLCK, SIZE, VDT, VD, ACT)                                    \
    [FQ_TYPE_##T] = {.name = NAME, .supported = 1, .blck = BLCK, .type_size = SIZE,      \
                     .to_float = fq_decode_##t, .from_float = fq_encode_##t,             \
                     .vec_dot_type = FQ_TYPE_##VDT, .vec_dot = fq_vec_dot_##VD,          \
                     .vec_dot_f32 = fq_vec_dot_##t##_f32, .from_float_act = ACT,         \
                     .vec_dot_n = fq_vec_dot_n_##VD, .vec_dot_mn = fq_vec_dot_mn_##VD,   \
                     .mn_x = 1, .mn_y = 1, .mv_x = 1,                                    \
                     .act_dec = FQ_TYPE_##T == FQ_TYPE_F16 || FQ_TYPE_##T == FQ_TYPE_BF16}
#define FQ__TABLE                                                                            \
    [FQ_TYPE_F32] = {.name = "F32", .supported = 1, .blck = 1, .type_size = 4,               \
                     .to_float = fq_decode_f32, .from_float = fq_encode_f32,                 \
                     .vec_dot_type = FQ_TYPE_F32, .vec_dot = fq_vec_dot_f32_f32,             \
                     .vec_dot_f32 = fq_vec_dot_f32_f32x, .from_float_act = fq_encode_f32,    \
                     .vec_dot_n = fq_vec_dot_n_f32_f32, .vec_dot_mn = fq_vec_dot_mn_f32_f32, \
                     .mn_x = 1, .mn_y = 1, .mv_x = 1},                                       \
    FQ__ROW(F16, f16, "F16", 1, 2, F16, f16_f16, fq_encode_act_f16),                         \
    FQ__ROW(Q4_0, q4_0, "Q4_0", 32, 18, Q8_0, q4_0_q8_0, NULL),                              \
    FQ__ROW(Q4_1, q4_1, "Q4_1", 32, 20, Q8_1, q4_1_q8_1, NULL),                              \
    FQ__ROW(Q5_0, q5_0, "Q5_0", 32, 22, Q8_0, q5_0_q8_0, NULL),                              \
    FQ__ROW(Q5_1, q5_1, "Q5_1", 32, 24, Q8_1, q5_1_q8_1, NULL),                              \
    FQ__ROW(Q8_0, q8_0, "Q8_0", 32, 34, Q8_0, q8_0_q8_0, fq_encode_act_q8_0),                \
    FQ__ROW(Q8_1, q8_1, "Q8_1", 32, 36, Q8_1, q8_1_q8_1, fq_encode_act_q8_1),                \
    FQ__ROW(Q2_K, q2_K, "Q2_K", 256, 84, Q8_K, q2_K_q8_K, NULL),                             \
    FQ__ROW(Q3_K, q3_K, "Q3_K", 256, 110, Q8_K, q3_K_q8_K, NULL),                            \
    FQ__ROW(Q4_K, q4_K, "Q4_K", 256, 144, Q8_K, q4_K_q8_K, NULL),                            \
    FQ__ROW(Q5_K, q5_K, "Q5_K", 256, 176, Q8_K, q5_K_q8_K, NULL),                            \
    FQ__ROW(Q6_K, q6_K, "Q6_K", 256, 210, Q8_K, q6_K_q8_K, NULL),                            \
    FQ__ROW(Q8_K, q8_K, "Q8_K", 256, 292, Q8_K, q8_K_q8_K, fq_encode_q8_K),                  \
    /* known to ggml, not computed here: sizes let the loader validate and inspect them */   \
    [16] = {.name = "IQ2_XXS", .blck = 256, .type_size = 66},                                \
    [17] = {.name = "IQ2_XS", .blck = 256, .type_size = 74},                                 \
    [18] = {.name = "IQ3_XXS", .blck = 256, .type_size = 98},                                \
    [19] = {.name = "IQ1_S", .blck = 256, .type_size = 50},                                  \
    [20] = {.name = "IQ4_NL", .blck = 32, .type_size = 18},                                  \
    [21] = {.name = "IQ3_S", .blck = 256, .type_size = 110},                                 \
    [22] = {.name = "IQ2_S", .blck = 256, .type_size = 82},                                  \
    [23] = {.name = "IQ4_XS", .blck = 256, .type_size = 136},                                \
    [24] = {.name = "I8", .blck = 1, .type_size = 1},                                        \
    [25] = {.name = "I16", .blck = 1, .type_size = 2},                                       \
    [26] = {.name = "I32", .blck = 1, .type_size = 4},                                       \
    [27] = {.name = "I64", .blck = 1, .type_size = 8},                                       \
    [28] = {.name = "F64", .blck = 1, .type_size = 8},                                       \
    [29] = {.name = "IQ1_M", .blck = 256, .type_size = 56},                                  \
    FQ__ROW(BF16, bf16, "BF16", 1, 2, BF16, bf16_bf16, fq_encode_act_bf16),                  \
    [34] = {.name = "TQ1_0", .blck = 256, .type_size = 54},                                  \
    [35] = {.name = "TQ2_0", .blck = 256, .type_size = 66},                                  \
    [39] = {.name = "MXFP4", .blck = 32, .type_size = 17},

extern fq_type_traits fq_type_table[FQ_TYPE_COUNT];
fq_type_traits fq_type_table[FQ_TYPE_COUNT] = {FQ__TABLE};
static const fq_type_traits fq_type_table_generic[FQ_TYPE_COUNT] = {FQ__TABLE};

const fq_type_traits *fq_type_get_generic(uint32_t type) {
    if (type >= FQ_TYPE_COUNT) return NULL;
    return &fq_type_table_generic[type];
}

/* ---- ISA selection ------------------------------------------------------------------ */

static const char *g_isa = "generic";
static pthread_once_t g_isa_once = PTHREAD_ONCE_INIT;

static void (*g_bf16_span)(const uint16_t *h, int64_t n, fq__bf16_span *s) = fq__bf16_span_of_generic;
void fq__bf16_span_of(const uint16_t *h, int64_t n, fq__bf16_span *s) { g_bf16_span(h, n, s); }

static float (*g_fma_peak)(int64_t iters);
float (*fq__fma_peak_fn(void))(int64_t iters) {
    fq_qtypes_init();
    return g_fma_peak;
}

static void apply_isa(const fq__isa_kernels *k) {
    if (k->bf16_span) g_bf16_span = k->bf16_span;
    if (k->fma_peak) g_fma_peak = k->fma_peak;
    for (int t = 0; t < FQ_TYPE_COUNT; t++) {
        if (k->vec_dot[t]) fq_type_table[t].vec_dot = k->vec_dot[t];
        if (k->from_float_act[t]) fq_type_table[t].from_float_act = k->from_float_act[t];
        if (k->to_float[t]) fq_type_table[t].to_float = k->to_float[t];
        if (k->vec_dot_f32[t]) fq_type_table[t].vec_dot_f32 = k->vec_dot_f32[t];
        if (k->vec_dot_n[t]) fq_type_table[t].vec_dot_n = k->vec_dot_n[t];
        if (k->vec_dot_mn[t]) fq_type_table[t].vec_dot_mn = k->vec_dot_mn[t];
        if (k->mn_x[t]) fq_type_table[t].mn_x = k->mn_x[t];
        if (k->mn_y[t]) fq_type_table[t].mn_y = k->mn_y[t];
        if (k->mv_x[t]) fq_type_table[t].mv_x = k->mv_x[t];
        if (k->vec_dot_f32_mn[t]) fq_type_table[t].vec_dot_f32_mn = k->vec_dot_f32_mn[t];
        if (k->vec_dot_dec_mn[t]) fq_type_table[t].vec_dot_dec_mn = k->vec_dot_dec_mn[t];
    }
}

/* The level cpu.c chose for every kernel family; the AVX-512 fill leaves the types it has
 * no kernel for with the AVX2 ones. */
static void init_once(void) {
    const int level = fq_cpu_isa();
    fq__isa_kernels k;
    if (level >= FQ_ISA_AVX2) {
        memset(&k, 0, sizeof k);
        fq__isa_fill_avx2(&k);
        apply_isa(&k);
    }
    if (level >= FQ_ISA_AVX512) {
        memset(&k, 0, sizeof k);
        fq__isa_fill_avx512(&k);
        apply_isa(&k);
    }
    g_isa = fq_cpu_isa_name(level);
}

const char *fq_qtypes_init(void) {
    pthread_once(&g_isa_once, init_once);
    return g_isa;
}

const fq_type_traits *fq_type_get(uint32_t type) {
    if (type >= FQ_TYPE_COUNT) return NULL;
    return &fq_type_table[type];
}

const char *fq_type_name(uint32_t type) {
    static _Thread_local char buf[48];
    const fq_type_traits *t = fq_type_get(type);
    if (t && t->name) return t->name;
    snprintf(buf, sizeof buf, "unknown type %u", type);
    return buf;
}

size_t fq_row_size(uint32_t type, int64_t n) {
    const fq_type_traits *t = fq_type_get(type);
    if (!t || !t->name || n < 0 || n % t->blck) return 0;
    return (size_t)(n / t->blck) * t->type_size;
}

float fq_fp16_to_f32(uint16_t h) {
    return fq__h2f(h); /* exact for all 65536 patterns, NaN payloads kept (tested) */
}

uint16_t fq_f32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff)); /* NaN, quiet */
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: Inf */
    if (ax < 0x38800000u) { /* below 2^-14: subnormal half or zero */
        if (ax < 0x33000000u) return (uint16_t)sign; /* < 2^-25: rounds to zero (tie -> even 0) */
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* m * 2^(e-150) in units of 2^-24: m >> (126 - e) */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = ax + 0xfff + ((ax >> 13) & 1); /* round to nearest even at bit 13 */
    r -= 0x38000000u;                           /* rebias 127 -> 15 */
    return (uint16_t)(sign | (r >> 13));
}

float fq_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t fq_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64); /* quiet NaN */
    return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}
