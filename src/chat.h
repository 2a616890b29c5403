/* chat.h - chat prompt formats.
 *
 * fqlm does not run Jinja: the kind of a model's tokenizer.chat_template is recognised by
 * signature substrings (as llama.cpp's llm_chat_detect_template does) and the prompt is
 * written by hand in that format. The result is meant to be tokenized with
 * parse_special = true and BOS added by the tokenizer (the formats do not contain it).
 *
 *   zephyr  (TinyLlama-Chat)  "<|system|>\n{sys}</s>\n<|user|>\n{user}</s>\n<|assistant|>\n"
 *   llama2                    "[INST] <<SYS>>\n{sys}\n<</SYS>>\n\n{user} [/INST]"
 *   chatml                    "<|im_start|>system\n{sys}<|im_end|>\n"
 *                             "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
 *
 * Without a system message the system part is left out. */
#ifndef FQ_CHAT_H
#define FQ_CHAT_H

#include "common.h"

enum fq_chat_kind {
    FQ_CHAT_UNKNOWN = 0,
    FQ_CHAT_ZEPHYR,
    FQ_CHAT_LLAMA2,
    FQ_CHAT_CHATML,
    FQ_CHAT_KIND_COUNT
};

/* The kind of a Jinja template tmpl[0..len) (a bare kind name such as "chatml" is accepted
 * too); FQ_CHAT_UNKNOWN when it is none fqlm knows. */
enum fq_chat_kind fq_chat_detect(const char *tmpl, size_t len);
/* "zephyr", "llama2", "chatml"; "unknown" for anything else. */
const char *fq_chat_kind_name(enum fq_chat_kind kind);
/* The kind named name (case-sensitive), or -1. */
int fq_chat_kind_from_name(const char *name);

/* Picks the kind for a model: the name given by the user wins (NULL: none), otherwise the
 * model's template tmpl[0..len) (NULL: none). Returns 0, or -1 with e set: an unknown name,
 * an unrecognised template, or neither given; the messages list the known kinds. */
int fq_chat_resolve(const char *name, const char *tmpl, size_t len, enum fq_chat_kind *kind,
                    fq_err *e);

/* Writes the prompt for one user turn, optionally after a system message (sys NULL or "": no
 * system message), ending where the assistant's answer begins. *out is malloc'd and
 * NUL-terminated. Returns 0, or -1 with e set (unknown kind, NULL user, out of memory). */
int fq_chat_apply(enum fq_chat_kind kind, const char *sys, const char *user, char **out,
                  fq_err *e);

#endif
