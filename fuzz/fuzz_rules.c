/* fuzz_rules.c - libFuzzer target for the `--fq` rule parser and the number-format spec
 * parser, against the bundled 5-layer model.
 *
 * The input is split at newlines: line 1 is a rule (NODES[@LAYERS]=FORMAT[:options] or
 * weight:GLOB=FORMAT) and a format spec on its own; lines 2-4, when present, are the
 * legacy flags' values (--fake-quant-ffn-norm TYPE, --fake-quant-layer N, --fake-quant
 * TYPE) and a --dump selection.
 *
 * Promises checked:
 *  - every rejected rule or spec comes with a message;
 *  - an accepted spec has a canonical string that parses to the same canonical string;
 *  - an accepted format rounds a matrix holding NaN, +-Inf, -0, subnormals and huge
 *    values (row length not a multiple of any block) without touching memory outside
 *    it, keeps NaN as NaN, and counts every element in its statistics. */
#include "fuzz_common.h"

#include <math.h>

#include "fakequant.h"
#include "formats.h"
#include "model.h"

#define ROWS 3
#define COLS 300

static fq_model *g_model;
static float g_input[ROWS * COLS];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fq_err e;
    g_model = fq_model_load(FUZZ_STORIES, &e);
    if (!g_model) {
        fprintf(stderr, "fuzz_rules: %s (run from the repository root)\n", e.msg);
        exit(1);
    }
    uint32_t s = 12345;
    for (int i = 0; i < ROWS * COLS; i++) {
        s = s * 1664525u + 1013904223u;
        float v = ((float)(s >> 8) / 16777216.0f - 0.5f) * 8.0f;
        switch (i % 37) {
        case 0: v = NAN; break;
        case 1: v = INFINITY; break;
        case 2: v = -INFINITY; break;
        case 3: v = -0.0f; break;
        case 4: v = 1e-40f; break;       /* F32 subnormal */
        case 5: v = 3e38f; break;
        case 6: v = -1e-8f; break;
        default: break;
        }
        g_input[i] = v;
    }
    return 0;
}

static void check_format(const char *spec, uint64_t seed) {
    fq_format *f;
    fq_err e = {{0}};
    if (fq_format_parse(spec, &f, &e)) {
        FUZZ_REQUIRE_MSG(e);
        return;
    }
    const char *canon = fq_format_str(f);
    FUZZ_REQUIRE(canon && *canon, "no canonical string for '%s'", spec);
    fq_format *g;
    FUZZ_REQUIRE(fq_format_parse(canon, &g, &e) == 0, "canonical '%s' of '%s' does not parse: %s",
                 canon, spec, e.msg);
    FUZZ_REQUIRE(!strcmp(fq_format_str(g), canon), "'%s' -> '%s' -> '%s'", spec, canon,
                 fq_format_str(g));
    fq_format_free(g);
    fq_format_desc d;
    fq_format_describe(f, &d);
    /* exact-size heap copy: ASan catches a kernel writing past the matrix */
    float *x = malloc(sizeof g_input);
    FQ_ASSERT(x);
    memcpy(x, g_input, sizeof g_input);
    fq_qstats st = {0};
    if (fq_format_row_local(f)) {
        for (int r = 0; r < ROWS; r++)
            fq_format_apply(f, x + (size_t)r * COLS, 1, COLS, seed, 7, r, &st);
    } else {
        fq_format_apply(f, x, ROWS, COLS, seed, 7, 0, &st);
    }
    FUZZ_REQUIRE(st.n == ROWS * COLS, "'%s': %llu elements counted", canon, (unsigned long long)st.n);
    FUZZ_REQUIRE(st.n_summed <= st.n, "'%s': n_summed", canon);
    for (int i = 0; i < ROWS * COLS; i++)
        if (isnan(g_input[i])) FUZZ_REQUIRE(isnan(x[i]), "'%s': NaN at %d became %g", canon, i, x[i]);
    (void)fq_qstats_rmse(&st);
    (void)fq_qstats_sqnr_db(&st);
    free(x);
    fq_format_free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *s = fuzz_cstr(data, size);
    char *line[4] = {s, NULL, NULL, NULL};
    for (int k = 1; k < 4; k++) {
        char *nl = line[k - 1] ? strchr(line[k - 1], '\n') : NULL;
        if (!nl) break;
        *nl = 0;
        line[k] = nl + 1;
    }
    uint64_t seed = size ? data[0] : 0;
    check_format(line[0], seed);
    const char *eq = strrchr(line[0], '=');
    if (eq) check_format(eq + 1, seed);

    fq_err e = {{0}};
    fq_fakequant *f = fq_fakequant_new(g_model, &e);
    FQ_ASSERT(f);
    if (fq_fakequant_add_rule(f, line[0], &e)) {
        FUZZ_REQUIRE_MSG(e);
        FUZZ_REQUIRE(fq_fakequant_n_rules(f) == 0, "a rejected rule was kept");
    } else {
        FUZZ_REQUIRE(fq_fakequant_n_rules(f) == 1, "rule not counted");
    }
    if (line[1]) {
        e.msg[0] = 0;
        const char *layer = line[2] && *line[2] ? line[2] : NULL;
        const char *logits = line[3] && *line[3] ? line[3] : NULL;
        if (fq_fakequant_add_legacy(f, *line[1] ? line[1] : NULL, layer, logits, &e))
            FUZZ_REQUIRE_MSG(e);
        e.msg[0] = 0;
        if (fq_fakequant_add_dump(f, line[1], "/tmp", &e)) FUZZ_REQUIRE_MSG(e);
    }
    char *js = fq_fakequant_json(f, 0);
    free(js);
    fq_fakequant_free(f);
    free(s);
    return 0;
}
