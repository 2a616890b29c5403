/* tokenizer.c - llama SentencePiece tokenizer and detokenizer (see tokenizer.h).
 *
 * Behaviour follows llama.cpp's llm_tokenizer_spm and llama_vocab (tokenize,
 * tokenizer_st_partition, token_to_piece, detokenize) so that token ids match its output
 * exactly; the code is our own. Every vocabulary string is copied into one arena at load, with
 * its decoded piece beside it, and looked up through an open-addressing hash table. */
#include "tokenizer.h"

#include "tok_pre.h"
#include "unicode.h"

#include <string.h>

#define SPACE_ESC "\xe2\x96\x81" /* U+2581, SentencePiece's visible space */
#define SPACE_ESC_LEN 3
#define MAX_VOCAB (1 << 24)
#define MAX_TEXT ((size_t)1 << 28) /* longest text fq_tokenize takes, in bytes */

typedef struct tok_entry {
    const char *text;   /* as stored in the vocabulary (NUL-terminated copy) */
    const char *piece;  /* decoded bytes (special = true rendering) */
    uint32_t len, piece_len;
    uint32_t hash;
    uint32_t attr;      /* enum fq_tok_attr */
    float score;
} tok_entry;

struct fq_tokenizer {
    int32_t n_vocab;
    tok_entry *tok;
    char *arena, *parena;   /* token texts; pieces */
    int32_t *slots;     /* hash table of ids, -1 = empty; size mask + 1 (a power of two) */
    uint32_t mask;
    int32_t bos, eos, unk, pad, eot, eom;
    bool add_bos, add_eos, add_space_prefix;
    int32_t byte_tok[256];  /* byte fallback ids, -1 when the vocabulary lacks one */
    int32_t *special;       /* control / user-defined / unknown ids, longest text first */
    int32_t n_special;
    uint8_t *eog;           /* per id: ends generation */
    size_t max_piece;
    /* byte-level BPE (tokenizer.ggml.model = "gpt2") */
    bool bpe, clean_spaces;
    fq_pre_info pre;
    char b2u[256][2];        /* GPT-2's bytes_to_unicode, as UTF-8 (1 or 2 bytes) */
    uint8_t b2u_len[256];
    uint64_t *mkey;          /* merge table: (left id << 32 | right id) + 1, 0 = empty */
    int32_t *mrank, *mres;   /* rank and the id of the merged text (-1 if none) */
    uint32_t mmask;
};

/* ---- hash table -------------------------------------------------------------------------- */

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a: short keys, no need for more */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

static int32_t lookup(const fq_tokenizer *t, const char *s, size_t n) {
    uint32_t h = hash_bytes(s, n);
    for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
        int32_t id = t->slots[i];
        if (id < 0) return -1;
        const tok_entry *te = &t->tok[id];
        if (te->hash == h && te->len == n && memcmp(te->text, s, n) == 0) return id;
    }
}

/* Inserts id; returns the id already holding the same text, or -1. */
static int32_t insert(fq_tokenizer *t, int32_t id) {
    const tok_entry *te = &t->tok[id];
    for (uint32_t i = te->hash & t->mask;; i = (i + 1) & t->mask) {
        int32_t o = t->slots[i];
        if (o < 0) {
            t->slots[i] = id;
            return -1;
        }
        const tok_entry *x = &t->tok[o];
        if (x->hash == te->hash && x->len == te->len && memcmp(x->text, te->text, te->len) == 0)
            return o;
    }
}

/* ---- loading ----------------------------------------------------------------------------- */

static bool is_int_type(uint32_t ty) {
    return ty == FQ_GGUF_UINT8 || ty == FQ_GGUF_INT8 || ty == FQ_GGUF_UINT16 ||
           ty == FQ_GGUF_INT16 || ty == FQ_GGUF_UINT32 || ty == FQ_GGUF_INT32 ||
           ty == FQ_GGUF_UINT64 || ty == FQ_GGUF_INT64;
}

/* Reads a special-token id. An id outside the vocabulary (converters write 0xFFFFFFFF for
 * "none") keeps the default, as llama.cpp does. Returns 0, or -1 with e set for a non-integer
 * value. */
static int get_special_id(const fq_gguf *g, const char *key, int32_t n_vocab, int32_t *id,
                          fq_err *e) {
    const fq_gguf_kv *kv = fq_gguf_find(g, key);
    if (!kv) return 0;
    if (!is_int_type(kv->type))
        return fq_errf(e, "%s has type %s, expected an integer", key, fq_gguf_vtype_name(kv->type));
    bool is_signed = kv->type == FQ_GGUF_INT8 || kv->type == FQ_GGUF_INT16 ||
                     kv->type == FQ_GGUF_INT32 || kv->type == FQ_GGUF_INT64;
    if (is_signed ? (kv->i64 >= 0 && kv->i64 < n_vocab) : (kv->u64 < (uint64_t)n_vocab))
        *id = (int32_t)(is_signed ? kv->i64 : (int64_t)kv->u64);
    return 0;
}

/* Reads a flag (bool, or an integer used as one). Returns 0, or -1 with e set. */
static int get_flag(const fq_gguf *g, const char *key, bool *out, fq_err *e) {
    const fq_gguf_kv *kv = fq_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != FQ_GGUF_BOOL && !is_int_type(kv->type))
        return fq_errf(e, "%s has type %s, expected bool", key, fq_gguf_vtype_name(kv->type));
    *out = kv->u64 != 0 || kv->i64 != 0;
    return 0;
}

/* Fetches a per-token array: absent -> *out = NULL; present -> must be an array of one of the
 * allowed element types with exactly n elements. Returns 0, or -1 with e set. */
static int get_token_array(const fq_gguf *g, const char *key, uint64_t n, uint32_t ty1,
                           uint32_t ty2, const fq_gguf_kv **out, fq_err *e) {
    const fq_gguf_kv *kv = fq_gguf_find(g, key);
    *out = NULL;
    if (!kv) return 0;
    if (kv->type != FQ_GGUF_ARRAY)
        return fq_errf(e, "%s has type %s, expected an array", key, fq_gguf_vtype_name(kv->type));
    if (kv->arr_type != ty1 && kv->arr_type != ty2)
        return fq_errf(e, "%s is an array of %s, expected %s", key,
                       fq_gguf_vtype_name(kv->arr_type), fq_gguf_vtype_name(ty1));
    if (kv->arr_n != n)
        return fq_errf(e, "%s has %llu entries but tokenizer.ggml.tokens has %llu", key,
                       (unsigned long long)kv->arr_n, (unsigned long long)n);
    *out = kv;
    return 0;
}

/* Texts that mark end-of-turn tokens in vocabularies whose metadata does not say so; like
 * llama.cpp, such a token is treated as a control token and ends generation. */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<EOT>", "_<EOT>", "<|end_of_text|>",
};

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others
 * (control, space, 0x7F-0xA0, 0xAD) take U+0100 upwards in byte order. */
static uint32_t byte_to_cpt(int b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
        return (uint32_t)b;
    int k = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) k++;
    return 0x100u + (uint32_t)k;
}

/* The byte a codepoint of a BPE token stands for, or -1. */
static int cpt_to_byte(uint32_t c) {
    if ((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))
        return (int)c;
    if (c < 0x100 || c >= 0x100 + 68) return -1;
    int k = (int)(c - 0x100);
    for (int x = 0; x < 256; x++)
        if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF)) && k-- == 0)
            return x;
    return -1;
}

/* A BPE token's bytes: each codepoint through the byte table; one that is not in it becomes
 * "[UNK_BYTE_0x<its UTF-8 in hex><token text>]", as llama.cpp writes it. dst NULL: count
 * only. Returns the length. */
static size_t bpe_piece(const tok_entry *te, char *dst) {
    size_t o = 0;
    const uint8_t *s = (const uint8_t *)te->text;
    for (size_t i = 0; i < te->len;) {
        uint32_t c;
        size_t l = fq_utf8_decode(s + i, te->len - i, &c);
        int b = cpt_to_byte(c);
        if (b >= 0) {
            if (dst) dst[o] = (char)b;
            o++;
        } else {
            char tmp[16];
            int k = snprintf(tmp, sizeof tmp, "[UNK_BYTE_0x");
            if (dst) memcpy(dst + o, tmp, (size_t)k);
            o += (size_t)k;
            for (size_t j = 0; j < l; j++) {
                if (dst) snprintf(dst + o, 3, "%02x", s[i + j]);
                o += 2;
            }
            if (dst) memcpy(dst + o, te->text, te->len);
            o += te->len;
            if (dst) dst[o] = ']';
            o++;
        }
        i += l;
    }
    return o;
}

/* Writes the special = true piece of token te at dst (NULL: count only); returns its
 * length. */
static uint32_t make_piece(const fq_tokenizer *t, const tok_entry *te, char *dst) {
    if (te->attr & (FQ_TOK_UNKNOWN | FQ_TOK_CONTROL | FQ_TOK_USER_DEFINED)) {
        if (dst) memcpy(dst, te->text, te->len);
        return te->len;
    }
    if (t->bpe) return (te->attr & FQ_TOK_NORMAL) ? (uint32_t)bpe_piece(te, dst) : 0;
    if (!dst) return te->len;
    if (te->attr & FQ_TOK_NORMAL) {
        uint32_t o = 0;
        for (uint32_t i = 0; i < te->len;) {
            if (i + SPACE_ESC_LEN <= te->len && memcmp(te->text + i, SPACE_ESC, SPACE_ESC_LEN) == 0) {
                dst[o++] = ' ';
                i += SPACE_ESC_LEN;
            } else {
                dst[o++] = te->text[i++];
            }
        }
        return o;
    }
    if (te->attr & FQ_TOK_BYTE) {
        const char *s = te->text;
        int hi, lo;
        if (te->len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' &&
            (hi = hexval(s[3])) >= 0 && (lo = hexval(s[4])) >= 0) {
            dst[0] = (char)(hi * 16 + lo);
            return 1;
        }
        memcpy(dst, te->text, te->len); /* malformed byte token: show what it says */
        return te->len;
    }
    return 0; /* unused / undefined tokens render as nothing, as in llama.cpp */
}

static uint32_t mhash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k;
}

/* The merge of ids (l, r): its rank, or -1; *res gets the merged token's id. */
static int32_t merge_find(const fq_tokenizer *t, int32_t l, int32_t r, int32_t *res) {
    uint64_t k = ((uint64_t)(uint32_t)l << 32 | (uint32_t)r) + 1;
    for (uint32_t i = mhash(k) & t->mmask;; i = (i + 1) & t->mmask) {
        if (t->mkey[i] == 0) return -1;
        if (t->mkey[i] == k) {
            *res = t->mres[i];
            return t->mrank[i];
        }
    }
}

/* Byte table and merges of a gpt2 vocabulary. Returns 0, or -1 with e set. */
static int bpe_setup(fq_tokenizer *t, const fq_gguf_kv *merges, fq_err *e) {
    char shown[FQ_SHOW_CAP];
    for (int b = 0; b < 256; b++) {
        uint32_t c = byte_to_cpt(b);
        if (c < 0x80) {
            t->b2u[b][0] = (char)c;
            t->b2u_len[b] = 1;
        } else {
            t->b2u[b][0] = (char)(0xC0 | c >> 6);
            t->b2u[b][1] = (char)(0x80 | (c & 0x3F));
            t->b2u_len[b] = 2;
        }
        t->byte_tok[b] = lookup(t, t->b2u[b], t->b2u_len[b]);
        /* Real vocabularies lack bytes that never occur in UTF-8 (0xC0, 0xF5..) and some
         * control bytes (Falcon); such a byte is dropped when tokenizing, as llama.cpp does.
         * Printable ASCII, tab and newline are required. */
        if (t->byte_tok[b] < 0 && ((b >= 0x20 && b <= 0x7E) || b == '\t' || b == '\n'))
            return fq_errf(e, "the gpt2 vocabulary has no token for byte 0x%02X ('%s')", b,
                           fq_show(shown, sizeof shown, t->b2u[b], t->b2u_len[b]));
    }
    uint64_t nm = merges->arr_n;
    uint32_t slots = 1;
    while (slots < 2 * nm + 2) slots <<= 1;
    t->mmask = slots - 1;
    if (!(t->mkey = fq_calloc(slots, sizeof *t->mkey, e)) ||
        !(t->mrank = fq_malloc(slots * sizeof *t->mrank, e)) ||
        !(t->mres = fq_malloc(slots * sizeof *t->mres, e)))
        return -1;
    char *buf = NULL;
    size_t cap = 0;
    for (uint64_t i = 0; i < nm; i++) {
        const fq_str *m = &merges->strs[i];
        const char *sp = m->len > 1 ? memchr(m->ptr + 1, ' ', m->len - 1) : NULL;
        if (!sp) {
            free(buf);
            return fq_errf(e, "tokenizer.ggml.merges[%llu] = '%s' is not two tokens separated by a space",
                           (unsigned long long)i, fq_show(shown, sizeof shown, m->ptr, m->len));
        }
        size_t ll = (size_t)(sp - m->ptr), rl = m->len - ll - 1;
        int32_t l = lookup(t, m->ptr, ll), r = lookup(t, sp + 1, rl);
        if (l < 0 || r < 0) {
            free(buf);
            return fq_errf(e, "tokenizer.ggml.merges[%llu] = '%s' names a token that is not in the vocabulary",
                           (unsigned long long)i, fq_show(shown, sizeof shown, m->ptr, m->len));
        }
        if (ll + rl > cap) {
            cap = 2 * (ll + rl);
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return fq_errf(e, "out of memory reading merges");
            }
            buf = nb;
        }
        memcpy(buf, m->ptr, ll);
        memcpy(buf + ll, sp + 1, rl);
        uint64_t k = ((uint64_t)(uint32_t)l << 32 | (uint32_t)r) + 1;
        for (uint32_t s = mhash(k) & t->mmask;; s = (s + 1) & t->mmask) {
            if (t->mkey[s] == k) break; /* a repeated merge keeps its first rank */
            if (t->mkey[s] == 0) {
                t->mkey[s] = k;
                t->mrank[s] = (int32_t)i;
                t->mres[s] = lookup(t, buf, ll + rl);
                break;
            }
        }
    }
    free(buf);
    return 0;
}

/* llama.cpp marks every special token of a model whose general.name holds "phi-3" or
 * "phi3" (any case) RSTRIP, except <unk>, <s> and <|endoftext|>, and </s> too. */
static int set_phi3_rstrip(fq_tokenizer *t, const fq_gguf *g, fq_err *e) {
    fq_str name;
    int rc = fq_gguf_get_str(g, "general.name", &name, e);
    if (rc < 0) return -1;
    if (rc > 0) return 0;
    bool phi3 = false;
    for (size_t i = 0; i < name.len && !phi3; i++) {
        char lc[5];
        size_t k = 0;
        for (; k < 5 && i + k < name.len; k++) {
            char c = name.ptr[i + k];
            lc[k] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
        }
        phi3 = (k >= 5 && memcmp(lc, "phi-3", 5) == 0) || (k >= 4 && memcmp(lc, "phi3", 4) == 0);
    }
    if (!phi3) return 0;
    for (int32_t k = 0; k < t->n_special; k++) t->tok[t->special[k]].attr |= FQ_TOK_RSTRIP;
    int32_t id = lookup(t, "</s>", 4);
    if (id >= 0) t->tok[id].attr |= FQ_TOK_RSTRIP;
    static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
    for (size_t k = 0; k < 3; k++)
        if ((id = lookup(t, keep[k], strlen(keep[k]))) >= 0) t->tok[id].attr &= ~(uint32_t)FQ_TOK_RSTRIP;
    return 0;
}

typedef struct spec_sort {
    int32_t id;
    uint32_t len;
} spec_sort;

static int cmp_spec(const void *a, const void *b) {
    const spec_sort *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

int fq_tokenizer_load(fq_tokenizer **out, const fq_gguf *g, fq_err *e) {
    *out = NULL;
    fq_str model;
    int rc = fq_gguf_get_str(g, "tokenizer.ggml.model", &model, e);
    if (rc < 0) return -1;
    if (rc > 0) return fq_errf(e, "no tokenizer in the file (tokenizer.ggml.model is missing)");
    char shown[FQ_SHOW_CAP];
    bool bpe = model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0;
    if (!(model.len == 5 && memcmp(model.ptr, "llama", 5) == 0) && !bpe)
        return fq_errf(e, "tokenizer model '%s' is not supported yet (fqlm supports: llama (SentencePiece), gpt2 (byte-level BPE))",
                       fq_show(shown, sizeof shown, model.ptr, model.len));
    fq_pre_info pre = {0};
    const fq_gguf_kv *merges = NULL;
    if (bpe) {
        fq_str pv;
        rc = fq_gguf_get_str(g, "tokenizer.ggml.pre", &pv, e);
        if (rc < 0) return -1;
        if (fq_pre_lookup(rc > 0 ? NULL : pv.ptr, rc > 0 ? 0 : pv.len, &pre))
            return fq_errf(e, "unknown pre-tokenizer tokenizer.ggml.pre = '%s' (known: %s)",
                           fq_show(shown, sizeof shown, pv.ptr, pv.len), fq_pre_known());
        merges = fq_gguf_find(g, "tokenizer.ggml.merges");
        if (!merges) return fq_errf(e, "tokenizer.ggml.merges is missing (a gpt2 tokenizer needs its merges)");
        if (merges->type != FQ_GGUF_ARRAY || merges->arr_type != FQ_GGUF_STRING || !merges->strs)
            return fq_errf(e, "tokenizer.ggml.merges is not an array of strings");
        if (merges->arr_n > MAX_VOCAB * 4ull)
            return fq_errf(e, "tokenizer.ggml.merges has %llu entries, too many",
                           (unsigned long long)merges->arr_n);
    }

    const fq_gguf_kv *toks = fq_gguf_find(g, "tokenizer.ggml.tokens");
    if (!toks) return fq_errf(e, "tokenizer.ggml.tokens is missing");
    if (toks->type != FQ_GGUF_ARRAY || toks->arr_type != FQ_GGUF_STRING || !toks->strs)
        return fq_errf(e, "tokenizer.ggml.tokens is not an array of strings");
    uint64_t n = toks->arr_n;
    if (n == 0 || n > MAX_VOCAB)
        return fq_errf(e, "tokenizer.ggml.tokens has %llu entries (expected 1 to %d)",
                       (unsigned long long)n, MAX_VOCAB);
    const fq_gguf_kv *scores, *types;
    if (get_token_array(g, "tokenizer.ggml.scores", n, FQ_GGUF_FLOAT32, FQ_GGUF_INT32, &scores, e) ||
        get_token_array(g, "tokenizer.ggml.token_type", n, FQ_GGUF_INT32, FQ_GGUF_INT32, &types, e))
        return -1;

    fq_tokenizer *t = fq_calloc(1, sizeof *t, e);
    if (!t) return -1;
    t->n_vocab = (int32_t)n;
    t->bos = 1;
    t->eos = 2;
    t->unk = 0;
    t->pad = t->eot = t->eom = -1;
    t->add_bos = true;
    t->add_eos = false;
    t->add_space_prefix = true;
    if (bpe) { /* llama.cpp's defaults for gpt2 vocabularies */
        t->bpe = true;
        t->pre = pre;
        t->bos = t->eos = 11;
        t->unk = -1;
        t->add_bos = pre.add_bos;
        t->add_space_prefix = false;
        t->clean_spaces = pre.clean_spaces;
    }

    /* Arena: each text (an empty one becomes "[EMPTY_<id>]", as in llama.cpp) and its piece,
     * each NUL-terminated; a piece is never longer than its text. */
    uint64_t arena_size = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = toks->strs[i].len ? toks->strs[i].len : 24;
        if (len > UINT32_MAX / 4) {
            fq_errf(e, "tokenizer.ggml.tokens[%llu] is %llu bytes long", (unsigned long long)i,
                    (unsigned long long)len);
            goto fail;
        }
        arena_size += len + 1; /* cannot overflow: n <= 2^24, len < 2^30 */
    }
    if (arena_size > SIZE_MAX) {
        fq_errf(e, "vocabulary too large");
        goto fail;
    }
    uint32_t n_slots = 1;
    while (n_slots < 2 * n) n_slots <<= 1;
    t->mask = n_slots - 1;
    if (!(t->arena = fq_malloc(arena_size, e)) || !(t->tok = fq_calloc(n, sizeof *t->tok, e)) ||
        !(t->slots = fq_malloc((size_t)n_slots * sizeof *t->slots, e)) ||
        !(t->eog = fq_calloc(n, 1, e)))
        goto fail;
    memset(t->slots, 0xff, (size_t)n_slots * sizeof *t->slots);

    char *a = t->arena;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        tok_entry *te = &t->tok[id];
        const fq_str *s = &toks->strs[id];
        te->text = a;
        if (s->len) {
            memcpy(a, s->ptr, s->len);
            te->len = (uint32_t)s->len;
        } else {
            te->len = (uint32_t)snprintf(a, 24, "[EMPTY_%d]", id);
        }
        a[te->len] = '\0';
        a += te->len + 1;
        te->hash = hash_bytes(te->text, te->len);
        te->score = scores ? fq_gguf_arr_f32(scores, (uint64_t)id) : 0.0f;
        te->attr = FQ_TOK_NORMAL;
        if (types) {
            switch (fq_gguf_arr_i64(types, (uint64_t)id)) {
            case 1: te->attr = FQ_TOK_NORMAL; break;
            case 2: te->attr = FQ_TOK_UNKNOWN; break;
            case 3: te->attr = FQ_TOK_CONTROL; break;
            case 4: te->attr = FQ_TOK_USER_DEFINED; break;
            case 5: te->attr = FQ_TOK_UNUSED; break;
            case 6: te->attr = FQ_TOK_BYTE; break;
            default: te->attr = FQ_TOK_UNDEFINED; break;
            }
        }
        int32_t dup = insert(t, id);
        if (dup >= 0) {
            fq_errf(e, "duplicate token in vocabulary: '%s' has ids %d and %d",
                    fq_show(shown, sizeof shown, te->text, te->len), dup, id);
            goto fail;
        }
    }

    if (get_special_id(g, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos, e) ||
        get_special_id(g, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos, e) ||
        get_special_id(g, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk, e) ||
        get_special_id(g, "tokenizer.ggml.padding_token_id", t->n_vocab, &t->pad, e) ||
        get_special_id(g, "tokenizer.ggml.eot_token_id", t->n_vocab, &t->eot, e) ||
        get_special_id(g, "tokenizer.ggml.eom_token_id", t->n_vocab, &t->eom, e) ||
        get_flag(g, "tokenizer.ggml.add_bos_token", &t->add_bos, e) ||
        get_flag(g, "tokenizer.ggml.add_eos_token", &t->add_eos, e) ||
        get_flag(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, e))
        goto fail;
    /* Defaults (1, 2, 0) that fall outside a tiny vocabulary mean "none". */
    if (t->bos >= t->n_vocab) t->bos = -1;
    if (t->eos >= t->n_vocab) t->eos = -1;
    if (t->unk >= t->n_vocab) t->unk = -1;
    if (t->add_bos && t->bos < 0) {
        fq_errf(e, "tokenizer.ggml.add_bos_token is true, but there is no BOS token");
        goto fail;
    }
    if (t->add_eos && t->eos < 0) {
        fq_errf(e, "tokenizer.ggml.add_eos_token is true, but there is no EOS token");
        goto fail;
    }

    for (size_t k = 0; k < FQ_ARRAY_LEN(eog_texts); k++) {
        int32_t id = lookup(t, eog_texts[k], strlen(eog_texts[k]));
        if (id < 0) continue;
        t->eog[id] = 1;
        t->tok[id].attr |= FQ_TOK_CONTROL;
    }
    if (t->eos >= 0) t->eog[t->eos] = 1;
    if (t->eot >= 0) t->eog[t->eot] = 1;
    if (t->eom >= 0) t->eog[t->eom] = 1;

    /* Pieces, the byte fallback table, and the special-token list. */
    int32_t n_spec = 0;
    uint64_t psize = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        tok_entry *te = &t->tok[id];
        if ((te->attr & FQ_TOK_CONTROL) && strstr(te->text, "unused")) te->attr |= FQ_TOK_UNUSED;
        uint64_t pl = make_piece(t, te, NULL);
        if (pl > UINT32_MAX / 4) {
            fq_errf(e, "tokenizer.ggml.tokens[%d] decodes to %llu bytes", id, (unsigned long long)pl);
            goto fail;
        }
        psize += pl + 1;
    }
    if (psize > SIZE_MAX || !(t->parena = fq_malloc((size_t)psize, e))) goto fail;
    char *pa = t->parena;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        tok_entry *te = &t->tok[id];
        te->piece = pa;
        te->piece_len = make_piece(t, te, pa);
        pa[te->piece_len] = '\0';
        pa += te->piece_len + 1;
        t->max_piece = FQ_MAX(t->max_piece, (size_t)te->piece_len);
        if (te->attr & (FQ_TOK_CONTROL | FQ_TOK_USER_DEFINED | FQ_TOK_UNKNOWN)) n_spec++;
    }
    FQ_ASSERT((uint64_t)(a - t->arena) <= arena_size);
    for (int b = 0; b < 256; b++) {
        static const char hex[] = "0123456789ABCDEF";
        char name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        char one = (char)b;
        t->byte_tok[b] = lookup(t, name, 6);
        /* llama.cpp falls back to the byte as a one-character token (never for NUL) */
        if (t->byte_tok[b] < 0 && b != 0) t->byte_tok[b] = lookup(t, &one, 1);
    }
    if (t->bpe && bpe_setup(t, merges, e)) goto fail;
    spec_sort *ss = fq_malloc((size_t)(n_spec ? n_spec : 1) * sizeof *ss, e);
    if (!ss) goto fail;
    if (!(t->special = fq_malloc((size_t)(n_spec ? n_spec : 1) * sizeof *t->special, e))) {
        free(ss);
        goto fail;
    }
    int32_t k = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->tok[id].attr & (FQ_TOK_CONTROL | FQ_TOK_USER_DEFINED | FQ_TOK_UNKNOWN))
            ss[k++] = (spec_sort){id, t->tok[id].len};
    /* Longest first so "<|im_end|>" wins over a "<|im" inside it; llama.cpp's order among
     * equal lengths is unspecified, ours is by id. */
    qsort(ss, (size_t)n_spec, sizeof *ss, cmp_spec);
    for (k = 0; k < n_spec; k++) t->special[k] = ss[k].id;
    t->n_special = n_spec;
    free(ss);
    if (set_phi3_rstrip(t, g, e)) goto fail;

    *out = t;
    return 0;
fail:
    fq_tokenizer_free(t);
    return -1;
}

int fq_tokenizer_load_file(fq_tokenizer **out, const char *path, fq_err *e) {
    *out = NULL;
    fq_gguf g;
    if (fq_gguf_open(&g, path, e)) return -1;
    int rc = fq_tokenizer_load(out, &g, e);
    fq_gguf_close(&g);
    if (rc) {
        char msg[FQ_ERR_MAX];
        snprintf(msg, sizeof msg, "%s", e->msg);
        fq_errf(e, "%s: %s", path, msg);
    }
    return rc;
}

bool fq_tokenizer_is_bpe(const fq_tokenizer *t) { return t->bpe; }
bool fq_tokenizer_cleans_spaces(const fq_tokenizer *t) { return t->clean_spaces; }

void fq_tokenizer_free(fq_tokenizer *t) {
    if (!t) return;
    free(t->arena);
    free(t->parena);
    free(t->mkey);
    free(t->mrank);
    free(t->mres);
    free(t->tok);
    free(t->slots);
    free(t->special);
    free(t->eog);
    free(t);
}

int32_t fq_tokenizer_n_vocab(const fq_tokenizer *t) { return t->n_vocab; }
int32_t fq_tokenizer_bos(const fq_tokenizer *t) { return t->bos; }
int32_t fq_tokenizer_eos(const fq_tokenizer *t) { return t->eos; }
int32_t fq_tokenizer_unk(const fq_tokenizer *t) { return t->unk; }
int32_t fq_tokenizer_pad(const fq_tokenizer *t) { return t->pad; }
bool fq_tokenizer_adds_bos(const fq_tokenizer *t) { return t->add_bos; }
bool fq_tokenizer_adds_eos(const fq_tokenizer *t) { return t->add_eos; }
size_t fq_tokenizer_max_piece(const fq_tokenizer *t) { return t->max_piece; }

bool fq_tokenizer_is_eog(const fq_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->eog[id];
}

uint32_t fq_tokenizer_attr(const fq_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->tok[id].attr : 0;
}

const char *fq_tokenizer_text(const fq_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) {
        *len = 0;
        return NULL;
    }
    *len = t->tok[id].len;
    return t->tok[id].text;
}

int32_t fq_tokenizer_find(const fq_tokenizer *t, const char *text, size_t len) {
    return len > UINT32_MAX ? -1 : lookup(t, text, len);
}

/* ---- tokenizing -------------------------------------------------------------------------- */

typedef struct ivec {
    int32_t *v;
    size_t n, cap;
} ivec;

static int ivec_push(ivec *a, int32_t x, fq_err *e) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return fq_errf(e, "out of memory (%zu token ids)", cap);
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

typedef struct symbol {
    int32_t prev, next;  /* neighbours in the chain, -1 at the ends */
    uint32_t off, n;     /* bytes of the escaped text; n = 0 once merged into the left */
} symbol;

typedef struct bigram {
    int32_t left, right;
    float score;
    uint32_t size;       /* byte length when queued: a stale entry no longer matches */
} bigram;

/* Scratch reused across the fragments of one fq_tokenize call. */
typedef struct spm_work {
    char *esc;
    size_t esc_cap;
    symbol *sym;
    bigram *heap;
    size_t sym_cap;
    size_t n_heap;
} spm_work;

/* Heap order: higher score first, then the leftmost pair (llama.cpp's llm_bigram_spm). */
static bool bigram_before(const bigram *a, const bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(spm_work *w, bigram b) {
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_before(&b, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = b;
}

static bigram heap_pop(spm_work *w) {
    bigram top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bigram_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!bigram_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n > 0) w->heap[i] = last;
    return top;
}

static void try_add_bigram(const fq_tokenizer *t, spm_work *w, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const symbol *l = &w->sym[left], *r = &w->sym[right];
    uint32_t size = l->n + r->n; /* adjacent in the chain, so contiguous in esc */
    int32_t id = lookup(t, w->esc + l->off, size);
    if (id < 0) return;
    heap_push(w, (bigram){left, right, t->tok[id].score, size});
}

/* Length of the character starting at s[0] (n bytes left): the length its lead byte
 * announces when that many bytes follow and all are continuation bytes, else 1.
 * llama.cpp takes the announced length whatever follows; with invalid UTF-8 that lets a stray
 * lead byte swallow the next space (which then comes back as the bytes of U+2581). Checking the
 * continuation bytes makes every bad byte a symbol of its own, so any bytes round-trip; for
 * valid UTF-8 the two are the same. */
static size_t utf8_len(const uint8_t *s, size_t n) {
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    size_t l = s[0] >= 0xF8 ? 1 : len[s[0] >> 4];
    if (l > n) return 1;
    for (size_t i = 1; i < l; i++)
        if ((s[i] & 0xC0) != 0x80) return 1;
    return l;
}

/* Tokenizes one text fragment (llama.cpp's llm_tokenizer_spm_session). Returns 0, or -1
 * with e set. */
static int spm_fragment(const fq_tokenizer *t, spm_work *w, const char *s, size_t n,
                        bool prefix, ivec *out, fq_err *e) {
    size_t spaces = prefix;
    for (size_t i = 0; i < n; i++) spaces += s[i] == ' ';
    size_t esc_len = n + prefix + spaces * (SPACE_ESC_LEN - 1);
    if (esc_len > w->esc_cap) {
        char *p = realloc(w->esc, esc_len);
        if (!p) return fq_errf(e, "out of memory tokenizing %zu bytes", n);
        w->esc = p;
        w->esc_cap = esc_len;
    }
    size_t o = 0;
    if (prefix) {
        memcpy(w->esc, SPACE_ESC, SPACE_ESC_LEN);
        o = SPACE_ESC_LEN;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(w->esc + o, SPACE_ESC, SPACE_ESC_LEN);
            o += SPACE_ESC_LEN;
        } else {
            w->esc[o++] = s[i];
        }
    }
    FQ_ASSERT(o == esc_len && esc_len > 0);

    /* At most esc_len symbols; each merge queues at most two bigrams on top of the first
     * n - 1, so 3 * esc_len bounds the heap. */
    if (esc_len > w->sym_cap) {
        symbol *sym = realloc(w->sym, esc_len * sizeof *sym);
        if (sym) w->sym = sym;
        bigram *heap = realloc(w->heap, 3 * esc_len * sizeof *heap);
        if (heap) w->heap = heap;
        if (!sym || !heap) return fq_errf(e, "out of memory tokenizing %zu bytes", n);
        w->sym_cap = esc_len;
    }
    int32_t n_sym = 0;
    for (size_t off = 0; off < esc_len;) {
        size_t len = utf8_len((const uint8_t *)w->esc + off, esc_len - off);
        w->sym[n_sym] = (symbol){n_sym - 1, off + len == esc_len ? -1 : n_sym + 1,
                                 (uint32_t)off, (uint32_t)len};
        off += len;
        n_sym++;
    }

    w->n_heap = 0;
    for (int32_t i = 1; i < n_sym; i++) try_add_bigram(t, w, i - 1, i);
    while (w->n_heap > 0) {
        bigram b = heap_pop(w);
        symbol *l = &w->sym[b.left], *r = &w->sym[b.right];
        /* sizes only grow, so a pair whose sizes still add up is still adjacent and unmerged */
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) w->sym[r->next].prev = b.left;
        try_add_bigram(t, w, l->prev, b.left);
        try_add_bigram(t, w, b.left, l->next);
    }

    for (int32_t i = 0; i != -1; i = w->sym[i].next) {
        const symbol *sy = &w->sym[i];
        int32_t id = lookup(t, w->esc + sy->off, sy->n);
        if (id >= 0) {
            if (ivec_push(out, id, e)) return -1;
            continue;
        }
        for (uint32_t j = 0; j < sy->n; j++) {
            uint8_t byte = (uint8_t)w->esc[sy->off + j];
            id = t->byte_tok[byte] >= 0 ? t->byte_tok[byte] : t->unk;
            if (id < 0)
                return fq_errf(e, "byte 0x%02X has no token in the vocabulary and there is no <unk>",
                               byte);
            if (ivec_push(out, id, e)) return -1;
        }
    }
    return 0;
}

/* ---- byte-level BPE ------------------------------------------------------------------------ */

typedef struct bsym {
    int32_t prev, next, id;  /* id: the token spelled by the symbol, or -1 */
    uint32_t off, n;         /* bytes of the encoded word; n = 0 once merged into the left */
} bsym;

typedef struct bpair {
    int32_t left, right, rank, res;
    uint32_t size;
} bpair;

typedef struct bpe_work {
    uint32_t *cpt, *seg, *tmp, *boff;
    uint16_t *fl;
    size_t cap;              /* codepoints */
    char *esc;
    bsym *sym;
    bpair *heap;
    size_t n_heap, wcap;     /* word bytes */
} bpe_work;

static bool bpair_before(const bpair *a, const bpair *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void bheap_push(bpe_work *w, bpair b) {
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bpair_before(&b, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = b;
}

static bpair bheap_pop(bpe_work *w) {
    bpair top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bpair_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!bpair_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n > 0) w->heap[i] = last;
    return top;
}

static void bpe_try_pair(const fq_tokenizer *t, bpe_work *w, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const bsym *l = &w->sym[left], *r = &w->sym[right];
    if (l->id < 0 || r->id < 0) return;
    int32_t res;
    int32_t rank = merge_find(t, l->id, r->id, &res);
    if (rank < 0) return;
    bheap_push(w, (bpair){left, right, rank, res, l->n + r->n});
}

/* Merges one pre-tokenized word (bytes s[0..n)) and appends its ids (llama.cpp's
 * llm_tokenizer_bpe_session::tokenize for one word). */
static int bpe_word(const fq_tokenizer *t, bpe_work *w, const uint8_t *s, size_t n, ivec *out,
                    fq_err *e) {
    if (2 * n > w->wcap) {
        size_t cap = 2 * n > 64 ? 2 * n : 64;
        char *esc = realloc(w->esc, cap);
        if (esc) w->esc = esc;
        bsym *sym = realloc(w->sym, cap * sizeof *sym);
        if (sym) w->sym = sym;
        bpair *heap = realloc(w->heap, 2 * cap * sizeof *heap);
        if (heap) w->heap = heap;
        if (!esc || !sym || !heap) return fq_errf(e, "out of memory tokenizing a %zu-byte word", n);
        w->wcap = cap;
    }
    uint32_t o = 0;
    for (size_t i = 0; i < n; i++) {
        w->sym[i] = (bsym){(int32_t)i - 1, i + 1 == n ? -1 : (int32_t)i + 1, t->byte_tok[s[i]], o,
                           t->b2u_len[s[i]]};
        memcpy(w->esc + o, t->b2u[s[i]], t->b2u_len[s[i]]);
        o += t->b2u_len[s[i]];
    }
    if (t->pre.ignore_merges && n > 1) {
        int32_t id = lookup(t, w->esc, o);
        if (id >= 0) return ivec_push(out, id, e);
    }
    w->n_heap = 0;
    for (size_t i = 1; i < n; i++) bpe_try_pair(t, w, (int32_t)i - 1, (int32_t)i);
    while (w->n_heap > 0) {
        bpair b = bheap_pop(w);
        bsym *l = &w->sym[b.left], *r = &w->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue;
        l->n += r->n;
        l->id = b.res;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) w->sym[r->next].prev = b.left;
        bpe_try_pair(t, w, l->prev, b.left);
        bpe_try_pair(t, w, b.left, l->next);
    }
    for (int32_t i = 0; i != -1; i = w->sym[i].next) {
        const bsym *sy = &w->sym[i];
        if (sy->id >= 0) {
            if (ivec_push(out, sy->id, e)) return -1;
            continue;
        }
        /* not a token: each byte of its text as a one-character token, where there is one */
        for (uint32_t j = 0; j < sy->n; j++) {
            int32_t id = lookup(t, w->esc + sy->off + j, 1);
            if (id >= 0 && ivec_push(out, id, e)) return -1;
        }
    }
    return 0;
}

/* Tokenizes one text fragment: pre-tokenize, then merge each word. */
static int bpe_fragment(const fq_tokenizer *t, bpe_work *w, const char *text, size_t len,
                        ivec *out, fq_err *e) {
    const uint8_t *s = (const uint8_t *)text;
    if (len + 1 > w->cap) {
        size_t cap = len + 1;
        uint32_t *p1 = realloc(w->cpt, cap * sizeof *p1);
        if (p1) w->cpt = p1;
        uint32_t *p2 = realloc(w->seg, cap * sizeof *p2);
        if (p2) w->seg = p2;
        uint32_t *p3 = realloc(w->tmp, cap * sizeof *p3);
        if (p3) w->tmp = p3;
        uint32_t *p4 = realloc(w->boff, cap * sizeof *p4);
        if (p4) w->boff = p4;
        uint16_t *p5 = realloc(w->fl, cap * sizeof *p5);
        if (p5) w->fl = p5;
        if (!p1 || !p2 || !p3 || !p4 || !p5) return fq_errf(e, "out of memory tokenizing %zu bytes", len);
        w->cap = cap;
    }
    size_t nc = 0;
    for (size_t i = 0; i < len;) {
        uint32_t c;
        size_t l = fq_utf8_decode(s + i, len - i, &c);
        w->cpt[nc] = c;
        w->fl[nc] = fq_uc_flags(c);
        w->boff[nc] = (uint32_t)i;
        nc++;
        i += l;
    }
    w->boff[nc] = (uint32_t)len;
    size_t ns = fq_pre_split(t->pre.kind, w->cpt, w->fl, nc, w->seg, w->tmp);
    size_t c0 = 0;
    for (size_t k = 0; k < ns; k++) {
        size_t c1 = c0 + w->seg[k];
        if (bpe_word(t, w, s + w->boff[c0], w->boff[c1] - w->boff[c0], out, e)) return -1;
        c0 = c1;
    }
    return 0;
}

typedef struct frag {
    int32_t tok;         /* a special token, or -1 for text[off, off + len) */
    size_t off, len;
} frag;

typedef struct fvec {
    frag *v;
    size_t n, cap;
} fvec;

static int fvec_push(fvec *a, frag f, fq_err *e) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        frag *v = realloc(a->v, cap * sizeof *v);
        if (!v) return fq_errf(e, "out of memory (%zu text fragments)", cap);
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = f;
    return 0;
}

/* Splits the text fragments of *cur at every occurrence of each special token (llama.cpp's
 * tokenizer_st_partition). Returns 0, or -1 with e set. */
static int partition(const fq_tokenizer *t, const char *text, size_t len, bool parse_special,
                     fvec *cur, fvec *next, fq_err *e) {
    /* Which bytes and byte pairs the text holds: a token with a pair the text lacks cannot
     * occur, and is skipped without a search (vocabularies with thousands of user-defined
     * tokens would otherwise scan the text thousands of times). */
    uint64_t *pairs = calloc(65536 / 64, sizeof *pairs);
    uint64_t bytes[4] = {0};
    if (!pairs) return fq_errf(e, "out of memory");
    const uint8_t *u = (const uint8_t *)text;
    for (size_t i = 0; i < len; i++) {
        bytes[u[i] >> 6] |= 1ull << (u[i] & 63);
        if (i + 1 < len) {
            unsigned pr = (unsigned)u[i] << 8 | u[i + 1];
            pairs[pr >> 6] |= 1ull << (pr & 63);
        }
    }
    int rc = 0;
    for (int32_t k = 0; k < t->n_special; k++) {
        const tok_entry *st = &t->tok[t->special[k]];
        /* user-defined tokens are split out even as plain text (llama.cpp, after HF) */
        if (!parse_special && (st->attr & (FQ_TOK_CONTROL | FQ_TOK_UNKNOWN))) continue;
        const uint8_t *sp = (const uint8_t *)st->text;
        bool possible = st->len > 0 && (bytes[sp[0] >> 6] >> (sp[0] & 63) & 1);
        for (uint32_t j = 0; possible && j + 1 < st->len; j++) {
            unsigned pr = (unsigned)sp[j] << 8 | sp[j + 1];
            possible = pairs[pr >> 6] >> (pr & 63) & 1;
        }
        if (!possible) continue;
        bool any_text = false, hit = false;
        for (size_t i = 0; i < cur->n && !hit; i++) {
            const frag *f = &cur->v[i];
            if (f->tok >= 0) continue;
            any_text = true;
            hit = memmem(text + f->off, f->len, st->text, st->len) != NULL;
        }
        if (!any_text) break;
        if (!hit) continue;
        next->n = 0;
        for (size_t i = 0; i < cur->n; i++) {
            frag f = cur->v[i];
            if (f.tok >= 0) {
                if (fvec_push(next, f, e)) {
                    rc = -1;
                    goto out;
                }
                continue;
            }
            size_t pos = f.off, end = f.off + f.len;
            const char *m;
            while (pos < end && (m = memmem(text + pos, end - pos, st->text, st->len))) {
                size_t at = (size_t)(m - text);
                if (at > pos && fvec_push(next, (frag){-1, pos, at - pos}, e)) {
                    rc = -1;
                    goto out;
                }
                if (fvec_push(next, (frag){t->special[k], 0, 0}, e)) {
                    rc = -1;
                    goto out;
                }
                pos = at + st->len;
                if (st->attr & FQ_TOK_RSTRIP) /* C isspace, as llama.cpp */
                    while (pos < end && (text[pos] == ' ' || (text[pos] >= '\t' && text[pos] <= '\r'))) pos++;
            }
            if (pos < end && fvec_push(next, (frag){-1, pos, end - pos}, e)) {
                rc = -1;
                goto out;
            }
        }
        fvec tmp = *cur;
        *cur = *next;
        *next = tmp;
    }
out:
    free(pairs);
    return rc;
}

int fq_tokenize(const fq_tokenizer *t, const char *text, size_t len, bool add_special,
                bool parse_special, int32_t **ids, size_t *n, fq_err *e) {
    *ids = NULL;
    *n = 0;
    if (len > MAX_TEXT)
        return fq_errf(e, "text of %zu bytes is too long to tokenize (limit %zu)", len, MAX_TEXT);
    ivec out = {0};
    fvec cur = {0}, next = {0};
    spm_work w = {0};
    bpe_work bw = {0};
    int rc = -1;

    if (len > 0) {
        if (fvec_push(&cur, (frag){-1, 0, len}, e)) goto done;
        if (partition(t, text, len, parse_special, &cur, &next, e)) goto done;
    }
    bool prev_special = true; /* the first fragment gets the space prefix */
    if (add_special && t->add_bos && ivec_push(&out, t->bos, e)) goto done;
    for (size_t i = 0; i < cur.n; i++) {
        const frag *f = &cur.v[i];
        if (f->tok >= 0) {
            if (ivec_push(&out, f->tok, e)) goto done;
            prev_special = true;
        } else {
            if (t->bpe ? bpe_fragment(t, &bw, text + f->off, f->len, &out, e)
                       : spm_fragment(t, &w, text + f->off, f->len, t->add_space_prefix && prev_special,
                                      &out, e))
                goto done;
            prev_special = false;
        }
    }
    if (add_special && t->add_eos && ivec_push(&out, t->eos, e)) goto done;
    if (!out.v && !(out.v = fq_malloc(sizeof *out.v, e))) goto done;
    *ids = out.v;
    *n = out.n;
    out.v = NULL;
    rc = 0;
done:
    free(out.v);
    free(cur.v);
    free(next.v);
    free(w.esc);
    free(w.sym);
    free(w.heap);
    free(bw.cpt);
    free(bw.seg);
    free(bw.tmp);
    free(bw.boff);
    free(bw.fl);
    free(bw.esc);
    free(bw.sym);
    free(bw.heap);
    return rc;
}

/* ---- detokenizing ------------------------------------------------------------------------ */

const char *fq_token_to_piece(const fq_tokenizer *t, int32_t id, bool special, size_t *len) {
    if (id < 0 || id >= t->n_vocab ||
        (!special && (t->tok[id].attr & (FQ_TOK_UNKNOWN | FQ_TOK_CONTROL)))) {
        *len = 0;
        return "";
    }
    *len = t->tok[id].piece_len;
    return t->tok[id].piece;
}

/* The piece of a token at a given position: the first token of a text loses one leading
 * space when the vocabulary adds a space prefix (llama_detokenize's lstrip). BOS, whose piece
 * has no space, takes that turn, so the token after it keeps its space. */
static const char *piece_at(const fq_tokenizer *t, int32_t id, bool special, bool first,
                            size_t *len) {
    const char *p = fq_token_to_piece(t, id, special, len);
    if (first && t->add_space_prefix && *len > 0 && p[0] == ' ') {
        p++;
        (*len)--;
    }
    return p;
}

/* llama.cpp's clean-up of detokenized BPE text, in place: no space before ? ! . , ; " ' "
 * becomes "'"; no space before 's 'm 're 've. Returns the new length. */
static size_t clean_spaces(char *x, size_t n) {
    size_t m = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char c = x[i];
        if (x[i - 1] == ' ' && (c == '?' || c == '!' || c == '.' || c == ',')) m--;
        x[m++] = c;
    }
    n = m;
    m = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char c = x[i];
        if (c == '\'' && i + 1 < n && x[i - 1] == ' ' && x[i + 1] == ' ') {
            m--;
            x[++i] = '\0'; /* the space after is dropped, and reads as NUL to the next test */
        }
        x[m++] = c;
    }
    n = m;
    m = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char c = x[i];
        if (x[i - 1] == ' ' && c == '\'' && i + 1 < n) {
            char c1 = x[i + 1];
            if (c1 == 's' || c1 == 'm') m--;
            else if (c1 != 't' && c1 != 'd' && i + 2 < n &&
                     ((c1 == 'r' && x[i + 2] == 'e') || (c1 == 'v' && x[i + 2] == 'e')))
                m--;
        }
        x[m++] = c;
    }
    return m;
}

int fq_detokenize(const fq_tokenizer *t, const int32_t *ids, size_t n, bool special,
                  char **out, size_t *len, fq_err *e) {
    *out = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return fq_errf(e, "token id %d at position %zu is outside the vocabulary (0..%d)",
                           ids[i], i, t->n_vocab - 1);
        size_t pl;
        piece_at(t, ids[i], special, i == 0, &pl);
        total += pl;
    }
    char *s = fq_malloc(total + 1, e);
    if (!s) return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t pl;
        const char *p = piece_at(t, ids[i], special, i == 0, &pl);
        memcpy(s + o, p, pl);
        o += pl;
    }
    if (t->clean_spaces) o = clean_spaces(s, o);
    s[o] = '\0';
    *out = s;
    *len = o;
    return 0;
}

void fq_detok_init(fq_detok *d, const fq_tokenizer *t, bool at_start, bool special) {
    memset(d, 0, sizeof *d);
    d->t = t;
    d->at_start = at_start;
    d->special = special;
}

/* How many bytes at the end of s[0..n) form the start of a UTF-8 sequence that more bytes
 * could still complete (0 when the end is a whole character or invalid). */
static int incomplete_tail(const uint8_t *s, size_t n) {
    size_t i = n;
    int cont = 0;
    while (i > 0 && cont < 3 && (s[i - 1] & 0xC0) == 0x80) {
        i--;
        cont++;
    }
    if (i == 0) return 0;
    uint8_t lead = s[i - 1];
    int need = lead >= 0xF0 && lead <= 0xF7 ? 4 : lead >= 0xE0 && lead <= 0xEF ? 3
             : lead >= 0xC0 && lead <= 0xDF ? 2 : 0;
    return need && cont + 1 < need ? cont + 1 : 0;
}

int fq_detok_push(fq_detok *d, int32_t id, char *out, fq_err *e) {
    if (id < 0 || id >= d->t->n_vocab)
        return fq_errf(e, "token id %d is outside the vocabulary (0..%d)", id, d->t->n_vocab - 1);
    size_t pl;
    const char *p = piece_at(d->t, id, d->special, d->at_start, &pl);
    d->at_start = false;
    memcpy(out, d->pending, (size_t)d->n_pending);
    memcpy(out + d->n_pending, p, pl);
    size_t total = (size_t)d->n_pending + pl;
    int hold = incomplete_tail((const uint8_t *)out, total);
    memcpy(d->pending, out + total - hold, (size_t)hold);
    d->n_pending = hold;
    return (int)(total - (size_t)hold);
}

size_t fq_detok_flush(fq_detok *d, char *out) {
    size_t n = (size_t)d->n_pending;
    memcpy(out, d->pending, n);
    d->n_pending = 0;
    return n;
}
