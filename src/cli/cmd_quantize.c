/* cmd_quantize.c - `fqlm quantize IN.gguf OUT.gguf TYPE`: convert a model's weights, as
 * llama-quantize does without an importance matrix. */
#include <string.h>

#include "cli.h"
#include "opts.h"
#include "outfile.h"
#include "qtypes.h"
#include "quantize.h"
#include "requant.h"
#include "session.h"
#include "threadpool.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: fqlm quantize [options] IN.gguf OUT.gguf TYPE\n"
            "       fqlm quantize --plan plan.json [options] IN.gguf OUT.gguf [TYPE]\n"
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
            "Per-tensor types:\n"
            "  --plan FILE         the weight types of a plan (fqlm plan --weights: plan.json's\n"
            "                      \"assignment\": [{\"tensor\", \"type\"}, ...]): each named tensor\n"
            "                      gets exactly that type (rows that are not whole blocks of it\n"
            "                      are an error, not a fallback); the others keep IN's type, or\n"
            "                      get TYPE's choice when TYPE is given. general.file_type: TYPE's,\n"
            "                      else that of the most common block type of the weights (Q4_K\n"
            "                      as Q4_K_M, as llama.cpp's loader guesses it). Activation\n"
            "                      entries are refused (they are fqlm compare --fq rules)\n"
            "  --tensor-type NAME=TYPE\n"
            "                      llama-quantize's option (repeatable; needs a block TYPE):\n"
            "                      NAME, lower-cased, is a regular expression searched in each\n"
            "                      weight's name (POSIX extended: 'attn_v', 'blk\\.1[0-5]\\.ffn_down',\n"
            "                      'ffn_(up|gate)'); the first one that matches gives the type, in\n"
            "                      place of the mix's rules; llama-quantize's fallback still applies\n"
            "  --print-llama-quantize\n"
            "                      print the llama-quantize command line that writes the same\n"
            "                      tensor types (a plan: every weight named by an anchored\n"
            "                      --tensor-type) and write nothing\n"
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
    const char *pos[3], *plan = NULL;
    int npos = 0, quiet = 0, print_cmd = 0, rc = 2;
    char **tt_names = NULL, **plan_names = NULL;
    uint32_t *tt_types = NULL, *plan_types = NULL;
    int n_tt = 0, n_plan = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (!strcmp(a, "--plan") || !strcmp(a, "--tensor-type")) {
            if (i + 1 >= argc) {
                cli_error("quantize: option %s needs a value", a);
                goto out;
            }
            const char *v = argv[++i];
            if (a[2] == 'p') {
                plan = v;
                continue;
            }
            const char *eq = strrchr(v, '=');
            fq_err te;
            uint32_t ty;
            if (!eq || eq == v || !eq[1]) {
                cli_error("quantize: --tensor-type '%s': give NAME=TYPE (e.g. attn_v=q6_k)", v);
                goto out;
            }
            if (fq_wtype_find(eq + 1, &ty, &te)) {
                cli_error("quantize: --tensor-type '%s': %s", v, te.msg);
                goto out;
            }
            char **nn = realloc(tt_names, (size_t)(n_tt + 1) * sizeof *nn);
            if (nn) tt_names = nn;
            uint32_t *nt = realloc(tt_types, (size_t)(n_tt + 1) * sizeof *nt);
            if (nt) tt_types = nt;
            char *name = malloc((size_t)(eq - v) + 1);
            if (!nn || !nt || !name) {
                free(name);
                cli_error("quantize: out of memory");
                rc = 1;
                goto out;
            }
            memcpy(name, v, (size_t)(eq - v));
            name[eq - v] = 0;
            tt_names[n_tt] = name;
            tt_types[n_tt++] = ty;
        } else if (!strcmp(a, "--print-llama-quantize")) {
            print_cmd = 1;
        } else if (!strcmp(a, "--pure")) {
            p.pure = 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            long long v;
            if (i + 1 >= argc) {
                cli_error("quantize: option %s needs a value", a);
                goto out;
            }
            if (cli_parse_int(a, argv[++i], 1, 512, &v)) goto out;
            p.n_threads = (int)v;
        } else if (a[0] == '-' && a[1]) {
            cli_error("quantize: unknown option '%s' (see fqlm quantize --help)", a);
            goto out;
        } else if (npos < 3) {
            pos[npos++] = a;
        } else {
            cli_error("quantize: too many arguments ('%s'): give IN.gguf OUT.gguf TYPE", a);
            goto out;
        }
    }
    if (plan && n_tt) {
        cli_error("quantize: give --plan or --tensor-type, not both");
        goto out;
    }
    if (npos != 3 && !(plan && npos == 2)) {
        cli_error(plan ? "quantize: give IN.gguf OUT.gguf [TYPE] after --plan (see fqlm quantize --help)"
                       : "quantize: give IN.gguf OUT.gguf TYPE (see fqlm quantize --help)");
        goto out;
    }
    fq_err e;
    fq_qmix mix = {"", 0, 0, 0};
    if (npos == 3 && fq_qmix_find(pos[2], &mix, &e)) {
        cli_error("quantize: %s", e.msg);
        goto out;
    }
    if (plan) {
        if (fq_plan_read_weights(plan, &plan_names, &plan_types, &n_plan, &e)) {
            cli_error("quantize: %s", e.msg);
            rc = 1;
            goto out;
        }
        if (n_plan == 0 && npos == 2) {
            cli_error("quantize: %s: the assignment is empty and no TYPE is given: nothing to change", plan);
            goto out;
        }
        p.tt_names = (const char *const *)plan_names;
        p.tt_types = plan_types;
        p.n_tt = n_plan;
    } else if (n_tt) {
        p.tt_names = (const char *const *)tt_names;
        p.tt_types = tt_types;
        p.n_tt = n_tt;
        p.tt_regex = 1;
    }
    p.type = npos == 3 ? pos[2] : NULL;
    p.log = quiet ? NULL : stderr;
    fq_qtypes_init();
    rc = 1;
    if (print_cmd) {
        char *cmd;
        if (fq_quantize_llama_cmd(pos[0], pos[1], &p, &cmd, &e)) {
            cli_error("quantize: %s", e.msg);
            goto out;
        }
        printf("%s\n", cmd);
        free(cmd);
        rc = 0;
        goto out;
    }
    /* a path that cannot take the result fails now, not after the conversion */
    if (fq_out_check(pos[1], &e)) {
        cli_error("quantize: %s", e.msg);
        goto out;
    }
    fq_quantize_stats st;
    int64_t t0 = fq_time_us();
    if (fq_quantize_file(pos[0], pos[1], &p, &st, &e)) {
        cli_error("quantize: %s", e.msg);
        goto out;
    }
    cli_summary_after_stdout_file(pos[1]);
    printf("fqlm quantize: wrote %s (%s%s%s%s): %d tensors (%d converted), %.2f MiB -> %.2f MiB in "
           "%.2f s (%d threads)\n  types:",
           pos[1], npos == 3 ? mix.name : "", npos == 3 && p.n_tt ? ", " : "",
           plan ? "plan" : n_tt ? "--tensor-type" : "", p.pure ? ", pure" : "", st.n_tensors, st.n_converted,
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
    rc = 0;
out:
    for (int k = 0; k < n_tt; k++) free(tt_names[k]);
    free(tt_names);
    free(tt_types);
    fq_plan_free(plan_names, plan_types, n_plan);
    return rc;
}
