/* jsonr.c - the JSON reader (see jsonr.h). */
#include "jsonr.h"

#include <string.h>

typedef struct {
    const char *s;
    size_t n, i;
    fq_err *e;
} jp;

static void where(const jp *p, size_t at, int *line, int *col) {
    int l = 1, c = 1;
    for (size_t k = 0; k < at && k < p->n; k++) {
        if (p->s[k] == '\n') l++, c = 1;
        else c++;
    }
    *line = l, *col = c;
}

static int jerr(jp *p, const char *what) {
    int l, c;
    where(p, p->i, &l, &c);
    return fq_errf(p->e, "line %d, column %d: %s", l, c, what);
}

static void ws(jp *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++;
}

static int put_utf8(char *d, size_t *k, uint32_t cp) {
    if (cp < 0x80) d[(*k)++] = (char)cp;
    else if (cp < 0x800) d[(*k)++] = (char)(0xc0 | cp >> 6), d[(*k)++] = (char)(0x80 | (cp & 63));
    else if (cp < 0x10000)
        d[(*k)++] = (char)(0xe0 | cp >> 12), d[(*k)++] = (char)(0x80 | ((cp >> 6) & 63)), d[(*k)++] = (char)(0x80 | (cp & 63));
    else
        d[(*k)++] = (char)(0xf0 | cp >> 18), d[(*k)++] = (char)(0x80 | ((cp >> 12) & 63)),
        d[(*k)++] = (char)(0x80 | ((cp >> 6) & 63)), d[(*k)++] = (char)(0x80 | (cp & 63));
    return 0;
}

static int hex4(jp *p, uint32_t *v) {
    if (p->n - p->i < 4) return jerr(p, "\\u needs four hex digits");
    uint32_t x = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i + (size_t)k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return jerr(p, "\\u needs four hex digits");
        x = x * 16 + (uint32_t)d;
    }
    p->i += 4;
    *v = x;
    return 0;
}

/* at the opening quote; a malloc'd string (every escape shrinks, so n bytes suffice) */
static int str(jp *p, char **out, size_t *len) {
    p->i++;
    size_t start = p->i;
    char *d = malloc(p->n - start + 1);
    size_t k = 0;
    if (!d) return fq_errf(p->e, "out of memory");
    for (;;) {
        if (p->i >= p->n) {
            free(d);
            p->i = start - 1;
            return jerr(p, "string not closed");
        }
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') break;
        if (c < 0x20) {
            free(d);
            return jerr(p, "control character in a string");
        }
        if (c >= 0x80) { /* JSON text is UTF-8 (RFC 8259): other bytes are refused, not carried */
            int l = fq_utf8_len((const unsigned char *)p->s + p->i, p->n - p->i);
            if (!l) {
                free(d);
                return jerr(p, "invalid UTF-8 in a string");
            }
            memcpy(d + k, p->s + p->i, (size_t)l);
            k += (size_t)l;
            p->i += (size_t)l;
            continue;
        }
        if (c != '\\') {
            d[k++] = (char)c;
            p->i++;
            continue;
        }
        if (++p->i >= p->n) continue; /* reported as not closed */
        char esc = p->s[p->i++];
        uint32_t cp;
        switch (esc) {
        case '"': d[k++] = '"'; break;
        case '\\': d[k++] = '\\'; break;
        case '/': d[k++] = '/'; break;
        case 'b': d[k++] = '\b'; break;
        case 'f': d[k++] = '\f'; break;
        case 'n': d[k++] = '\n'; break;
        case 'r': d[k++] = '\r'; break;
        case 't': d[k++] = '\t'; break;
        case 'u':
            if (hex4(p, &cp)) {
                free(d);
                return -1;
            }
            if (cp >= 0xd800 && cp < 0xdc00 && p->n - p->i >= 6 && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u') {
                uint32_t lo;
                size_t save = p->i;
                p->i += 2;
                if (hex4(p, &lo)) {
                    free(d);
                    return -1;
                }
                if (lo >= 0xdc00 && lo < 0xe000) cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                else p->i = save, cp = 0xfffd;
            } else if (cp >= 0xd800 && cp < 0xe000) {
                cp = 0xfffd; /* a lone surrogate */
            }
            put_utf8(d, &k, cp);
            break;
        default:
            free(d);
            p->i--;
            return jerr(p, "unknown escape in a string");
        }
    }
    p->i++;
    d[k] = 0;
    *out = d;
    *len = k;
    return 0;
}

static int value(jp *p, fq_jval *v, int depth);

static int grow(fq_jval *v, size_t *cap, int obj, fq_err *e) {
    if (v->n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    fq_jval *it = realloc(v->items, nc * sizeof *it);
    if (!it) return fq_errf(e, "out of memory");
    v->items = it;
    if (obj) {
        char **ks = realloc(v->keys, nc * sizeof *ks);
        if (!ks) return fq_errf(e, "out of memory");
        v->keys = ks;
    }
    *cap = nc;
    return 0;
}

static int container(jp *p, fq_jval *v, int depth, int obj) {
    char close = obj ? '}' : ']';
    size_t cap = 0;
    v->type = obj ? FQ_J_OBJ : FQ_J_ARR;
    p->i++;
    ws(p);
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
        return 0;
    }
    for (;;) {
        ws(p);
        if (grow(v, &cap, obj, p->e)) return -1;
        if (obj) {
            if (p->i >= p->n || p->s[p->i] != '"') return jerr(p, "expected a member name in quotes");
            size_t kl;
            if (str(p, &v->keys[v->n], &kl)) return -1;
            ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') {
                free(v->keys[v->n]);
                return jerr(p, "expected ':' after a member name");
            }
            p->i++;
        }
        memset(&v->items[v->n], 0, sizeof v->items[0]);
        int rc = value(p, &v->items[v->n], depth + 1);
        v->n++; /* freed with the rest, even when incomplete */
        if (rc) return -1;
        ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == close) {
            p->i++;
            return 0;
        }
        return jerr(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int value(jp *p, fq_jval *v, int depth) {
    ws(p);
    where(p, p->i, &v->line, &v->col);
    if (depth > 64) return jerr(p, "nested deeper than 64");
    if (p->i >= p->n) return jerr(p, "unexpected end of the document");
    char c = p->s[p->i];
    if (c == '{' || c == '[') return container(p, v, depth, c == '{');
    if (c == '"') {
        v->type = FQ_J_STR;
        return str(p, &v->str, &v->len);
    }
    static const struct {
        const char *w;
        fq_jtype t;
        int b;
    } lit[] = {{"true", FQ_J_BOOL, 1}, {"false", FQ_J_BOOL, 0}, {"null", FQ_J_NULL, 0}};
    for (size_t k = 0; k < 3; k++) {
        size_t l = strlen(lit[k].w);
        if (p->n - p->i >= l && !memcmp(p->s + p->i, lit[k].w, l)) {
            v->type = lit[k].t, v->b = lit[k].b;
            p->i += l;
            return 0;
        }
    }
    /* number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
    size_t j = p->i;
    if (j < p->n && p->s[j] == '-') j++;
    size_t d0 = j;
    while (j < p->n && p->s[j] >= '0' && p->s[j] <= '9') j++;
    if (j == d0 || (p->s[d0] == '0' && j - d0 > 1)) return jerr(p, "expected a value");
    if (j < p->n && p->s[j] == '.') {
        size_t f = ++j;
        while (j < p->n && p->s[j] >= '0' && p->s[j] <= '9') j++;
        if (j == f) return jerr(p, "digits must follow '.'");
    }
    if (j < p->n && (p->s[j] == 'e' || p->s[j] == 'E')) {
        j++;
        if (j < p->n && (p->s[j] == '+' || p->s[j] == '-')) j++;
        size_t f = j;
        while (j < p->n && p->s[j] >= '0' && p->s[j] <= '9') j++;
        if (j == f) return jerr(p, "digits must follow the exponent");
    }
    char buf[64];
    if (j - p->i >= sizeof buf) return jerr(p, "number too long");
    memcpy(buf, p->s + p->i, j - p->i);
    buf[j - p->i] = 0;
    v->type = FQ_J_NUM;
    v->num = strtod(buf, NULL);
    p->i = j;
    return 0;
}

int fq_json_parse(const char *text, size_t len, fq_jval *out, fq_err *e) {
    jp p = {text, len, 0, e};
    memset(out, 0, sizeof *out);
    if (value(&p, out, 0)) {
        fq_json_free(out);
        return -1;
    }
    ws(&p);
    if (p.i != p.n) {
        fq_json_free(out);
        return jerr(&p, "text after the document");
    }
    return 0;
}

void fq_json_free(fq_jval *v) {
    if (!v) return;
    for (size_t k = 0; k < v->n; k++) {
        fq_json_free(&v->items[k]);
        if (v->keys) free(v->keys[k]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

const fq_jval *fq_json_get(const fq_jval *obj, const char *key) {
    const fq_jval *r = NULL;
    if (obj && obj->type == FQ_J_OBJ)
        for (size_t k = 0; k < obj->n; k++)
            if (!strcmp(obj->keys[k], key)) r = &obj->items[k];
    return r;
}

const char *fq_json_type_name(fq_jtype t) {
    static const char *const n[] = {"null", "boolean", "number", "string", "array", "object"};
    return (unsigned)t < 6 ? n[t] : "?";
}
