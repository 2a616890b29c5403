/* cpu.c - the one CPU feature probe (see cpu.h). */
#include "cpu.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const isa_names[FQ_ISA_COUNT] = {"generic", "avx2", "avx512"};

const char *fq_cpu_isa_name(int level) {
    return level >= 0 && level < FQ_ISA_COUNT ? isa_names[level] : "?";
}

int fq_cpu_isa_from_name(const char *name) {
    if (!name) return -1;
    for (int l = 0; l < FQ_ISA_COUNT; l++)
        if (!strcmp(name, isa_names[l])) return l;
    return -1;
}

static const char *const feature_names[FQ_CPUF_COUNT] = {
    "sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "pclmul", "aes", "xsave", "movbe", "avx",
    "avx2", "fma", "f16c", "bmi", "bmi2", "lzcnt", "avx512f", "avx512cd", "avx512bw",
    "avx512dq", "avx512vl", "avx512vnni", "avx512bf16", "avx512vbmi", "avx512vbmi2",
    "avx512ifma", "avx512vpopcntdq", "avx512bitalg", "avx512fp16", "avxvnni", "gfni", "vaes",
    "vpclmulqdq", "os-ymm-state", "os-zmm-state",
};

const char *fq__cpu_feature_name(int bit) {
    return bit >= 0 && bit < FQ_CPUF_COUNT ? feature_names[bit] : "?";
}

#define BIT(w, b) (((w) >> (b)) & 1u)

uint64_t fq__cpu_features_from(const fq_cpuid_regs *r) {
    uint64_t f = 0;
#define SET(name, cond) f |= (cond) ? FQ_CPUF(name) : 0
    SET(SSE3, BIT(r->l1_ecx, 0));
    SET(PCLMUL, BIT(r->l1_ecx, 1));
    SET(SSSE3, BIT(r->l1_ecx, 9));
    SET(FMA, BIT(r->l1_ecx, 12));
    SET(SSE4_1, BIT(r->l1_ecx, 19));
    SET(SSE4_2, BIT(r->l1_ecx, 20));
    SET(MOVBE, BIT(r->l1_ecx, 22));
    SET(POPCNT, BIT(r->l1_ecx, 23));
    SET(AES, BIT(r->l1_ecx, 25));
    SET(XSAVE, BIT(r->l1_ecx, 26));
    SET(AVX, BIT(r->l1_ecx, 28));
    SET(F16C, BIT(r->l1_ecx, 29));
    SET(BMI, BIT(r->l7_ebx, 3));
    SET(AVX2, BIT(r->l7_ebx, 5));
    SET(BMI2, BIT(r->l7_ebx, 8));
    SET(AVX512F, BIT(r->l7_ebx, 16));
    SET(AVX512DQ, BIT(r->l7_ebx, 17));
    SET(AVX512IFMA, BIT(r->l7_ebx, 21));
    SET(AVX512CD, BIT(r->l7_ebx, 28));
    SET(AVX512BW, BIT(r->l7_ebx, 30));
    SET(AVX512VL, BIT(r->l7_ebx, 31));
    SET(AVX512VBMI, BIT(r->l7_ecx, 1));
    SET(AVX512VBMI2, BIT(r->l7_ecx, 6));
    SET(GFNI, BIT(r->l7_ecx, 8));
    SET(VAES, BIT(r->l7_ecx, 9));
    SET(VPCLMULQDQ, BIT(r->l7_ecx, 10));
    SET(AVX512VNNI, BIT(r->l7_ecx, 11));
    SET(AVX512BITALG, BIT(r->l7_ecx, 12));
    SET(AVX512VPOPCNTDQ, BIT(r->l7_ecx, 14));
    SET(AVX512FP16, BIT(r->l7_edx, 23));
    /* subleaf 1 exists only when subleaf 0 says so in eax */
    SET(AVXVNNI, r->l7_eax >= 1 && BIT(r->l7s1_eax, 4));
    SET(AVX512BF16, r->l7_eax >= 1 && BIT(r->l7s1_eax, 5));
    SET(LZCNT, BIT(r->e1_ecx, 5));
    /* XCR0 means something only when the OS has set CR4.OSXSAVE (leaf 1 ecx bit 27) */
    const int osxsave = BIT(r->l1_ecx, 27);
    SET(OS_YMM, osxsave && (r->xcr0 & 0x6) == 0x6);
    SET(OS_ZMM, osxsave && (r->xcr0 & 0xe6) == 0xe6);
#undef SET
    return f;
}

/* The compiled-for set plus the register state the OS must save for it. */
static uint64_t required(uint64_t built) {
    uint64_t r = built;
    if (built & (FQ_CPUF(AVX) | FQ_CPUF(AVX2) | FQ_CPUF(FMA) | FQ_CPUF(F16C)))
        r |= FQ_CPUF(OS_YMM);
    const uint64_t avx512 = FQ_CPUF(AVX512F) | FQ_CPUF(AVX512CD) | FQ_CPUF(AVX512BW) |
                            FQ_CPUF(AVX512DQ) | FQ_CPUF(AVX512VL) | FQ_CPUF(AVX512VNNI) |
                            FQ_CPUF(AVX512BF16) | FQ_CPUF(AVX512VBMI) | FQ_CPUF(AVX512VBMI2) |
                            FQ_CPUF(AVX512IFMA) | FQ_CPUF(AVX512VPOPCNTDQ) |
                            FQ_CPUF(AVX512BITALG) | FQ_CPUF(AVX512FP16);
    if (built & avx512) r |= FQ_CPUF(OS_YMM) | FQ_CPUF(OS_ZMM);
    return r;
}

int fq__cpu_level_from(uint64_t feats) {
#if defined(__x86_64__) || defined(__i386__)
    const uint64_t need2 = required(fq__cpu_built_avx2), need512 = required(fq__cpu_built_avx512);
    if ((feats & need2) != need2) return FQ_ISA_GENERIC;
    if ((feats & need512) != need512) return FQ_ISA_AVX2;
    return FQ_ISA_AVX512;
#else
    (void)feats;
    return FQ_ISA_GENERIC;
#endif
}

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
static void read_regs(fq_cpuid_regs *r) {
    unsigned a, b, c, d;
    memset(r, 0, sizeof *r);
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    r->l1_ecx = c;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        r->l7_eax = a, r->l7_ebx = b, r->l7_ecx = c, r->l7_edx = d;
        if (a >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) r->l7s1_eax = a;
    }
    if (__get_cpuid(0x80000001u, &a, &b, &c, &d)) r->e1_ecx = c;
    if (BIT(r->l1_ecx, 27)) { /* XGETBV faults unless the OS enabled it */
        uint32_t lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        r->xcr0 = ((uint64_t)hi << 32) | lo;
    }
}
#else
static void read_regs(fq_cpuid_regs *r) { memset(r, 0, sizeof *r); }
#endif

static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static uint64_t g_features;
static int g_detected;

static void detect(void) {
    fq_cpuid_regs r;
    read_regs(&r);
    g_features = fq__cpu_features_from(&r);
    g_detected = fq__cpu_level_from(g_features);
}

uint64_t fq__cpu_features(void) {
    pthread_once(&detect_once, detect);
    return g_features;
}

int fq__cpu_isa_level(void) {
    pthread_once(&detect_once, detect);
    return g_detected;
}

static int env_on(const char *v) { return v && *v && strcmp(v, "0") != 0; }

int fq__cpu_choose(const char *isa_env, const char *force_env, int detected, char *msg,
                   size_t cap) {
    int level = detected;
    if (cap) msg[0] = 0;
    if (isa_env && *isa_env) {
        const int want = fq_cpu_isa_from_name(isa_env);
        if (want < 0) {
            snprintf(msg, cap, "FQLM_ISA='%s' is not a level fqlm knows (generic, avx2, avx512)",
                     isa_env);
            level = FQ_ISA_GENERIC;
        } else if (want > detected) {
            snprintf(msg, cap, "FQLM_ISA=%s: this CPU or OS cannot run the %s kernels (the best "
                     "it runs is %s)", isa_env, isa_env, fq_cpu_isa_name(detected));
        } else {
            level = want;
        }
    }
    if (env_on(force_env)) level = FQ_ISA_GENERIC;
    return level;
}

static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static int g_level, g_requested = -1, g_forced;
static char g_msg[400];

static void choose(void) {
    const char *isa = getenv("FQLM_ISA"), *force = getenv("FQLM_FORCE_GENERIC");
    g_level = fq__cpu_choose(isa, force, fq__cpu_isa_level(), g_msg, sizeof g_msg);
    if (isa && *isa) g_requested = fq_cpu_isa_from_name(isa);
    g_forced = env_on(force);
    if (g_forced) g_requested = FQ_ISA_GENERIC;
#if defined(__x86_64__) || defined(__i386__)
    if (g_requested > fq__cpu_isa_level()) { /* say which features are missing */
        const uint64_t need = required(g_requested == FQ_ISA_AVX512 ? fq__cpu_built_avx512
                                                                      : fq__cpu_built_avx2);
        const uint64_t miss = need & ~fq__cpu_features();
        size_t len = strlen(g_msg);
        const char *sep = "; missing:";
        for (int b = 0; b < FQ_CPUF_COUNT && len + 1 < sizeof g_msg; b++) {
            if (!(miss >> b & 1)) continue;
            snprintf(g_msg + len, sizeof g_msg - len, "%s %s", sep, feature_names[b]);
            len = strlen(g_msg);
            sep = ",";
        }
    }
#endif
}

int fq_cpu_isa(void) {
    pthread_once(&env_once, choose);
    return g_level;
}

const char *fq_cpu_isa_error(void) {
    pthread_once(&env_once, choose);
    return g_msg[0] ? g_msg : NULL;
}

int fq_cpu_isa_requested(void) {
    pthread_once(&env_once, choose);
    return g_requested;
}

const char *fq_cpu_isa_describe(char *buf, size_t cap) {
    const int level = fq_cpu_isa(), best = fq__cpu_isa_level();
    if (level == best) {
        snprintf(buf, cap, "%s", fq_cpu_isa_name(level));
    } else {
        snprintf(buf, cap, "%s (%s; this CPU runs %s)", fq_cpu_isa_name(level),
                 g_forced ? "FQLM_FORCE_GENERIC" : "FQLM_ISA", fq_cpu_isa_name(best));
    }
    return buf;
}
