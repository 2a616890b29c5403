/* cmd_synth.c - `fqlm synth`: write a random-weight model of a given family, shape and type. */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "arch_table.h"
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
            "usage: fqlm synth (--shape NAME | [--arch A] --layers N --embd E --ff F --heads H\n"
            "                  [--kv-heads K]) [--type TYPE] [--seed S] [--vocab-from GGUF] -o OUT.gguf\n"
            "\n"
            "Writes a model of any family fqlm runs with random weights (normal, std\n"
            "1/sqrt(fan_in); norms 1 + 0.1 normal; biases 0.1 normal): the tensors, keys, shapes\n"
            "and tensor types of a real one, so it runs at the same speed. The file depends only\n"
            "on the options (not on -t).\n"
            "\n"
            "  --shape NAME        a real model's family and hyperparameters: %s\n"
            "                      (the options below override its values)\n"
            "  --arch A            family, general.architecture (default llama): %s\n"
            "                      (with --shape: the shape's sizes in another family)\n"
            "  --layers N          block count\n"
            "  --embd E            embedding length\n"
            "  --ff F              feed-forward length\n"
            "  --heads H           attention heads\n"
            "  --kv-heads K        key/value heads (default: H)\n"
            "  --head-dim D        head size (default E / H; written as attention.key_length)\n"
            "  --ctx N             context length (default: the shape's, else 2048)\n"
            "  --rope-base B       RoPE frequency base (default: the shape's, else 10000)\n"
            "  --rms-eps X         RMSNorm epsilon (default: the shape's, else 1e-5)\n"
            "  --tied, --untied    output projection tied to token_embd or its own output.weight\n"
            "                      (default: the family's; gemma2 is always tied, phi3 and\n"
            "                      olmo2 never)\n"
            "  --sliding-window N  phi3, gemma2, gemma3 (default 2047, 4096, 512)\n"
            "  --softcap A,F       gemma2's attention and final logit soft-caps (default 50,30)\n"
            "  --rope-scale X      rope.scaling linear factor (gemma3, llama)\n"
            "  --llama3-rope F     llama: rope_freqs.weight with Llama 3 factor F (low 1, high 4,\n"
            "                      original context 8192; 0: none)\n"
            "  --vocab-size N      pad the vocabulary with [PAD1].. tokens to N (default: the\n"
            "                      shape's real size with the default vocabulary, else none)\n"
            "  --type TYPE         weight types (default f32): %s\n"
            "  --pure              every weight the base type (no llama-quantize rules)\n"
            "  --vocab-from GGUF   copy the tokenizer.* keys (default: ggml-vocab-llama-spm.gguf\n"
            "                      for shapes of 32000 tokens and more, padded to the shape's,\n"
            "                      else models/stories260K.gguf, 512 tokens)\n"
            "  --name NAME         general.name (default: the shape, or synthetic-ARCH)\n"
            "  -s, --seed S        (default 7)\n"
            "  -t, --threads N     threads encoding rows (default: physical cores)\n"
            "  -o, --output FILE   the GGUF file to write\n"
            "  --dry-run           print the tensor types and sizes only, write nothing\n"
            "  -v, --verbose       one line per tensor\n",
            fq_synth_shape_names(), fq_arch_names(), fq_qmix_names());
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
    const char *shape = NULL, *out = NULL, *name = NULL, *arch = NULL;
    int verbose = 0, tied = -1;
    /* shape values given one by one, applied over --shape whatever the order */
    long long layers = -1, embd = -1, ff = -1, heads = -1, kv_heads = -1, ctx = -1, head_dim = -1,
              window = -1, vocab_size = -1;
    double rope_base = -1, rms_eps = -1, rope_scale = -1, llama3 = -1, cap_a = -1, cap_f = -1;
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
        } else if (IS("--arch")) {
            NEED();
            arch = val;
        } else if (IS("--layers")) INT_OPT(layers, 1, 4096);
        else if (IS("--embd")) INT_OPT(embd, 1, 1 << 20);
        else if (IS("--ff")) INT_OPT(ff, 1, 1 << 22);
        else if (IS("--heads")) INT_OPT(heads, 1, 1 << 16);
        else if (IS("--kv-heads")) INT_OPT(kv_heads, 1, 1 << 16);
        else if (IS("--ctx")) INT_OPT(ctx, 1, 1 << 24);
        else if (IS("--head-dim")) INT_OPT(head_dim, 2, 4096);
        else if (IS("--sliding-window")) INT_OPT(window, 1, 1 << 24);
        else if (IS("--vocab-size")) INT_OPT(vocab_size, 1, 1 << 24);
        else if (IS("--tied")) tied = 1;
        else if (IS("--untied")) tied = 0;
        else if (IS("--rope-scale")) {
            NEED();
            if (cli_parse_float(a, val, &rope_scale)) return 2;
            if (!(rope_scale >= 1.0)) {
                cli_error("synth: --rope-scale %s must be at least 1", val);
                return 2;
            }
        } else if (IS("--llama3-rope")) {
            NEED();
            if (cli_parse_float(a, val, &llama3)) return 2;
            if (!(llama3 == 0 || llama3 >= 1.0)) {
                cli_error("synth: --llama3-rope %s must be 0 (none) or at least 1", val);
                return 2;
            }
        } else if (IS("--softcap")) {
            NEED();
            char *end = NULL;
            cap_a = strtod(val, &end);
            if (end == val || *end != ',' || (cap_f = strtod(end + 1, &end), *end) ||
                !(cap_a > 0 && cap_a < 1e30) || !(cap_f > 0 && cap_f < 1e30)) {
                cli_error("synth: --softcap '%s' must be two positive numbers ATTN,FINAL", val);
                return 2;
            }
        } else if (IS("--rope-base") || IS("--rms-eps")) {
            NEED();
            double v;
            if (cli_parse_float(a, val, &v)) return 2;
            /* RoPE's angles are pos * base^(-2i/d) and RMSNorm divides by sqrt(mean + eps):
             * a base or epsilon of zero or below gives Inf/NaN */
            if (!(v > 0) || (float)v == 0 || isinf((float)v)) {
                cli_error("synth: %s %s: must be a positive number that a float holds", a, val);
                return 2;
            }
            *(IS("--rope-base") ? &rope_base : &rms_eps) = v;
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
            if (out) {
                cli_error("synth: %s is given twice: give one output file", a);
                return 2;
            }
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
    if (arch) {
        if (!fq_arch_find(arch, strlen(arch))) {
            cli_error("synth: --arch: unknown architecture '%s' (known: %s)", arch, fq_arch_names());
            return 2;
        }
        if (shape && strcmp(arch, p.arch)) {
            /* the shape's sizes in another family: its family options do not carry over */
            p.tied = -1;
            p.sliding_window = 0;
            p.attn_softcap = p.final_softcap = 0;
            memset(&p.rope3, 0, sizeof p.rope3);
        }
        p.arch = arch;
    }
    if (head_dim > 0) p.head_dim = (int)head_dim;
    if (window > 0) p.sliding_window = (int)window;
    if (tied >= 0) p.tied = tied;
    if (rope_scale >= 0) p.rope_scale = (float)rope_scale;
    if (cap_a > 0) p.attn_softcap = (float)cap_a, p.final_softcap = (float)cap_f;
    if (llama3 == 0) memset(&p.rope3, 0, sizeof p.rope3);
    else if (llama3 > 0) p.rope3 = (fq_synth_rope3){(float)llama3, 1.0f, 4.0f, 8192};
    if (layers > 0) p.n_layer = (int)layers;
    if (embd > 0) p.n_embd = (int)embd;
    if (ff > 0) p.n_ff = (int)ff;
    if (heads > 0) p.n_head = (int)heads;
    if (kv_heads > 0) p.n_head_kv = (int)kv_heads;
    else if (heads > 0 && !shape) p.n_head_kv = p.n_head;
    if (ctx > 0) p.n_ctx = (int)ctx;
    if (rope_base > 0) p.rope_base = (float)rope_base;
    if (rms_eps > 0) p.rms_eps = (float)rms_eps;
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
    if (vocab_size > 0) p.n_vocab = (int)vocab_size;
    if (!p.vocab) {
        if (p.n_vocab_hint >= 32000) {
            p.vocab = find_data_file("ggml-vocab-llama-spm.gguf");
            if (!p.vocab) {
                cli_error("synth: the 32000-token vocabulary ggml-vocab-llama-spm.gguf is not in "
                          "models/ or tests/data/models/: give one with --vocab-from GGUF");
                return 2;
            }
            if (vocab_size <= 0 && p.n_vocab_hint > 32000) p.n_vocab = p.n_vocab_hint;
        } else {
            p.vocab = cli_default_model();
        }
    }
    static char auto_name[96];
    if (!name) {
        if (shape) snprintf(auto_name, sizeof auto_name, "%s", shape);
        else snprintf(auto_name, sizeof auto_name, "synthetic-%s", p.arch);
        /* llama.cpp keys a Phi-3 tokenizer quirk on "phi3" / "phi-3" in general.name and then
         * wants an <|endoftext|> token, which the SentencePiece vocabulary lacks */
        char low[96];
        for (size_t i = 0; i < sizeof low; i++) low[i] = (char)tolower((unsigned char)auto_name[i]);
        if (strstr(low, "phi3") || strstr(low, "phi-3"))
            snprintf(auto_name, sizeof auto_name, "synthetic Phi 3 (%s)", shape ? "mini shape" : "random");
        name = auto_name;
    }
    p.name = name;
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
    printf("fqlm synth: %s %s: %s, %d layers, n_embd %d, n_ff %d, %d heads (%d KV) of %d, "
           "n_vocab %d (from %s)\n",
           p.dry_run ? "would write" : "wrote", out ? out : "(dry run)", p.arch, p.n_layer, p.n_embd,
           p.n_ff, p.n_head, p.n_head_kv, p.head_dim > 0 ? p.head_dim : p.n_embd / p.n_head,
           st.n_vocab, p.vocab);
    printf("  %s%s: %.2f M parameters, %.2f MiB of tensors, %d tensors:", mix.name,
           p.pure ? " (pure)" : "", st.n_params / 1e6, st.bytes / 1048576.0, st.n_tensors);
    for (int t = 0; t < (int)FQ_ARRAY_LEN(st.n_by_type); t++)
        if (st.n_by_type[t]) printf(" %s %d", fq_type_name((uint32_t)t), st.n_by_type[t]);
    printf("\n  seed %llu; %.2f s generating and encoding (%d threads), %.2f s writing\n",
           (unsigned long long)p.seed, st.gen_us / 1e6, p.n_threads, st.write_us / 1e6);
    if (st.n_fallback)
        printf("  note: %d tensors have rows that are not whole blocks of the type the mix gives "
               "them and got llama-quantize's fallback type instead (Q4_K -> Q5_0, Q5_K -> Q5_1, "
               "Q6_K -> Q8_0, F16 where 32-element blocks do not fit either; Q2_K/Q3_K -> Q4_0 as "
               "llama.cpp's current code does, where its build c392e509 writes IQ4_NL, which fqlm "
               "cannot encode)\n",
               st.n_fallback);
    return 0;
}
