/* chat.c - chat prompt formats (see chat.h). */
#include "chat.h"

#include <string.h>

#define KNOWN_KINDS "zephyr, llama2, chatml"

static const char *const kind_names[FQ_CHAT_KIND_COUNT] = {
    [FQ_CHAT_UNKNOWN] = "unknown",
    [FQ_CHAT_ZEPHYR] = "zephyr",
    [FQ_CHAT_LLAMA2] = "llama2",
    [FQ_CHAT_CHATML] = "chatml",
};

const char *fq_chat_kind_name(enum fq_chat_kind kind) {
    return (unsigned)kind < FQ_CHAT_KIND_COUNT ? kind_names[kind] : "unknown";
}

int fq_chat_kind_from_name(const char *name) {
    if (!name) return -1;
    for (int k = FQ_CHAT_UNKNOWN + 1; k < FQ_CHAT_KIND_COUNT; k++)
        if (strcmp(name, kind_names[k]) == 0) return k;
    return -1;
}

static bool has(const char *s, size_t n, const char *needle) {
    return memmem(s, n, needle, strlen(needle)) != NULL;
}

enum fq_chat_kind fq_chat_detect(const char *tmpl, size_t len) {
    if (!tmpl) return FQ_CHAT_UNKNOWN;
    for (int k = FQ_CHAT_UNKNOWN + 1; k < FQ_CHAT_KIND_COUNT; k++)
        if (strlen(kind_names[k]) == len && memcmp(tmpl, kind_names[k], len) == 0)
            return (enum fq_chat_kind)k;
    /* Look-alikes that use the same markers in another layout are refused rather than
     * formatted wrongly: Phi-4 and SmolVLM (<|im_start|>), Mistral v3/v7 ([INST]), Phi-3
     * (<|user|> ... <|end|>). */
    if (has(tmpl, len, "<|im_start|>")) {
        if (has(tmpl, len, "<|im_sep|>") || has(tmpl, len, "<end_of_utterance>"))
            return FQ_CHAT_UNKNOWN;
        return FQ_CHAT_CHATML;
    }
    if (has(tmpl, len, "[INST]")) {
        if (has(tmpl, len, "[SYSTEM_PROMPT]") || has(tmpl, len, "[AVAILABLE_TOOLS]"))
            return FQ_CHAT_UNKNOWN;
        return FQ_CHAT_LLAMA2;
    }
    if (has(tmpl, len, "<|user|>") && has(tmpl, len, "<|assistant|>")) {
        if (has(tmpl, len, "<|end|>")) return FQ_CHAT_UNKNOWN;
        return FQ_CHAT_ZEPHYR;
    }
    return FQ_CHAT_UNKNOWN;
}

int fq_chat_resolve(const char *name, const char *tmpl, size_t len, enum fq_chat_kind *kind,
                    fq_err *e) {
    *kind = FQ_CHAT_UNKNOWN;
    if (name) {
        int k = fq_chat_kind_from_name(name);
        if (k < 0)
            return fq_errf(e, "unknown chat template '%s' (fqlm knows: " KNOWN_KINDS ")", name);
        *kind = (enum fq_chat_kind)k;
        return 0;
    }
    if (!tmpl)
        return fq_errf(e, "the model has no chat template (tokenizer.chat_template); name one "
                          "(fqlm knows: " KNOWN_KINDS ")");
    *kind = fq_chat_detect(tmpl, len);
    if (*kind == FQ_CHAT_UNKNOWN)
        return fq_errf(e, "unknown chat template (fqlm knows: " KNOWN_KINDS ")");
    return 0;
}

int fq_chat_apply(enum fq_chat_kind kind, const char *sys, const char *user, char **out,
                  fq_err *e) {
    *out = NULL;
    if (!user) return fq_errf(e, "chat: no user message");
    bool with_sys = sys && sys[0];
    const char *fmt;
    switch (kind) {
    case FQ_CHAT_ZEPHYR:
        fmt = with_sys ? "<|system|>\n%s</s>\n<|user|>\n%s</s>\n<|assistant|>\n"
                       : "%s<|user|>\n%s</s>\n<|assistant|>\n";
        break;
    case FQ_CHAT_LLAMA2:
        /* llama.cpp's llm_chat_apply_template: BOS comes from the tokenizer, not the text */
        fmt = with_sys ? "[INST] <<SYS>>\n%s\n<</SYS>>\n\n%s [/INST]" : "[INST] %s%s [/INST]";
        break;
    case FQ_CHAT_CHATML:
        fmt = with_sys ? "<|im_start|>system\n%s<|im_end|>\n<|im_start|>user\n%s<|im_end|>\n"
                         "<|im_start|>assistant\n"
                       : "%s<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n";
        break;
    default:
        return fq_errf(e, "unknown chat template (fqlm knows: " KNOWN_KINDS ")");
    }
    const char *s = with_sys ? sys : "";
    size_t n = strlen(fmt) + strlen(s) + strlen(user) + 1;
    char *buf = fq_malloc(n, e);
    if (!buf) return -1;
    snprintf(buf, n, fmt, s, user);
    *out = buf;
    return 0;
}
