/* test_tokenizer.c - the SentencePiece and byte-level BPE tokenizers against llama.cpp's output.
 *
 * - tests/data/vocab (from llama.cpp c392e509): for each of 12 vocabularies, llama.cpp's own
 *   .inp/.out suite (46 cases, where upstream has one) and cases/NAME.jsonl (528 cases in the
 *   four add_special / parse_special modes, plus llama_detokenize of the plain ids);
 * - a tiny in-memory BPE vocabulary: merge order, control tokens, gpt2 defaults, and the load
 *   errors of bad BPE vocabularies (unknown pre, merges naming unknown tokens, missing bytes);
 * - every line of tests/data/golden/tokenizer/ (each .jsonl), token for token (and the text back
 *   from the ids for the plain-text lines);
 * - the prompt tokens and greedy_text of every tests/data/golden/logits/ (each .json);
 * - 1000 random byte strings per vocabulary (invalid UTF-8 included) come back byte for byte,
 *   whole and through the streaming detokenizer;
 * - the streaming detokenizer's UTF-8 hold-back and leading-space rule;
 * - small vocabularies built in memory: tie-breaking, user-defined tokens, byte fallback to
 *   <unk>, add_bos/add_eos flags, end-of-generation tokens, and load errors. */
#include "harness.h"
#include "testutil.h"
#include "gguf.h"
#include "tokenizer.h"
#include "tok_pre.h"
#include "unicode.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#define VOCAB_SPM "tests/data/models/ggml-vocab-llama-spm.gguf"
#define VOCAB_STORIES "models/stories260K.gguf"
#define GOLDEN_TOK "tests/data/golden/tokenizer/"
#define GOLDEN_LOGITS "tests/data/golden/logits/"

/* ---- a minimal JSON reader (strings with \u escapes, integer arrays, object keys) -------- */

static const char *j_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

static void put_utf8(char *o, size_t *n, uint32_t c) {
    if (c < 0x80) {
        o[(*n)++] = (char)c;
    } else if (c < 0x800) {
        o[(*n)++] = (char)(0xC0 | c >> 6);
        o[(*n)++] = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        o[(*n)++] = (char)(0xE0 | c >> 12);
        o[(*n)++] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[(*n)++] = (char)(0x80 | (c & 0x3F));
    } else {
        o[(*n)++] = (char)(0xF0 | c >> 18);
        o[(*n)++] = (char)(0x80 | ((c >> 12) & 0x3F));
        o[(*n)++] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[(*n)++] = (char)(0x80 | (c & 0x3F));
    }
}

static int hex4(const char *p, uint32_t *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        *v = *v * 16 + (uint32_t)d;
    }
    return 0;
}

/* Parses the string starting at p (a '"'); *out is malloc'd, NUL-terminated, *len bytes (it
 * may hold NULs). Returns the position after the closing quote, or NULL. */
static const char *j_str(const char *p, char **out, size_t *len) {
    *out = NULL;
    if (!p || *p != '"') return NULL;
    p++;
    size_t cap = strlen(p) + 1, n = 0;
    char *o = malloc(cap);
    if (!o) return NULL;
    while (*p && *p != '"') {
        if (*p != '\\') {
            o[n++] = *p++;
            continue;
        }
        p++;
        uint32_t c;
        switch (*p) {
        case 'n': o[n++] = '\n'; p++; break;
        case 't': o[n++] = '\t'; p++; break;
        case 'r': o[n++] = '\r'; p++; break;
        case 'b': o[n++] = '\b'; p++; break;
        case 'f': o[n++] = '\f'; p++; break;
        case '"': case '\\': case '/': o[n++] = *p++; break;
        case 'u':
            if (hex4(p + 1, &c)) goto bad;
            p += 5;
            if (c >= 0xD800 && c < 0xDC00 && p[0] == '\\' && p[1] == 'u') {
                uint32_t lo;
                if (hex4(p + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
                    c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            put_utf8(o, &n, c);
            break;
        default: goto bad;
        }
    }
    if (*p != '"') goto bad;
    o[n] = '\0';
    *out = o;
    *len = n;
    return p + 1;
bad:
    free(o);
    return NULL;
}

static const char *j_skip(const char *p) {
    p = j_ws(p);
    if (*p == '"') {
        char *s;
        size_t n;
        p = j_str(p, &s, &n);
        free(s);
        return p;
    }
    if (*p == '[' || *p == '{') {
        char close = *p == '[' ? ']' : '}';
        p = j_ws(p + 1);
        if (*p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                p = j_skip(p);
                if (!p || *(p = j_ws(p)) != ':') return NULL;
                p++;
            }
            if (!(p = j_skip(p))) return NULL;
            p = j_ws(p);
            if (*p == ',') {
                p = j_ws(p + 1);
                continue;
            }
            return *p == close ? p + 1 : NULL;
        }
    }
    const char *s = p;
    while (*p && !strchr(",]} \t\r\n", *p)) p++;
    return p > s ? p : NULL;
}

/* The value of key in the object at obj, or NULL. */
static const char *j_get(const char *obj, const char *key) {
    const char *p = j_ws(obj);
    if (*p != '{') return NULL;
    p = j_ws(p + 1);
    while (*p == '"') {
        char *k;
        size_t kn;
        if (!(p = j_str(p, &k, &kn))) return NULL;
        p = j_ws(p);
        int match = strcmp(k, key) == 0;
        free(k);
        if (*p != ':') return NULL;
        p = j_ws(p + 1);
        if (match) return p;
        if (!(p = j_skip(p))) return NULL;
        p = j_ws(p);
        if (*p == ',') p = j_ws(p + 1);
    }
    return NULL;
}

/* Parses an array of integers into a malloc'd *out. Returns 0, or -1. */
static int j_ints(const char *p, int32_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!p || *(p = j_ws(p)) != '[') return -1;
    size_t cap = 16;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return -1;
    p = j_ws(p + 1);
    while (*p != ']') {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p) {
            free(v);
            return -1;
        }
        if (*n == cap && !(v = realloc(v, (cap *= 2) * sizeof *v))) return -1;
        v[(*n)++] = (int32_t)x;
        p = j_ws(end);
        if (*p == ',') p = j_ws(p + 1);
    }
    *out = v;
    return 0;
}

static bool j_true(const char *p) { return p && strncmp(j_ws(p), "true", 4) == 0; }

/* ---- helpers ----------------------------------------------------------------------------- */

static char *fmt_ids(char *buf, size_t cap, const int32_t *ids, size_t n) {
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o + 16 < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%d", i ? "," : "", ids[i]);
    if (o + 16 >= cap) snprintf(buf + o, cap - o, ",...");
    return buf;
}

static bool same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static fq_tokenizer *load_path(const char *path, int64_t *us) {
    fq_gguf g;
    fq_err e = {{0}};
    fq_tokenizer *t = NULL;
    if (fq_gguf_open(&g, path, &e)) {
        CHECK(0, "open %s: %s", path, e.msg);
        return NULL;
    }
    int64_t t0 = fq_time_us();
    int rc = fq_tokenizer_load(&t, &g, &e);
    if (us) *us = fq_time_us() - t0;
    fq_gguf_close(&g); /* the tokenizer must not keep pointers into the file */
    CHECK(rc == 0 && t, "load tokenizer of %s: %s", path, e.msg);
    return rc == 0 ? t : NULL;
}

static bool utf8_valid(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t need = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                    : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (!need || i + need > n) return false;
        for (size_t j = 1; j < need; j++)
            if ((s[i + j] & 0xC0) != 0x80) return false;
        i += need;
    }
    return true;
}

/* Streams ids through fq_detok and returns the concatenation (malloc'd). *chunks_valid:
 * whether every chunk emitted before the flush was valid UTF-8 on its own. */
static char *stream_decode(const fq_tokenizer *t, const int32_t *ids, size_t n, bool at_start,
                           bool special, size_t *len, bool *chunks_valid) {
    fq_detok d;
    fq_err e = {{0}};
    fq_detok_init(&d, t, at_start, special);
    size_t slot = fq_tokenizer_max_piece(t) + 4, o = 0;
    char *buf = malloc(slot), *out = malloc(n * slot + 8);
    bool valid = true;
    for (size_t i = 0; i < n; i++) {
        int k = fq_detok_push(&d, ids[i], buf, &e);
        if (k < 0) {
            CHECK(0, "fq_detok_push(%d): %s", ids[i], e.msg);
            break;
        }
        if (!utf8_valid((const uint8_t *)buf, (size_t)k)) valid = false;
        memcpy(out + o, buf, (size_t)k);
        o += (size_t)k;
    }
    o += fq_detok_flush(&d, out + o);
    free(buf);
    out[o] = '\0';
    *len = o;
    if (chunks_valid) *chunks_valid = valid;
    return out;
}

/* Python's bytes.decode("utf-8", errors="replace"), which wrote greedy_text: each maximal
 * invalid subpart becomes one U+FFFD. Returns a malloc'd string of *len bytes. */
static char *utf8_replace(const uint8_t *s, size_t n, size_t *len) {
    char *o = malloc(3 * n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t need = 0;
        uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
        if (c < 0x80) {
            o[k++] = (char)c;
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) need = 2;
        else if (c >= 0xE0 && c <= 0xEF) need = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        else if (c >= 0xF0 && c <= 0xF4) need = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        size_t j = 1;
        while (need && j < need && i + j < n) {
            uint8_t b = s[i + j];
            if (j == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) break;
            j++;
        }
        if (need && j == need) {
            memcpy(o + k, s + i, need);
            k += need;
        } else {
            memcpy(o + k, "\xef\xbf\xbd", 3);
            k += 3;
        }
        i += j;
    }
    o[k] = '\0';
    *len = k;
    return o;
}

/* ---- golden tokenizations ---------------------------------------------------------------- */

static void test_golden_file(const char *path, const fq_tokenizer *t) {
    fq_err e = {{0}};
    size_t flen;
    char *data = fq_read_file(path, &flen, &e);
    CHECK(data != NULL, "%s", e.msg);
    if (!data) return;
    int lines = 0, ok = 0;
    for (char *line = data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (!*j_ws(line)) continue;
        lines++;
        char *text = NULL;
        size_t tlen = 0, nwant = 0, ngot = 0;
        int32_t *want = NULL, *got = NULL;
        const char *tv = j_get(line, "text");
        bool parsed = tv && j_str(tv, &text, &tlen) && j_ints(j_get(line, "ids"), &want, &nwant) == 0;
        CHECK(parsed, "%s:%d: cannot parse line", path, lines);
        if (!parsed) {
            free(text);
            continue;
        }
        bool ps = j_true(j_get(line, "parse_special"));
        int rc = fq_tokenize(t, text, tlen, false, ps, &got, &ngot, &e);
        char b1[512], b2[512];
        bool same = rc == 0 && same_ids(got, ngot, want, nwant);
        CHECK(same, "%s:%d: \"%.60s\"%s: got [%s] want [%s] %s", path, lines, text,
              ps ? " (special)" : "", fmt_ids(b1, sizeof b1, got, ngot),
              fmt_ids(b2, sizeof b2, want, nwant), rc ? e.msg : "");
        ok += same;
        if (!ps && rc == 0) {
            /* plain text comes back from its ids (llama.cpp's test-tokenizer-0 round trip) */
            char *back = NULL;
            size_t blen = 0;
            rc = fq_detokenize(t, want, nwant, true, &back, &blen, &e);
            CHECK(rc == 0 && blen == tlen && memcmp(back, text, tlen) == 0,
                  "%s:%d: detokenized \"%.60s\" as \"%.60s\"", path, lines, text, back ? back : "");
            free(back);
        }
        free(text);
        free(want);
        free(got);
    }
    printf("%s: %d/%d lines match\n", path, ok, lines);
    CHECK(lines > 0, "%s: no lines", path);
    free(data);
}

#define VOCAB_DIR "tests/data/vocab/"

/* llama.cpp's own suite: NAME.gguf.inp holds cases each ended by "\n__ggml_vocab_test__\n",
 * NAME.gguf.out one line of ids per case (add_special = parse_special = false). */
static void test_upstream_suite(const char *name, const char *gguf, const fq_tokenizer *t) {
    char pin[300], pout[300];
    snprintf(pin, sizeof pin, "%s.inp", gguf);
    snprintf(pout, sizeof pout, "%s.out", gguf);
    fq_err e = {{0}};
    size_t ni, no;
    char *inp = fq_read_file(pin, &ni, &e), *outs = inp ? fq_read_file(pout, &no, &e) : NULL;
    CHECK(inp && outs, "%s: %s", name, e.msg);
    if (!inp || !outs) {
        free(inp);
        return;
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    int cases = 0, ok = 0;
    char *p = inp, *end = inp + ni, *ol = outs;
    while (p < end) {
        char *q = memmem(p, (size_t)(end - p), sep, sizeof sep - 1);
        CHECK(q != NULL, "%s: .inp does not end with the separator", name);
        if (!q) break;
        char *nl = strchr(ol, '\n');
        CHECK(nl != NULL, "%s: .out has fewer lines than .inp has cases", name);
        if (!nl) break;
        *nl = '\0';
        int32_t want[4096];
        size_t nwant = 0;
        for (char *c = ol; *c;) {
            char *c2;
            long v = strtol(c, &c2, 10);
            if (c2 == c) break;
            if (nwant < 4096) want[nwant++] = (int32_t)v;
            c = c2;
        }
        int32_t *got = NULL;
        size_t ngot = 0;
        int rc = fq_tokenize(t, p, (size_t)(q - p), false, false, &got, &ngot, &e);
        char b1[512], b2[512];
        bool same = rc == 0 && same_ids(got, ngot, want, nwant);
        CHECK(same, "%s upstream case %d \"%.40s\": got [%s] want [%s]", name, cases, p,
              fmt_ids(b1, sizeof b1, got, ngot), fmt_ids(b2, sizeof b2, want, nwant));
        ok += same;
        cases++;
        free(got);
        p = q + sizeof sep - 1;
        ol = nl + 1;
    }
    printf("%s: upstream suite %d/%d\n", name, ok, cases);
    CHECK(cases == 46, "%s: %d upstream cases, expected 46", name, cases);
    free(inp);
    free(outs);
}

/* cases/NAME.jsonl: every case in the four add_special / parse_special modes, and the text
 * llama_detokenize gives back for the plain ids. */
static void test_vocab_cases(const char *name, const char *gguf, bool upstream) {
    int64_t us = 0;
    fq_tokenizer *t = load_path(gguf, &us);
    if (!t) return;
    char path[256];
    snprintf(path, sizeof path, VOCAB_DIR "%s.jsonl", name);
    if (upstream) {
        char base[256];
        snprintf(base, sizeof base, VOCAB_DIR "ggml-vocab-%s.gguf", name);
        test_upstream_suite(name, base, t);
    }
    fq_err e = {{0}};
    size_t flen;
    char *data = fq_read_file(path, &flen, &e);
    CHECK(data != NULL, "%s", e.msg);
    if (!data) {
        fq_tokenizer_free(t);
        return;
    }
    static const char *const keys[4] = {"ids", "ids_add_special", "ids_parse_special",
                                        "ids_add_parse_special"};
    int lines = 0, ok[5] = {0};
    for (char *line = data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (!*j_ws(line)) continue;
        lines++;
        char *text = NULL, *detok = NULL;
        size_t tlen = 0, dlen = 0;
        const char *tv = j_get(line, "text"), *dv = j_get(line, "detok");
        bool parsed = tv && j_str(tv, &text, &tlen) && dv && j_str(dv, &detok, &dlen);
        CHECK(parsed, "%s:%d: cannot parse line", path, lines);
        int32_t *plain = NULL;
        size_t nplain = 0;
        for (int m = 0; m < 4 && parsed; m++) {
            int32_t *want = NULL, *got = NULL;
            size_t nwant = 0, ngot = 0;
            if (j_ints(j_get(line, keys[m]), &want, &nwant)) {
                CHECK(0, "%s:%d: cannot parse %s", path, lines, keys[m]);
                continue;
            }
            int rc = fq_tokenize(t, text, tlen, m & 1, m >> 1, &got, &ngot, &e);
            char b1[512], b2[512];
            bool same = rc == 0 && same_ids(got, ngot, want, nwant);
            CHECK(same, "%s:%d %s \"%.50s\": got [%s] want [%s] %s", path, lines, keys[m], text,
                  fmt_ids(b1, sizeof b1, got, ngot), fmt_ids(b2, sizeof b2, want, nwant),
                  rc ? e.msg : "");
            ok[m] += same;
            free(got);
            if (m == 0) {
                plain = want;
                nplain = nwant;
            } else {
                free(want);
            }
        }
        if (parsed && plain) {
            char *back = NULL;
            size_t blen = 0;
            int rc = fq_detokenize(t, plain, nplain, false, &back, &blen, &e);
            bool same = rc == 0 && blen == dlen && memcmp(back, detok, dlen) == 0;
            CHECK(same, "%s:%d: detokenized \"%.50s\" as \"%.50s\", want \"%.50s\"", path, lines, text,
                  back ? back : "", detok);
            ok[4] += same;
            free(back);
        }
        free(plain);
        free(text);
        free(detok);
    }
    printf("%s: %d cases; plain %d, add_special %d, parse_special %d, both %d, detok %d\n", name,
           lines, ok[0], ok[1], ok[2], ok[3], ok[4]);
    CHECK(lines == 528, "%s: %d cases, expected 528", path, lines);
    free(data);
    fq_tokenizer_free(t);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Prompt tokens (BOS + text) and greedy_text of every logits case. */
static void test_golden_logits(void) {
    DIR *dir = opendir(GOLDEN_LOGITS);
    CHECK(dir != NULL, "cannot open %s", GOLDEN_LOGITS);
    if (!dir) return;
    char *names[256];
    int nn = 0;
    struct dirent *de;
    while ((de = readdir(dir)) && nn < 256) {
        size_t l = strlen(de->d_name);
        if (l > 5 && strcmp(de->d_name + l - 5, ".json") == 0) names[nn++] = strdup(de->d_name);
    }
    closedir(dir);
    qsort(names, (size_t)nn, sizeof *names, cmp_str);
    int n_greedy = 0, n_stories = 0;
    for (int i = 0; i < nn; i++) {
        char path[512], mpath[512];
        fq_err e = {{0}};
        size_t flen;
        snprintf(path, sizeof path, GOLDEN_LOGITS "%s", names[i]);
        char *js = fq_read_file(path, &flen, &e);
        CHECK(js != NULL, "%s", e.msg);
        char *model = NULL, *prompt = NULL, *gtext = NULL;
        size_t ml, pl, gl, ntok = 0, ngr = 0;
        int32_t *tokens = NULL, *greedy = NULL;
        bool parsed = js && j_str(j_get(js, "model"), &model, &ml) &&
                      j_str(j_get(js, "prompt"), &prompt, &pl) &&
                      j_str(j_get(js, "greedy_text"), &gtext, &gl) &&
                      j_ints(j_get(js, "tokens"), &tokens, &ntok) == 0 &&
                      j_ints(j_get(js, "greedy_tokens"), &greedy, &ngr) == 0;
        CHECK(parsed, "%s: cannot parse", path);
        fq_tokenizer *t = NULL;
        if (parsed) {
            snprintf(mpath, sizeof mpath, "tests/data/models/%s", model);
            FILE *f = fopen(mpath, "rb");
            if (f) fclose(f);
            else snprintf(mpath, sizeof mpath, "models/%s", model);
            t = load_path(mpath, NULL);
        }
        if (t) {
            int32_t *ids = NULL;
            size_t n = 0;
            char b1[512], b2[512];
            int rc = fq_tokenize(t, prompt, pl, true, false, &ids, &n, &e);
            CHECK(rc == 0 && same_ids(ids, n, tokens, ntok), "%s: prompt tokens [%s] want [%s]",
                  names[i], fmt_ids(b1, sizeof b1, ids, n), fmt_ids(b2, sizeof b2, tokens, ntok));
            free(ids);

            /* generated tokens continue a prompt: their leading spaces are real */
            size_t dl, rl;
            bool chunks_valid;
            char *dec = stream_decode(t, greedy, ngr, false, false, &dl, &chunks_valid);
            bool valid = utf8_valid((const uint8_t *)dec, dl);
            /* random-weight models emit stray bytes; the reference replaced them */
            char *rep = utf8_replace((const uint8_t *)dec, dl, &rl);
            CHECK(rl == gl && memcmp(rep, gtext, gl) == 0, "%s: greedy text\n  got  \"%s\"\n  want \"%s\"",
                  names[i], rep, gtext);
            CHECK(!valid || chunks_valid, "%s: a streamed chunk split a UTF-8 character", names[i]);
            if (strncmp(names[i], "stories", 7) == 0)
                CHECK(valid, "%s: stories text is valid UTF-8", names[i]);
            free(rep);
            free(dec);
            n_greedy++;
            n_stories += strncmp(names[i], "stories", 7) == 0;

            /* a whole prompt: without BOS the first space goes; after BOS it stays */
            char *whole = NULL;
            size_t wl = 0;
            rc = fq_detokenize(t, tokens + 1, ntok - 1, false, &whole, &wl, &e);
            CHECK(rc == 0 && wl == pl && memcmp(whole, prompt, pl) == 0,
                  "%s: prompt detokenized as \"%s\"", names[i], whole ? whole : e.msg);
            free(whole);
            rc = fq_detokenize(t, tokens, ntok, false, &whole, &wl, &e);
            CHECK(rc == 0 && wl == pl + 1 && whole[0] == ' ' && memcmp(whole + 1, prompt, pl) == 0,
                  "%s: BOS + prompt detokenized as \"%s\"", names[i], whole ? whole : e.msg);
            free(whole);
            fq_tokenizer_free(t);
        }
        free(model);
        free(prompt);
        free(gtext);
        free(tokens);
        free(greedy);
        free(js);
        free(names[i]);
    }
    printf("greedy_text: %d cases (%d stories)\n", n_greedy, n_stories);
    CHECK(n_stories >= 4, "expected the stories cases, found %d", n_stories);
}

/* ---- random robustness ------------------------------------------------------------------- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Random bytes with a bias toward what text is made of: spaces, ASCII, whole UTF-8
 * characters, and the broken kinds (lone lead or continuation bytes, 0xF8..0xFF, NUL). When
 * valid_only, only whole characters. U+2581 is left out: it reads back as a space. */
static size_t random_text(char *buf, size_t cap, bool valid_only) {
    static const char *const chars[] = {"é", "ß", "ж", "中", "語", "🦙", "🚀", "€", "ï", "ő"};
    size_t n = 0, want = rnd() % 40;
    while (n < want && n + 4 < cap) {
        uint32_t k = rnd() % (valid_only ? 6 : 9);
        switch (k) {
        case 0: buf[n++] = ' '; break;
        case 1: case 2: buf[n++] = (char)('a' + rnd() % 26); break;
        case 3: buf[n++] = "0123456789.,!?'\n\t-<>/"[rnd() % 22]; break;
        case 4: {
            const char *c = chars[rnd() % FQ_ARRAY_LEN(chars)];
            memcpy(buf + n, c, strlen(c));
            n += strlen(c);
            break;
        }
        case 5: buf[n++] = (char)(1 + rnd() % 127); break;
        case 6: buf[n++] = (char)(0x80 + rnd() % 64); break;  /* lone continuation */
        case 7: buf[n++] = (char)(0xC0 + rnd() % 64); break;  /* lead byte, likely unfinished */
        default: buf[n++] = (char)(rnd() % 256); break;
        }
    }
    buf[n] = '\0';
    return n;
}

static void test_random(const fq_tokenizer *t, const char *name) {
    fq_err e = {{0}};
    char text[256];
    int bad = 0, bad_stream = 0, bad_chunks = 0;
    for (int i = 0; i < 1000; i++) {
        bool valid_only = i % 4 == 0;
        size_t n;
        do n = random_text(text, sizeof text, valid_only);
        while (memmem(text, n, "\xe2\x96\x81", 3));
        int32_t *ids = NULL;
        size_t nid = 0;
        if (fq_tokenize(t, text, n, false, false, &ids, &nid, &e)) {
            CHECK(0, "%s: tokenize random text %d: %s", name, i, e.msg);
            continue;
        }
        /* special = true: merging can in principle spell a control token ("</s>"), which only
         * then reads back as its text */
        char *back = NULL;
        size_t bl = 0;
        if (fq_detokenize(t, ids, nid, true, &back, &bl, &e) || bl != n || memcmp(back, text, n)) {
            if (bad++ < 5) {
                char b[512];
                fprintf(stderr, "%s: random %d: %zu bytes in, %zu out, ids [%s]\n", name, i, n, bl,
                        fmt_ids(b, sizeof b, ids, nid));
            }
        }
        size_t sl;
        bool chunks_valid;
        char *st = stream_decode(t, ids, nid, true, true, &sl, &chunks_valid);
        if (sl != bl || (back && memcmp(st, back, sl))) bad_stream++;
        if (valid_only && !chunks_valid) bad_chunks++;
        free(st);
        free(back);
        free(ids);
    }
    CHECK(bad == 0, "%s: %d of 1000 random texts did not come back byte for byte", name, bad);
    CHECK(bad_stream == 0, "%s: %d of 1000 streamed decodes differ from the whole decode", name,
          bad_stream);
    CHECK(bad_chunks == 0, "%s: %d valid texts streamed in chunks that split a character", name,
          bad_chunks);

    /* random id sequences: streaming equals the whole decode */
    int32_t ids[64];
    int diff = 0;
    for (int i = 0; i < 300; i++) {
        size_t n = rnd() % 64;
        for (size_t j = 0; j < n; j++) ids[j] = (int32_t)(rnd() % (uint32_t)fq_tokenizer_n_vocab(t));
        char *whole = NULL;
        size_t wl = 0, sl;
        bool special = i & 1;
        if (fq_detokenize(t, ids, n, special, &whole, &wl, &e)) {
            diff++;
            continue;
        }
        char *st = stream_decode(t, ids, n, true, special, &sl, NULL);
        diff += sl != wl || memcmp(st, whole, wl) != 0;
        free(st);
        free(whole);
    }
    CHECK(diff == 0, "%s: %d random id sequences stream differently", name, diff);
}

/* ---- detokenizer details ----------------------------------------------------------------- */

static void test_detok_spm(const fq_tokenizer *t) {
    fq_err e = {{0}};
    size_t len;
    const char *p;
    CHECK(fq_tokenizer_n_vocab(t) == 32000, "n_vocab %d", fq_tokenizer_n_vocab(t));
    CHECK(fq_tokenizer_bos(t) == 1 && fq_tokenizer_eos(t) == 2 && fq_tokenizer_unk(t) == 0 &&
          fq_tokenizer_pad(t) == -1, "special ids %d %d %d %d", fq_tokenizer_bos(t),
          fq_tokenizer_eos(t), fq_tokenizer_unk(t), fq_tokenizer_pad(t));
    CHECK(fq_tokenizer_adds_bos(t) && !fq_tokenizer_adds_eos(t), "add_bos/add_eos flags");
    CHECK(fq_tokenizer_is_eog(t, 2) && !fq_tokenizer_is_eog(t, 1) && !fq_tokenizer_is_eog(t, 13) &&
          !fq_tokenizer_is_eog(t, -1) && !fq_tokenizer_is_eog(t, 32000), "is_eog");
    CHECK(fq_tokenizer_find(t, "\xe2\x96\x81Hello", 8) == 15043, "find ▁Hello");
    CHECK(fq_tokenizer_find(t, "no-such-token!", 14) == -1, "find a missing token");
    CHECK(fq_tokenizer_attr(t, 1) == FQ_TOK_CONTROL && fq_tokenizer_attr(t, 0) == FQ_TOK_UNKNOWN &&
          fq_tokenizer_attr(t, 13) == FQ_TOK_BYTE && fq_tokenizer_attr(t, 15043) == FQ_TOK_NORMAL,
          "attributes");
    p = fq_tokenizer_text(t, 13, &len);
    CHECK(len == 6 && memcmp(p, "<0x0A>", 6) == 0, "text of 13");

    p = fq_token_to_piece(t, 13, false, &len);
    CHECK(len == 1 && p[0] == '\n', "piece of <0x0A>");
    p = fq_token_to_piece(t, 15043, false, &len);
    CHECK(len == 6 && memcmp(p, " Hello", 6) == 0, "piece of ▁Hello");
    p = fq_token_to_piece(t, 29871, false, &len);
    CHECK(len == 1 && p[0] == ' ', "piece of ▁");
    fq_token_to_piece(t, 1, false, &len);
    CHECK(len == 0, "BOS renders empty");
    p = fq_token_to_piece(t, 1, true, &len);
    CHECK(len == 3 && memcmp(p, "<s>", 3) == 0, "BOS renders <s> with special");
    fq_token_to_piece(t, 0, false, &len);
    CHECK(len == 0, "<unk> renders empty");
    p = fq_token_to_piece(t, 0, true, &len);
    CHECK(len == 5 && memcmp(p, "<unk>", 5) == 0, "<unk> with special");
    fq_token_to_piece(t, 99999, true, &len);
    CHECK(len == 0, "out of range renders empty");

    /* UTF-8 hold-back: 🦙 as four byte tokens comes out whole at the fourth */
    fq_detok d;
    char out[128];
    int32_t llama[] = {243, 162, 169, 156};
    fq_detok_init(&d, t, false, false);
    int k0 = fq_detok_push(&d, llama[0], out, &e), k1 = fq_detok_push(&d, llama[1], out, &e),
        k2 = fq_detok_push(&d, llama[2], out, &e), k3 = fq_detok_push(&d, llama[3], out, &e);
    CHECK(k0 == 0 && k1 == 0 && k2 == 0 && k3 == 4 && memcmp(out, "\xf0\x9f\xa6\x99", 4) == 0,
          "emoji held back: %d %d %d %d", k0, k1, k2, k3);
    CHECK(fq_detok_flush(&d, out) == 0, "nothing left after a whole character");
    /* an unfinished sequence comes out at the flush */
    fq_detok_init(&d, t, false, false);
    k0 = fq_detok_push(&d, 243, out, &e);
    k1 = fq_detok_push(&d, 162, out, &e);
    CHECK(k0 == 0 && k1 == 0 && fq_detok_flush(&d, out) == 2 && memcmp(out, "\xf0\x9f", 2) == 0,
          "flush of an unfinished sequence");
    /* a lead byte followed by ASCII is emitted as it is, with the ASCII */
    fq_detok_init(&d, t, false, false);
    k0 = fq_detok_push(&d, 3 + 0xC3, out, &e);
    k1 = fq_detok_push(&d, 29874, out, &e); /* "a" */
    CHECK(k0 == 0 && k1 == 2 && memcmp(out, "\xc3" "a", 2) == 0, "broken sequence: %d %d", k0, k1);
    /* an invalid byte goes out at once */
    fq_detok_init(&d, t, false, false);
    k0 = fq_detok_push(&d, 3 + 0xFF, out, &e);
    CHECK(k0 == 1 && (uint8_t)out[0] == 0xFF, "0xFF at once");
    /* leading space: dropped at the start of a text, kept after BOS or mid-stream */
    fq_detok_init(&d, t, true, false);
    k0 = fq_detok_push(&d, 15043, out, &e);
    CHECK(k0 == 5 && memcmp(out, "Hello", 5) == 0, "start of text drops the space");
    fq_detok_init(&d, t, true, false);
    k0 = fq_detok_push(&d, 1, out, &e);
    k1 = fq_detok_push(&d, 15043, out, &e);
    CHECK(k0 == 0 && k1 == 6 && memcmp(out, " Hello", 6) == 0, "after BOS the space stays");
    fq_detok_init(&d, t, true, true);
    k0 = fq_detok_push(&d, 1, out, &e);
    CHECK(k0 == 3 && memcmp(out, "<s>", 3) == 0, "BOS with special");
    fq_detok_init(&d, t, false, false);
    k0 = fq_detok_push(&d, 15043, out, &e);
    CHECK(k0 == 6, "mid-stream keeps the space");
    CHECK(fq_detok_push(&d, 32000, out, &e) == -1 && strstr(e.msg, "outside the vocabulary"),
          "push of a bad id: %s", e.msg);
    char *s = NULL;
    int32_t badids[] = {15043, -3};
    CHECK(fq_detokenize(t, badids, 2, false, &s, &len, &e) == -1 && s == NULL, "detokenize bad id");

    /* BOS via add_special, and the empty text */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(fq_tokenize(t, "", 0, true, false, &ids, &n, &e) == 0 && n == 1 && ids[0] == 1,
          "empty text with BOS");
    free(ids);
    CHECK(fq_tokenize(t, "", 0, false, false, &ids, &n, &e) == 0 && n == 0 && ids, "empty text");
    free(ids);
    /* NUL is an ordinary byte */
    CHECK(fq_tokenize(t, "a\0b", 3, false, false, &ids, &n, &e) == 0 && n == 3 && ids[1] == 3,
          "NUL byte -> <0x00>");
    free(ids);
    /* <unk> written in text is a token only with parse_special */
    CHECK(fq_tokenize(t, "<unk>", 5, false, true, &ids, &n, &e) == 0 && n == 1 && ids[0] == 0,
          "<unk> parsed");
    free(ids);

    /* speed: a long text goes through in well under a second */
    size_t big = 200000;
    char *txt = malloc(big);
    for (size_t i = 0; i < big; i++) txt[i] = "Once upon a time, there was a little dog. "[i % 42];
    int64_t t0 = fq_time_us();
    int rc = fq_tokenize(t, txt, big, true, false, &ids, &n, &e);
    int64_t dt = fq_time_us() - t0;
    printf("tokenize %zu bytes -> %zu tokens in %.1f ms\n", big, n, dt / 1000.0);
    CHECK(rc == 0 && n > 10000, "long text");
    free(ids);
    /* the same text without spaces is one long fragment of merges */
    for (size_t i = 0; i < big; i++) txt[i] = "abcdefghij"[i % 10];
    t0 = fq_time_us();
    rc = fq_tokenize(t, txt, big, false, false, &ids, &n, &e);
    dt = fq_time_us() - t0;
    printf("tokenize %zu bytes without spaces -> %zu tokens in %.1f ms\n", big, n, dt / 1000.0);
    CHECK(rc == 0 && n > 1000, "long word");
    free(ids);
    free(txt);
}

/* ---- in-memory GGUF vocabularies --------------------------------------------------------- */

typedef struct gb {
    uint8_t *p;
    size_t n, cap;
    uint64_t n_kv;
} gb;

static void gb_raw(gb *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void gb_u32(gb *b, uint32_t v) { gb_raw(b, &v, 4); }
static void gb_u64(gb *b, uint64_t v) { gb_raw(b, &v, 8); }
static void gb_s(gb *b, const char *s) {
    gb_u64(b, strlen(s));
    gb_raw(b, s, strlen(s));
}
static void kv_str(gb *b, const char *k, const char *v) {
    gb_s(b, k);
    gb_u32(b, FQ_GGUF_STRING);
    gb_s(b, v);
    b->n_kv++;
}
static void kv_u32(gb *b, const char *k, uint32_t v) {
    gb_s(b, k);
    gb_u32(b, FQ_GGUF_UINT32);
    gb_u32(b, v);
    b->n_kv++;
}
static void kv_bool(gb *b, const char *k, bool v) {
    uint8_t x = v;
    gb_s(b, k);
    gb_u32(b, FQ_GGUF_BOOL);
    gb_raw(b, &x, 1);
    b->n_kv++;
}
static void kv_strs(gb *b, const char *k, const char *const *v, int n) {
    gb_s(b, k);
    gb_u32(b, FQ_GGUF_ARRAY);
    gb_u32(b, FQ_GGUF_STRING);
    gb_u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++) gb_s(b, v[i]);
    b->n_kv++;
}
static void kv_arr(gb *b, const char *k, uint32_t type, const void *v, int n) {
    gb_s(b, k);
    gb_u32(b, FQ_GGUF_ARRAY);
    gb_u32(b, type);
    gb_u64(b, (uint64_t)n);
    gb_raw(b, v, 4 * (size_t)n);
    b->n_kv++;
}

/* Opens the metadata in b as a GGUF file and loads its tokenizer; returns the load status
 * and leaves the error in e. */
static int load_mem(gb *b, fq_tokenizer **t, fq_err *e) {
    gb f = {0};
    gb_raw(&f, "GGUF", 4);
    gb_u32(&f, 3);
    gb_u64(&f, 0);
    gb_u64(&f, b->n_kv);
    gb_raw(&f, b->p, b->n);
    fq_gguf g;
    *t = NULL;
    int rc = fq_gguf_open_mem(&g, f.p, f.n, "mem.gguf", e);
    CHECK(rc == 0, "open in-memory gguf: %s", e->msg);
    if (rc == 0) {
        rc = fq_tokenizer_load(t, &g, e);
        fq_gguf_close(&g);
    }
    free(f.p);
    free(b->p);
    memset(b, 0, sizeof *b);
    return rc;
}

/* A tiny vocabulary without a space prefix and without most byte tokens. */
static const char *const tiny_tok[] = {
    "<unk>", "<s>", "</s>", "a", "aa", "b", "<0x0A>", "<tool>", "<|im_end|>", "ab", "bb", "",
};
static const float tiny_score[] = {0, 0, 0, -1, -2, -1, 0, 0, 0, -5, -2, 0};
static const int32_t tiny_type[] = {2, 3, 3, 1, 1, 1, 6, 4, 4, 1, 1, 1};
#define TINY_N 12

static void tiny_common(gb *b) {
    kv_str(b, "general.architecture", "llama");
    kv_str(b, "tokenizer.ggml.model", "llama");
    kv_strs(b, "tokenizer.ggml.tokens", tiny_tok, TINY_N);
    kv_arr(b, "tokenizer.ggml.scores", FQ_GGUF_FLOAT32, tiny_score, TINY_N);
}

static void expect_tok(const fq_tokenizer *t, const char *text, bool add, bool ps,
                       const int32_t *want, size_t nwant) {
    fq_err e = {{0}};
    int32_t *ids = NULL;
    size_t n = 0;
    char b1[256], b2[256];
    int rc = fq_tokenize(t, text, strlen(text), add, ps, &ids, &n, &e);
    CHECK(rc == 0 && same_ids(ids, n, want, nwant), "tokenize \"%s\": got [%s] want [%s] %s", text,
          fmt_ids(b1, sizeof b1, ids, n), fmt_ids(b2, sizeof b2, want, nwant), rc ? e.msg : "");
    free(ids);
}

static void test_tiny(void) {
    fq_err e = {{0}};
    fq_tokenizer *t;
    gb b = {0};
    tiny_common(&b);
    kv_arr(&b, "tokenizer.ggml.token_type", FQ_GGUF_INT32, tiny_type, TINY_N);
    kv_bool(&b, "tokenizer.ggml.add_space_prefix", false);
    kv_bool(&b, "tokenizer.ggml.add_bos_token", false);
    kv_bool(&b, "tokenizer.ggml.add_eos_token", true);
    kv_u32(&b, "tokenizer.ggml.padding_token_id", 0xFFFFFFFFu);
    int rc = load_mem(&b, &t, &e);
    CHECK(rc == 0, "tiny vocabulary: %s", e.msg);
    if (rc) return;

    /* equal scores: the leftmost pair merges first */
    expect_tok(t, "aaa", false, false, (int32_t[]){4, 3}, 2);
    /* "bb" (-2) beats "ab" (-5) */
    expect_tok(t, "abb", false, false, (int32_t[]){3, 10}, 2);
    expect_tok(t, "ab", false, false, (int32_t[]){9}, 1);
    expect_tok(t, "a\nb", false, false, (int32_t[]){3, 6, 5}, 3);
    /* no byte tokens for these bytes: <unk> */
    expect_tok(t, "\xc3\xa9", false, false, (int32_t[]){0, 0}, 2);
    /* user-defined tokens are split out even without parse_special */
    expect_tok(t, "a<tool>b", false, false, (int32_t[]){3, 7, 5}, 3);
    /* control tokens only with parse_special; no space prefix after them here */
    expect_tok(t, "a</s>b", false, true, (int32_t[]){3, 2, 5}, 3);
    /* add_bos false, add_eos true */
    expect_tok(t, "a", true, false, (int32_t[]){3, 2}, 2);
    /* the empty token became "[EMPTY_11]" and is findable */
    CHECK(fq_tokenizer_find(t, "[EMPTY_11]", 10) == 11, "empty token renamed");
    CHECK(!fq_tokenizer_adds_bos(t) && fq_tokenizer_adds_eos(t), "flags read");
    CHECK(fq_tokenizer_pad(t) == -1, "pad 0xFFFFFFFF means none");
    /* <|im_end|> ends generation and becomes a control token */
    CHECK(fq_tokenizer_is_eog(t, 8) && fq_tokenizer_is_eog(t, 2) && !fq_tokenizer_is_eog(t, 7),
          "eog set");
    CHECK(fq_tokenizer_attr(t, 8) & FQ_TOK_CONTROL, "<|im_end|> is control");
    size_t len;
    fq_token_to_piece(t, 8, false, &len);
    CHECK(len == 0, "<|im_end|> hidden without special");
    const char *p = fq_token_to_piece(t, 7, false, &len);
    CHECK(len == 6 && memcmp(p, "<tool>", 6) == 0, "user-defined tokens always render");
    fq_tokenizer_free(t);

    /* no token_type array: everything is normal */
    tiny_common(&b);
    rc = load_mem(&b, &t, &e);
    CHECK(rc == 0, "tiny vocabulary without types: %s", e.msg);
    if (rc == 0) {
        CHECK(fq_tokenizer_attr(t, 1) == FQ_TOK_NORMAL, "default attribute normal");
        CHECK(fq_tokenizer_adds_bos(t) && !fq_tokenizer_adds_eos(t), "default flags");
        fq_tokenizer_free(t);
    }
}

/* ---- a tiny byte-level BPE vocabulary --------------------------------------------------- */

/* GPT-2's bytes_to_unicode, written out independently of the library. */
static void b2u_str(int b, char *out) {
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    int c = b;
    if (!printable) {
        c = 0x100;
        for (int x = 0; x < b; x++)
            c += !((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE);
    }
    size_t n = 0;
    put_utf8(out, &n, (uint32_t)c);
    out[n] = '\0';
}

/* 256 byte tokens, then "he", "ll", "hell", "<|eot|>" (control), "Ġw" */
static int bpe_tiny(gb *b, int drop_byte, const char *pre, const char *const *merges, int n_merges) {
    static char store[256][4];
    const char *toks[261];
    int32_t types[261];
    int n = 0;
    for (int i = 0; i < 256; i++) {
        if (i == drop_byte) continue;
        b2u_str(i, store[i]);
        toks[n] = store[i];
        types[n++] = 1;
    }
    static const char *const extra[] = {"he", "ll", "hell", "<|eot|>", "\xc4\xa0w"};
    for (int i = 0; i < 5; i++) {
        toks[n] = extra[i];
        types[n++] = i == 3 ? 3 : 1;
    }
    kv_str(b, "general.architecture", "llama");
    kv_str(b, "tokenizer.ggml.model", "gpt2");
    if (pre) kv_str(b, "tokenizer.ggml.pre", pre);
    kv_strs(b, "tokenizer.ggml.tokens", toks, n);
    kv_arr(b, "tokenizer.ggml.token_type", FQ_GGUF_INT32, types, n);
    kv_strs(b, "tokenizer.ggml.merges", merges, n_merges);
    return n;
}

static void test_bpe_tiny(void) {
    fq_err e = {{0}};
    fq_tokenizer *t;
    gb b = {0};
    static const char *const merges[] = {"l l", "h e", "he ll", "\xc4\xa0 w"};
    bpe_tiny(&b, -1, "gpt-2", merges, 4);
    int rc = load_mem(&b, &t, &e);
    CHECK(rc == 0, "tiny bpe: %s", e.msg);
    if (rc == 0) {
        /* "hello": l+l (rank 0) first, then h+e, then he+ll -> "hell" "o" */
        expect_tok(t, "hello", false, false, (const int32_t[]){258, 'o'}, 2);
        /* " w" is one pre-token; "Ġw" merges; "<|eot|>" only with parse_special */
        expect_tok(t, "he w<|eot|>", false, true, (const int32_t[]){256, 260, 259}, 3);
        CHECK(fq_tokenizer_bos(t) == 11 && !fq_tokenizer_adds_bos(t), "gpt2 defaults: bos %d",
              fq_tokenizer_bos(t));
        char *back = NULL;
        size_t blen = 0;
        const int32_t ids[] = {258, 'o', 260, 259};
        rc = fq_detokenize(t, ids, 4, false, &back, &blen, &e);
        CHECK(rc == 0 && blen == 7 && memcmp(back, "hello w", 7) == 0, "tiny bpe detok: '%s'", back);
        free(back);
        fq_tokenizer_free(t);
    }

    bpe_tiny(&b, -1, "no-such-pre", merges, 4);
    CHECK(load_mem(&b, &t, &e) == -1 && strstr(e.msg, "unknown pre-tokenizer tokenizer.ggml.pre = 'no-such-pre'") &&
          strstr(e.msg, "llama-bpe") && strstr(e.msg, "qwen2"), "bad pre: %s", e.msg);
    bpe_tiny(&b, -1, "chameleon", merges, 4);
    CHECK(load_mem(&b, &t, &e) == 0, "chameleon: %s", e.msg);
    fq_tokenizer_free(t);
    static const char *const bad1[] = {"h e", "he zz"};
    bpe_tiny(&b, -1, NULL, bad1, 2);
    CHECK(load_mem(&b, &t, &e) == -1 &&
          strstr(e.msg, "tokenizer.ggml.merges[1] = 'he zz' names a token that is not in the vocabulary"),
          "unknown merge token: %s", e.msg);
    static const char *const bad2[] = {"hello"};
    bpe_tiny(&b, -1, NULL, bad2, 1);
    CHECK(load_mem(&b, &t, &e) == -1 && strstr(e.msg, "merges[0] = 'hello' is not two tokens"),
          "merge without space: %s", e.msg);
    bpe_tiny(&b, 'a', NULL, merges, 4);
    CHECK(load_mem(&b, &t, &e) == -1 && strstr(e.msg, "no token for byte 0x61 ('a')"),
          "missing byte: %s", e.msg);
}

/* Pre-tokenizers without reference data here (deepseek-v3, tekken, bloom, viking): splits
 * worked out by hand from the regexes with ECMAScript's backtracking order. want: the words
 * joined by '|'. */
static void expect_split(const char *pre, const char *text, const char *want) {
    fq_pre_info info;
    CHECK(fq_pre_lookup(pre, strlen(pre), &info) == 0, "pre %s unknown", pre);
    uint32_t cpt[256], seg[256], tmp[256];
    uint16_t fl[256];
    size_t boff[257], n = 0, len = strlen(text);
    for (size_t i = 0; i < len && n < 256;) {
        boff[n] = i;
        i += fq_utf8_decode((const uint8_t *)text + i, len - i, &cpt[n]);
        fl[n] = fq_uc_flags(cpt[n]);
        n++;
    }
    boff[n] = len;
    size_t ns = fq_pre_split(info.kind, cpt, fl, n, seg, tmp);
    char got[1024];
    size_t o = 0, c = 0;
    for (size_t k = 0; k < ns && o + 300 < sizeof got; k++) {
        if (k) got[o++] = '|';
        memcpy(got + o, text + boff[c], boff[c + seg[k]] - boff[c]);
        o += boff[c + seg[k]] - boff[c];
        c += seg[k];
    }
    got[o] = '\0';
    CHECK(strcmp(got, want) == 0, "%s split of \"%s\": got \"%s\" want \"%s\"", pre, text, got, want);
}

static void test_pre_by_hand(void) {
    expect_split("tekken", "HelloWorld", "Hello|World");
    expect_split("tekken", "ABC def", "ABC| def");
    expect_split("tekken", "a/b\n", "a|/b|\n");
    expect_split("tekken", "1234", "1|2|3|4");
    expect_split("tekken", "\xc3\x80" "Bc", "\xc3\x80" "Bc");
    expect_split("tekken", "AB\xc3\x80" "CD ", "AB\xc3\x80|CD| ");
    expect_split("tekken", "x  .//\n\ny", "x| | .//\n\n|y");
    expect_split("deepseek-v3", "Hello, world!", "Hello|,| world|!");
    expect_split("deepseek-v3", "12345.abc", "123|45|.abc");
    expect_split("deepseek-v3", "a ~~b", "a| |~|~b"); /* '~' is not in \p{S} there */
    expect_split("deepseek-v3", "\xe4\xb8\x80\xe4\xba\x8c" "ab", "\xe4\xb8\x80\xe4\xba\x8c|ab");
    expect_split("bloom", "Hello world. How?", "Hello| world|.| How|?");
    expect_split("poro-chat", "(a)  b", "(|a|) | b");
    expect_split("viking", "a12 b", "a|1|2| b");
    /* chameleon: (sentinel,) image, [\t\n]|4 spaces|2 spaces, single \p{N}, single punctuation
     * (ASCII !-/:-@[-`{-~ or \p{P}), then GPT-2's regex */
    /* each regex only adds word boundaries: a sentinel is split further by the later ones */
    expect_split("chameleon", "<sentinel:12>ab", "<|sentinel|:|1|2|>|ab");
    expect_split("chameleon", "<sentinel:>x", "<|sentinel|:|>|x");
    expect_split("chameleon", "<sentinel:7", "<|sentinel|:|7");
    expect_split("chameleon", "xIMGIMGAZy", "x|IMGIMGAZ|y");
    expect_split("chameleon", "IMGIMGABCDZIMGIMGABCDEZ", "IMGIMGABCDZ|IMGIMGABCDEZ");
    expect_split("chameleon", "IMGIMGZ", "IMGIMGZ");
    expect_split("chameleon", "a  b", "a|  |b");
    expect_split("chameleon", "a   b", "a|  | b");
    expect_split("chameleon", "a      b", "a|    |  |b");
    expect_split("chameleon", "a\tb\n\nc", "a|\t|b|\n|\n|c");
    expect_split("chameleon", "x12.5!", "x|1|2|.|5|!");
    expect_split("chameleon", "don't", "don|'|t");
    expect_split("chameleon", "a~`b", "a|~|`|b");
    expect_split("chameleon", "a\xe2\x80\x94" "b", "a|\xe2\x80\x94|b");                 /* U+2014 is \p{P} */
    expect_split("chameleon", "a\xe2\x82\xac\xe2\x82\xac" "b", "a|\xe2\x82\xac\xe2\x82\xac|b"); /* U+20AC is \p{S} */
    expect_split("chameleon", "\xd9\xa3\xd9\xa4", "\xd9\xa3|\xd9\xa4");                /* Arabic-Indic digits */
    expect_split("chameleon", " hello world", " hello| world");
}

/* pre-cases.jsonl (tools/gen_pre_cases.py): ids llama.cpp gives with the GPT-2 vocabulary
 * under the pre-tokenizers no published vocabulary uses. The vocabulary is the GPT-2 file with
 * its tokenizer.ggml.pre value replaced here in memory, as the generator did on disk. */
static fq_tokenizer *load_gpt2_as(const char *pre) {
    fq_err e = {{0}};
    size_t len, nlen = 0;
    char *f = fq_read_file(VOCAB_DIR "ggml-vocab-gpt-2.gguf", &len, &e);
    CHECK(f != NULL, "%s", e.msg);
    if (!f) return NULL;
    char *g = tu_gguf_set_pre(f, len, pre, &nlen);
    free(f);
    CHECK(g != NULL, "no tokenizer.ggml.pre in the GPT-2 vocabulary");
    if (!g) return NULL;
    fq_tokenizer *t = NULL;
    fq_gguf gg;
    int rc = fq_gguf_open_mem(&gg, g, nlen, "gpt-2 vocabulary", &e);
    CHECK(rc == 0, "gpt-2 as %s: %s", pre, e.msg);
    if (rc == 0) {
        rc = fq_tokenizer_load(&t, &gg, &e);
        CHECK(rc == 0, "gpt-2 as %s: %s", pre, e.msg);
        fq_gguf_close(&gg);
    }
    free(g);
    return t;
}

static void test_pre_cases(void) {
    static const char *const pres[] = {"chameleon", "tekken", "deepseek-v3", "bloom", "viking"};
    enum { NP = sizeof pres / sizeof pres[0] };
    fq_tokenizer *t[NP];
    for (int k = 0; k < NP; k++) t[k] = load_gpt2_as(pres[k]);
    fq_err e = {{0}};
    size_t flen;
    char *data = fq_read_file(VOCAB_DIR "pre-cases.jsonl", &flen, &e);
    CHECK(data != NULL, "%s", e.msg);
    int lines = 0, ok[NP] = {0};
    for (char *line = data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (!*j_ws(line)) continue;
        lines++;
        char *text = NULL;
        size_t tlen = 0;
        if (!j_str(j_get(line, "text"), &text, &tlen)) {
            CHECK(0, "pre-cases.jsonl:%d: cannot parse the text", lines);
            continue;
        }
        for (int k = 0; k < NP; k++) {
            int32_t *want = NULL, *got = NULL;
            size_t nwant = 0, ngot = 0;
            if (!t[k] || j_ints(j_get(line, pres[k]), &want, &nwant)) {
                CHECK(t[k] == NULL, "pre-cases.jsonl:%d: cannot parse %s", lines, pres[k]);
                continue;
            }
            int rc = fq_tokenize(t[k], text, tlen, false, false, &got, &ngot, &e);
            char b1[512], b2[512];
            bool same = rc == 0 && same_ids(got, ngot, want, nwant);
            CHECK(same, "pre-cases.jsonl:%d %s \"%.60s\": got [%s] want [%s] %s", lines, pres[k], text,
                  fmt_ids(b1, sizeof b1, got, ngot), fmt_ids(b2, sizeof b2, want, nwant), rc ? e.msg : "");
            ok[k] += same;
            free(got);
            free(want);
        }
        free(text);
    }
    CHECK(lines > 800, "pre-cases.jsonl: %d lines", lines);
    for (int k = 0; k < NP; k++) {
        printf("gpt-2 vocabulary as %s: %d/%d llama.cpp cases\n", pres[k], ok[k], lines);
        fq_tokenizer_free(t[k]);
    }
    free(data);
}

static void test_load_errors(void) {
    fq_err e = {{0}};
    fq_tokenizer *t;
    gb b = {0};

    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    kv_strs(&b, "tokenizer.ggml.tokens", tiny_tok, TINY_N);
    CHECK(load_mem(&b, &t, &e) == -1 && t == NULL &&
          strcmp(e.msg, "tokenizer.ggml.merges is missing (a gpt2 tokenizer needs its merges)") == 0,
          "gpt2: %s", e.msg);
    kv_str(&b, "tokenizer.ggml.model", "bert");
    kv_strs(&b, "tokenizer.ggml.tokens", tiny_tok, TINY_N);
    CHECK(load_mem(&b, &t, &e) == -1 && t == NULL &&
          strcmp(e.msg, "tokenizer model 'bert' is not supported yet (fqlm supports: llama (SentencePiece), gpt2 (byte-level BPE))") == 0,
          "bert: %s", e.msg);

    kv_strs(&b, "tokenizer.ggml.tokens", tiny_tok, TINY_N);
    CHECK(load_mem(&b, &t, &e) == -1 && strstr(e.msg, "tokenizer.ggml.model is missing"),
          "no model: %s", e.msg);

    kv_str(&b, "tokenizer.ggml.model", "llama");
    CHECK(load_mem(&b, &t, &e) == -1 && strstr(e.msg, "tokenizer.ggml.tokens is missing"),
          "no tokens: %s", e.msg);

    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", tiny_tok, TINY_N);
    kv_arr(&b, "tokenizer.ggml.scores", FQ_GGUF_FLOAT32, tiny_score, TINY_N - 1);
    CHECK(load_mem(&b, &t, &e) == -1 &&
          strstr(e.msg, "tokenizer.ggml.scores has 11 entries but tokenizer.ggml.tokens has 12"),
          "short scores: %s", e.msg);

    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", tiny_tok, TINY_N);
    kv_arr(&b, "tokenizer.ggml.token_type", FQ_GGUF_FLOAT32, tiny_score, TINY_N);
    CHECK(load_mem(&b, &t, &e) == -1 && strstr(e.msg, "tokenizer.ggml.token_type is an array of"),
          "float token types: %s", e.msg);

    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_arr(&b, "tokenizer.ggml.tokens", FQ_GGUF_INT32, tiny_type, TINY_N);
    CHECK(load_mem(&b, &t, &e) == -1 && strstr(e.msg, "not an array of strings"),
          "int tokens: %s", e.msg);

    static const char *const dup[] = {"<unk>", "a", "b", "a"};
    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", dup, 4);
    CHECK(load_mem(&b, &t, &e) == -1 && strstr(e.msg, "duplicate token in vocabulary: 'a' has ids 1 and 3"),
          "duplicates: %s", e.msg);

    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", tiny_tok, TINY_N);
    kv_str(&b, "tokenizer.ggml.bos_token_id", "1");
    CHECK(load_mem(&b, &t, &e) == -1 && strstr(e.msg, "bos_token_id has type"),
          "string bos id: %s", e.msg);

    /* strings from the file reach messages escaped: a terminal title / clear-screen
     * sequence in the tokenizer model's name or in a token stays inert */
    kv_str(&b, "tokenizer.ggml.model", "\x1b]0;owned\x07gpt2\x1b[2J");
    kv_strs(&b, "tokenizer.ggml.tokens", tiny_tok, TINY_N);
    CHECK(load_mem(&b, &t, &e) == -1 && !strchr(e.msg, '\x1b') && !strchr(e.msg, '\x07') &&
              strstr(e.msg, "tokenizer model '\\x1b]0;owned\\x07gpt2\\x1b[2J' is not supported"),
          "hostile model name: %s", e.msg);
    static const char *const dup_esc[] = {"<unk>", "\x1b[2J", "b", "\x1b[2J"};
    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", dup_esc, 4);
    CHECK(load_mem(&b, &t, &e) == -1 && !strchr(e.msg, '\x1b') &&
              strstr(e.msg, "duplicate token in vocabulary: '\\x1b[2J' has ids 1 and 3"),
          "hostile duplicate: %s", e.msg);

    /* a one-token vocabulary has no BOS to add */
    static const char *const one[] = {"x"};
    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", one, 1);
    CHECK(load_mem(&b, &t, &e) == -1 && strstr(e.msg, "add_bos_token is true, but there is no BOS"),
          "no BOS: %s", e.msg);
}

/* Generated text to stdout: the bytes as they are (as llama.cpp prints them), or for a
 * terminal with control characters, C1 controls and invalid UTF-8 escaped. */
static void expect_text(const char *in, size_t n, int terminal, const char *want, size_t want_n) {
    FILE *f = tmpfile();
    FQ_ASSERT(f);
    CHECK(fq_write_text(f, in, n, terminal) == 0, "fq_write_text");
    char buf[256];
    rewind(f);
    size_t got = fread(buf, 1, sizeof buf, f);
    fclose(f);
    CHECK(got == want_n && !memcmp(buf, want, want_n), "fq_write_text(terminal %d): got %zu bytes '%.*s'",
          terminal, got, (int)got, buf);
}

static void test_write_text(void) {
    static const char text[] = "Hi\x1b[2J\n\tcaf\xc3\xa9 \\ \"x\" \r\x07\xc2\x9b\xff\x00!";
    const size_t n = sizeof text - 1;
    expect_text(text, n, 0, text, n);
    static const char term[] = "Hi\\x1b[2J\n\tcaf\xc3\xa9 \\ \"x\" \\r\\x07\\u009b\\xff\\x00!";
    expect_text(text, n, 1, term, sizeof term - 1);
    expect_text("", 0, 1, "", 0);
    expect_text("plain text\n", 11, 1, "plain text\n", 11);
}

int main(void) {
    test_write_text();
    int64_t us_spm = 0, us_st = 0;
    fq_tokenizer *spm = load_path(VOCAB_SPM, &us_spm);
    fq_tokenizer *st = load_path(VOCAB_STORIES, &us_st);
    printf("load: 32000-token vocabulary %.2f ms, 512-token %.2f ms\n", us_spm / 1000.0,
           us_st / 1000.0);
    CHECK(us_spm < 500000, "loading 32000 tokens took %.1f ms", us_spm / 1000.0);
    if (spm) {
        test_golden_file(GOLDEN_TOK "llama-spm-32000.jsonl", spm);
        test_golden_file(GOLDEN_TOK "llama-spm-32000.special.jsonl", spm);
        test_detok_spm(spm);
        test_random(spm, "llama-spm-32000");
    }
    if (st) {
        test_golden_file(GOLDEN_TOK "stories-512.jsonl", st);
        test_random(st, "stories-512");
    }
    test_golden_logits();
    {
        static const char *const bpe_vocabs[] = {"gpt-2", "llama-bpe", "qwen2", "mpt", "gpt-neox",
                                                 "starcoder", "refact", "falcon", "deepseek-llm",
                                                 "deepseek-coder", "phi-3"};
        char g[256];
        test_vocab_cases("llama-spm", VOCAB_SPM, true);
        for (size_t i = 0; i < sizeof bpe_vocabs / sizeof bpe_vocabs[0]; i++) {
            snprintf(g, sizeof g, VOCAB_DIR "ggml-vocab-%s.gguf", bpe_vocabs[i]);
            test_vocab_cases(bpe_vocabs[i], g, strcmp(bpe_vocabs[i], "gpt-neox") != 0);
        }
    }
    test_tiny();
    test_bpe_tiny();
    test_pre_by_hand();
    test_pre_cases();
    test_load_errors();
    fq_tokenizer_free(spm);
    fq_tokenizer_free(st);
    return TEST_END();
}
