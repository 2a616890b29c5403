/* cmd_demo.c - `fqlm demo`: the experiment of the report, done with distribution metrics
 * instead of a text comparison, then a small sweep. Runs on the bundled model in well
 * under a minute on two cores. */
#include <string.h>

#include "cli.h"
#include "opts.h"
#include "report.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: fqlm demo [-m MODEL] [-o DIR] [-t N]\n\n"
            "Runs, on the bundled model (or MODEL):\n"
            "  1. the report's experiment: the last layer's ffn_norm rounded to bf16, prompt\n"
            "     \"What is the capital of France?\", 30 tokens, seed 42: both texts, and the\n"
            "     KL divergence, top-1 agreement and perplexity that a text comparison cannot see;\n"
            "  2. the same with ffn_norm in bf16 in every layer;\n"
            "  3. the logits in bf16;\n"
            "  4. a sweep of five nodes x every layer x bf16, fp8_e4m3 and mxfp4 over data/eval.txt,\n"
            "     ending with where its heatmap and HTML report were written.\n"
            "  -o DIR      where the Markdown reports and the sweep go (default fqlm-demo); a rerun\n"
            "              reuses the finished sweep rows\n"
            "  -t N        threads (default 1: the bundled model is too small to gain from more)\n");
}

static int step(const char *title, int (*fn)(int, char **), char **argv) {
    int argc = 0;
    while (argv[argc]) argc++;
    printf("\n================================================================================\n%s\n$ fqlm",
           title);
    for (int i = 0; i < argc; i++) printf(" %s%s%s", strchr(argv[i], ' ') ? "\"" : "", argv[i], strchr(argv[i], ' ') ? "\"" : "");
    printf("\n================================================================================\n");
    fflush(stdout);
    int rc = fn(argc, argv);
    fflush(stdout);
    fflush(stderr);
    return rc;
}

int cmd_demo(int argc, char **argv) {
    const char *dir = "fqlm-demo", *model = NULL, *threads = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "-m") || !strcmp(argv[i], "-t")) && i + 1 < argc) {
            const char **dst = argv[i][1] == 'o' ? &dir : argv[i][1] == 'm' ? &model : &threads;
            *dst = argv[++i];
            continue;
        }
        cli_error("demo: unknown option '%s' (see fqlm demo --help)", argv[i]);
        return 2;
    }
    if (!model) model = cli_default_model();
    char eval[4096];
    snprintf(eval, sizeof eval, "%s", "data/eval.txt");
    {
        FILE *f = fopen(eval, "r");
        if (f) fclose(f);
        else {
            /* beside the binary's model: <root>/models/x.gguf -> <root>/data/eval.txt */
            const char *slash = strrchr(model, '/');
            const char *root_end = NULL;
            if (slash) {
                for (const char *p = slash - 1; p >= model; p--)
                    if (*p == '/') {
                        root_end = p;
                        break;
                    }
            }
            if (root_end) snprintf(eval, sizeof eval, "%.*s/data/eval.txt", (int)(root_end - model), model);
        }
    }
    char md1[4200], md2[4200], md3[4200], sweep_dir[4200];
    snprintf(md1, sizeof md1, "%s/1-ffn_norm-last-layer-bf16.md", dir);
    snprintf(md2, sizeof md2, "%s/2-ffn_norm-all-layers-bf16.md", dir);
    snprintf(md3, sizeof md3, "%s/3-logits-bf16.md", dir);
    snprintf(sweep_dir, sizeof sweep_dir, "%s/sweep", dir);
    if (report_mkdir_p(dir)) {
        cli_error("cannot create the directory '%s'", dir);
        return 1;
    }
    /* one thread unless asked: the bundled model's 64-wide rows are too small for a
     * second thread to pay for its synchronisation, and on a busy machine a spinning
     * barrier per step can cost more than the work */
    char *T = (char *)(threads ? threads : "1");
    char *prompt = "What is the capital of France?";
    int rc;
    {
        char *a[] = {"compare", "-m", (char *)model, "--fake-quant-ffn-norm", "bf16", "-p", prompt, "-n", "30", "--seed",
                     "42", "--report", md1, T ? "-t" : NULL, T, NULL};
        rc = step("1. The report's experiment: the last layer's ffn_norm rounded to bf16.\n"
                  "   The texts agree, and a text comparison stops here; the distribution metrics\n"
                  "   show the effect and its size.",
                  cmd_compare, a);
        if (rc) return rc;
    }
    {
        char *a[] = {"compare", "-m", (char *)model, "--fake-quant-ffn-norm", "bf16", "--fake-quant-layer", "-1", "-p",
                     prompt, "-n", "30", "--seed", "42", "--report", md2, T ? "-t" : NULL, T, NULL};
        rc = step("2. ffn_norm rounded to bf16 in every layer.", cmd_compare, a);
        if (rc) return rc;
    }
    {
        char *a[] = {"compare", "-m", (char *)model, "--fake-quant", "bf16", "-p", prompt, "-n", "30", "--seed", "42",
                     "--report", md3, T ? "-t" : NULL, T, NULL};
        rc = step("3. The logits (result_output) rounded to bf16.", cmd_compare, a);
        if (rc) return rc;
    }
    {
        char *a[] = {"sweep", "-m", (char *)model, "-f", eval, "--nodes", "attn_norm,ffn_norm,kqv_out,ffn_out,result_output",
                     "--layers", "*", "--formats", "bf16,fp8_e4m3,mxfp4", "-c", "256", "--chunks", "4", "-o", sweep_dir,
                     T ? "-t" : NULL, T, NULL};
        rc = step("4. Where is the model sensitive? Five nodes x every layer x {bf16, fp8_e4m3, mxfp4},\n"
                  "   each against the baseline on data/eval.txt.",
                  cmd_sweep, a);
        if (rc) return rc;
    }
    printf("\nMarkdown reports of steps 1-3: %s, %s, %s\n", md1, md2, md3);
    return 0;
}
