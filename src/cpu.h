/* cpu.h - the one CPU feature probe: which ISA level every kernel family runs.
 *
 * Levels: generic (the portable C kernels, always there), avx2 and avx512 (the files
 * in src/arch/x86/ named ..._avx2.c and ..._avx512.c). A level is runnable when the CPU reports, and the
 * OS has enabled (XCR0 via XGETBV: YMM state for AVX, opmask and ZMM state for AVX-512),
 * every feature that level's files were compiled for. That set is not written down here:
 * src/arch/x86/cpu_avx2.c and cpu_avx512.c are compiled with those files' flags and record
 * which instruction sets the compiler was allowed to use (fq__cpu_built), so a flag added to
 * the Makefile is checked at run time without anyone remembering to.
 *
 * Every dispatcher (type traits in qtypes.c, number formats in formats.c, attention in
 * attn.c, the encoders in quantize.c) reads fq_cpu_isa() and nothing else, so one run uses
 * one level for everything.
 *
 * The environment can lower the level (read once, on the first call):
 *   FQLM_ISA=generic|avx2|avx512   use that level; one the CPU cannot run is refused
 *   FQLM_FORCE_GENERIC=1           the same as FQLM_ISA=generic (the lower of the two wins)
 * A refused or unknown request is not fatal in the library (it never exits or prints): it
 * runs the best level not above the request (generic for a name it does not know) and
 * fq_cpu_isa_error() says what was wrong; the CLI and fqlm_model_load refuse to run then. */
#ifndef FQ_CPU_H
#define FQ_CPU_H

#include <stddef.h>
#include <stdint.h>

enum fq_isa { FQ_ISA_GENERIC = 0, FQ_ISA_AVX2 = 1, FQ_ISA_AVX512 = 2, FQ_ISA_COUNT };

/* The level every kernel family uses in this process (detection and environment as above;
 * thread-safe, the same value on every call). */
int fq_cpu_isa(void);
/* "generic", "avx2", "avx512"; "?" for anything else. */
const char *fq_cpu_isa_name(int level);
/* The level named name, or -1. */
int fq_cpu_isa_from_name(const char *name);
/* NULL, or why the environment's request was not granted ("FQLM_ISA=avx512: this CPU ..."). */
const char *fq_cpu_isa_error(void);
/* The level the environment asked for, or -1 when it asked for none. */
int fq_cpu_isa_requested(void);
/* One line for reports: the level in use, and when the environment lowered it, by what and
 * what the CPU could run ("generic (FQLM_FORCE_GENERIC; this CPU runs avx2)"). */
const char *fq_cpu_isa_describe(char *buf, size_t cap);

/* ---- internal (src/arch/, tests) ------------------------------------------------------ */

/* Feature bits: instruction sets as the compiler names them (__AVX2__ ...), plus the OS
 * state a set needs. */
enum {
    FQ_CPUF_SSE3 = 0, FQ_CPUF_SSSE3, FQ_CPUF_SSE4_1, FQ_CPUF_SSE4_2, FQ_CPUF_POPCNT,
    FQ_CPUF_PCLMUL, FQ_CPUF_AES, FQ_CPUF_XSAVE, FQ_CPUF_MOVBE, FQ_CPUF_AVX, FQ_CPUF_AVX2,
    FQ_CPUF_FMA, FQ_CPUF_F16C, FQ_CPUF_BMI, FQ_CPUF_BMI2, FQ_CPUF_LZCNT, FQ_CPUF_AVX512F,
    FQ_CPUF_AVX512CD, FQ_CPUF_AVX512BW, FQ_CPUF_AVX512DQ, FQ_CPUF_AVX512VL,
    FQ_CPUF_AVX512VNNI, FQ_CPUF_AVX512BF16, FQ_CPUF_AVX512VBMI, FQ_CPUF_AVX512VBMI2,
    FQ_CPUF_AVX512IFMA, FQ_CPUF_AVX512VPOPCNTDQ, FQ_CPUF_AVX512BITALG, FQ_CPUF_AVX512FP16,
    FQ_CPUF_AVXVNNI, FQ_CPUF_GFNI, FQ_CPUF_VAES, FQ_CPUF_VPCLMULQDQ,
    FQ_CPUF_OS_YMM, /* XCR0: SSE and AVX state saved by the OS */
    FQ_CPUF_OS_ZMM, /* XCR0: also opmask, ZMM_Hi256 and Hi16_ZMM state */
    FQ_CPUF_COUNT
};
#define FQ_CPUF(name) ((uint64_t)1 << FQ_CPUF_##name)

/* What each level's files were compiled for (src/arch/x86/cpu_*.c; generic: the base flags). */
extern const uint64_t fq__cpu_built_avx2, fq__cpu_built_avx512;

/* The CPUID words the probe reads; zero where the leaf does not exist. */
typedef struct {
    uint32_t l1_ecx;          /* leaf 1 */
    uint32_t l7_eax, l7_ebx, l7_ecx, l7_edx; /* leaf 7 subleaf 0 (eax: last subleaf) */
    uint32_t l7s1_eax;        /* leaf 7 subleaf 1 */
    uint32_t e1_ecx;          /* leaf 0x80000001 */
    uint64_t xcr0;            /* XGETBV(0); read only when leaf 1 reports OSXSAVE */
} fq_cpuid_regs;

/* The feature bits those words report (pure). */
uint64_t fq__cpu_features_from(const fq_cpuid_regs *r);
/* The highest level whose compiled-for features (plus the OS state they need) are all in
 * feats (pure). */
int fq__cpu_level_from(uint64_t feats);
/* This CPU's feature bits and highest runnable level, whatever the environment says
 * (cached). */
uint64_t fq__cpu_features(void);
int fq__cpu_isa_level(void);
/* The level to use given the two environment values (NULL: unset) and the detected level
 * (pure); msg[0..cap) gets "" or why the request was refused. */
int fq__cpu_choose(const char *isa_env, const char *force_env, int detected, char *msg,
                   size_t cap);
/* The compiler's name of a feature bit ("avx512bf16", "os-zmm-state"). */
const char *fq__cpu_feature_name(int bit);

#endif
