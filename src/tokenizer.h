/* tokenizer.h - the llama SentencePiece tokenizer (tokenizer.ggml.model = "llama"), as
 * llama.cpp implements it (LLAMA_VOCAB_TYPE_SPM, llm_tokenizer_spm), and a streaming
 * detokenizer.
 *
 * Tokenizing: with parse_special, control and unknown tokens written in the text ("<s>",
 * "</s>") are split out first and emitted as their ids; user-defined tokens are always split
 * out. Each text fragment between them is tokenized on its own: a space is put in front of it
 * when it begins the text or follows a special token (add_space_prefix, on by default),
 * spaces become U+2581, the fragment is split into UTF-8 characters, the adjacent pair whose
 * concatenation is the best-scoring vocabulary token is merged until none is left (ties:
 * leftmost), and a piece that is not a token falls back to byte tokens <0xNN>.
 * Invalid UTF-8: each bad byte is a character of its own, so any bytes come back exactly from
 * their tokens. llama.cpp instead lets a lead byte take the bytes it announces whatever they
 * are; ids can differ from its only on invalid UTF-8 (the bytes never do, except that
 * llama.cpp turns a space swallowed that way into the bytes of U+2581).
 *
 * Detokenizing follows llama_detokenize(remove_special = false): pieces are concatenated,
 * U+2581 reads as a space, byte tokens give their byte, control and unknown tokens give
 * nothing unless `special`; when the vocabulary adds a space prefix, the first token of a text
 * loses one leading space, unless that first token is BOS (so [BOS, "▁Once"] reads " Once"). */
#ifndef FQ_TOKENIZER_H
#define FQ_TOKENIZER_H

#include "common.h"
#include "gguf.h"

typedef struct fq_tokenizer fq_tokenizer;

/* Token attributes, bit flags with llama.cpp's values (llama_token_attr), from
 * tokenizer.ggml.token_type (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
 * 6 byte; anything else undefined). */
enum fq_tok_attr {
    FQ_TOK_UNDEFINED    = 0,
    FQ_TOK_UNKNOWN      = 1 << 0,
    FQ_TOK_UNUSED       = 1 << 1,
    FQ_TOK_NORMAL       = 1 << 2,
    FQ_TOK_CONTROL      = 1 << 3,
    FQ_TOK_USER_DEFINED = 1 << 4,
    FQ_TOK_BYTE         = 1 << 5,
    FQ_TOK_RSTRIP       = 1 << 8, /* whitespace right after it is dropped (Phi-3's specials) */
};

/* Builds the tokenizer from the file's tokenizer.ggml.* metadata (tokens, scores, token_type,
 * bos/eos/unknown/padding/eot/eom ids, add_bos_token, add_eos_token, add_space_prefix). The
 * tokenizer copies what it needs: g may be closed afterwards. Returns 0, or -1 with e set
 * (a model other than "llama", missing or mismatched arrays, duplicate tokens). */
int fq_tokenizer_load(fq_tokenizer **out, const fq_gguf *g, fq_err *e);
/* Loads the tokenizer of a GGUF file by path: any file with tokenizer.ggml.* metadata,
 * vocabulary-only files (no tensors) included. Returns 0, or -1 with e set. */
int fq_tokenizer_load_file(fq_tokenizer **out, const char *path, fq_err *e);
void fq_tokenizer_free(fq_tokenizer *t);
/* "llama" (SentencePiece) or "gpt2" (byte-level BPE); for BPE also the pre-tokenizer. */
bool fq_tokenizer_is_bpe(const fq_tokenizer *t);
/* Whether fq_detokenize applies llama.cpp's BPE space clean-up (" ," -> ","), which the
 * streaming detokenizer, like llama.cpp's token_to_piece, does not. */
bool fq_tokenizer_cleans_spaces(const fq_tokenizer *t);

int32_t fq_tokenizer_n_vocab(const fq_tokenizer *t);
/* Special ids; -1 when the vocabulary has none. */
int32_t fq_tokenizer_bos(const fq_tokenizer *t);
int32_t fq_tokenizer_eos(const fq_tokenizer *t);
int32_t fq_tokenizer_unk(const fq_tokenizer *t);
int32_t fq_tokenizer_pad(const fq_tokenizer *t);
/* Whether fq_tokenize(add_special = true) prepends BOS / appends EOS. */
bool fq_tokenizer_adds_bos(const fq_tokenizer *t);
bool fq_tokenizer_adds_eos(const fq_tokenizer *t);
/* End of generation: EOS, EOT, EOM, and tokens named like "<|im_end|>", "<|eot_id|>". */
bool fq_tokenizer_is_eog(const fq_tokenizer *t, int32_t id);
/* enum fq_tok_attr flags of id (0 for an id out of range). */
uint32_t fq_tokenizer_attr(const fq_tokenizer *t, int32_t id);
/* The vocabulary entry of id as stored (with U+2581, "<0x0A>"): not NUL-terminated; NULL
 * with *len = 0 for an id out of range. */
const char *fq_tokenizer_text(const fq_tokenizer *t, int32_t id, size_t *len);
/* The id of a vocabulary entry spelled exactly text[0..len), or -1. */
int32_t fq_tokenizer_find(const fq_tokenizer *t, const char *text, size_t len);
/* Longest piece fq_token_to_piece can return, in bytes. */
size_t fq_tokenizer_max_piece(const fq_tokenizer *t);

/* Tokenizes text[0..len) (any bytes; NUL is an ordinary byte). add_special: BOS / EOS as the
 * vocabulary asks (tokenizer.ggml.add_bos_token, default true; add_eos_token, default false).
 * parse_special: control-token text such as "</s>" becomes that token. *ids is malloc'd
 * (free it; non-NULL even when *n is 0). Returns 0, or -1 with e set. */
int fq_tokenize(const fq_tokenizer *t, const char *text, size_t len, bool add_special,
                bool parse_special, int32_t **ids, size_t *n, fq_err *e);

/* The bytes of one token: byte tokens give their byte, U+2581 reads as a space, control and
 * unknown tokens are empty unless special (then their text). Not NUL-terminated; points into
 * the tokenizer. An id out of range gives "" (*len = 0). */
const char *fq_token_to_piece(const fq_tokenizer *t, int32_t id, bool special, size_t *len);

/* Detokenizes a whole text (see the rule for the leading space above) into a malloc'd
 * NUL-terminated string of *len bytes (it may hold NULs). Returns 0, or -1 with e set (an id
 * out of range, out of memory). */
int fq_detokenize(const fq_tokenizer *t, const int32_t *ids, size_t n, bool special,
                  char **out, size_t *len, fq_err *e);

/* Streaming detokenizer for generated tokens: emits bytes as soon as they form whole UTF-8
 * characters, holding back an incomplete sequence at the end of a piece until the bytes that
 * complete it arrive (a sequence that turns out invalid is emitted as it is, so the bytes
 * out are always exactly the pieces' bytes). Plain struct, no allocation. */
typedef struct fq_detok {
    const fq_tokenizer *t;
    bool special;        /* render control and unknown tokens as their text */
    bool at_start;       /* the next token begins a text: llama.cpp's leading-space rule */
    uint8_t pending[4];  /* an incomplete UTF-8 sequence held back */
    int n_pending;
} fq_detok;

/* at_start: the tokens begin a text (true for a whole prompt; false for tokens generated
 * after a prompt, whose leading spaces are real). */
void fq_detok_init(fq_detok *d, const fq_tokenizer *t, bool at_start, bool special);
/* Decodes one token into out, which must hold fq_tokenizer_max_piece(t) + 4 bytes. Returns
 * the number of bytes written (possibly 0), or -1 with e set for an id out of range. */
int fq_detok_push(fq_detok *d, int32_t id, char *out, fq_err *e);
/* Emits what is still held back (at most 3 bytes of an unfinished sequence) into out (4
 * bytes); returns the count. */
size_t fq_detok_flush(fq_detok *d, char *out);

#endif
