/* quants_avx512.c - the AVX-512 level (F, BW, VL, DQ, VNNI, BF16): the AVX2 bodies compiled
 * again with VNNI available, which turns the int8 dot step (maddubs + madd) into one
 * vpdpbusd. Only reached after fq_qtypes_init checked CPUID and the OS state (XCR0).
 * Results are the same bits as the generic kernels, as at the AVX2 level. */
#define FQ_X86_SUFFIX avx512
#include "arch/x86/quants_avx2.c"
