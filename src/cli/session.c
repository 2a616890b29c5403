/* session.c - model, context and fake-quant set-up shared by the commands. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chat.h"
#include "outfile.h"
#include "cli.h"
#include "session.h"

#include "requant.h"
#include "qtypes.h"
#include "tokenizer.h"

fq_fakequant *cli_fakequant_from_opts(const cli_opts *o, const fq_model *m, int *rc) {
    *rc = 0;
    if (!o->n_rules && !o->fq_ffn_norm && !o->fq_logits && !o->dump) {
        if (o->fq_layer) {
            cli_error("--fake-quant-layer needs --fake-quant-ffn-norm TYPE");
            *rc = 2;
        }
        if (o->fq_stats) fprintf(stderr, "fqlm: note: --fq-stats given without any --fq rule\n");
        return NULL;
    }
    fq_err e;
    fq_fakequant *f = fq_fakequant_new(m, &e);
    if (!f) {
        cli_error("%s", e.msg);
        *rc = 1;
        return NULL;
    }
    for (int i = 0; i < o->n_rules; i++)
        if (fq_fakequant_add_rule(f, o->rules[i], &e)) goto usage;
    if (o->fq_layer && !o->fq_ffn_norm) {
        strcpy(e.msg, "--fake-quant-layer needs --fake-quant-ffn-norm TYPE");
        goto usage;
    }
    if ((o->fq_ffn_norm || o->fq_logits) &&
        fq_fakequant_add_legacy(f, o->fq_ffn_norm, o->fq_layer, o->fq_logits, &e))
        goto usage;
    if (o->dump) {
        if (!o->dump_dir) {
            strcpy(e.msg, "--dump needs --dump-dir DIR");
            goto usage;
        }
        /* repeated --dump options arrive joined with ';' (cli_opts_parse) */
        char sel[4096];
        for (const char *p = o->dump; *p;) {
            size_t n = strcspn(p, ";");
            snprintf(sel, sizeof sel, "%.*s", (int)n, p);
            if (fq_fakequant_add_dump(f, sel, o->dump_dir, &e)) goto usage;
            p += n + (p[n] == ';');
        }
    }
    fq_fakequant_set_seed(f, o->sp.seed);
    fq_fakequant_set_log(f, stderr);
    return f;
usage:
    cli_error("%s", e.msg);
    fq_fakequant_free(f);
    *rc = 2;
    return NULL;
}

int cli_session_open(cli_session *s, const cli_opts *o, int with_fq) {
    memset(s, 0, sizeof *s);
    fq_err e;
    /* output paths that cannot be written fail before the model is run, not after */
    const char *outs[2] = {o->json, with_fq ? o->fq_stats : NULL}, *flag[2] = {"--json", "--fq-stats"};
    for (int i = 0; i < 2; i++)
        if (outs[i] && fq_out_check(outs[i], &e)) {
            cli_error("%s: %s", flag[i], e.msg);
            return 1;
        }
    const char *path = o->model ? o->model : cli_default_model();
    if (with_fq && o->fq_model) path = o->fq_model;
    s->m = fq_model_load(path, &e);
    if (!s->m) {
        cli_error("%s", e.msg);
        return 1;
    }
    int rc = 0;
    if (with_fq && o->weight_plan) {
        char **names;
        uint32_t *types;
        int n;
        if (fq_plan_read_weights(o->weight_plan, &names, &types, &n, &e)) {
            cli_error("--weight-plan %s", e.msg);
            rc = 2;
            goto fail;
        }
        rc = fq_model_requantize(s->m, (const char *const *)names, types, n, o->n_threads, &e);
        fq_plan_free(names, types, n);
        if (rc) {
            cli_error("--weight-plan %s: %s", o->weight_plan, e.msg);
            rc = 1;
            goto fail;
        }
    }
    if (with_fq) {
        s->fq = cli_fakequant_from_opts(o, s->m, &rc);
        if (rc) goto fail;
        if (s->fq && fq_fakequant_apply_weights(s->fq, s->m, &e)) {
            cli_error("%s", e.msg);
            rc = 1;
            goto fail;
        }
    }
    s->n_ctx = o->n_ctx > 0 ? o->n_ctx : FQ_MIN(s->m->hp.n_ctx_train, 4096);
    fq_ctx_params cp = {.n_ctx = s->n_ctx, .n_threads = o->n_threads, .exact = o->exact,
                        .cache_type = o->cache_type, .n_batch = o->n_batch};
    if (o->cache_type_k != UINT32_MAX || o->cache_type_v != UINT32_MAX) {
        cp.kv_split = 1;
        cp.cache_type_k = o->cache_type_k != UINT32_MAX ? o->cache_type_k : o->cache_type;
        cp.cache_type_v = o->cache_type_v != UINT32_MAX ? o->cache_type_v : o->cache_type;
    }
    s->ctx = fq_ctx_new(s->m, &cp, &e);
    if (!s->ctx) {
        cli_error("%s", e.msg);
        rc = 1;
        goto fail;
    }
    if (s->fq) fq_fakequant_attach(s->fq, s->ctx);
    return 0;
fail:
    cli_session_close(s);
    return rc;
}

void cli_session_close(cli_session *s) {
    fq_ctx_free(s->ctx);
    fq_fakequant_free(s->fq);
    fq_model_free(s->m);
    memset(s, 0, sizeof *s);
}

/* Offset of the first byte that is not valid UTF-8, or -1. */
static long long bad_utf8(const unsigned char *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n || (k == 2 && c < 0xc2)) return (long long)i;
        for (size_t j = 1; j < k; j++)
            if ((p[i + j] & 0xc0) != 0x80) return (long long)i;
        if (k == 3) {
            unsigned cp = ((c & 0xf) << 12) | ((p[i + 1] & 0x3f) << 6) | (p[i + 2] & 0x3f);
            if (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000)) return (long long)i;
        }
        if (k == 4) {
            unsigned cp = ((c & 7) << 18) | ((p[i + 1] & 0x3f) << 12) | ((p[i + 2] & 0x3f) << 6);
            if (cp < 0x10000 || cp > 0x10ffff) return (long long)i;
        }
        i += k;
    }
    return -1;
}

char *cli_prompt_text(const cli_opts *o, size_t *len) {
    if (o->prompt && o->prompt_file) {
        cli_error("give the prompt with -p or -f, not both");
        return NULL;
    }
    char *text;
    fq_err e;
    if (o->prompt_file) {
        /* a pipe or FIFO is read until its writer closes it (`-f <(cmd)`, `-f /dev/stdin`);
         * a FIFO that nobody writes reads as empty at once instead of waiting */
        text = fq_read_file(o->prompt_file, len, &e);
        if (!text) {
            cli_error("%s", e.msg);
            return NULL;
        }
        struct stat st;
        if (*len == 0 && stat(o->prompt_file, &st) == 0 && S_ISFIFO(st.st_mode)) {
            cli_error("'%s' is a FIFO that no program is writing to: nothing to read", o->prompt_file);
            free(text);
            return NULL;
        }
    } else if (o->prompt) {
        text = strdup(o->prompt);
        *len = strlen(o->prompt);
    } else {
        cli_error("no prompt: give one with -p TEXT or -f FILE");
        return NULL;
    }
    long long bad = bad_utf8((const unsigned char *)text, *len);
    if (bad >= 0) {
        cli_error("the prompt%s%s is not valid UTF-8 (byte 0x%02x at offset %lld)",
                  o->prompt_file ? " in " : "", o->prompt_file ? o->prompt_file : "",
                  (unsigned char)text[bad], bad);
        free(text);
        return NULL;
    }
    return text;
}

int cli_prompt_tokens(const cli_opts *o, const fq_model *m, int32_t **toks, size_t *n) {
    size_t len;
    char *text = cli_prompt_text(o, &len);
    if (!text) return 2;
    fq_err e;
    int parse_special = 0;
    if (o->chat) {
        fq_str tmpl = {NULL, 0};
        if (fq_gguf_get_str(&m->gguf, "tokenizer.chat_template", &tmpl, NULL) != 0) tmpl.ptr = NULL;
        char *applied;
        if (fq_chat_format(o->chat_template, tmpl.ptr, tmpl.len, o->sys, text, &applied, &e)) {
            cli_error("--chat: %s", e.msg);
            free(text);
            return 2;
        }
        free(text);
        text = applied;
        len = strlen(text);
        parse_special = 1;
    } else if (cli_opts_check(o)) { /* -sys without --chat */
        free(text);
        return 2;
    }
    int rc = fq_tokenize(m->tok, text, len, true, parse_special, toks, n, &e);
    free(text);
    if (rc) {
        cli_error("%s", e.msg);
        return 1;
    }
    return 0;
}

int cli_fq_outputs(const fq_fakequant *fq, const cli_opts *o) {
    if (!fq) return 0;
    int rc = 0;
    if (o->fq_stats) {
        fq_err e;
        char *js = fq_fakequant_json(fq, o->exact);
        if (!js || fq_write_file_atomic(o->fq_stats, js, strlen(js), &e)) {
            cli_error("--fq-stats: %s", js ? e.msg : "out of memory");
            rc = 1;
        }
        free(js);
    }
    if (fq_fakequant_dump_error(fq)) {
        cli_error("--dump: %s", fq_fakequant_dump_error(fq));
        rc = 1;
    }
    return rc;
}

void cli_summary_after_stdout_file(const char *path) {
    if (!path || !fq_out_is_stream(path) || !strcmp(path, "/dev/stderr")) return;
    fflush(stdout);
    dup2(2, 1); /* the file went to stdout: what follows must not be appended to it */
}
