/* chat.c - chat prompt formats (see chat.h). */
#include "chat.h"

#include <stdlib.h>
#include <string.h>

#define KNOWN_KINDS "zephyr, llama2, chatml, llama3, gemma, phi3"

static const char *const kind_names[FQ_CHAT_KIND_COUNT] = {
    [FQ_CHAT_UNKNOWN] = "unknown",
    [FQ_CHAT_ZEPHYR] = "zephyr",
    [FQ_CHAT_LLAMA2] = "llama2",
    [FQ_CHAT_CHATML] = "chatml",
    [FQ_CHAT_LLAMA3] = "llama3",
    [FQ_CHAT_GEMMA] = "gemma",
    [FQ_CHAT_PHI3] = "phi3",
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
    /* The order and the signatures are llama.cpp's (llm_chat_detect_template). Look-alikes
     * that use the same markers in another layout are refused rather than formatted
     * wrongly: Phi-4 and SmolVLM (<|im_start|>), Mistral v3/v7 ([INST]). */
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
    if (has(tmpl, len, "<|assistant|>") && has(tmpl, len, "<|end|>")) return FQ_CHAT_PHI3;
    if (has(tmpl, len, "<|user|>") && has(tmpl, len, "<|assistant|>")) return FQ_CHAT_ZEPHYR;
    if (has(tmpl, len, "<start_of_turn>")) return FQ_CHAT_GEMMA;
    if (has(tmpl, len, "<|start_header_id|>") && has(tmpl, len, "<|end_header_id|>"))
        return FQ_CHAT_LLAMA3;
    return FQ_CHAT_UNKNOWN;
}

/* ---- the default system message of a ChatML template (Qwen) ---- */

/* The text of a Jinja string literal from s (just past its opening quote q): up to the
 * closing quote q, or, when stop is not NULL, up to stop, which must then come before any
 * quote or Jinja markup. Escapes \n \t \\ \' \" undone. NULL when it does not qualify,
 * is empty, or memory runs out. */
static char *literal(const char *s, const char *end, char q, const char *stop) {
    const size_t sl = stop ? strlen(stop) : 0;
    const char *p = s;
    for (; p < end; p++) {
        if (stop && (size_t)(end - p) >= sl && !memcmp(p, stop, sl)) break;
        if (*p == '\\' && p + 1 < end) { p++; continue; }
        if (stop ? *p == '\'' || *p == '"' : *p == q) {
            if (stop) return NULL; /* the literal ends before the turn does */
            break;
        }
        if (*p == '{' && p + 1 < end && (p[1] == '{' || p[1] == '%')) return NULL;
        if (*p == '\0') return NULL; /* a C string cannot carry it: no usable default */
    }
    if (p >= end || p == s) return NULL;
    char *out = malloc((size_t)(p - s) + 1), *o = out;
    if (!out) return NULL;
    for (const char *r = s; r < p; r++) {
        if (*r == '\\' && r + 1 < p) {
            r++;
            *o++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : *r;
        } else {
            *o++ = *r;
        }
    }
    *o = 0;
    return out;
}

static const char *find(const char *s, const char *end, const char *needle) {
    return end > s ? memmem(s, (size_t)(end - s), needle, strlen(needle)) : NULL;
}

char *fq_chat_default_system(const char *tmpl, size_t len) {
    if (!tmpl || fq_chat_detect(tmpl, len) != FQ_CHAT_CHATML) return NULL;
    const char *end = tmpl + len;
    /* Qwen2.5 (and Qwen2-Instruct): '<|im_start|>system\nDEFAULT<|im_end|>\n' in the
     * branch taken when the first message is not a system one */
    static const char head[] = "<|im_start|>system";
    for (const char *p = find(tmpl, end, head); p; p = find(p + 1, end, head)) {
        if (p == tmpl || (p[-1] != '\'' && p[-1] != '"')) continue;
        const char *t = p + sizeof head - 1;
        if (t < end && *t == '\n') t++;
        else if (end - t >= 2 && t[0] == '\\' && t[1] == 'n') t += 2;
        else continue;
        char *d = literal(t, end, p[-1], "<|im_end|>");
        if (d) return d;
    }
    /* Qwen1.5 / Qwen2: {% set system_message = 'DEFAULT' %}, written unless the first
     * message is a system one */
    static const char set[] = "set system_message = ";
    const char *p = find(tmpl, end, set);
    if (p) {
        p += sizeof set - 1;
        if (p < end && (*p == '\'' || *p == '"')) return literal(p + 1, end, *p, NULL);
    }
    return NULL;
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

/* isspace in the C locale, as llama.cpp's trim */
static int space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

typedef struct {
    char *buf;
    size_t len;
} sbuf;

static void put(sbuf *b, const char *s, size_t n) {
    memcpy(b->buf + b->len, s, n);
    b->len += n;
}
static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }
static void put_trim(sbuf *b, const char *s) {
    size_t n = strlen(s);
    while (n && space(*s)) s++, n--;
    while (n && space(s[n - 1])) n--;
    put(b, s, n);
}
static int trim_empty(const char *s) {
    while (*s && space(*s)) s++;
    return !*s;
}

int fq_chat_apply(enum fq_chat_kind kind, const char *sys, const char *user, char **out,
                  fq_err *e) {
    *out = NULL;
    if (!user) return fq_errf(e, "chat: no user message");
    if ((unsigned)kind >= FQ_CHAT_KIND_COUNT || kind == FQ_CHAT_UNKNOWN)
        return fq_errf(e, "unknown chat template (fqlm knows: " KNOWN_KINDS ")");
    const bool with_sys = sys && sys[0];
    if (!with_sys) sys = "";
    const size_t cap = strlen(sys) + strlen(user) + 256; /* the markers take < 256 */
    sbuf b = {fq_malloc(cap, e), 0};
    if (!b.buf) return -1;
    switch (kind) {
    case FQ_CHAT_ZEPHYR:
        if (with_sys) { puts_(&b, "<|system|>\n"); puts_(&b, sys); puts_(&b, "</s>\n"); }
        puts_(&b, "<|user|>\n"); puts_(&b, user); puts_(&b, "</s>\n<|assistant|>\n");
        break;
    case FQ_CHAT_LLAMA2:
        /* llama.cpp's llm_chat_apply_template: BOS comes from the tokenizer, not the text */
        puts_(&b, "[INST] ");
        if (with_sys) { puts_(&b, "<<SYS>>\n"); puts_(&b, sys); puts_(&b, "\n<</SYS>>\n\n"); }
        puts_(&b, user); puts_(&b, " [/INST]");
        break;
    case FQ_CHAT_CHATML:
        if (with_sys) { puts_(&b, "<|im_start|>system\n"); puts_(&b, sys); puts_(&b, "<|im_end|>\n"); }
        puts_(&b, "<|im_start|>user\n"); puts_(&b, user);
        puts_(&b, "<|im_end|>\n<|im_start|>assistant\n");
        break;
    case FQ_CHAT_LLAMA3: /* messages trimmed, as the template's `| trim` */
        if (with_sys) {
            puts_(&b, "<|start_header_id|>system<|end_header_id|>\n\n");
            put_trim(&b, sys); puts_(&b, "<|eot_id|>");
        }
        puts_(&b, "<|start_header_id|>user<|end_header_id|>\n\n"); put_trim(&b, user);
        puts_(&b, "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case FQ_CHAT_GEMMA: /* no system role: it opens the first user turn */
        puts_(&b, "<start_of_turn>user\n");
        if (with_sys && !trim_empty(sys)) { put_trim(&b, sys); puts_(&b, "\n\n"); }
        put_trim(&b, user);
        puts_(&b, "<end_of_turn>\n<start_of_turn>model\n");
        break;
    case FQ_CHAT_PHI3:
        if (with_sys) { puts_(&b, "<|system|>\n"); puts_(&b, sys); puts_(&b, "<|end|>\n"); }
        puts_(&b, "<|user|>\n"); puts_(&b, user); puts_(&b, "<|end|>\n<|assistant|>\n");
        break;
    default:
        break;
    }
    FQ_ASSERT(b.len < cap);
    b.buf[b.len] = 0;
    *out = b.buf;
    return 0;
}

int fq_chat_format(const char *name, const char *tmpl, size_t len, const char *sys,
                   const char *user, char **out, fq_err *e) {
    *out = NULL;
    enum fq_chat_kind kind;
    if (fq_chat_resolve(name, tmpl, len, &kind, e)) return -1;
    char *dflt = !sys && kind == FQ_CHAT_CHATML ? fq_chat_default_system(tmpl, len) : NULL;
    const int rc = fq_chat_apply(kind, dflt ? dflt : sys, user, out, e);
    free(dflt);
    return rc;
}
