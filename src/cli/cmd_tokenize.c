/* cmd_tokenize.c - `fqlm tokenize` (as llama-tokenize): a text's token ids and pieces, from
 * any GGUF with a tokenizer (vocabulary-only files included); and `fqlm bench tokenizer`:
 * tokens per second on a 1 MB text per vocabulary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "jsonw.h"
#include "tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: fqlm tokenize -m MODEL (-p TEXT | -f FILE) [--no-bos] [--parse-special] [--ids] [--json]\n"
            "\n"
            "Tokenizes TEXT (or the bytes of FILE) as llama.cpp does and prints one line per token:\n"
            "its id and its piece. MODEL may be a whole model or a vocabulary-only GGUF.\n"
            "  --no-bos          do not add the BOS/EOS tokens the vocabulary asks for\n"
            "  --parse-special   text such as <|im_end|> becomes that control token\n"
            "  --ids             print only the ids, as a list: [1, 2, 3]\n"
            "  --json            print {\"ids\": [...], \"pieces\": [...]} (pieces as text)\n");
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *file = NULL;
    bool add_special = true, parse_special = false, ids_only = false, json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "-p") ||
                   !strcmp(a, "--prompt") || !strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (i + 1 >= argc) {
                cli_error("tokenize: %s needs a value", a);
                return 2;
            }
            const char **dst = a[1] == 'm' || !strcmp(a, "--model") ? &model
                             : a[1] == 'p' || !strcmp(a, "--prompt") ? &prompt : &file;
            *dst = argv[++i];
        } else if (!strcmp(a, "--no-bos")) {
            add_special = false;
        } else if (!strcmp(a, "--parse-special")) {
            parse_special = true;
        } else if (!strcmp(a, "--ids")) {
            ids_only = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else {
            cli_error("tokenize: unknown option '%s'", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model) {
        cli_error("tokenize: -m MODEL is required");
        return 2;
    }
    if (!prompt == !file) {
        cli_error("tokenize: give exactly one of -p TEXT and -f FILE");
        return 2;
    }
    if (ids_only && json) {
        cli_error("tokenize: --ids and --json exclude each other");
        return 2;
    }
    fq_err e = {{0}};
    char *text = NULL;
    size_t len;
    if (file) {
        if (!(text = fq_read_file(file, &len, &e))) {
            cli_error("%s", e.msg);
            return 1;
        }
    } else {
        len = strlen(prompt);
    }
    fq_tokenizer *t;
    if (fq_tokenizer_load_file(&t, model, &e)) {
        cli_error("%s", e.msg);
        free(text);
        return 1;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = fq_tokenize(t, text ? text : prompt, len, add_special, parse_special, &ids, &n, &e);
    free(text);
    if (rc) {
        cli_error("tokenize: %s", e.msg);
        fq_tokenizer_free(t);
        return 1;
    }
    int status = 0;
    if (ids_only) {
        putchar('[');
        for (size_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
        printf("]\n");
    } else if (json) {
        jsonw w;
        jsonw_init(&w);
        jsonw_obj_begin(&w);
        jsonw_key(&w, "ids");
        jsonw_arr_begin(&w);
        for (size_t i = 0; i < n; i++) jsonw_int(&w, ids[i]);
        jsonw_arr_end(&w);
        jsonw_key(&w, "pieces");
        jsonw_arr_begin(&w);
        for (size_t i = 0; i < n; i++) {
            size_t pl;
            const char *p = fq_token_to_piece(t, ids[i], true, &pl);
            jsonw_strn(&w, p, pl);
        }
        jsonw_arr_end(&w);
        jsonw_obj_end(&w);
        char *s = jsonw_take(&w);
        if (!s) {
            cli_error("tokenize: out of memory");
            status = 1;
        } else {
            printf("%s\n", s);
            free(s);
        }
    } else {
        const int term = isatty(fileno(stdout));
        for (size_t i = 0; i < n; i++) {
            size_t pl;
            const char *p = fq_token_to_piece(t, ids[i], true, &pl);
            printf("%6d -> '", ids[i]);
            fq_write_text(stdout, p, pl, term);
            printf("'\n");
        }
    }
    if (fflush(stdout) || ferror(stdout)) {
        cli_error("tokenize: cannot write the output");
        status = 1;
    }
    free(ids);
    fq_tokenizer_free(t);
    return status;
}

/* ---- bench tokenizer ------------------------------------------------------------------ */

/* A deterministic mixed text of about n bytes: English-like prose with numbers, code,
 * punctuation, and some Chinese, Cyrillic, Greek and emoji. */
static char *bench_text(size_t n) {
    static const char *const parts[] = {
        "The ", "quick ", "brown ", "fox ", "jumps ", "over ", "the ", "lazy ", "dog", ". ",
        "It's ", "2024 ", "and ", "we've ", "got ", "3.14159 ", "reasons", ", ", "don't ", "we?\n",
        "int main(void) { return 0; }\n", "    for (i = 0; i < 10; i++)\n", "\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c ",
        "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 ", "\xce\xba\xce\xb1\xce\xbb\xce\xb7\xce\xbc\xce\xad\xcf\x81\xce\xb1 ",
        "\xf0\x9f\x98\x80 ", "tokenization ", "perplexity ", "quantization", "!\n\n", "  ", "\t",
        "Hello", "World ", "123456789 ", "e.g. ", "(see ", "\"quoted\") ", "http://example.com/a?b=c ",
    };
    char *s = malloc(n + 64);
    if (!s) return NULL;
    size_t o = 0;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    while (o < n) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const char *p = parts[x % (sizeof parts / sizeof parts[0])];
        size_t l = strlen(p);
        if (o + l > n) break;
        memcpy(s + o, p, l);
        o += l;
    }
    s[o] = '\0';
    return s;
}

int bench_tokenizer(int argc, char **argv) {
    const char *file = NULL;
    const char *models[64];
    int n_models = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: fqlm bench tokenizer -m VOCAB [-m VOCAB...] [-f FILE]\n\n"
                   "Tokenizes a 1 MB text (or FILE) with each vocabulary (a model or a vocabulary-only\n"
                   "GGUF) and prints tokens per second, one thread, best of 3 runs.\n");
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "-f")) && i + 1 < argc) {
            if (a[1] == 'f') {
                file = argv[++i];
            } else if (n_models < 64) {
                models[n_models++] = argv[++i];
            } else {
                cli_error("bench tokenizer: at most 64 vocabularies");
                return 2;
            }
        } else {
            cli_error("bench tokenizer: unknown option or missing value '%s'", a);
            return 2;
        }
    }
    if (n_models == 0) {
        cli_error("bench tokenizer: give at least one -m VOCAB");
        return 2;
    }
    fq_err e = {{0}};
    size_t len;
    char *text = file ? fq_read_file(file, &len, &e) : bench_text((size_t)1 << 20);
    if (!text) {
        cli_error("%s", file ? e.msg : "out of memory");
        return 1;
    }
    if (!file) len = strlen(text);
    printf("%-50s %10s %10s %12s\n", "vocabulary", "MB", "tokens", "tokens/s");
    int status = 0;
    for (int k = 0; k < n_models; k++) {
        fq_tokenizer *t;
        if (fq_tokenizer_load_file(&t, models[k], &e)) {
            cli_error("%s", e.msg);
            status = 1;
            continue;
        }
        double best = 0;
        size_t n = 0;
        for (int rep = 0; rep < 3; rep++) {
            int32_t *ids;
            int64_t t0 = fq_time_us();
            if (fq_tokenize(t, text, len, false, false, &ids, &n, &e)) {
                cli_error("%s: %s", models[k], e.msg);
                status = 1;
                break;
            }
            double s = (double)(fq_time_us() - t0) / 1e6;
            free(ids);
            double tps = s > 0 ? (double)n / s : 0;
            if (tps > best) best = tps;
        }
        const char *name = strrchr(models[k], '/');
        printf("%-50s %10.2f %10zu %12.0f\n", name ? name + 1 : models[k], (double)len / (1 << 20), n, best);
        fq_tokenizer_free(t);
    }
    free(text);
    return status;
}
