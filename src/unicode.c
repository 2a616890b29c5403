/* unicode.c - codepoint classes (see unicode.h). */
#include "unicode.h"

#include "unicode_data.h"

uint16_t fq_uc_flags(uint32_t cpt) {
    if (cpt >= 0x110000) return FQ_UC_UNDEFINED;
    /* binary search for the last range starting at or before cpt */
    size_t lo = 0, hi = FQ_UC_N_RANGES;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (fq_uc_range_start[mid] <= cpt) lo = mid;
        else hi = mid;
    }
    return fq_uc_range_flags[lo];
}

size_t fq_utf8_decode(const uint8_t *s, size_t n, uint32_t *cpt) {
    uint8_t b = s[0];
    if (b < 0x80) {
        *cpt = b;
        return 1;
    }
    size_t len = (b & 0x40) == 0 ? 0 : (b & 0x20) == 0 ? 2 : (b & 0x10) == 0 ? 3 : (b & 0x08) == 0 ? 4 : 0;
    if (len == 0 || len > n) goto bad;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) goto bad;
    if (len == 2) *cpt = (uint32_t)(b & 0x1F) << 6 | (s[1] & 0x3Fu);
    else if (len == 3) *cpt = (uint32_t)(b & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3Fu);
    else *cpt = (uint32_t)(b & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3Fu);
    return len;
bad:
    *cpt = 0xFFFD;
    return 1;
}
