/* tok_pre.h - llama.cpp's BPE pre-tokenizers: split a text (as codepoints with their
 * classes) into the words that byte-level BPE then merges, by the regex list llama.cpp uses
 * for each tokenizer.ggml.pre value. The common patterns (GPT-2's, Llama 3's, Qwen2's) are
 * matched by hand-written scanners; the others are short single-pattern regexes, matched
 * here with std::regex's ECMAScript leftmost-match semantics on llama.cpp's "collapsed" text
 * (a non-ASCII codepoint stands for its class) or on the codepoints (non-ASCII whitespace
 * read as U+000B), as llama.cpp does. */
#ifndef FQ_TOK_PRE_H
#define FQ_TOK_PRE_H

#include <stddef.h>
#include <stdint.h>

enum fq_pre_kind {
    FQ_PRE_DEFAULT,        /* no tokenizer.ggml.pre, or "default" */
    FQ_PRE_GPT2,
    FQ_PRE_LLAMA3,
    FQ_PRE_QWEN2,
    FQ_PRE_DEEPSEEK_LLM,
    FQ_PRE_DEEPSEEK_CODER,
    FQ_PRE_FALCON,
    FQ_PRE_STARCODER,      /* also refact, command-r, smollm, ... */
    FQ_PRE_DEEPSEEK3,
    FQ_PRE_TEKKEN,
    FQ_PRE_BLOOM,          /* also poro-chat, gpt3-finnish */
    FQ_PRE_VIKING,
    FQ_PRE_CHAMELEON,
};

typedef struct fq_pre_info {
    int kind;              /* enum fq_pre_kind */
    int add_bos;           /* llama.cpp's default for add_bos_token */
    int clean_spaces;      /* detokenizer's space clean-up */
    int ignore_merges;     /* a word that is a token is emitted whole (Llama 3) */
} fq_pre_info;

/* Looks up a tokenizer.ggml.pre value (NULL = absent). Returns 0, or -1 for a value llama.cpp
 * does not know. */
int fq_pre_lookup(const char *name, size_t len, fq_pre_info *info);
/* The known values, comma-separated, for error messages. */
const char *fq_pre_known(void);

/* Splits cpt[0..n) (classes in fl) into words: writes the word lengths (in codepoints) to
 * out, which must hold n entries, using tmp (n entries) as scratch. Returns the count. */
size_t fq_pre_split(int kind, const uint32_t *cpt, const uint16_t *fl, size_t n, uint32_t *out,
                    uint32_t *tmp);

#endif
