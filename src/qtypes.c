/* qtypes.c - the type-trait table and scalar F16/BF16 conversions.
 * Kernels (decode, encode, dot products) live in quants.c; SIMD variants in src/arch/. */
#include "qtypes.h"

#include <string.h>

/* Kernels are filled in by quants.c through fq_qtypes_init / the table below. */
extern fq_type_traits fq_type_table[FQ_TYPE_COUNT];

fq_type_traits fq_type_table[FQ_TYPE_COUNT] = {
    [FQ_TYPE_F32]  = {.name = "F32", .blck = 1, .type_size = 4},
    [FQ_TYPE_F16]  = {.name = "F16", .blck = 1, .type_size = 2},
    [FQ_TYPE_Q4_0] = {.name = "Q4_0", .blck = 32, .type_size = 18},
    [FQ_TYPE_Q4_1] = {.name = "Q4_1", .blck = 32, .type_size = 20},
    [FQ_TYPE_Q5_0] = {.name = "Q5_0", .blck = 32, .type_size = 22},
    [FQ_TYPE_Q5_1] = {.name = "Q5_1", .blck = 32, .type_size = 24},
    [FQ_TYPE_Q8_0] = {.name = "Q8_0", .blck = 32, .type_size = 34},
    [FQ_TYPE_Q8_1] = {.name = "Q8_1", .blck = 32, .type_size = 36},
    [FQ_TYPE_Q2_K] = {.name = "Q2_K", .blck = 256, .type_size = 84},
    [FQ_TYPE_Q3_K] = {.name = "Q3_K", .blck = 256, .type_size = 110},
    [FQ_TYPE_Q4_K] = {.name = "Q4_K", .blck = 256, .type_size = 144},
    [FQ_TYPE_Q5_K] = {.name = "Q5_K", .blck = 256, .type_size = 176},
    [FQ_TYPE_Q6_K] = {.name = "Q6_K", .blck = 256, .type_size = 210},
    [FQ_TYPE_Q8_K] = {.name = "Q8_K", .blck = 256, .type_size = 292},
    /* known to ggml, not computed here: sizes let the loader validate and inspect them */
    [16] = {.name = "IQ2_XXS", .blck = 256, .type_size = 66},
    [17] = {.name = "IQ2_XS", .blck = 256, .type_size = 74},
    [18] = {.name = "IQ3_XXS", .blck = 256, .type_size = 98},
    [19] = {.name = "IQ1_S", .blck = 256, .type_size = 50},
    [20] = {.name = "IQ4_NL", .blck = 32, .type_size = 18},
    [21] = {.name = "IQ3_S", .blck = 256, .type_size = 110},
    [22] = {.name = "IQ2_S", .blck = 256, .type_size = 82},
    [23] = {.name = "IQ4_XS", .blck = 256, .type_size = 136},
    [24] = {.name = "I8", .blck = 1, .type_size = 1},
    [25] = {.name = "I16", .blck = 1, .type_size = 2},
    [26] = {.name = "I32", .blck = 1, .type_size = 4},
    [27] = {.name = "I64", .blck = 1, .type_size = 8},
    [28] = {.name = "F64", .blck = 1, .type_size = 8},
    [29] = {.name = "IQ1_M", .blck = 256, .type_size = 56},
    [FQ_TYPE_BF16] = {.name = "BF16", .blck = 1, .type_size = 2},
    [34] = {.name = "TQ1_0", .blck = 256, .type_size = 54},
    [35] = {.name = "TQ2_0", .blck = 256, .type_size = 66},
    [39] = {.name = "MXFP4", .blck = 32, .type_size = 17},
};

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
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
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
