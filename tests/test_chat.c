/* test_chat.c - chat template detection and prompt formats.
 *
 * Templates are the public Jinja strings of TinyLlama-1.1B-Chat-v1.0 (zephyr), Llama-2-chat,
 * an OpenHermes-style ChatML, Phi-3-mini and Gemma-7b-it, and in tests/data/chat/ those of
 * the families' instruct models (Llama 3/3.1/3.2, Qwen2/2.5/3, Gemma 2/3, Phi-3/3.5; see
 * tests/data/chat/README.md); the expected prompts are what those templates render for one
 * user turn with add_generation_prompt, BOS left to the tokenizer, and llama.cpp's
 * llm_chat_apply_template where the two differ (said at each case). The zephyr prompts,
 * tokenized with parse_special, must give llama.cpp's ids from
 * tests/data/golden/tokenizer/llama-spm-32000.special.jsonl. */
#include "harness.h"
#include "chat.h"
#include "gguf.h"
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

static const char tmpl_tinyllama[] =
    "{% for message in messages %}\n"
    "{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n"
    "{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n"
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n"
    "{{ '<|assistant|>' }}\n"
    "{% endif %}\n"
    "{% endfor %}";

static const char tmpl_llama2[] =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}"
    "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}";

static const char tmpl_chatml[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}";

static const char tmpl_phi3[] =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}"
    "{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}"
    "{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}"
    "{% endif %}{% endfor %}";

static const char tmpl_gemma[] =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'assistant') %}"
    "{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

#define KNOWN "unknown chat template (fqlm knows: zephyr, llama2, chatml, llama3, gemma, phi3)"

/* A Mistral v7 template: [INST] markers in another layout, refused */
static const char tmpl_mistral_v7[] =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ '[SYSTEM_PROMPT]' + message['content'] + '[/SYSTEM_PROMPT]' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST]' + message['content'] + '[/INST]' }}"
    "{% endif %}{% endfor %}";

static char *read_text(const char *name, size_t *len) {
    char path[256];
    snprintf(path, sizeof path, "tests/data/chat/%s", name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(1 << 16);
    *len = buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
    fclose(f);
    if (buf) buf[*len] = 0;
    return buf;
}

static void expect_apply(enum fq_chat_kind k, const char *sys, const char *user, const char *want) {
    fq_err e = {{0}};
    char *out = NULL;
    int rc = fq_chat_apply(k, sys, user, &out, &e);
    CHECK(rc == 0 && out && strcmp(out, want) == 0, "%s(%s, %s):\n  got  \"%s\"\n  want \"%s\" %s",
          fq_chat_kind_name(k), sys ? sys : "NULL", user, out ? out : "", want, rc ? e.msg : "");
    free(out);
}

static void test_detect(void) {
    CHECK(fq_chat_detect(tmpl_tinyllama, strlen(tmpl_tinyllama)) == FQ_CHAT_ZEPHYR, "tinyllama");
    CHECK(fq_chat_detect(tmpl_llama2, strlen(tmpl_llama2)) == FQ_CHAT_LLAMA2, "llama2");
    CHECK(fq_chat_detect(tmpl_chatml, strlen(tmpl_chatml)) == FQ_CHAT_CHATML, "chatml");
    CHECK(fq_chat_detect(tmpl_phi3, strlen(tmpl_phi3)) == FQ_CHAT_PHI3, "phi3 is not zephyr");
    CHECK(fq_chat_detect(tmpl_gemma, strlen(tmpl_gemma)) == FQ_CHAT_GEMMA, "gemma");
    CHECK(fq_chat_detect(tmpl_mistral_v7, strlen(tmpl_mistral_v7)) == FQ_CHAT_UNKNOWN, "mistral v7");
    CHECK(fq_chat_detect("llama3", 6) == FQ_CHAT_LLAMA3 && fq_chat_detect("gemma", 5) == FQ_CHAT_GEMMA &&
          fq_chat_detect("phi3", 4) == FQ_CHAT_PHI3, "bare names of the new kinds");
    CHECK(fq_chat_detect("", 0) == FQ_CHAT_UNKNOWN, "empty");
    CHECK(fq_chat_detect(NULL, 0) == FQ_CHAT_UNKNOWN, "NULL");
    CHECK(fq_chat_detect("chatml", 6) == FQ_CHAT_CHATML, "bare name");
    CHECK(fq_chat_detect("llama2", 6) == FQ_CHAT_LLAMA2, "bare name llama2");
    /* only the first len bytes count */
    CHECK(fq_chat_detect(tmpl_chatml, 10) == FQ_CHAT_UNKNOWN, "length respected");

    CHECK(strcmp(fq_chat_kind_name(FQ_CHAT_ZEPHYR), "zephyr") == 0 &&
          strcmp(fq_chat_kind_name(FQ_CHAT_LLAMA2), "llama2") == 0 &&
          strcmp(fq_chat_kind_name(FQ_CHAT_CHATML), "chatml") == 0 &&
          strcmp(fq_chat_kind_name(FQ_CHAT_LLAMA3), "llama3") == 0 &&
          strcmp(fq_chat_kind_name(FQ_CHAT_GEMMA), "gemma") == 0 &&
          strcmp(fq_chat_kind_name(FQ_CHAT_PHI3), "phi3") == 0 &&
          strcmp(fq_chat_kind_name(FQ_CHAT_UNKNOWN), "unknown") == 0 &&
          strcmp(fq_chat_kind_name((enum fq_chat_kind)99), "unknown") == 0, "kind names");
    CHECK(fq_chat_kind_from_name("zephyr") == FQ_CHAT_ZEPHYR &&
          fq_chat_kind_from_name("llama2") == FQ_CHAT_LLAMA2 &&
          fq_chat_kind_from_name("chatml") == FQ_CHAT_CHATML, "from name");
    CHECK(fq_chat_kind_from_name("Zephyr") == -1 && fq_chat_kind_from_name("unknown") == -1 &&
          fq_chat_kind_from_name("") == -1 && fq_chat_kind_from_name(NULL) == -1, "bad names");
}

static void test_resolve(void) {
    fq_err e = {{0}};
    enum fq_chat_kind k;
    CHECK(fq_chat_resolve("chatml", tmpl_tinyllama, strlen(tmpl_tinyllama), &k, &e) == 0 &&
          k == FQ_CHAT_CHATML, "a name wins over the template");
    CHECK(fq_chat_resolve(NULL, tmpl_tinyllama, strlen(tmpl_tinyllama), &k, &e) == 0 &&
          k == FQ_CHAT_ZEPHYR, "template used without a name");
    CHECK(fq_chat_resolve("vicuna", NULL, 0, &k, &e) == -1 &&
          strcmp(e.msg, "unknown chat template 'vicuna' (fqlm knows: zephyr, llama2, chatml, llama3, "
                        "gemma, phi3)") == 0,
          "bad name: %s", e.msg);
    CHECK(fq_chat_resolve(NULL, tmpl_mistral_v7, strlen(tmpl_mistral_v7), &k, &e) == -1 &&
          strcmp(e.msg, KNOWN) == 0 && k == FQ_CHAT_UNKNOWN, "unknown template: %s", e.msg);
    CHECK(fq_chat_resolve(NULL, NULL, 0, &k, &e) == -1 && strstr(e.msg, "no chat template") &&
          strstr(e.msg, "zephyr, llama2, chatml, llama3, gemma, phi3"), "neither: %s", e.msg);
}

static void test_apply(void) {
    expect_apply(FQ_CHAT_ZEPHYR, "You are a helpful assistant.", "Hi",
                 "<|system|>\nYou are a helpful assistant.</s>\n<|user|>\nHi</s>\n<|assistant|>\n");
    expect_apply(FQ_CHAT_ZEPHYR, NULL, "Hi", "<|user|>\nHi</s>\n<|assistant|>\n");
    expect_apply(FQ_CHAT_ZEPHYR, "", "Hi", "<|user|>\nHi</s>\n<|assistant|>\n");
    expect_apply(FQ_CHAT_LLAMA2, "Be brief.", "Hello there",
                 "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHello there [/INST]");
    expect_apply(FQ_CHAT_LLAMA2, NULL, "Hello there", "[INST] Hello there [/INST]");
    expect_apply(FQ_CHAT_CHATML, "Be brief.", "Hello",
                 "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
                 "<|im_start|>assistant\n");
    expect_apply(FQ_CHAT_CHATML, NULL, "Hello",
                 "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n");
    /* messages are copied as they are, % signs included */
    expect_apply(FQ_CHAT_CHATML, NULL, "100% %s %n", "<|im_start|>user\n100% %s %n<|im_end|>\n<|im_start|>assistant\n");
    expect_apply(FQ_CHAT_ZEPHYR, NULL, "", "<|user|>\n</s>\n<|assistant|>\n");

    fq_err e = {{0}};
    char *out = (char *)1;
    CHECK(fq_chat_apply(FQ_CHAT_UNKNOWN, NULL, "Hi", &out, &e) == -1 && out == NULL &&
          strcmp(e.msg, KNOWN) == 0, "unknown kind: %s", e.msg);
    CHECK(fq_chat_apply((enum fq_chat_kind)42, NULL, "Hi", &out, &e) == -1 &&
          strcmp(e.msg, KNOWN) == 0, "bad kind: %s", e.msg);
    CHECK(fq_chat_apply(FQ_CHAT_ZEPHYR, NULL, NULL, &out, &e) == -1, "NULL user");
}

static void test_apply_new_kinds(void) {
    /* Llama 3: messages trimmed (the template's `| trim`) */
    expect_apply(FQ_CHAT_LLAMA3, "You are a helpful assistant", "Hello",
                 "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
                 "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\n");
    expect_apply(FQ_CHAT_LLAMA3, NULL, " \n How are you\t\n",
                 "<|start_header_id|>user<|end_header_id|>\n\nHow are you<|eot_id|>"
                 "<|start_header_id|>assistant<|end_header_id|>\n\n");
    /* Gemma: the system message opens the first user turn; the assistant is "model" */
    expect_apply(FQ_CHAT_GEMMA, "Be brief.", "Hello",
                 "<start_of_turn>user\nBe brief.\n\nHello<end_of_turn>\n<start_of_turn>model\n");
    expect_apply(FQ_CHAT_GEMMA, NULL, "  Hello  ",
                 "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n");
    /* only white space: nothing to fold in (llama.cpp: an empty trimmed system prompt) */
    expect_apply(FQ_CHAT_GEMMA, " \n ", "Hi", "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
    /* Phi-3: not trimmed */
    expect_apply(FQ_CHAT_PHI3, "You are a helpful assistant", " Hello ",
                 "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\n Hello <|end|>\n<|assistant|>\n");
    expect_apply(FQ_CHAT_PHI3, NULL, "Hello", "<|user|>\nHello<|end|>\n<|assistant|>\n");
    expect_apply(FQ_CHAT_PHI3, "", "100% %s", "<|user|>\n100% %s<|end|>\n<|assistant|>\n");
}

/* The families' real templates: the kind detected, and the prompt of one user turn (with
 * and without a system message) as --chat writes it (fq_chat_format). */
static void test_real_templates(void) {
    static const char qwen25_sys[] = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
    static const struct {
        const char *file;
        enum fq_chat_kind kind;
        const char *dflt; /* the template's default system message */
        const char *plain, *with_sys; /* user "Hello"; system "Be brief." */
    } c[] = {
        /* Llama 3.1/3.2 also write "Cutting Knowledge Date: December 2023\nToday Date: ..." into
         * a system turn of their own; llama.cpp's built-in format does not, neither does fqlm */
        {"llama-3-8b-instruct.jinja", FQ_CHAT_LLAMA3, NULL,
         "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
         "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>"
         "\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
        {"llama-3.1-8b-instruct.jinja", FQ_CHAT_LLAMA3, NULL,
         "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
         NULL},
        {"llama-3.2-3b-instruct.jinja", FQ_CHAT_LLAMA3, NULL,
         "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
         NULL},
        /* Qwen2.5: its own system message when the conversation has none */
        {"qwen2.5-7b-instruct.jinja", FQ_CHAT_CHATML, qwen25_sys,
         "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
         "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
         "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"},
        /* Qwen2 (the qwen2 vocabulary's template): `set system_message = '...'` */
        {"qwen2-vocab.jinja", FQ_CHAT_CHATML, "You are a helpful assistant.",
         "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
         "<|im_start|>assistant\n", NULL},
        /* Qwen3: no default system message (thinking left on, as enable_thinking's default) */
        {"qwen3-0.6b.jinja", FQ_CHAT_CHATML, NULL,
         "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
         "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"},
        /* Gemma 2 raises on a system message; llama.cpp (and fqlm) fold it in as Gemma 3 does */
        {"gemma-2-2b-it.jinja", FQ_CHAT_GEMMA, NULL,
         "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n", NULL},
        {"gemma-3-it.jinja", FQ_CHAT_GEMMA, NULL,
         "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
         "<start_of_turn>user\nBe brief.\n\nHello<end_of_turn>\n<start_of_turn>model\n"},
        {"phi-3.5-mini-instruct.jinja", FQ_CHAT_PHI3, NULL,
         "<|user|>\nHello<|end|>\n<|assistant|>\n",
         "<|system|>\nBe brief.<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\n"},
        /* Phi-3-mini's template drops system messages; llama.cpp writes them as Phi-3.5 does */
        {"phi-3-mini-vocab.jinja", FQ_CHAT_PHI3, NULL, "<|user|>\nHello<|end|>\n<|assistant|>\n", NULL},
    };
    for (size_t i = 0; i < FQ_ARRAY_LEN(c); i++) {
        size_t len = 0;
        char *t = read_text(c[i].file, &len);
        CHECK(t && len > 100, "tests/data/chat/%s: cannot read", c[i].file);
        if (!t) continue;
        const enum fq_chat_kind k = fq_chat_detect(t, len);
        CHECK(k == c[i].kind, "%s: detected %s, want %s", c[i].file, fq_chat_kind_name(k),
              fq_chat_kind_name(c[i].kind));
        char *d = fq_chat_default_system(t, len);
        CHECK(c[i].dflt ? d && !strcmp(d, c[i].dflt) : !d, "%s: default system \"%s\", want \"%s\"",
              c[i].file, d ? d : "(none)", c[i].dflt ? c[i].dflt : "(none)");
        free(d);
        for (int s = 0; s < 2; s++) {
            const char *want = s ? c[i].with_sys : c[i].plain;
            if (!want) continue;
            fq_err e = {{0}};
            char *out = NULL;
            int rc = fq_chat_format(NULL, t, len, s ? "Be brief." : NULL, "Hello", &out, &e);
            CHECK(rc == 0 && out && !strcmp(out, want), "%s%s:\n  got  \"%s\"\n  want \"%s\" %s",
                  c[i].file, s ? " with system" : "", out ? out : "", want, rc ? e.msg : "");
            free(out);
        }
        /* -sys "": no system message, not even the template's default */
        fq_err e = {{0}};
        char *out = NULL;
        CHECK(fq_chat_format(NULL, t, len, "", "Hello", &out, &e) == 0 && out &&
                  !strstr(out, "system") && !strstr(out, "Be brief"), "%s: -sys \"\"", c[i].file);
        free(out);
        /* a name given wins; the default system message goes with ChatML only */
        out = NULL;
        CHECK(fq_chat_format("phi3", t, len, NULL, "Hello", &out, &e) == 0 && out &&
                  !strcmp(out, "<|user|>\nHello<|end|>\n<|assistant|>\n"), "%s: named phi3", c[i].file);
        free(out);
        free(t);
    }
    /* the default is a whole literal of the template, never text around Jinja markup */
    static const char *no_default[] = {
        "{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}",
        "{{ '<|im_start|>system\\n' }}{{ 'You are Qwen' }}<|im_end|>",
        "x <|im_start|>system\nplain text, not in a literal<|im_end|>",
        "x <|im_start|>system\\nplain text, not in a literal<|im_end|>",
        "{{ '<|im_start|>system\\nunterminated",
        "{{ '<|im_start|>system\\n<|im_end|>\\n' }}",
        "{% set system_message = messages[0]['content'] %}<|im_start|>",
        "{% set system_message = 'unterminated <|im_start|>",
        "{{ '<|im_start|>system\\nX<|im_sep|>Y<|im_end|>' }}", /* Phi-4: not ChatML */
    };
    for (size_t i = 0; i < FQ_ARRAY_LEN(no_default); i++) {
        char *d = fq_chat_default_system(no_default[i], strlen(no_default[i]));
        CHECK(!d, "no default in <%s>: got \"%s\"", no_default[i], d ? d : "");
        free(d);
    }
    static const char esc[] = "{% set system_message = 'It\\'s \"fine\"\\n' %}<|im_start|>";
    char *d = fq_chat_default_system(esc, strlen(esc));
    CHECK(d && !strcmp(d, "It's \"fine\"\n"), "escapes in a default: \"%s\"", d ? d : "(none)");
    free(d);
    /* a NUL inside the literal (fuzz_chat found it): no default, rather than an empty string */
    static const char nul[] = "{% set system_message = 'a\0b' %}<|im_start|>";
    d = fq_chat_default_system(nul, sizeof nul - 1);
    CHECK(!d, "default with a NUL byte: \"%s\"", d ? d : "");
    free(d);
    CHECK(!fq_chat_default_system(NULL, 0) && !fq_chat_default_system(tmpl_gemma, strlen(tmpl_gemma)),
          "default of NULL / non-ChatML");
    /* only the first len bytes count */
    size_t len = 0;
    char *t = read_text("qwen2.5-7b-instruct.jinja", &len);
    if (t) {
        const char *cut = strstr(t, "You are Qwen, created");
        d = cut ? fq_chat_default_system(t, (size_t)(cut - t) + 10) : NULL;
        CHECK(cut && !d, "default system past len");
        free(d);
        free(t);
    }
}

/* The zephyr prompt tokenized with parse_special gives llama.cpp's ids. */
static void test_tokenized(void) {
    static const int32_t want_user[] = {529, 29989, 1792, 29989, 29958, 13, 5618, 338, 278, 7483,
                                        310, 3444, 29973, 2, 29871, 13, 29966, 29989, 465, 22137,
                                        29989, 29958, 13};
    static const int32_t want_sys[] = {529, 29989, 5205, 29989, 29958, 13, 3492, 526, 263, 8444,
                                       20255, 29889, 2, 29871, 13, 29966, 29989, 1792, 29989, 29958,
                                       13, 18567, 2, 29871, 13, 29966, 29989, 465, 22137, 29989,
                                       29958, 13};
    fq_err e = {{0}};
    fq_gguf g;
    fq_tokenizer *t = NULL;
    if (fq_gguf_open(&g, "tests/data/models/ggml-vocab-llama-spm.gguf", &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    int rc = fq_tokenizer_load(&t, &g, &e);
    fq_gguf_close(&g);
    CHECK(rc == 0, "%s", e.msg);
    if (rc) return;

    struct { const char *sys, *user; const int32_t *want; size_t n; } cases[] = {
        {NULL, "What is the capital of France?", want_user, FQ_ARRAY_LEN(want_user)},
        {"You are a helpful assistant.", "Hi", want_sys, FQ_ARRAY_LEN(want_sys)},
    };
    for (size_t c = 0; c < FQ_ARRAY_LEN(cases); c++) {
        char *prompt = NULL;
        int32_t *ids = NULL;
        size_t n = 0;
        rc = fq_chat_apply(FQ_CHAT_ZEPHYR, cases[c].sys, cases[c].user, &prompt, &e);
        CHECK(rc == 0, "%s", e.msg);
        if (rc) continue;
        rc = fq_tokenize(t, prompt, strlen(prompt), true, true, &ids, &n, &e);
        CHECK(rc == 0 && n == cases[c].n + 1 && ids[0] == fq_tokenizer_bos(t) &&
              memcmp(ids + 1, cases[c].want, cases[c].n * sizeof *ids) == 0,
              "zephyr prompt %zu tokenized differently (%zu ids)", c, n);
        free(ids);
        free(prompt);
    }
    fq_tokenizer_free(t);
}

int main(void) {
    test_detect();
    test_resolve();
    test_apply();
    test_apply_new_kinds();
    test_real_templates();
    test_tokenized();
    return TEST_END();
}
