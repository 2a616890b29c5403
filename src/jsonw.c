/* jsonw.c - JSON writer. */
#include "jsonw.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

void jsonw_init(jsonw *w) { memset(w, 0, sizeof *w); }
void jsonw_free(jsonw *w) {
    free(w->buf);
    memset(w, 0, sizeof *w);
}

static void put(jsonw *w, const char *s, size_t n) {
    if (w->oom) return;
    if (w->len + n + 1 > w->cap) {
        size_t nc = (w->len + n + 1) * 2 + 256;
        char *nb = realloc(w->buf, nc);
        if (!nb) {
            w->oom = 1;
            return;
        }
        w->buf = nb;
        w->cap = nc;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = 0;
}

static void putf(jsonw *w, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    put(w, tmp, (size_t)n);
}

static void value_start(jsonw *w) {
    if (w->need_comma) put(w, ",", 1);
    w->need_comma = 1;
}

void jsonw_obj_begin(jsonw *w) {
    value_start(w);
    put(w, "{", 1);
    w->need_comma = 0;
}
void jsonw_obj_end(jsonw *w) {
    put(w, "}", 1);
    w->need_comma = 1;
}
void jsonw_arr_begin(jsonw *w) {
    value_start(w);
    put(w, "[", 1);
    w->need_comma = 0;
}
void jsonw_arr_end(jsonw *w) {
    put(w, "]", 1);
    w->need_comma = 1;
}

void jsonw_key(jsonw *w, const char *k) {
    jsonw_str(w, k);
    put(w, ":", 1);
    w->need_comma = 0;
}

/* Length of a valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!k || k > n || (k == 2 && c < 0xc2)) return 0;
    for (size_t j = 1; j < k; j++)
        if ((p[j] & 0xc0) != 0x80) return 0;
    return k;
}

void jsonw_strn(jsonw *w, const char *s, size_t n) {
    value_start(w);
    put(w, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c == '"') put(w, "\\\"", 2), i++;
        else if (c == '\\') put(w, "\\\\", 2), i++;
        else if (c == '\n') put(w, "\\n", 2), i++;
        else if (c == '\t') put(w, "\\t", 2), i++;
        else if (c == '\r') put(w, "\\r", 2), i++;
        else if (c < 0x20 || c == 0x7f) putf(w, "\\u%04x", c), i++;
        else if (c < 0x80) put(w, (const char *)p + i, 1), i++;
        else {
            size_t k = utf8_len(p + i, n - i);
            if (k) put(w, (const char *)p + i, k), i += k;
            else putf(w, "\\u%04x", c), i++;
        }
    }
    put(w, "\"", 1);
}

void jsonw_str(jsonw *w, const char *s) { jsonw_strn(w, s, strlen(s)); }

void jsonw_int(jsonw *w, long long v) {
    value_start(w);
    putf(w, "%lld", v);
}

void jsonw_num(jsonw *w, double v) {
    value_start(w);
    if (!isfinite(v)) put(w, "null", 4);
    else putf(w, "%.9g", v);
}

void jsonw_num17(jsonw *w, double v) {
    value_start(w);
    if (!isfinite(v)) put(w, "null", 4);
    else putf(w, "%.17g", v);
}

void jsonw_bool(jsonw *w, int v) {
    value_start(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
}

void jsonw_null(jsonw *w) {
    value_start(w);
    put(w, "null", 4);
}

void jsonw_raw(jsonw *w, const char *json) {
    value_start(w);
    put(w, json, strlen(json));
}

int jsonw_write_file(jsonw *w, const char *path, fq_err *e) {
    put(w, "\n", 1);
    if (w->oom) return fq_errf(e, "out of memory building '%s'", path);
    return fq_write_file_atomic(path, w->buf, w->len, e);
}

char *jsonw_take(jsonw *w) {
    if (w->oom) {
        jsonw_free(w);
        return NULL;
    }
    char *b = w->buf;
    if (!b) b = strdup("");
    memset(w, 0, sizeof *w);
    return b;
}
