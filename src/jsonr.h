/* jsonr.h - a small JSON reader (RFC 8259) for the files fqlm reads back: plan.json.
 * The whole document becomes a tree of fq_jval; errors name line and column. */
#ifndef FQ_JSONR_H
#define FQ_JSONR_H

#include "common.h"

typedef enum { FQ_J_NULL, FQ_J_BOOL, FQ_J_NUM, FQ_J_STR, FQ_J_ARR, FQ_J_OBJ } fq_jtype;

typedef struct fq_jval {
    fq_jtype type;
    int b;                  /* FQ_J_BOOL */
    double num;             /* FQ_J_NUM */
    char *str;              /* FQ_J_STR: UTF-8, NUL-terminated (may hold NULs: see len) */
    size_t len;
    struct fq_jval *items;  /* FQ_J_ARR / FQ_J_OBJ: n values */
    char **keys;            /* FQ_J_OBJ: n keys (NUL-terminated) */
    size_t n;
    int line, col;          /* where the value begins (1-based), for messages */
} fq_jval;

/* Parses text[0..len). Returns 0, or -1 with e set ("line L, column C: what"). Nesting
 * deeper than 64 is refused. */
int fq_json_parse(const char *text, size_t len, fq_jval *out, fq_err *e);
void fq_json_free(fq_jval *v);
/* The member key of an object (the last one when repeated), or NULL. */
const fq_jval *fq_json_get(const fq_jval *obj, const char *key);
/* "string", "number", ... for messages. */
const char *fq_json_type_name(fq_jtype t);

#endif
