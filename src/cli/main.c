/* main.c - the fqlm program: one binary, subcommands. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cpu.h"
#include "formats.h"
#include "outfile.h"
#include "qtypes.h"

void cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("fqlm: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} command;

/* One line per subcommand; keep sorted as the user reads them. */
static const command commands[] = {
    {"demo", cmd_demo, "the report's experiment done with distribution metrics, then a sweep (< 1 min)"},
    {"run", cmd_run, "generate text, optionally with fake-quant rules"},
    {"compare", cmd_compare, "baseline vs fake-quant: texts, exact KL / top-1 / perplexity, timings"},
    {"ppl", cmd_ppl, "perplexity of a text as llama-perplexity computes it, with fake-quant rules"},
    {"diff", cmd_diff, "A vs B (another file, or rules) node by node: where the error enters, how it travels"},
    {"sweep", cmd_sweep, "every (node, layer, format) against the baseline: CSV, heatmap, HTML"},
    {"plan", cmd_plan, "mixed precision under a measured budget: assignment, rules, Pareto plot, interactions"},
    {"inspect", cmd_inspect, "show a GGUF file's metadata, hyperparameters and tensors"},
    {"formats", cmd_formats, "list the number formats fake quantization can emulate"},
    {"bench", cmd_bench, "benchmarks (`bench formats`: format throughput)"},
    {"synth", cmd_synth, "write a random-weight llama model of a given shape and type"},
    {"quantize", cmd_quantize, "convert a model's weights to another type, as llama-quantize"},
    {"tokenize", cmd_tokenize, "token ids and pieces of a text, as llama-tokenize (vocab-only files too)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: fqlm COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`fqlm COMMAND --help` shows a command's options.\n"
               "Exit status: 0 done, 1 runtime failure, 2 usage error, 3 NaN/Inf logits (the command ran and\n"
               "said where they first appeared, but its text or figures are not valid), 130 interrupted.\n");
}

/* A signal that ends the program removes the temporary files of outputs being written
 * (commands that handle SIGINT themselves finish their writes instead). */
static void on_fatal_signal(int sig) {
    fq_out_remove_temps();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_handlers(void) {
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fatal_signal;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN) sigaction(sigs[i], &sa, NULL);
    }
    /* a file over RLIMIT_FSIZE is a write error with a message, not a kill */
    signal(SIGXFSZ, SIG_IGN);
}

int main(int argc, char **argv) {
    install_handlers();
    /* pick the SIMD kernels once, before any thread starts */
    fq_qtypes_init();
    fq_formats_init();
    if (fq_cpu_isa_error()) { /* FQLM_ISA asked for a level this CPU lacks, or no level */
        cli_error("%s", fq_cpu_isa_error());
        return 2;
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name)) continue;
        if (!commands[i].fn) {
            cli_error("command '%s' is not part of this build", argv[1]);
            return 2;
        }
        int rc = commands[i].fn(argc - 1, argv + 1);
        const char *last;
        int stale = fq_out_stale_removed(&last);
        if (stale)
            fprintf(stderr, "fqlm: removed %d temporary file%s that a killed run had left (%s%s)\n", stale,
                    stale == 1 ? "" : "s", last, stale == 1 ? "" : ", ...");
        return rc;
    }
    cli_error("unknown command '%s'", argv[1]);
    usage(stderr);
    return 2;
}
