/* testutil.h - helpers for tests: files, tiny JSON field extraction, float arrays. */
#ifndef FQ_TESTUTIL_H
#define FQ_TESTUTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* A copy of the GGUF image buf[0..len) with the string value of tokenizer.ggml.pre set to pre
 * (a vocabulary for a pre-tokenizer no published file uses, as tools/gguf_set_pre.py makes
 * on disk): malloc'd, its length in *out_len; NULL if buf holds no such string key. */
static inline char *tu_gguf_set_pre(const char *buf, size_t len, const char *pre, size_t *out_len) {
    static const char key[] = "tokenizer.ggml.pre";
    const size_t kl = sizeof key - 1;
    /* the key's u64 length and bytes, type 8 (string), the value's u64 length and bytes */
    for (size_t i = 8; i + kl + 12 <= len; i++) {
        if (memcmp(buf + i, key, kl) || buf[i - 8] != (char)kl || buf[i + kl] != 8) continue;
        uint64_t old;
        memcpy(&old, buf + i + kl + 4, 8);
        size_t at = i + kl + 12, nl = strlen(pre);
        if (old > len - at) return NULL;
        char *g = malloc(len - (size_t)old + nl);
        if (!g) return NULL;
        uint64_t n64 = nl;
        memcpy(g, buf, at - 8);
        memcpy(g + at - 8, &n64, 8);
        memcpy(g + at, pre, nl);
        memcpy(g + at + nl, buf + at + old, len - at - (size_t)old);
        *out_len = len - (size_t)old + nl;
        return g;
    }
    return NULL;
}

/* Whole file into a malloc'd NUL-terminated buffer; NULL if unreadable. */
static inline char *tu_read(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        if (len) *len = (size_t)n;
    }
    return b;
}

/* The integer array at "key": [..] in a JSON text; returns the count (<= cap), -1 if absent. */
static inline int tu_json_ints(const char *js, const char *key, int32_t *out, int cap) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(js, pat);
    if (!p) return -1;
    p = strchr(p + strlen(pat), '[');
    if (!p) return -1;
    p++;
    int n = 0;
    while (*p && *p != ']') {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) {
            p++;
            continue;
        }
        if (n < cap) out[n] = (int32_t)v;
        n++;
        p = end;
    }
    return n < cap ? n : cap;
}

/* The string value at "key": "..." (no unescaping beyond \" and \\); malloc'd or NULL. */
static inline char *tu_json_str(const char *js, const char *key) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(js, pat);
    if (!p) return NULL;
    p = strchr(p + strlen(pat), '"');
    if (!p) return NULL;
    p++;
    const char *q = p;
    while (*q && *q != '"') q += (*q == '\\' && q[1]) ? 2 : 1;
    char *s = malloc((size_t)(q - p) + 1);
    size_t k = 0;
    for (const char *r = p; r < q; r++) {
        if (*r == '\\' && r + 1 < q) r++;
        s[k++] = *r;
    }
    s[k] = 0;
    return s;
}

/* float32 file into a malloc'd array; *n elements. */
static inline float *tu_read_f32(const char *path, size_t *n) {
    size_t len;
    char *b = tu_read(path, &len);
    if (!b) return NULL;
    *n = len / 4;
    return (float *)b;
}

/* Logits of T positions against golden ones: max |diff| (Inf when NaN), mean KL(gold || ours)
 * per position, top-1 agreement. */
typedef struct {
    double max_diff, mean_kl, top1;
} cmp_result;

static inline cmp_result compare_logits(const float *gold, const float *ours, int T, int V) {
    cmp_result r = {0, 0, 0};
    int agree = 0;
    for (int t = 0; t < T; t++) {
        const float *g = gold + (size_t)t * V, *o = ours + (size_t)t * V;
        double mg = -INFINITY, mo = -INFINITY;
        int ag = 0, ao = 0;
        for (int i = 0; i < V; i++) {
            double d = fabs((double)g[i] - o[i]);
            if (d > r.max_diff || isnan(d)) r.max_diff = isnan(d) ? INFINITY : d;
            if (g[i] > mg) mg = g[i], ag = i;
            if (o[i] > mo) mo = o[i], ao = i;
        }
        agree += ag == ao;
        double sg = 0, so = 0;
        for (int i = 0; i < V; i++) sg += exp(g[i] - mg), so += exp(o[i] - mo);
        double lzg = mg + log(sg), lzo = mo + log(so), kl = 0;
        for (int i = 0; i < V; i++) {
            double lpg = g[i] - lzg, lpo = o[i] - lzo;
            kl += exp(lpg) * (lpg - lpo);
        }
        r.mean_kl += kl / T;
    }
    r.top1 = (double)agree / T;
    return r;
}

/* Runs `$FQLM_BIN ARGS` (default build/fqlm) through sh with stdout and stderr in files of
 * dir; *out and *err (either may be NULL) get their text. Returns the exit status (128 +
 * the signal when one killed it). */
static inline int tu_fqlm(const char *dir, const char *args, char **out, char **err) {
    const char *b = getenv("FQLM_BIN");
    size_t n = strlen(args) + 2 * strlen(dir) + 512;
    char *cmd = malloc(n), o[512], e[512];
    if (!cmd) return -1;
    snprintf(o, sizeof o, "%s/out", dir);
    snprintf(e, sizeof e, "%s/err", dir);
    snprintf(cmd, n, "%s %s >%s 2>%s", b ? b : "build/fqlm", args, o, e);
    int st = system(cmd);
    free(cmd);
    if (out) *out = tu_read(o, NULL);
    if (err) *err = tu_read(e, NULL);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

/* The number after "key": in js, from the first occurrence at or after from (NULL: the
 * start); NAN when absent or null. */
static inline double tu_json_num_from(const char *js, const char *from, const char *key) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = js ? strstr(from ? from : js, pat) : NULL;
    if (!p) return NAN;
    p += strlen(pat);
    while (*p == ' ') p++;
    if (!strncmp(p, "null", 4)) return NAN;
    char *end;
    double v = strtod(p, &end);
    return end == p ? NAN : v;
}

#endif
