/* jsonw.h - a small JSON writer into a growing buffer: commas and escaping handled.
 * Non-finite numbers are written as null; strings are escaped byte-wise (control
 * characters and bytes that are not valid UTF-8 become \u00XX). */
#ifndef FQ_JSONW_H
#define FQ_JSONW_H

#include "common.h"

typedef struct jsonw {
    char *buf;
    size_t len, cap;
    int need_comma;
    int depth;
    int oom;
    int pretty;
} jsonw;

void jsonw_init(jsonw *w);
void jsonw_free(jsonw *w);
void jsonw_obj_begin(jsonw *w);
void jsonw_obj_end(jsonw *w);
void jsonw_arr_begin(jsonw *w);
void jsonw_arr_end(jsonw *w);
void jsonw_key(jsonw *w, const char *k);
void jsonw_str(jsonw *w, const char *s);
void jsonw_strn(jsonw *w, const char *s, size_t n);
void jsonw_int(jsonw *w, long long v);
void jsonw_num(jsonw *w, double v);   /* %.9g; NaN/Inf -> null */
void jsonw_num17(jsonw *w, double v); /* %.17g (round-trips a double); NaN/Inf -> null */
void jsonw_bool(jsonw *w, int v);
void jsonw_null(jsonw *w);
void jsonw_raw(jsonw *w, const char *json);  /* an already-formed JSON value */
/* Writes the buffer (plus a newline) whole or not at all. 0, or -1 with e set. */
int jsonw_write_file(jsonw *w, const char *path, fq_err *e);
/* Takes the NUL-terminated text (caller frees); NULL when memory ran out. */
char *jsonw_take(jsonw *w);

#endif
