/* cmd_quantize.c - `fqlm quantize IN.gguf OUT.gguf TYPE`: convert a model's weights, as
 * llama-quantize does without an importance matrix. */
#include <string.h>

#include "cli.h"
#include "opts.h"
#include "outfile.h"
#include "qtypes.h"
#include "quantize.h"
#include "session.h"
#include "threadpool.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: fqlm quantize [options] IN.gguf OUT.gguf TYPE\n"
            "\n"
            "Converts the weights of a model to TYPE, choosing each tensor's type as llama.cpp's\n"
            "llama-quantize does (no importance matrix) and encoding with the same reference\n"
            "encoders. Metadata is kept (general.file_type updated); norms and other 1-D tensors\n"
            "keep their type.\n"
            "\n"
            "A tensor whose rows are not whole blocks of its type gets llama-quantize's fallback\n"
            "type (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K -> Q4_0; F16 where 32-element\n"
            "blocks do not fit either), each one named in the log. llama.cpp build c392e509 gives\n"
            "Q2_K/Q3_K rows IQ4_NL instead, which fqlm cannot encode. Where llama-quantize has no\n"
            "fallback (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 on rows not a multiple of 32) fqlm refuses too.\n"
            "\n"
            "TYPE: %s\n"
            "\n"
            "  --pure              every weight the base type (no llama-quantize rules)\n"
            "  -t, --threads N     threads (default: physical cores); the output does not\n"
            "                      depend on it\n"
            "  -q, --quiet         no line per tensor\n",
            fq_qmix_names());
}

int cmd_quantize(int argc, char **argv) {
    fq_quantize_params p = {0};
    p.n_threads = fq_physical_cores();
    const char *pos[3];
    int npos = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--pure")) {
            p.pure = 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            long long v;
            if (i + 1 >= argc) {
                cli_error("quantize: option %s needs a value", a);
                return 2;
            }
            if (cli_parse_int(a, argv[++i], 1, 512, &v)) return 2;
            p.n_threads = (int)v;
        } else if (a[0] == '-' && a[1]) {
            cli_error("quantize: unknown option '%s' (see fqlm quantize --help)", a);
            return 2;
        } else if (npos < 3) {
            pos[npos++] = a;
        } else {
            cli_error("quantize: too many arguments ('%s'): give IN.gguf OUT.gguf TYPE", a);
            return 2;
        }
    }
    if (npos != 3) {
        cli_error("quantize: give IN.gguf OUT.gguf TYPE (see fqlm quantize --help)");
        return 2;
    }
    fq_err e;
    fq_qmix mix;
    if (fq_qmix_find(pos[2], &mix, &e)) {
        cli_error("quantize: %s", e.msg);
        return 2;
    }
    p.type = pos[2];
    p.log = quiet ? NULL : stderr;
    fq_qtypes_init();
    /* a path that cannot take the result fails now, not after the conversion */
    if (fq_out_check(pos[1], &e)) {
        cli_error("quantize: %s", e.msg);
        return 1;
    }
    fq_quantize_stats st;
    int64_t t0 = fq_time_us();
    if (fq_quantize_file(pos[0], pos[1], &p, &st, &e)) {
        cli_error("quantize: %s", e.msg);
        return 1;
    }
    cli_summary_after_stdout_file(pos[1]);
    printf("fqlm quantize: wrote %s (%s%s): %d tensors (%d converted), %.2f MiB -> %.2f MiB in "
           "%.2f s (%d threads)\n  types:",
           pos[1], mix.name, p.pure ? ", pure" : "", st.n_tensors, st.n_converted,
           st.bytes_in / 1048576.0, st.bytes_out / 1048576.0, (fq_time_us() - t0) / 1e6,
           p.n_threads);
    for (int t = 0; t < (int)FQ_ARRAY_LEN(st.n_by_type); t++)
        if (st.n_by_type[t]) printf(" %s %d", fq_type_name((uint32_t)t), st.n_by_type[t]);
    printf("\n");
    if (st.n_fallback) {
        printf("  note: %d tensors have rows that are not whole blocks of the type the mix gives "
               "them and got llama-quantize's fallback type instead (%s)\n",
               st.n_fallback, quiet ? "run without -q to see which" : "the 'fallback:' lines above");
        if (st.n_fallback_f16)
            printf("  note: %d of them in F16: their rows are not whole 32-element blocks either "
                   "(llama-quantize's last resort)\n", st.n_fallback_f16);
        if (st.n_fallback_q4_0)
            printf("  note: %d of them Q2_K/Q3_K -> Q4_0, as llama.cpp's current llama-quantize "
                   "does; its build c392e509 (the reference of the tests) writes IQ4_NL there, "
                   "which fqlm cannot encode, so these tensors differ from that build's file\n",
                   st.n_fallback_q4_0);
    }
    return 0;
}
