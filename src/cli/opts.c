/* opts.c - shared option parsing for model-evaluating commands. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "opts.h"
#include "qtypes.h"
#include "threadpool.h"

void cli_opts_defaults(cli_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_predict = -1;
    o->n_threads = fq_physical_cores();
    o->n_ctx = 0; /* 0: the model's training context, capped at 4096 */
    o->n_batch = 512;
    o->cache_type = FQ_TYPE_F32;
    o->cache_type_k = o->cache_type_v = UINT32_MAX;
    fq_sampler_defaults(&o->sp);
}

int cli_parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno) {
        cli_error("%s: '%s' is not an integer", opt, s);
        return -1;
    }
    if (v < lo || v > hi) {
        cli_error("%s: %lld is out of range (%lld..%lld)", opt, v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_float(const char *opt, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v)) {
        cli_error("%s: '%s' is not a finite number", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_long(const char *opt, const char *v, long lo, long hi, long *out) {
    long long x;
    if (!v) {
        cli_error("option %s needs a value", opt);
        return -1;
    }
    if (cli_parse_int(opt, v, lo, hi, &x)) return -1;
    *out = (long)x;
    return 0;
}

const char *cli_default_model(void) {
    static char path[4096];
    const char *rel = "models/stories260K.gguf";
    if (access(rel, R_OK) == 0) return rel;
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 64);
    if (n > 0) {
        path[n] = 0;
        char *slash = strrchr(path, '/');
        if (slash) {
            strcpy(slash + 1, rel);
            if (access(path, R_OK) == 0) return path;
            /* build/fqlm: one level up */
            *slash = 0;
            char *up = strrchr(path, '/');
            if (up) {
                strcpy(up + 1, rel);
                if (access(path, R_OK) == 0) return path;
            }
        }
    }
    return rel;
}

void cli_opts_help(FILE *f) {
    fprintf(f,
            "model and context:\n"
            "  -m, --model FILE        GGUF model (default: models/stories260K.gguf)\n"
            "  -t, --threads N         threads (default: physical cores, %d here)\n"
            "  -c, --ctx-size N        context length (default: the model's, at most 4096)\n"
            "  -b, --batch-size N      most tokens per forward step (default 512)\n"
            "  --exact                 keep activations in F32 (default: mirror llama.cpp's CPU\n"
            "                          backend, which rounds them to the weight type's partner)\n"
            "  --cache-type T          KV cache type: f32 (default) or f16\n"
            "  -ctk, --cache-type-k T  K cache type alone (f32, f16), as llama.cpp names it\n"
            "  -ctv, --cache-type-v T  V cache type alone (f32, f16); ik_llama.cpp keeps V in\n"
            "                          f16 (its qwen3/gemma3 outputs need --cache-type-v f16)\n"
            "sampling:\n"
            "  -s, --seed N            RNG seed (default 42)\n"
            "  --temp T                temperature (default 0.8; 0 = greedy)\n"
            "  --top-k N               (default 40; 0 = off)\n"
            "  --top-p P               (default 0.95; 1 = off)\n"
            "  --min-p P               (default 0.05; 0 = off)\n"
            "  --repeat-penalty P      (default 1.0 = off)\n"
            "  --repeat-last-n N       tokens the penalty looks back (default 64)\n"
            "fake quantization:\n"
            "  --fq NODES[@LAYERS]=FORMAT[:opts]   round a node's output (repeatable), e.g.\n"
            "                          --fq ffn_norm@21=bf16  --fq 'attn_norm,ffn_norm@*=fp8_e4m3'\n"
            "                          --fq k_cache=fp8_e5m2  --fq 'weight:blk.*.ffn_down.weight=int4:group=32'\n"
            "  --fake-quant-ffn-norm T with --fake-quant-layer N (default: last layer; -1: all)\n"
            "  --fake-quant T          round the logits (result_output)\n"
            "  --fq-stats FILE.json    write the per-node error table\n"
            "  --dump NODES[@LAYERS] --dump-dir DIR   write node values as .npy (repeatable)\n"
            "  --fq-model FILE         the fake-quant run loads FILE instead of -m (e.g. the file\n"
            "                          fqlm quantize wrote, against the F32 model); same vocabulary\n"
            "  --weight-plan FILE      the fake-quant run's weights re-encoded in memory to the\n"
            "                          ggml types of a plan's \"assignment\" ({\"tensor\", \"type\"}),\n"
            "                          as fqlm quantize --plan writes them: the same logits, bit\n"
            "                          for bit, without writing a file\n"
            "A model, prompt, file or name option given twice is an error (--fq and --dump add\n"
            "up); for a number the last value given counts.\n",
            fq_physical_cores());
}

int cli_opts_check(const cli_opts *o) {
    if (o->sys && !o->chat) {
        cli_error("-sys (a system prompt) needs --chat or --chat-template: without a chat "
                  "template it would be ignored");
        return 2;
    }
    return 0;
}

/* --dump accumulates: the selections joined with ';' (which no selection contains), split
 * again by the session. */
static char dump_buf[4096];

int cli_opts_parse(cli_opts *o, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    const char *val = *i + 1 < argc ? argv[*i + 1] : NULL;
    long long iv;
    double fv;
    /* Options naming a text, a file or a setting given by name: a second one would silently
     * replace the first (a prompt, an output file), so it is refused. Numbers follow the
     * usual last-one-counts rule (a script may append "-t 1" to override its defaults).
     * Aliases share one bit. */
    static const char *const single[] = {
        "-m|--model", "-p|--prompt", "-f|--file", "--cache-type|-ctk", "--chat-template",
        "-sys|--system-prompt", "--json", "--fake-quant-ffn-norm", "--fake-quant-layer",
        "--fake-quant", "--fq-stats", "--dump-dir", "--fq-model", "--weight-plan",
    };
    for (size_t k = 0; k < FQ_ARRAY_LEN(single); k++) {
        const char *s = single[k], *bar = strchr(s, '|');
        size_t l1 = bar ? (size_t)(bar - s) : strlen(s);
        int match = (strlen(a) == l1 && !strncmp(a, s, l1)) || (bar && !strcmp(a, bar + 1));
        if (!match) continue;
        if (o->given >> k & 1) {
            cli_error("option %s is given twice: give it once (a second value would silently "
                      "replace the first)", a);
            return -1;
        }
        if (val) o->given |= 1ull << k; /* without a value NEED() reports it */
        break;
    }
#define IS(s) (!strcmp(a, s))
#define NEED()                                          \
    do {                                                \
        if (!val) {                                     \
            cli_error("option %s needs a value", a);    \
            return -1;                                  \
        }                                               \
        (*i)++;                                         \
    } while (0)
    if (IS("-m") || IS("--model")) { NEED(); o->model = val; return 1; }
    if (IS("-p") || IS("--prompt")) { NEED(); o->prompt = val; return 1; }
    if (IS("-f") || IS("--file")) { NEED(); o->prompt_file = val; return 1; }
    if (IS("-n") || IS("--n-predict")) {
        NEED();
        if (cli_parse_int(a, val, -1, INT_MAX, &iv)) return -1;
        o->n_predict = (int)iv;
        return 1;
    }
    if (IS("-t") || IS("--threads")) {
        NEED();
        if (cli_parse_int(a, val, 1, 512, &iv)) return -1;
        o->n_threads = (int)iv;
        return 1;
    }
    if (IS("-c") || IS("--ctx-size")) {
        NEED();
        if (cli_parse_int(a, val, 1, 1 << 22, &iv)) return -1;
        o->n_ctx = (int)iv;
        return 1;
    }
    if (IS("-b") || IS("--batch-size")) {
        NEED();
        if (cli_parse_int(a, val, 1, 1 << 16, &iv)) return -1;
        o->n_batch = (int)iv;
        return 1;
    }
    if (IS("-s") || IS("--seed")) {
        NEED();
        if (cli_parse_int(a, val, 0, LLONG_MAX, &iv)) return -1;
        o->sp.seed = (uint64_t)iv;
        o->seed_given = 1;
        return 1;
    }
    if (IS("--temp")) {
        NEED();
        if (cli_parse_float(a, val, &fv)) return -1;
        o->sp.temp = (float)fv;
        return 1;
    }
    if (IS("--top-k")) {
        NEED();
        if (cli_parse_int(a, val, 0, INT_MAX, &iv)) return -1;
        o->sp.top_k = (int)iv;
        return 1;
    }
    if (IS("--top-p")) {
        NEED();
        if (cli_parse_float(a, val, &fv)) return -1;
        o->sp.top_p = (float)fv;
        return 1;
    }
    if (IS("--min-p")) {
        NEED();
        if (cli_parse_float(a, val, &fv)) return -1;
        o->sp.min_p = (float)fv;
        return 1;
    }
    if (IS("--repeat-penalty")) {
        NEED();
        if (cli_parse_float(a, val, &fv)) return -1;
        o->sp.repeat_penalty = (float)fv;
        return 1;
    }
    if (IS("--repeat-last-n")) {
        NEED();
        if (cli_parse_int(a, val, 0, 1 << 20, &iv)) return -1;
        o->sp.repeat_last_n = (int)iv;
        return 1;
    }
    if (IS("--exact")) { o->exact = 1; return 1; }
    if (IS("--cache-type") || IS("--cache-type-k") || IS("-ctk") || IS("--cache-type-v") || IS("-ctv")) {
        NEED();
        uint32_t t;
        if (!strcmp(val, "f32")) t = FQ_TYPE_F32;
        else if (!strcmp(val, "f16")) t = FQ_TYPE_F16;
        else {
            cli_error("%s: unknown cache type '%s' (known: f32, f16)", a, val);
            return -1;
        }
        if (IS("--cache-type")) o->cache_type = t;
        else if (IS("--cache-type-k") || IS("-ctk")) o->cache_type_k = t;
        else o->cache_type_v = t;
        return 1;
    }
    if (IS("--chat")) { o->chat = 1; return 1; }
    if (IS("--chat-template")) { NEED(); o->chat_template = val; o->chat = 1; return 1; }
    if (IS("-sys") || IS("--system-prompt")) { NEED(); o->sys = val; return 1; }
    if (IS("--json")) { NEED(); o->json = val; return 1; }
    if (IS("--fq")) {
        NEED();
        if (o->n_rules == CLI_MAX_RULES) {
            cli_error("too many --fq rules (at most %d)", CLI_MAX_RULES);
            return -1;
        }
        o->rules[o->n_rules++] = val;
        return 1;
    }
    if (IS("--fake-quant-ffn-norm")) { NEED(); o->fq_ffn_norm = val; return 1; }
    if (IS("--fake-quant-layer")) { NEED(); o->fq_layer = val; return 1; }
    if (IS("--fake-quant")) { NEED(); o->fq_logits = val; return 1; }
    if (IS("--fq-stats")) { NEED(); o->fq_stats = val; return 1; }
    if (IS("--fq-model")) { NEED(); o->fq_model = val; return 1; }
    if (IS("--weight-plan")) { NEED(); o->weight_plan = val; return 1; }
    if (IS("--dump")) {
        NEED();
        size_t used = o->dump ? strlen(dump_buf) : 0, n = strlen(val);
        if (!n || strchr(val, ';')) {
            cli_error("--dump: '%s' is not a selection NODES[@LAYERS]", val);
            return -1;
        }
        if (used + n + 2 > sizeof dump_buf) {
            cli_error("--dump: too many selections (%zu bytes at most in all)", sizeof dump_buf - 1);
            return -1;
        }
        if (used) dump_buf[used++] = ';';
        memcpy(dump_buf + used, val, n + 1);
        o->dump = dump_buf;
        return 1;
    }
    if (IS("--dump-dir")) { NEED(); o->dump_dir = val; return 1; }
    if (IS("-v") || IS("--verbose")) { o->verbose = 1; return 1; }
#undef IS
#undef NEED
    return 0;
}
