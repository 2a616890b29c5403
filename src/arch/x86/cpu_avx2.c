/* cpu_avx2.c - compiled with the flags of every *_avx2.c file: records the instruction sets
 * those flags let the compiler use, for the probe in cpu.c. Data only, no code, so reading
 * it is safe on any CPU. */
#include "cpu_built.h"

const uint64_t fq__cpu_built_avx2 = FQ__CPU_BUILT;
