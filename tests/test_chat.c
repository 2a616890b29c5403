/* test_chat.c - chat template detection and prompt formats.
 *
 * Templates are the public Jinja strings of TinyLlama-1.1B-Chat-v1.0 (zephyr), Llama-2-chat,
 * an OpenHermes-style ChatML, and two look-alikes fqlm must refuse (Phi-3, Gemma). The zephyr
 * prompts, tokenized with parse_special, must give llama.cpp's ids from
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

#define KNOWN "unknown chat template (fqlm knows: zephyr, llama2, chatml)"

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
    CHECK(fq_chat_detect(tmpl_phi3, strlen(tmpl_phi3)) == FQ_CHAT_UNKNOWN, "phi3 is not zephyr");
    CHECK(fq_chat_detect(tmpl_gemma, strlen(tmpl_gemma)) == FQ_CHAT_UNKNOWN, "gemma");
    CHECK(fq_chat_detect("", 0) == FQ_CHAT_UNKNOWN, "empty");
    CHECK(fq_chat_detect(NULL, 0) == FQ_CHAT_UNKNOWN, "NULL");
    CHECK(fq_chat_detect("chatml", 6) == FQ_CHAT_CHATML, "bare name");
    CHECK(fq_chat_detect("llama2", 6) == FQ_CHAT_LLAMA2, "bare name llama2");
    /* only the first len bytes count */
    CHECK(fq_chat_detect(tmpl_chatml, 10) == FQ_CHAT_UNKNOWN, "length respected");

    CHECK(strcmp(fq_chat_kind_name(FQ_CHAT_ZEPHYR), "zephyr") == 0 &&
          strcmp(fq_chat_kind_name(FQ_CHAT_LLAMA2), "llama2") == 0 &&
          strcmp(fq_chat_kind_name(FQ_CHAT_CHATML), "chatml") == 0 &&
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
          strcmp(e.msg, "unknown chat template 'vicuna' (fqlm knows: zephyr, llama2, chatml)") == 0,
          "bad name: %s", e.msg);
    CHECK(fq_chat_resolve(NULL, tmpl_gemma, strlen(tmpl_gemma), &k, &e) == -1 &&
          strcmp(e.msg, KNOWN) == 0 && k == FQ_CHAT_UNKNOWN, "unknown template: %s", e.msg);
    CHECK(fq_chat_resolve(NULL, NULL, 0, &k, &e) == -1 && strstr(e.msg, "no chat template") &&
          strstr(e.msg, "zephyr, llama2, chatml"), "neither: %s", e.msg);
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
    test_tokenized();
    return TEST_END();
}
