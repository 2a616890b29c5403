/* tok_pre.c - BPE pre-tokenizers (see tok_pre.h). The regex lists and the name-to-list
 * mapping are llama.cpp c392e509's (src/llama-vocab.cpp, src/unicode.cpp); the matchers
 * are our own. */
#include "tok_pre.h"

#include "unicode.h"

#include <string.h>

/* ---- the pre values llama.cpp accepts ----------------------------------------------------- */

typedef struct pre_name {
    const char *name;
    fq_pre_info info;
} pre_name;

/* {kind, add_bos, clean_spaces, ignore_merges} */
static const pre_name pre_names[] = {
    {"default", {FQ_PRE_DEFAULT, 0, 1, 0}},
    {"llama3", {FQ_PRE_LLAMA3, 1, 1, 1}},
    {"llama-v3", {FQ_PRE_LLAMA3, 1, 1, 1}},
    {"llama-bpe", {FQ_PRE_LLAMA3, 1, 1, 1}},
    {"falcon3", {FQ_PRE_LLAMA3, 1, 1, 1}},
    {"deepseek-llm", {FQ_PRE_DEEPSEEK_LLM, 0, 0, 0}},
    {"deepseek-coder", {FQ_PRE_DEEPSEEK_CODER, 0, 0, 0}},
    {"deepseek-v3", {FQ_PRE_DEEPSEEK3, 0, 0, 0}},
    {"falcon", {FQ_PRE_FALCON, 0, 1, 0}},
    {"mpt", {FQ_PRE_GPT2, 0, 1, 0}},
    {"starcoder", {FQ_PRE_STARCODER, 0, 1, 0}},
    {"gpt-2", {FQ_PRE_GPT2, 0, 1, 0}},
    {"phi-2", {FQ_PRE_GPT2, 0, 1, 0}},
    {"jina-es", {FQ_PRE_GPT2, 0, 1, 0}},
    {"jina-de", {FQ_PRE_GPT2, 0, 1, 0}},
    {"gigachat", {FQ_PRE_GPT2, 0, 1, 0}},
    {"jina-v1-en", {FQ_PRE_GPT2, 0, 1, 0}},
    {"jina-v2-es", {FQ_PRE_GPT2, 0, 1, 0}},
    {"jina-v2-de", {FQ_PRE_GPT2, 0, 1, 0}},
    {"jina-v2-code", {FQ_PRE_GPT2, 0, 1, 0}},
    {"roberta-bpe", {FQ_PRE_GPT2, 0, 1, 0}},
    {"refact", {FQ_PRE_STARCODER, 0, 1, 0}},
    {"command-r", {FQ_PRE_STARCODER, 0, 0, 0}},
    {"qwen2", {FQ_PRE_QWEN2, 0, 0, 0}},
    {"deepseek-r1-qwen", {FQ_PRE_QWEN2, 0, 0, 0}},
    {"stablelm2", {FQ_PRE_QWEN2, 0, 1, 0}},
    {"olmo", {FQ_PRE_GPT2, 0, 1, 0}},
    {"dbrx", {FQ_PRE_LLAMA3, 0, 1, 0}},
    {"smaug-bpe", {FQ_PRE_LLAMA3, 0, 1, 0}},
    {"poro-chat", {FQ_PRE_BLOOM, 0, 0, 0}},
    {"chatglm-bpe", {FQ_PRE_LLAMA3, 0, 1, 0}},
    {"viking", {FQ_PRE_VIKING, 0, 0, 0}},
    {"jais", {FQ_PRE_GPT2, 0, 1, 0}},
    {"tekken", {FQ_PRE_TEKKEN, 1, 0, 1}},
    {"smollm", {FQ_PRE_STARCODER, 0, 0, 0}},
    {"codeshell", {FQ_PRE_STARCODER, 0, 1, 0}},
    {"bloom", {FQ_PRE_BLOOM, 0, 1, 0}},
    {"gpt3-finnish", {FQ_PRE_BLOOM, 0, 1, 0}},
    {"exaone", {FQ_PRE_STARCODER, 0, 1, 0}},
    {"chameleon", {FQ_PRE_CHAMELEON, 1, 0, 0}},
    {"minerva-7b", {FQ_PRE_STARCODER, 0, 1, 0}},
    {"megrez", {FQ_PRE_QWEN2, 0, 1, 0}},
};

int fq_pre_lookup(const char *name, size_t len, fq_pre_info *info) {
    if (!name) {
        *info = pre_names[0].info;
        return 0;
    }
    for (size_t i = 0; i < sizeof pre_names / sizeof pre_names[0]; i++)
        if (strlen(pre_names[i].name) == len && memcmp(pre_names[i].name, name, len) == 0) {
            *info = pre_names[i].info;
            return 0;
        }
    return -1;
}

const char *fq_pre_known(void) {
    return "default, llama3, llama-v3, llama-bpe, falcon3, deepseek-llm, deepseek-coder, "
           "falcon, mpt, starcoder, gpt-2, phi-2, jina-es, jina-de, gigachat, jina-v1-en, "
           "jina-v2-es, jina-v2-de, jina-v2-code, roberta-bpe, refact, command-r, qwen2, "
           "deepseek-r1-qwen, stablelm2, olmo, dbrx, smaug-bpe, chatglm-bpe, jais, smollm, "
           "codeshell, exaone, minerva-7b, megrez, deepseek-v3, poro-chat, viking, tekken, bloom, "
           "gpt3-finnish, chameleon";
}

/* ---- splitting ----------------------------------------------------------------------------- */

typedef struct seglist {
    uint32_t *v;
    size_t n;
} seglist;

static void add(seglist *o, size_t len) {
    if (len) o->v[o->n++] = (uint32_t)len;
}

#define WS FQ_UC_SPACE
#define LET FQ_UC_LETTER
#define NUM FQ_UC_NUMBER

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ on [a, e) */
static void split_gpt2(const uint32_t *cpt, const uint16_t *fl, size_t a, size_t e, seglist *o) {
#define F(p) ((p) < e ? fl[p] : 0)
    size_t prev = a, pos = a;
#define EMIT(end) (add(o, (end) - prev), prev = (end))
    while (pos < e) {
        uint32_t c = cpt[pos];
        if (c == '\'' && pos + 1 < e) {
            uint32_t c1 = cpt[pos + 1];
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
                pos += 2;
                EMIT(pos);
                continue;
            }
            if (pos + 2 < e) {
                uint32_t c2 = cpt[pos + 2];
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                    pos += 3;
                    EMIT(pos);
                    continue;
                }
            }
        }
        uint16_t f2 = c == ' ' ? F(pos + 1) : fl[pos];
        if (f2 & LET) {
            pos += c == ' ';
            while (F(pos) & LET) pos++;
            EMIT(pos);
            continue;
        }
        if (f2 & NUM) {
            pos += c == ' ';
            while (F(pos) & NUM) pos++;
            EMIT(pos);
            continue;
        }
        if (!(f2 & (WS | LET | NUM)) && f2) {
            pos += c == ' ';
            while (!(F(pos) & (WS | LET | NUM)) && F(pos)) pos++;
            EMIT(pos);
            continue;
        }
        size_t nws = 0;
        while (F(pos + nws) & WS) nws++;
        if (nws > 1 && pos + nws < e) {
            pos += nws - 1;
            EMIT(pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            EMIT(pos);
            continue;
        }
        pos++;
        EMIT(pos);
    }
}

static uint32_t lower_ascii(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_num}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ on [a, e). No non-ASCII codepoint
 * lowercases to one of the contraction letters (tools/gen_unicode.py checks), so ASCII
 * case folding is exact. */
static void split_llama3(const uint32_t *cpt, const uint16_t *fl, size_t a, size_t e,
                         size_t max_num, seglist *o) {
    size_t prev = a, pos = a;
    while (pos < e) {
        uint32_t c = cpt[pos];
        uint16_t f = fl[pos];
        if (c == '\'' && pos + 1 < e) {
            uint32_t c1 = lower_ascii(cpt[pos + 1]);
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
                pos += 2;
                EMIT(pos);
                continue;
            }
            if (pos + 2 < e) {
                uint32_t c2 = lower_ascii(cpt[pos + 2]);
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                    pos += 3;
                    EMIT(pos);
                    continue;
                }
            }
        }
        if (!(c == '\r' || c == '\n' || (f & NUM)) && ((f & LET) || (F(pos + 1) & LET))) {
            pos++;
            while (F(pos) & LET) pos++;
            EMIT(pos);
            continue;
        }
        if (f & NUM) {
            size_t ini = pos;
            while (F(pos) & NUM) {
                if (++pos - ini >= max_num) {
                    EMIT(pos);
                    ini = pos;
                }
            }
            EMIT(pos);
            continue;
        }
        uint16_t f2 = c == ' ' ? F(pos + 1) : f;
        if (!(f2 & (WS | LET | NUM))) {
            pos += c == ' ';
            while (!(F(pos) & (WS | LET | NUM)) && F(pos)) pos++;
            while (pos < e && (cpt[pos] == '\r' || cpt[pos] == '\n')) pos++;
            EMIT(pos);
            continue;
        }
        size_t nws = 0, last_rn = 0;
        while (F(pos + nws) & WS) {
            uint32_t c2 = cpt[pos + nws];
            if (c2 == '\r' || c2 == '\n') last_rn = pos + nws + 1;
            nws++;
        }
        if (last_rn > 0) {
            pos = last_rn;
            EMIT(pos);
            continue;
        }
        if (nws > 1 && pos + nws < e) {
            pos += nws - 1;
            EMIT(pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            EMIT(pos);
            continue;
        }
        pos++;
        EMIT(pos);
    }
#undef F
#undef EMIT
}

/* Character classes of the single-pattern regexes. "Collapsed" ones (written with \p{..})
 * see a non-ASCII codepoint as its class, whitespace first; the others see codepoints with
 * non-ASCII whitespace turned into U+000B. */
enum cls {
    C_PUNCT_DEFAULT,  /* [\p{P}\$\+<=>\^~\|] */
    C_PUNCT_FALCON,   /* [\p{P}\$\+<=>\^~\|`] */
    C_NUM,            /* \p{N} */
    C_DIGIT,          /* [0-9] */
    C_CRLF,           /* [\r\n] */
    C_LETTER,         /* \p{L} */
    C_PUNCT,          /* \p{P} */
    C_DS_LETTER,      /* deepseek-llm's letter ranges */
    C_DS_PUNCT,       /* [!-/:-~！-／：-～‘-‟　-。] */
    C_CJK,            /* [一-龥ࠀ-一가-퟿] */
    C_CJK3,           /* [一-龥぀-ゟ゠-ヿ] (deepseek-v3) */
    C_BLOOM,          /* [^(\s|.,!?…。，、।۔،)] */
    C_CHAM_PUNCT,     /* [\p{P}!-/:-@\[-`{-~] (chameleon) */
};

/* deepseek-llm's letter set, as codepoint ranges (llama.cpp's regex text, first to last) */
static const uint32_t ds_letter[][2] = {
    {0x41, 0x5A}, {0x61, 0x7A}, {0xB5, 0xB5}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x1BA},
    {0x1BC, 0x1BF}, {0x1C4, 0x293}, {0x295, 0x2AF}, {0x370, 0x373}, {0x376, 0x377},
    {0x37B, 0x37D}, {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C},
    {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481}, {0x48A, 0x52F}, {0x531, 0x556},
    {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF},
    {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D},
    {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE},
    {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC},
    {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210A, 0x2113},
    {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128},
    {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149},
    {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE},
    {0x2CF2, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F}, {0xA771, 0xA787},
    {0xA78B, 0xA78E}, {0xAB70, 0xABBF}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A},
    {0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};

/* Whether c lies in one of the n sorted, disjoint ranges r. */
static int in_ranges(uint32_t c, const uint32_t (*r)[2], size_t n) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < r[mid][0]) hi = mid;
        else if (c > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

static int in_cls(int k, uint32_t c, uint16_t f) {
    /* the value std::regex sees: collapsed class or codepoint with whitespace folded */
    int nonascii_ws = c >= 0x80 && (f & WS);
    switch (k) {
    case C_PUNCT_DEFAULT:
    case C_PUNCT_FALCON:
        if (c < 0x80)
            return (f & FQ_UC_PUNCT) || strchr("$+<=>^~|", (int)c) != NULL ||
                   (k == C_PUNCT_FALCON && c == '`');
        return !nonascii_ws && (f & FQ_UC_PUNCT);
    case C_NUM: return c < 0x80 ? (c >= '0' && c <= '9') : !nonascii_ws && (f & NUM);
    case C_DIGIT: return c >= '0' && c <= '9';
    case C_CRLF: return c == '\r' || c == '\n';
    case C_LETTER: return !nonascii_ws && (f & LET);
    case C_PUNCT: return !nonascii_ws && (f & FQ_UC_PUNCT);
    case C_DS_LETTER:
        return !nonascii_ws && in_ranges(c, ds_letter, sizeof ds_letter / sizeof ds_letter[0]);
    case C_DS_PUNCT:
        if (nonascii_ws) return 0;
        return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x7E) || (c >= 0xFF01 && c <= 0xFF0F) ||
               (c >= 0xFF1A && c <= 0xFF5E) || (c >= 0x2018 && c <= 0x201F) || (c >= 0x3000 && c <= 0x3002);
    case C_CJK:
        if (nonascii_ws) return 0;
        return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x0800 && c <= 0x4E00) || (c >= 0xAC00 && c <= 0xD7FF);
    case C_CJK3:
        if (nonascii_ws) return 0;
        return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x3040 && c <= 0x309F) || (c >= 0x30A0 && c <= 0x30FF);
    case C_BLOOM:
        if (nonascii_ws || c == ' ' || (c >= 0x09 && c <= 0x0D)) return 0;
        return !(c == '(' || c == '|' || c == '.' || c == ',' || c == '!' || c == '?' || c == ')' ||
                 c == 0x2026 || c == 0x3002 || c == 0xFF0C || c == 0x3001 || c == 0x0964 ||
                 c == 0x06D4 || c == 0x060C);
    case C_CHAM_PUNCT:
        if (c < 0x80)
            return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
                   (c >= 0x7B && c <= 0x7E);
        return !nonascii_ws && (f & FQ_UC_PUNCT);
    }
    return 0;
}

/* \s as std::regex sees it: ASCII isspace, or (non-ASCII) White_Space, folded to U+000B */
static int is_s(uint32_t c, uint16_t f) {
    return c < 0x80 ? (c == ' ' || (c >= 0x09 && c <= 0x0D)) : (f & WS) != 0;
}

enum pat { P_ONE, P_RUN, P_WS_RUN, P_DIGIT3, P_WS_END, P_RUN3, P_SP_RUN, P_IMAGE, P_TAB_SP };

/* Whether the n ASCII bytes s start at cpt[pos] within [pos, e). */
static int at_str(const uint32_t *cpt, size_t pos, size_t e, const char *s, size_t n) {
    if (e - pos < n) return 0;
    for (size_t i = 0; i < n; i++)
        if (cpt[pos + i] != (uint8_t)s[i]) return 0;
    return 1;
}

/* One single-pattern regex over [a, e): unmatched stretches and matches both become words. */
static void split_simple(const uint32_t *cpt, const uint16_t *fl, size_t a, size_t e, int pat,
                         int k, seglist *o) {
    size_t prev = a, pos = a;
    while (pos < e) {
        size_t start = pos, end = pos;
        switch (pat) {
        case P_ONE:
            if (in_cls(k, cpt[pos], fl[pos])) end = pos + 1;
            break;
        case P_RUN:
            while (end < e && in_cls(k, cpt[end], fl[end])) end++;
            break;
        case P_RUN3: /* X{1,3} */
            while (end < e && end - pos < 3 && in_cls(k, cpt[end], fl[end])) end++;
            break;
        case P_SP_RUN: /* " ?X+" (X never holds the space) */
            if (pos + 1 < e && cpt[pos] == ' ' && in_cls(k, cpt[pos + 1], fl[pos + 1]))
                end = pos + 1;
            else if (!in_cls(k, cpt[pos], fl[pos]))
                break;
            while (end < e && in_cls(k, cpt[end], fl[end])) end++;
            break;
        case P_WS_RUN: /* \s?X+ (X never holds whitespace) */
            if (pos + 1 < e && is_s(cpt[pos], fl[pos]) && in_cls(k, cpt[pos + 1], fl[pos + 1]))
                end = pos + 1;
            else if (!in_cls(k, cpt[pos], fl[pos]))
                break;
            while (end < e && in_cls(k, cpt[end], fl[end])) end++;
            break;
        case P_DIGIT3:
            if (pos + 3 <= e && in_cls(C_DIGIT, cpt[pos], 0) && in_cls(C_DIGIT, cpt[pos + 1], 0) &&
                in_cls(C_DIGIT, cpt[pos + 2], 0))
                end = pos + 3;
            break;
        case P_IMAGE: /* (IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z: no backtracking can help, as Z
                       * is not one of A-I */
            if (at_str(cpt, pos, e, "IMGIMG", 6)) {
                size_t q = pos + 6;
                while (q < e && q - pos < 10 && cpt[q] >= 'A' && cpt[q] <= 'I') q++;
                if (q > pos + 6 && q < e && cpt[q] == 'Z') end = q + 1;
            }
            break;
        case P_TAB_SP: /* ([\t\n]|    |  ), alternatives in order */
            if (cpt[pos] == '\t' || cpt[pos] == '\n') end = pos + 1;
            else if (at_str(cpt, pos, e, "    ", 4)) end = pos + 4;
            else if (at_str(cpt, pos, e, "  ", 2)) end = pos + 2;
            break;
        case P_WS_END: { /* \s+$ */
            size_t q = pos;
            while (q < e && is_s(cpt[q], fl[q])) q++;
            if (q == e && q > pos) end = e;
            else if (q > pos) pos = q - 1; /* no match starts inside this run */
            break;
        }
        }
        if (end > start) {
            add(o, start - prev);
            add(o, end - start);
            prev = pos = end;
        } else {
            pos++;
        }
    }
    add(o, e - prev);
}

/* The whitespace alternatives shared by the Llama-3-like regexes, at pos (a \s):
 * \s*[\r\n]+ | \s+(?!\S) | \s+. Returns the match end, or pos when pos is not \s. */
static size_t ws_alts(const uint32_t *cpt, const uint16_t *fl, size_t pos, size_t e) {
    size_t q = pos, last_rn = 0;
    while (q < e && is_s(cpt[q], fl[q])) {
        if (cpt[q] == '\r' || cpt[q] == '\n') last_rn = q + 1;
        q++;
    }
    if (last_rn) return last_rn;
    if (q - pos > 1 && q < e) return q - 1;
    return q;
}

/* Collapsed-text classes (\p{X} = its ASCII members or, for a non-ASCII codepoint that is not
 * whitespace, its category; llama.cpp's ASCII list for \p{S} lacks '~'). */
static int cl_l(uint32_t c, uint16_t f) { return !(c >= 0x80 && (f & WS)) && (f & LET); }
static int cl_n(uint32_t c, uint16_t f) { return !(c >= 0x80 && (f & WS)) && (f & NUM); }
static int cl_m(uint32_t c, uint16_t f) { return c >= 0x80 && !(f & WS) && (f & FQ_UC_MARK); }
static int cl_p(uint32_t c, uint16_t f) { return !(c >= 0x80 && (f & WS)) && (f & FQ_UC_PUNCT); }
static int cl_s(uint32_t c, uint16_t f) {
    if (c < 0x80) return c != '~' && (f & FQ_UC_SYMBOL);
    return !(f & WS) && (f & FQ_UC_SYMBOL);
}
static int is_alpha(uint32_t c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

/* deepseek-v3's third regex: [!-/:-@\[-`{-~][A-Za-z]+ | [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+ |
 *  ?[\p{P}\p{S}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+ : match end at pos, or pos. */
static size_t ds3_at(const uint32_t *cpt, const uint16_t *fl, size_t pos, size_t e) {
#define LM(p) (cl_l(cpt[p], fl[p]) || cl_m(cpt[p], fl[p]))
#define PS(p) (cl_p(cpt[p], fl[p]) || cl_s(cpt[p], fl[p]))
    uint32_t c = cpt[pos];
    size_t q;
    if (c >= 0x21 && c <= 0x7E && !is_alpha(c) && !(c >= '0' && c <= '9') && pos + 1 < e &&
        is_alpha(cpt[pos + 1])) {
        for (q = pos + 1; q < e && is_alpha(cpt[q]);) q++;
        return q;
    }
    int y = c != '\r' && c != '\n' && !cl_l(c, fl[pos]) && !PS(pos);
    if (y && pos + 1 < e && LM(pos + 1)) q = pos + 1;
    else if (LM(pos)) q = pos;
    else q = SIZE_MAX;
    if (q != SIZE_MAX) {
        while (q < e && LM(q)) q++;
        return q;
    }
    if (c == ' ' && pos + 1 < e && PS(pos + 1)) q = pos + 1;
    else if (PS(pos)) q = pos;
    if (q != SIZE_MAX) {
        while (q < e && PS(q)) q++;
        while (q < e && (cpt[q] == '\r' || cpt[q] == '\n')) q++;
        return q;
    }
    return ws_alts(cpt, fl, pos, e);
#undef LM
#undef PS
}

/* tekken (Mistral Nemo), collapsed: with U = a letter not a-z and W = a letter not A-Z,
 * [^\r\n\p{L}\p{N}]?U*W+ | [^\r\n\p{L}\p{N}]?U+W* | \p{N} |  ?[^\s\p{L}\p{N}]+[\r\n/]* |
 * \s*[\r\n]+ | \s+(?!\S) | \s+ (llama.cpp's rewrite with lookaheads), with ECMAScript's
 * backtracking order. Returns the match end at pos, or pos. */
static size_t tekken_at(const uint32_t *cpt, const uint16_t *fl, size_t pos, size_t e) {
#define U(p) (cl_l(cpt[p], fl[p]) && !(cpt[p] >= 'a' && cpt[p] <= 'z'))
#define W(p) (cl_l(cpt[p], fl[p]) && !(cpt[p] >= 'A' && cpt[p] <= 'Z'))
    uint32_t c = cpt[pos];
    int y = c != '\r' && c != '\n' && !cl_l(c, fl[pos]) && !cl_n(c, fl[pos]);
    size_t q0 = pos + (size_t)y; /* Y never is a letter, so dropping it cannot help U or W */
    if (q0 < e) {
        size_t r = q0;
        while (r < e && U(r)) r++;
        if (r < e && W(r)) { /* U* then W+ */
            while (r < e && W(r)) r++;
            return r;
        }
        for (size_t j = r; j > q0; j--) /* U* gives back up to a U that is also W */
            if (W(j - 1)) return j;
        if (r > q0) { /* U+ W* */
            while (r < e && W(r)) r++;
            return r;
        }
    }
    if (cl_n(c, fl[pos])) return pos + 1;
    size_t q = SIZE_MAX;
#define NOT_SLN(p) (!is_s(cpt[p], fl[p]) && !cl_l(cpt[p], fl[p]) && !cl_n(cpt[p], fl[p]))
    if (c == ' ' && pos + 1 < e && NOT_SLN(pos + 1)) q = pos + 1;
    else if (NOT_SLN(pos)) q = pos;
    if (q != SIZE_MAX) {
        while (q < e && NOT_SLN(q)) q++;
        while (q < e && (cpt[q] == '\r' || cpt[q] == '\n' || cpt[q] == '/')) q++;
        return q;
    }
    return ws_alts(cpt, fl, pos, e);
#undef U
#undef W
#undef NOT_SLN
}

/* A multi-alternative regex given by its match-at function: leftmost matches and the
 * stretches between them. */
static void split_alts(const uint32_t *cpt, const uint16_t *fl, size_t a, size_t e,
                       size_t (*at)(const uint32_t *, const uint16_t *, size_t, size_t), seglist *o) {
    size_t prev = a, pos = a;
    while (pos < e) {
        size_t end = at(cpt, fl, pos, e);
        if (end > pos) {
            add(o, pos - prev);
            add(o, end - pos);
            prev = pos = end;
        } else {
            pos++;
        }
    }
    add(o, e - prev);
}

typedef struct step {
    int pat, cls;          /* pat -1: GPT-2 scanner, -2: Llama 3, -3: Qwen2 */
} step;

size_t fq_pre_split(int kind, const uint32_t *cpt, const uint16_t *fl, size_t n, uint32_t *out,
                    uint32_t *tmp) {
    static const step s_default[] = {{P_RUN, C_PUNCT_DEFAULT}, {-1, 0}, {P_RUN, C_NUM}, {P_DIGIT3, 0}};
    static const step s_gpt2[] = {{-1, 0}};
    static const step s_llama3[] = {{-2, 0}};
    static const step s_qwen2[] = {{-3, 0}};
    static const step s_dsl[] = {{P_ONE, C_CRLF}, {P_WS_RUN, C_DS_LETTER}, {P_WS_RUN, C_DS_PUNCT},
                                 {P_WS_END, 0}, {P_RUN, C_CJK}, {P_RUN, C_NUM}};
    static const step s_dsc[] = {{P_ONE, C_CRLF}, {P_WS_RUN, C_LETTER}, {P_WS_RUN, C_PUNCT},
                                 {P_RUN, C_CJK}, {P_ONE, C_NUM}};
    static const step s_falcon[] = {{P_RUN, C_PUNCT_FALCON}, {-1, 0}, {P_DIGIT3, 0}};
    static const step s_star[] = {{P_ONE, C_NUM}, {-1, 0}};
    static const step s_ds3[] = {{P_RUN3, C_NUM}, {P_RUN, C_CJK3}, {-4, 0}};
    static const step s_tekken[] = {{-5, 0}};
    static const step s_bloom[] = {{P_SP_RUN, C_BLOOM}};
    static const step s_viking[] = {{P_SP_RUN, C_BLOOM}, {P_ONE, C_NUM}};
    /* chameleon's list starts with <sentinel:[0-9]+>, left out here: a later regex isolates
     * every '<' and '>', and no regex in between can match across them, so the words are the
     * same without it */
    static const step s_chameleon[] = {{P_IMAGE, 0},         {P_TAB_SP, 0}, {P_ONE, C_NUM},
                                       {P_ONE, C_CHAM_PUNCT}, {-1, 0}};
    const step *st;
    size_t ns;
    switch (kind) {
    case FQ_PRE_GPT2: st = s_gpt2; ns = 1; break;
    case FQ_PRE_LLAMA3: st = s_llama3; ns = 1; break;
    case FQ_PRE_QWEN2: st = s_qwen2; ns = 1; break;
    case FQ_PRE_DEEPSEEK_LLM: st = s_dsl; ns = 6; break;
    case FQ_PRE_DEEPSEEK_CODER: st = s_dsc; ns = 5; break;
    case FQ_PRE_FALCON: st = s_falcon; ns = 3; break;
    case FQ_PRE_STARCODER: st = s_star; ns = 2; break;
    case FQ_PRE_DEEPSEEK3: st = s_ds3; ns = 3; break;
    case FQ_PRE_TEKKEN: st = s_tekken; ns = 1; break;
    case FQ_PRE_BLOOM: st = s_bloom; ns = 1; break;
    case FQ_PRE_VIKING: st = s_viking; ns = 2; break;
    case FQ_PRE_CHAMELEON: st = s_chameleon; ns = 5; break;
    default: st = s_default; ns = 4; break;
    }
    if (n == 0) return 0;
    /* alternate between out and tmp so that the last step writes out */
    seglist cur = {ns % 2 ? tmp : out, 1};
    cur.v[0] = (uint32_t)n;
    for (size_t i = 0; i < ns; i++) {
        seglist nx = {cur.v == out ? tmp : out, 0};
        size_t a = 0;
        for (size_t j = 0; j < cur.n; j++) {
            size_t e = a + cur.v[j];
            if (st[i].pat == -1) split_gpt2(cpt, fl, a, e, &nx);
            else if (st[i].pat == -2) split_llama3(cpt, fl, a, e, 3, &nx);
            else if (st[i].pat == -3) split_llama3(cpt, fl, a, e, 1, &nx);
            else if (st[i].pat == -4) split_alts(cpt, fl, a, e, ds3_at, &nx);
            else if (st[i].pat == -5) split_alts(cpt, fl, a, e, tekken_at, &nx);
            else split_simple(cpt, fl, a, e, st[i].pat, st[i].cls, &nx);
            a = e;
        }
        cur = nx;
    }
    return cur.n;
}
