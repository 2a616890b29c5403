/* cmd_synth.c - `fqlm synth`: write a random-weight llama model of a given shape and type. */
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "opts.h"
#include "outfile.h"
#include "qtypes.h"
#include "quantize.h"
#include "session.h"
#include "synth.h"
#include "threadpool.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: fqlm synth (--shape NAME | --layers N --embd E --ff F --heads H [--kv-heads K])\n"
            "                  [--type TYPE] [--seed S] [--vocab-from GGUF] -o OUT.gguf\n"
            "\n"
            "Writes a llama model with random weights (normal, std 1/sqrt(fan_in); norms\n"
            "1 + 0.1 normal): same shape and tensor types as a real one, so it runs at the same\n"
            "speed. The file depends only on the options (not on -t).\n"
            "\n"
            "  --shape NAME        a known shape: %s\n"
            "                      (the options below override its values)\n"
            "  --layers N          block count\n"
            "  --embd E            embedding length\n"
            "  --ff F              feed-forward length\n"
            "  --heads H           attention heads (head size = E / H, must be even)\n"
            "  --kv-heads K        key/value heads (default: H)\n"
            "  --ctx N             context length (default: the shape's, else 2048)\n"
            "  --rope-base B       RoPE frequency base (default 10000)\n"
            "  --rms-eps X         RMSNorm epsilon (default 1e-5)\n"
            "  --type TYPE         weight types (default f32): %s\n"
            "  --pure              every weight the base type (no llama-quantize rules)\n"
            "  --vocab-from GGUF   copy the tokenizer.* keys (the vocabulary size follows)\n"
            "                      (default: ggml-vocab-llama-spm.gguf for 32000-token shapes,\n"
            "                      else models/stories260K.gguf, 512 tokens)\n"
            "  --name NAME         general.name (default: the shape, or synthetic-llama)\n"
            "  -s, --seed S        (default 7)\n"
            "  -t, --threads N     threads encoding rows (default: physical cores)\n"
            "  -o, --output FILE   the GGUF file to write\n"
            "  --dry-run           print the tensor types and sizes only, write nothing\n"
            "  -v, --verbose       one line per tensor\n",
            fq_synth_shape_names(), fq_qmix_names());
}

/* A data file under models/ or tests/data/models/, looked up in the working directory,
 * then beside the executable and one level up. NULL when nowhere. */
static const char *find_data_file(const char *name) {
    static char path[8192];
    static const char *const dirs[] = {"models/", "tests/data/models/"};
    for (size_t i = 0; i < FQ_ARRAY_LEN(dirs); i++) {
        snprintf(path, sizeof path, "%s%s", dirs[i], name);
        if (access(path, R_OK) == 0) return path;
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = 0;
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash) return NULL;
        *slash = 0;
        for (size_t i = 0; i < FQ_ARRAY_LEN(dirs); i++) {
            snprintf(path, sizeof path, "%s/%s%s", exe, dirs[i], name);
            if (access(path, R_OK) == 0) return path;
        }
    }
    return NULL;
}

int cmd_synth(int argc, char **argv) {
    fq_synth_params p;
    fq_synth_defaults(&p);
    p.n_threads = fq_physical_cores();
    const char *shape = NULL, *out = NULL, *name = NULL;
    int verbose = 0;
    /* shape values given one by one, applied over --shape whatever the order */
    long long layers = -1, embd = -1, ff = -1, heads = -1, kv_heads = -1, ctx = -1;
    double rope_base = -1, rms_eps = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        long long iv;
#define IS(s) (!strcmp(a, s))
#define NEED()                                              \
    do {                                                    \
        if (!val) {                                         \
            cli_error("synth: option %s needs a value", a); \
            return 2;                                       \
        }                                                   \
        i++;                                                \
    } while (0)
#define INT_OPT(var, lo, hi)                                       \
    do {                                                           \
        NEED();                                                    \
        if (cli_parse_int(a, val, lo, hi, &iv)) return 2;          \
        var = iv;                                                  \
    } while (0)
        if (IS("-h") || IS("--help")) {
            usage(stdout);
            return 0;
        } else if (IS("--shape")) {
            NEED();
            shape = val;
        } else if (IS("--layers")) INT_OPT(layers, 1, 4096);
        else if (IS("--embd")) INT_OPT(embd, 1, 1 << 20);
        else if (IS("--ff")) INT_OPT(ff, 1, 1 << 22);
        else if (IS("--heads")) INT_OPT(heads, 1, 1 << 16);
        else if (IS("--kv-heads")) INT_OPT(kv_heads, 1, 1 << 16);
        else if (IS("--ctx")) INT_OPT(ctx, 1, 1 << 24);
        else if (IS("--rope-base")) {
            NEED();
            if (cli_parse_float(a, val, &rope_base)) return 2;
        } else if (IS("--rms-eps")) {
            NEED();
            if (cli_parse_float(a, val, &rms_eps)) return 2;
        } else if (IS("--type")) {
            NEED();
            p.type = val;
        } else if (IS("--pure")) {
            p.pure = 1;
        } else if (IS("--vocab-from")) {
            NEED();
            p.vocab = val;
        } else if (IS("--name")) {
            NEED();
            name = val;
        } else if (IS("-s") || IS("--seed")) {
            NEED();
            if (cli_parse_int(a, val, 0, LLONG_MAX, &iv)) return 2;
            p.seed = (uint64_t)iv;
        } else if (IS("-t") || IS("--threads")) INT_OPT(p.n_threads, 1, 512);
        else if (IS("-o") || IS("--output")) {
            NEED();
            out = val;
        } else if (IS("--dry-run")) {
            p.dry_run = 1;
        } else if (IS("-v") || IS("--verbose")) {
            verbose = 1;
        } else {
            cli_error("synth: unknown option '%s' (see fqlm synth --help)", a);
            return 2;
        }
#undef INT_OPT
#undef NEED
#undef IS
    }
    fq_err e;
    if (shape && fq_synth_shape(shape, &p, &e)) {
        cli_error("synth: %s", e.msg);
        return 2;
    }
    if (layers > 0) p.n_layer = (int)layers;
    if (embd > 0) p.n_embd = (int)embd;
    if (ff > 0) p.n_ff = (int)ff;
    if (heads > 0) p.n_head = (int)heads;
    if (kv_heads > 0) p.n_head_kv = (int)kv_heads;
    else if (heads > 0 && !shape) p.n_head_kv = p.n_head;
    if (ctx > 0) p.n_ctx = (int)ctx;
    if (rope_base >= 0) p.rope_base = (float)rope_base;
    if (rms_eps >= 0) p.rms_eps = (float)rms_eps;
    if (!p.n_layer || !p.n_embd || !p.n_ff || !p.n_head) {
        cli_error("synth: give --shape NAME, or --layers, --embd, --ff and --heads");
        return 2;
    }
    if (!out && !p.dry_run) {
        cli_error("synth: no output file (-o OUT.gguf)");
        return 2;
    }
    fq_qmix mix;
    if (fq_qmix_find(p.type, &mix, &e)) {
        cli_error("synth: --type: %s", e.msg);
        return 2;
    }
    if (!p.vocab) {
        if (p.n_vocab_hint == 32000) {
            p.vocab = find_data_file("ggml-vocab-llama-spm.gguf");
            if (!p.vocab) {
                cli_error("synth: the 32000-token vocabulary ggml-vocab-llama-spm.gguf is not in "
                          "models/ or tests/data/models/: give one with --vocab-from GGUF");
                return 2;
            }
        } else {
            p.vocab = cli_default_model();
        }
    }
    p.name = name ? name : shape ? shape : "synthetic-llama";
    p.log = verbose ? stderr : NULL;
    fq_qtypes_init();
    if (!p.dry_run && fq_out_check(out, &e)) { /* before the weights are generated */
        cli_error("synth: %s", e.msg);
        return 1;
    }
    fq_synth_stats st;
    if (fq_synth_write(&p, out, &st, &e)) {
        cli_error("synth: %s", e.msg);
        return 1;
    }
    cli_summary_after_stdout_file(out);
    printf("fqlm synth: %s %s: %d layers, n_embd %d, n_ff %d, %d heads (%d KV), n_vocab %d "
           "(from %s)\n",
           p.dry_run ? "would write" : "wrote", out ? out : "(dry run)", p.n_layer, p.n_embd, p.n_ff, p.n_head, p.n_head_kv, st.n_vocab, p.vocab);
    printf("  %s%s: %.2f M parameters, %.2f MiB of tensors, %d tensors:", mix.name,
           p.pure ? " (pure)" : "", st.n_params / 1e6, st.bytes / 1048576.0, st.n_tensors);
    for (int t = 0; t < (int)FQ_ARRAY_LEN(st.n_by_type); t++)
        if (st.n_by_type[t]) printf(" %s %d", fq_type_name((uint32_t)t), st.n_by_type[t]);
    printf("\n  seed %llu; %.2f s generating and encoding (%d threads), %.2f s writing\n",
           (unsigned long long)p.seed, st.gen_us / 1e6, p.n_threads, st.write_us / 1e6);
    if (st.n_fallback)
        printf("  note: %d tensors had rows that are not whole blocks of their type and fell back "
               "(as llama-quantize does)\n",
               st.n_fallback);
    return 0;
}
