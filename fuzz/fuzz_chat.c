/* fuzz_chat.c - libFuzzer target for chat-template detection and prompt formatting.
 *
 * The whole input is a model's tokenizer.chat_template (any bytes, not NUL-terminated);
 * split at the first two NUL bytes it also gives a template name, a system message and a
 * user message, as --chat-template, -sys and -p would.
 *
 * Promises checked (chat.h):
 *  - detection returns a known kind or UNKNOWN, and resolve agrees with it;
 *  - a kind's own name is detected as that kind;
 *  - the formatted prompt contains the user (and non-blank system) message, trimmed of
 *    white space at both ends (llama3 and gemma trim), and tokenizes (with special tokens
 *    parsed) against the bundled model's vocabulary;
 *  - a template's default system message exists only for ChatML, is not empty and lies
 *    within the template; fq_chat_format fails exactly when resolve does and writes the
 *    default when no system message is given. */
#include "fuzz_common.h"

#include "chat.h"
#include "gguf.h"
#include "tokenizer.h"

static fq_tokenizer *g_tok;

/* s without leading and trailing white space (isspace in the C locale), malloc'd */
static char *trimmed(const char *s) {
    size_t n = strlen(s);
    while (n && (*s == ' ' || (*s >= '\t' && *s <= '\r'))) s++, n--;
    while (n && (s[n - 1] == ' ' || (s[n - 1] >= '\t' && s[n - 1] <= '\r'))) n--;
    char *t = malloc(n + 1);
    FQ_ASSERT(t);
    memcpy(t, s, n);
    t[n] = 0;
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fq_gguf g;
    fq_err e;
    if (fq_gguf_open(&g, FUZZ_STORIES, &e) || fq_tokenizer_load(&g_tok, &g, &e)) {
        fprintf(stderr, "fuzz_chat: %s (run from the repository root)\n", e.msg);
        exit(1);
    }
    fq_gguf_close(&g);
    for (int k = FQ_CHAT_UNKNOWN + 1; k < FQ_CHAT_KIND_COUNT; k++) {
        const char *name = fq_chat_kind_name((enum fq_chat_kind)k);
        FUZZ_REQUIRE(fq_chat_detect(name, strlen(name)) == (enum fq_chat_kind)k, "name %s", name);
        FUZZ_REQUIRE(fq_chat_kind_from_name(name) == k, "from_name %s", name);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536) return 0;
    /* exact-size heap copy, not NUL-terminated: ASan sees a read past the end */
    char *tmpl = malloc(size ? size : 1);
    FQ_ASSERT(tmpl);
    memcpy(tmpl, data, size);
    enum fq_chat_kind kind = fq_chat_detect(tmpl, size);
    FUZZ_REQUIRE((unsigned)kind < FQ_CHAT_KIND_COUNT, "kind %d", (int)kind);
    const char *kname = fq_chat_kind_name(kind);
    FUZZ_REQUIRE(kname && *kname, "no name for kind %d", (int)kind);

    enum fq_chat_kind resolved;
    fq_err e = {{0}};
    int rc = fq_chat_resolve(NULL, tmpl, size, &resolved, &e);
    FUZZ_REQUIRE(rc == 0 ? resolved == kind && kind != FQ_CHAT_UNKNOWN
                         : kind == FQ_CHAT_UNKNOWN && e.msg[0],
                 "resolve %d (%d) vs detect %d", rc, (int)resolved, (int)kind);

    char *dflt = fq_chat_default_system(tmpl, size);
    if (dflt) {
        FUZZ_REQUIRE(kind == FQ_CHAT_CHATML, "default system for kind %s", kname);
        FUZZ_REQUIRE(dflt[0] && strlen(dflt) < size, "default system of %zu bytes", strlen(dflt));
    }
    {
        char *out = NULL;
        e.msg[0] = 0;
        rc = fq_chat_format(NULL, tmpl, size, NULL, "u", &out, &e);
        FUZZ_REQUIRE(rc == 0 ? kind != FQ_CHAT_UNKNOWN && out : kind == FQ_CHAT_UNKNOWN && !out && e.msg[0],
                     "format %d for kind %s", rc, kname);
        if (out && dflt) FUZZ_REQUIRE(strstr(out, dflt) != NULL, "default system not written");
        free(out);
    }
    free(dflt);

    /* NUL-separated fields: name \0 system \0 user */
    char *s = fuzz_cstr(data, size);
    const char *name = s, *sys = NULL, *user = "";
    size_t l0 = strlen(s);
    if (l0 < size) {
        sys = s + l0 + 1;
        size_t l1 = strlen(sys);
        if (l0 + 1 + l1 < size) user = sys + l1 + 1;
    }
    e.msg[0] = 0;
    rc = fq_chat_resolve(name, NULL, 0, &resolved, &e);
    FUZZ_REQUIRE(rc == 0 ? fq_chat_kind_from_name(name) == (int)resolved : e.msg[0] != 0,
                 "resolve by name '%s'", name);
    FUZZ_REQUIRE(fq_chat_resolve(NULL, NULL, 0, &resolved, &e) == -1 && e.msg[0],
                 "resolve without name or template succeeded");

    for (int k = 0; k <= FQ_CHAT_KIND_COUNT; k++) {
        char *out;
        e.msg[0] = 0;
        if (fq_chat_apply((enum fq_chat_kind)k, sys, user, &out, &e)) {
            FUZZ_REQUIRE(k == FQ_CHAT_UNKNOWN || k == FQ_CHAT_KIND_COUNT, "kind %d failed: %s", k, e.msg);
            FUZZ_REQUIRE_MSG(e);
            FUZZ_REQUIRE(out == NULL, "output left on failure");
            continue;
        }
        char *tu = trimmed(user), *ts = trimmed(sys ? sys : "");
        FUZZ_REQUIRE(strstr(out, tu) != NULL, "kind %d lost the user message", k);
        if (*ts) FUZZ_REQUIRE(strstr(out, ts) != NULL, "kind %d lost the system message", k);
        free(tu);
        free(ts);
        int32_t *ids;
        size_t n;
        FUZZ_REQUIRE(fq_tokenize(g_tok, out, strlen(out), true, true, &ids, &n, &e) == 0,
                     "tokenize: %s", e.msg);
        free(ids);
        free(out);
    }
    free(s);
    free(tmpl);
    return 0;
}
