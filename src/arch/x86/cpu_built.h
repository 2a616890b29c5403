/* cpu_built.h - FQ__CPU_BUILT: the feature bits (cpu.h) of the instruction sets the compiler
 * may use in the file that includes this, read from its predefined macros (__AVX2__ ...).
 * Included by cpu_avx2.c / cpu_avx512.c (compiled with those levels' flags). Instruction sets
 * outside this list are not probed: a Makefile flag adding one needs a bit in cpu.h too. */
#ifndef FQ_CPU_BUILT_H
#define FQ_CPU_BUILT_H

#include "cpu.h"

#ifdef __SSE3__
#define FQ__B_SSE3 FQ_CPUF(SSE3)
#else
#define FQ__B_SSE3 0
#endif
#ifdef __SSSE3__
#define FQ__B_SSSE3 FQ_CPUF(SSSE3)
#else
#define FQ__B_SSSE3 0
#endif
#ifdef __SSE4_1__
#define FQ__B_SSE4_1 FQ_CPUF(SSE4_1)
#else
#define FQ__B_SSE4_1 0
#endif
#ifdef __SSE4_2__
#define FQ__B_SSE4_2 FQ_CPUF(SSE4_2)
#else
#define FQ__B_SSE4_2 0
#endif
#ifdef __POPCNT__
#define FQ__B_POPCNT FQ_CPUF(POPCNT)
#else
#define FQ__B_POPCNT 0
#endif
#ifdef __PCLMUL__
#define FQ__B_PCLMUL FQ_CPUF(PCLMUL)
#else
#define FQ__B_PCLMUL 0
#endif
#ifdef __AES__
#define FQ__B_AES FQ_CPUF(AES)
#else
#define FQ__B_AES 0
#endif
#ifdef __XSAVE__
#define FQ__B_XSAVE FQ_CPUF(XSAVE)
#else
#define FQ__B_XSAVE 0
#endif
#ifdef __MOVBE__
#define FQ__B_MOVBE FQ_CPUF(MOVBE)
#else
#define FQ__B_MOVBE 0
#endif
#ifdef __AVX__
#define FQ__B_AVX FQ_CPUF(AVX)
#else
#define FQ__B_AVX 0
#endif
#ifdef __AVX2__
#define FQ__B_AVX2 FQ_CPUF(AVX2)
#else
#define FQ__B_AVX2 0
#endif
#ifdef __FMA__
#define FQ__B_FMA FQ_CPUF(FMA)
#else
#define FQ__B_FMA 0
#endif
#ifdef __F16C__
#define FQ__B_F16C FQ_CPUF(F16C)
#else
#define FQ__B_F16C 0
#endif
#ifdef __BMI__
#define FQ__B_BMI FQ_CPUF(BMI)
#else
#define FQ__B_BMI 0
#endif
#ifdef __BMI2__
#define FQ__B_BMI2 FQ_CPUF(BMI2)
#else
#define FQ__B_BMI2 0
#endif
#ifdef __LZCNT__
#define FQ__B_LZCNT FQ_CPUF(LZCNT)
#else
#define FQ__B_LZCNT 0
#endif
#ifdef __AVX512F__
#define FQ__B_AVX512F FQ_CPUF(AVX512F)
#else
#define FQ__B_AVX512F 0
#endif
#ifdef __AVX512CD__
#define FQ__B_AVX512CD FQ_CPUF(AVX512CD)
#else
#define FQ__B_AVX512CD 0
#endif
#ifdef __AVX512BW__
#define FQ__B_AVX512BW FQ_CPUF(AVX512BW)
#else
#define FQ__B_AVX512BW 0
#endif
#ifdef __AVX512DQ__
#define FQ__B_AVX512DQ FQ_CPUF(AVX512DQ)
#else
#define FQ__B_AVX512DQ 0
#endif
#ifdef __AVX512VL__
#define FQ__B_AVX512VL FQ_CPUF(AVX512VL)
#else
#define FQ__B_AVX512VL 0
#endif
#ifdef __AVX512VNNI__
#define FQ__B_AVX512VNNI FQ_CPUF(AVX512VNNI)
#else
#define FQ__B_AVX512VNNI 0
#endif
#ifdef __AVX512BF16__
#define FQ__B_AVX512BF16 FQ_CPUF(AVX512BF16)
#else
#define FQ__B_AVX512BF16 0
#endif
#ifdef __AVX512VBMI__
#define FQ__B_AVX512VBMI FQ_CPUF(AVX512VBMI)
#else
#define FQ__B_AVX512VBMI 0
#endif
#ifdef __AVX512VBMI2__
#define FQ__B_AVX512VBMI2 FQ_CPUF(AVX512VBMI2)
#else
#define FQ__B_AVX512VBMI2 0
#endif
#ifdef __AVX512IFMA__
#define FQ__B_AVX512IFMA FQ_CPUF(AVX512IFMA)
#else
#define FQ__B_AVX512IFMA 0
#endif
#ifdef __AVX512VPOPCNTDQ__
#define FQ__B_AVX512VPOPCNTDQ FQ_CPUF(AVX512VPOPCNTDQ)
#else
#define FQ__B_AVX512VPOPCNTDQ 0
#endif
#ifdef __AVX512BITALG__
#define FQ__B_AVX512BITALG FQ_CPUF(AVX512BITALG)
#else
#define FQ__B_AVX512BITALG 0
#endif
#ifdef __AVX512FP16__
#define FQ__B_AVX512FP16 FQ_CPUF(AVX512FP16)
#else
#define FQ__B_AVX512FP16 0
#endif
#ifdef __AVXVNNI__
#define FQ__B_AVXVNNI FQ_CPUF(AVXVNNI)
#else
#define FQ__B_AVXVNNI 0
#endif
#ifdef __GFNI__
#define FQ__B_GFNI FQ_CPUF(GFNI)
#else
#define FQ__B_GFNI 0
#endif
#ifdef __VAES__
#define FQ__B_VAES FQ_CPUF(VAES)
#else
#define FQ__B_VAES 0
#endif
#ifdef __VPCLMULQDQ__
#define FQ__B_VPCLMULQDQ FQ_CPUF(VPCLMULQDQ)
#else
#define FQ__B_VPCLMULQDQ 0
#endif

#define FQ__CPU_BUILT \
   ((FQ__B_SSE3 | FQ__B_SSSE3 | FQ__B_SSE4_1 | FQ__B_SSE4_2) | \
    (FQ__B_POPCNT | FQ__B_PCLMUL | FQ__B_AES | FQ__B_XSAVE) | \
    (FQ__B_MOVBE | FQ__B_AVX | FQ__B_AVX2 | FQ__B_FMA) | \
    (FQ__B_F16C | FQ__B_BMI | FQ__B_BMI2 | FQ__B_LZCNT) | \
    (FQ__B_AVX512F | FQ__B_AVX512CD | FQ__B_AVX512BW | FQ__B_AVX512DQ) | \
    (FQ__B_AVX512VL | FQ__B_AVX512VNNI | FQ__B_AVX512BF16 | FQ__B_AVX512VBMI) | \
    (FQ__B_AVX512VBMI2 | FQ__B_AVX512IFMA | FQ__B_AVX512VPOPCNTDQ | FQ__B_AVX512BITALG) | \
    (FQ__B_AVX512FP16 | FQ__B_AVXVNNI | FQ__B_GFNI | FQ__B_VAES) | \
    (FQ__B_VPCLMULQDQ))

#endif
