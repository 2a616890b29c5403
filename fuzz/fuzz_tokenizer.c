/* fuzz_tokenizer.c - libFuzzer target for the SentencePiece and byte-level BPE tokenizers:
 * arbitrary bytes in, tokens out, and back.
 *
 * The first input byte picks the vocabulary (bit 0 and bits 3-5, modulo 13: 0 the bundled
 * 512-token model, 1 llama's 32000-token SentencePiece vocabulary, 2..7 the BPE vocabularies
 * gpt-2, llama-bpe, qwen2, deepseek-coder, falcon, starcoder, 8..12 the GPT-2 vocabulary with
 * the chameleon, tekken, deepseek-v3, bloom and viking pre-tokenizers) and the flags (bit 1
 * add_special, bit 2 parse_special); the rest is the text (any bytes, NULs included).
 *
 * Promises checked (tokenizer.h):
 *  - every id is in the vocabulary; BOS comes first exactly when add_special asks for it;
 *  - without special-token parsing, detokenizing gives back exactly the input bytes
 *    (invalid UTF-8 included) when the vocabulary has no user-defined tokens, except that
 *    a U+2581 in the text reads back as a space (SentencePiece's space marker, as in
 *    llama.cpp); for BPE, when every byte of the text has a token (Falcon and StarCoder
 *    lack a few), through the streaming detokenizer, and the whole-text one too unless the
 *    vocabulary cleans spaces (" ," -> ",", as llama.cpp);
 *  - the streaming detokenizer emits the same bytes as the whole-text detokenizer (when
 *    that does not clean spaces);
 *  - no piece is longer than fq_tokenizer_max_piece. */
#include "fuzz_common.h"

#include "../tests/testutil.h"
#include "gguf.h"
#include "tokenizer.h"

#define N_VOCABS 13
static fq_tokenizer *g_tok[N_VOCABS];
static int g_has_user_defined[N_VOCABS];
static uint8_t g_no_byte[N_VOCABS][256]; /* BPE: the byte has no token (dropped) */

/* path, or with pre: the GPT-2 vocabulary path with tokenizer.ggml.pre set to pre */
static fq_tokenizer *load(const char *path, const char *pre, int *has_ud) {
    fq_gguf g;
    fq_err e;
    fq_tokenizer *t = NULL;
    char *img = NULL;
    int rc;
    if (pre) {
        size_t len, nlen = 0;
        char *f = tu_read(path, &len);
        img = f ? tu_gguf_set_pre(f, len, pre, &nlen) : NULL;
        free(f);
        if (!img) snprintf(e.msg, sizeof e.msg, "%s: cannot read it or set its pre-tokenizer", path);
        rc = img ? fq_gguf_open_mem(&g, img, nlen, path, &e) : -1;
    } else {
        rc = fq_gguf_open(&g, path, &e);
    }
    if (rc || fq_tokenizer_load(&t, &g, &e)) {
        fprintf(stderr, "fuzz_tokenizer: %s (run from the repository root)\n", e.msg);
        exit(1);
    }
    fq_gguf_close(&g); /* the tokenizer keeps its own copy */
    free(img);
    for (int32_t i = 0; i < fq_tokenizer_n_vocab(t); i++)
        if (fq_tokenizer_attr(t, i) & FQ_TOK_USER_DEFINED) *has_ud = 1;
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    static const char *const bpe[] = {"gpt-2", "llama-bpe", "qwen2", "deepseek-coder", "falcon",
                                       "starcoder"};
    static const char *const pre[] = {"chameleon", "tekken", "deepseek-v3", "bloom", "viking"};
    g_tok[0] = load(FUZZ_STORIES, NULL, &g_has_user_defined[0]);
    g_tok[1] = load(FUZZ_SPM_VOCAB, NULL, &g_has_user_defined[1]);
    for (int i = 2; i < N_VOCABS; i++) {
        char path[256];
        snprintf(path, sizeof path, FUZZ_VOCAB_DIR "ggml-vocab-%s.gguf", i < 8 ? bpe[i - 2] : "gpt-2");
        g_tok[i] = load(path, i < 8 ? NULL : pre[i - 8], &g_has_user_defined[i]);
        for (int b = 0; b < 256; b++) {
            char c = (char)b;
            int32_t *ids;
            size_t n;
            fq_err e;
            if (fq_tokenize(g_tok[i], &c, 1, false, false, &ids, &n, &e)) exit(1);
            g_no_byte[i][b] = n == 0;
            free(ids);
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 8192) return 0;
    const int which = ((data[0] & 1) | ((data[0] >> 3) & 7) << 1) % N_VOCABS;
    const bool add_special = data[0] & 2, parse_special = data[0] & 4;
    const fq_tokenizer *t = g_tok[which];
    /* exact-size heap copy of the text: ASan sees any read past its end */
    size_t len = size - 1;
    char *text = malloc(len ? len : 1);
    FQ_ASSERT(text);
    memcpy(text, data + 1, len);

    int32_t *ids;
    size_t n;
    fq_err e = {{0}};
    FUZZ_REQUIRE(fq_tokenize(t, text, len, add_special, parse_special, &ids, &n, &e) == 0,
                 "tokenize failed: %s", e.msg);
    const int32_t V = fq_tokenizer_n_vocab(t);
    for (size_t i = 0; i < n; i++) FUZZ_REQUIRE(ids[i] >= 0 && ids[i] < V, "id %d at %zu", ids[i], i);
    if (add_special && fq_tokenizer_adds_bos(t))
        FUZZ_REQUIRE(n >= 1 && ids[0] == fq_tokenizer_bos(t), "no BOS first");
    const bool bpe = fq_tokenizer_is_bpe(t), cleans = fq_tokenizer_cleans_spaces(t);
    bool all_bytes = true;
    for (size_t i = 0; i < len && bpe; i++) all_bytes &= !g_no_byte[which][(uint8_t)text[i]];
    if (!add_special && !parse_special && len > 0 && all_bytes)
        FUZZ_REQUIRE(n > 0, "no tokens for %zu bytes", len);
    const bool round_trip = !add_special && !parse_special && !g_has_user_defined[which] && all_bytes;

    char *out;
    size_t out_len;
    FUZZ_REQUIRE(fq_detokenize(t, ids, n, false, &out, &out_len, &e) == 0, "detokenize: %s", e.msg);
    if (round_trip && bpe && !cleans) {
        FUZZ_REQUIRE(out_len == len && !memcmp(out, text, len), "BPE round trip: %zu bytes in, %zu out",
                     len, out_len);
    } else if (round_trip && !bpe) {
        /* the expected text: each U+2581 (e2 96 81) becomes a space */
        char *want = malloc(len ? len : 1);
        FQ_ASSERT(want);
        size_t wn = 0;
        for (size_t i = 0; i < len; i++) {
            if (i + 2 < len && !memcmp(text + i, "\xe2\x96\x81", 3)) {
                want[wn++] = ' ';
                i += 2;
            } else {
                want[wn++] = text[i];
            }
        }
        FUZZ_REQUIRE(out_len == wn && !memcmp(out, want, wn),
                     "round trip: %zu bytes in (%zu expected back), %zu bytes out", len, wn, out_len);
        free(want);
    }

    /* streaming: the same bytes, piece by piece */
    const size_t maxp = fq_tokenizer_max_piece(t);
    char *piece = malloc(maxp + 4);
    char *acc = malloc(out_len + n * (maxp + 4) + 8); /* the stream is not space-cleaned */
    FQ_ASSERT(piece && acc);
    size_t acc_len = 0;
    fq_detok d;
    fq_detok_init(&d, t, true, false);
    for (size_t i = 0; i < n; i++) {
        size_t plen;
        fq_token_to_piece(t, ids[i], true, &plen);
        FUZZ_REQUIRE(plen <= maxp, "piece of %zu bytes, max_piece %zu", plen, maxp);
        int k = fq_detok_push(&d, ids[i], piece, &e);
        FUZZ_REQUIRE(k >= 0 && (size_t)k <= maxp + 4, "detok_push returned %d", k);
        FUZZ_REQUIRE(cleans || acc_len + (size_t)k <= out_len, "stream longer than the whole text");
        memcpy(acc + acc_len, piece, (size_t)k);
        acc_len += (size_t)k;
    }
    size_t k = fq_detok_flush(&d, piece);
    FUZZ_REQUIRE(k <= 3, "flush returned %zu", k);
    memcpy(acc + acc_len, piece, k);
    acc_len += k;
    if (!cleans)
        FUZZ_REQUIRE(acc_len == out_len && !memcmp(acc, out, out_len),
                     "stream gives %zu bytes, detokenize %zu", acc_len, out_len);
    if (round_trip && bpe)
        FUZZ_REQUIRE(acc_len == len && !memcmp(acc, text, len), "BPE stream round trip: %zu in, %zu out",
                     len, acc_len);
    int32_t bad = V;
    FUZZ_REQUIRE(fq_detok_push(&d, bad, piece, &e) == -1, "id %d accepted", bad);

    free(piece);
    free(acc);
    free(out);
    free(ids);
    free(text);
    return 0;
}
