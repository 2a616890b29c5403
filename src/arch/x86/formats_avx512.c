/* formats_avx512.c - AVX-512 variant of the blocked grid kernel (placeholder: forwards to
 * the AVX2 variant until the 16-lane version lands). */
#include "formats_internal.h"

void fq_blocked_avx512(const fq_blockop *op, float *x, int64_t n, uint64_t key,
                       int64_t idx0, fq_qstats *st) {
    fq_blocked_avx2(op, x, n, key, idx0, st);
}

void fq_bstat_avx512(const float *x, int64_t n, int lohi, fq_bstat *bs) {
    fq_bstat_avx2(x, n, lohi, bs);
}
