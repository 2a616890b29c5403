/* fuzz_json.c - libFuzzer target for the JSON reader (jsonr.h) and the plan reader
 * (fq_plan_read_weights, what `fqlm quantize --plan` and --weight-plan read).
 *
 * Promises checked:
 *  - fq_json_parse either fails with a message or gives a tree; the tree written back as
 *    JSON (jsonw, numbers with 17 digits) parses again to the same tree (types, strings
 *    byte for byte, numbers, keys and order);
 *  - the plan reader on the same bytes fails with a message or gives n pairs whose names
 *    are NUL-terminated strings and whose types are weight types. */
#include "fuzz_common.h"

#include "jsonr.h"
#include "jsonw.h"
#include "qtypes.h"
#include "requant.h"

static void write_back(jsonw *w, const fq_jval *v) {
    switch (v->type) {
    case FQ_J_NULL: jsonw_null(w); break;
    case FQ_J_BOOL: jsonw_bool(w, v->b); break;
    case FQ_J_NUM: jsonw_num17(w, v->num); break;
    case FQ_J_STR: jsonw_strn(w, v->str, v->len); break;
    case FQ_J_ARR:
        jsonw_arr_begin(w);
        for (size_t i = 0; i < v->n; i++) write_back(w, &v->items[i]);
        jsonw_arr_end(w);
        break;
    case FQ_J_OBJ:
        jsonw_obj_begin(w);
        for (size_t i = 0; i < v->n; i++) {
            jsonw_key(w, v->keys[i]);
            write_back(w, &v->items[i]);
        }
        jsonw_obj_end(w);
        break;
    }
}

/* a and b the same tree; a number that is not finite (an exponent too large) is written as
 * null, so it matches a null. Keys compare as C strings (a \u0000 inside ends them in both). */
static int same(const fq_jval *a, const fq_jval *b) {
    if (a->type == FQ_J_NUM && !(a->num - a->num == 0)) return b->type == FQ_J_NULL;
    if (a->type != b->type || a->n != b->n) return 0;
    switch (a->type) {
    case FQ_J_BOOL: return a->b == b->b;
    case FQ_J_NUM: return a->num == b->num;
    case FQ_J_STR: return a->len == b->len && !memcmp(a->str, b->str, a->len);
    default: break;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (a->type == FQ_J_OBJ && strcmp(a->keys[i], b->keys[i])) return 0;
        if (!same(&a->items[i], &b->items[i])) return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fq_jval v;
    fq_err e = {{0}};
    if (fq_json_parse((const char *)data, size, &v, &e) != 0) {
        FUZZ_REQUIRE_MSG(e);
    } else {
        jsonw w;
        jsonw_init(&w);
        write_back(&w, &v);
        char *t = jsonw_take(&w);
        jsonw_free(&w);
        FUZZ_REQUIRE(t != NULL, "jsonw_take failed");
        fq_jval back;
        FUZZ_REQUIRE(fq_json_parse(t, strlen(t), &back, &e) == 0, "written back does not parse: %s: %s", e.msg, t);
        FUZZ_REQUIRE(same(&v, &back), "round trip differs: %s", t);
        fq_json_free(&back);
        free(t);
        fq_json_free(&v);
    }
    const char *path = fuzz_scratch_path("plan");
    FUZZ_REQUIRE(fuzz_write(path, data, size) == 0, "scratch file");
    char **names;
    uint32_t *types;
    int n;
    memset(&e, 0, sizeof e);
    if (fq_plan_read_weights(path, &names, &types, &n, &e) != 0) {
        FUZZ_REQUIRE_MSG(e);
    } else {
        for (int i = 0; i < n; i++) {
            FUZZ_REQUIRE(names[i] != NULL, "entry %d without a name", i);
            FUZZ_REQUIRE(fq_wtype_bpw(types[i]) > 0, "entry %d: type %u", i, types[i]);
            uint32_t t;
            FUZZ_REQUIRE(fq_wtype_find(fq_wtype_lname(types[i]), &t, NULL) == 0 && t == types[i], "type name");
        }
        fq_plan_free(names, types, n);
    }
    return 0;
}
