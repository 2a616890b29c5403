/* mm_float_avx512.c - the AVX-512 level of mm_float_avx2.c: the same tiles with two weight
 * rows per zmm. Only reached after fq_qtypes_init checked CPUID and the OS state. Results
 * are the same bits as the generic kernels. */
#define FQ_X86_SUFFIX avx512
#include "arch/x86/mm_float_avx2.c"
