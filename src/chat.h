/* chat.h - chat prompt formats.
 *
 * fqlm does not run Jinja: the kind of a model's tokenizer.chat_template is recognised by
 * signature substrings (as llama.cpp's llm_chat_detect_template does, in its order) and the
 * prompt is written by hand in that format, as llama.cpp's llm_chat_apply_template writes
 * it. The result is meant to be tokenized with parse_special = true and BOS added by the
 * tokenizer (the formats do not contain it).
 *
 *   zephyr  (TinyLlama-Chat)  "<|system|>\n{sys}</s>\n<|user|>\n{user}</s>\n<|assistant|>\n"
 *   llama2                    "[INST] <<SYS>>\n{sys}\n<</SYS>>\n\n{user} [/INST]"
 *   chatml  (Qwen2/2.5/3)     "<|im_start|>system\n{sys}<|im_end|>\n"
 *                             "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
 *   llama3  (Llama 3.x)       "<|start_header_id|>system<|end_header_id|>\n\n{sys}<|eot_id|>"
 *                             "<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>"
 *                             "<|start_header_id|>assistant<|end_header_id|>\n\n"
 *   gemma   (Gemma 1/2/3)     "<start_of_turn>user\n{sys}\n\n{user}<end_of_turn>\n"
 *                             "<start_of_turn>model\n"   (no system role: it opens the turn)
 *   phi3    (Phi-3, 3.5)      "<|system|>\n{sys}<|end|>\n<|user|>\n{user}<|end|>\n<|assistant|>\n"
 *
 * Without a system message the system part is left out. llama3 and gemma trim the messages
 * (leading and trailing white space), as the templates' `| trim` and llama.cpp do. */
#ifndef FQ_CHAT_H
#define FQ_CHAT_H

#include "common.h"

enum fq_chat_kind {
    FQ_CHAT_UNKNOWN = 0,
    FQ_CHAT_ZEPHYR,
    FQ_CHAT_LLAMA2,
    FQ_CHAT_CHATML,
    FQ_CHAT_LLAMA3,
    FQ_CHAT_GEMMA,
    FQ_CHAT_PHI3,
    FQ_CHAT_KIND_COUNT
};

/* The kind of a Jinja template tmpl[0..len) (a bare kind name such as "chatml" is accepted
 * too); FQ_CHAT_UNKNOWN when it is none fqlm knows. */
enum fq_chat_kind fq_chat_detect(const char *tmpl, size_t len);
/* "zephyr", "llama2", "chatml", "llama3", "gemma", "phi3" (llama.cpp's names); "unknown"
 * for anything else. */
const char *fq_chat_kind_name(enum fq_chat_kind kind);
/* The kind named name (case-sensitive), or -1. */
int fq_chat_kind_from_name(const char *name);

/* Picks the kind for a model: the name given by the user wins (NULL: none), otherwise the
 * model's template tmpl[0..len) (NULL: none). Returns 0, or -1 with e set: an unknown name,
 * an unrecognised template, or neither given; the messages list the known kinds. */
int fq_chat_resolve(const char *name, const char *tmpl, size_t len, enum fq_chat_kind *kind,
                    fq_err *e);

/* The system message a ChatML template writes when the conversation has none (Qwen2 and
 * Qwen2.5: "You are a helpful assistant." / "You are Qwen, created by Alibaba Cloud. ..."),
 * malloc'd; NULL when the template is not ChatML, has no such literal (Qwen3), or memory
 * runs out. Found as a string literal '<|im_start|>system\nTEXT<|im_end|>' or
 * `set system_message = 'TEXT'`. */
char *fq_chat_default_system(const char *tmpl, size_t len);

/* Writes the prompt for one user turn, optionally after a system message (sys NULL or "": no
 * system message), ending where the assistant's answer begins. *out is malloc'd and
 * NUL-terminated. Returns 0, or -1 with e set (unknown kind, NULL user, out of memory). */
int fq_chat_apply(enum fq_chat_kind kind, const char *sys, const char *user, char **out,
                  fq_err *e);

/* The prompt --chat gives: the kind as fq_chat_resolve picks it, the system message sys, or
 * when sys is NULL the one the model's ChatML template writes by default (sys "" leaves the
 * system message out), then fq_chat_apply. Returns 0, or -1 with e set. */
int fq_chat_format(const char *name, const char *tmpl, size_t len, const char *sys,
                   const char *user, char **out, fq_err *e);

#endif
