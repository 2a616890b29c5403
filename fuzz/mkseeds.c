/* mkseeds.c - writes the fuzz seed corpora into fuzz/corpus/<target>/ (`make fuzz-seeds`,
 * from the repository root). The files are committed; this program documents where they
 * come from and regenerates them.
 *
 *  gguf:      a real model (stories260K-ff192-q4_0, 208 KB) and truncations of it (header
 *             only, inside the metadata, after the tensor infos, inside the data); tiny
 *             llama models written with the GGUF writer (8-token vocabulary, one layer,
 *             F32 / F16 / BF16 / Q8_0 / Q4_0 weights); a hand-built file with a value of
 *             every metadata type, arrays of every type, nested arrays, empty arrays and
 *             strings, and one-block tensors of several types; a v2 file; an empty-tensor
 *             file with custom alignment.
 *  rules:     --fq rules and format specs of every shape, valid and not.
 *  tokenizer: a flags byte, then text: ASCII, UTF-8 of every length, invalid UTF-8,
 *             control-token text, NUL bytes, long runs.
 *  chat:      real chat templates (zephyr, llama2, chatml, and from tests/data/chat the
 *             Llama 3, Qwen, Gemma and Phi-3 families'; look-alikes) and names. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "gguf.h"
#include "qtypes.h"

#define REAL "tests/data/models/stories260K-ff192-q4_0.gguf"

static int g_files;

static void put(const char *target, const char *name, const void *p, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "fuzz/corpus/%s/%s", target, name);
    fq_err e;
    if (fq_write_file_atomic(path, p, n, &e)) {
        fprintf(stderr, "mkseeds: %s\n", e.msg);
        exit(1);
    }
    g_files++;
}

static void put_str(const char *target, const char *name, const char *s) {
    put(target, name, s, strlen(s));
}

/* ---- hand-built GGUF bytes ---------------------------------------------------------- */

typedef struct {
    uint8_t *b;
    size_t n, cap;
} buf;

static void b_put(buf *B, const void *p, size_t n) {
    if (B->n + n > B->cap) {
        B->cap = (B->n + n) * 2 + 256;
        B->b = realloc(B->b, B->cap);
        FQ_ASSERT(B->b);
    }
    memcpy(B->b + B->n, p, n);
    B->n += n;
}
static void b_u8(buf *B, uint8_t v) { b_put(B, &v, 1); }
static void b_u32(buf *B, uint32_t v) { b_put(B, &v, 4); }
static void b_u64(buf *B, uint64_t v) { b_put(B, &v, 8); }
static void b_str(buf *B, const char *s) {
    b_u64(B, strlen(s));
    b_put(B, s, strlen(s));
}
static void b_pad(buf *B, size_t al) {
    while (B->n % al) b_u8(B, 0);
}

/* Every metadata type, arrays of each, nested arrays; then one-block tensors. */
static void all_types(void) {
    buf B = {0};
    static const uint32_t ttypes[] = {FQ_TYPE_F32, FQ_TYPE_F16, FQ_TYPE_BF16, FQ_TYPE_Q4_0,
                                      FQ_TYPE_Q8_0, FQ_TYPE_Q4_K, FQ_TYPE_Q6_K};
    const int nt = (int)FQ_ARRAY_LEN(ttypes);
    b_put(&B, "GGUF", 4);
    b_u32(&B, 3);
    b_u64(&B, (uint64_t)nt);
    b_u64(&B, 23);
    /* 12 scalars */
    b_str(&B, "t.u8"), b_u32(&B, FQ_GGUF_UINT8), b_u8(&B, 200);
    b_str(&B, "t.i8"), b_u32(&B, FQ_GGUF_INT8), b_u8(&B, 0x80);
    b_str(&B, "t.u16"), b_u32(&B, FQ_GGUF_UINT16), b_put(&B, "\xff\xff", 2);
    b_str(&B, "t.i16"), b_u32(&B, FQ_GGUF_INT16), b_put(&B, "\x00\x80", 2);
    b_str(&B, "t.u32"), b_u32(&B, FQ_GGUF_UINT32), b_u32(&B, 0xffffffffu);
    b_str(&B, "t.i32"), b_u32(&B, FQ_GGUF_INT32), b_u32(&B, 0x80000000u);
    float f = -1.5f;
    b_str(&B, "t.f32"), b_u32(&B, FQ_GGUF_FLOAT32), b_put(&B, &f, 4);
    b_str(&B, "t.bool"), b_u32(&B, FQ_GGUF_BOOL), b_u8(&B, 1);
    b_str(&B, "t.str"), b_u32(&B, FQ_GGUF_STRING), b_str(&B, "h\xc3\xa9llo");
    b_str(&B, "t.u64"), b_u32(&B, FQ_GGUF_UINT64), b_u64(&B, ~0ull);
    b_str(&B, "t.i64"), b_u32(&B, FQ_GGUF_INT64), b_u64(&B, 1ull << 63);
    double d = 1e300;
    b_str(&B, "t.f64"), b_u32(&B, FQ_GGUF_FLOAT64), b_put(&B, &d, 8);
    /* 11 arrays */
    b_str(&B, "a.u8"), b_u32(&B, FQ_GGUF_ARRAY), b_u32(&B, FQ_GGUF_UINT8), b_u64(&B, 3),
        b_put(&B, "\x01\x02\x03", 3);
    b_str(&B, "a.i16"), b_u32(&B, FQ_GGUF_ARRAY), b_u32(&B, FQ_GGUF_INT16), b_u64(&B, 2),
        b_put(&B, "\x01\x00\xff\xff", 4);
    float fs[3] = {0.5f, NAN, -INFINITY};
    b_str(&B, "a.f32"), b_u32(&B, FQ_GGUF_ARRAY), b_u32(&B, FQ_GGUF_FLOAT32), b_u64(&B, 3),
        b_put(&B, fs, sizeof fs);
    b_str(&B, "a.bool"), b_u32(&B, FQ_GGUF_ARRAY), b_u32(&B, FQ_GGUF_BOOL), b_u64(&B, 3),
        b_put(&B, "\x00\x01\x01", 3);
    b_str(&B, "a.str"), b_u32(&B, FQ_GGUF_ARRAY), b_u32(&B, FQ_GGUF_STRING), b_u64(&B, 3),
        b_str(&B, "a"), b_str(&B, ""), b_str(&B, "\xe2\x96\x81x");
    b_str(&B, "a.u64"), b_u32(&B, FQ_GGUF_ARRAY), b_u32(&B, FQ_GGUF_UINT64), b_u64(&B, 1),
        b_u64(&B, 42);
    b_str(&B, "a.i64"), b_u32(&B, FQ_GGUF_ARRAY), b_u32(&B, FQ_GGUF_INT64), b_u64(&B, 1),
        b_u64(&B, (uint64_t)-42);
    b_str(&B, "a.f64"), b_u32(&B, FQ_GGUF_ARRAY), b_u32(&B, FQ_GGUF_FLOAT64), b_u64(&B, 1),
        b_put(&B, &d, 8);
    b_str(&B, "a.empty"), b_u32(&B, FQ_GGUF_ARRAY), b_u32(&B, FQ_GGUF_UINT32), b_u64(&B, 0);
    /* [[1, 2], ["x"], [[]]] */
    b_str(&B, "a.nested"), b_u32(&B, FQ_GGUF_ARRAY), b_u32(&B, FQ_GGUF_ARRAY), b_u64(&B, 3);
    b_u32(&B, FQ_GGUF_INT32), b_u64(&B, 2), b_u32(&B, 1), b_u32(&B, 2);
    b_u32(&B, FQ_GGUF_STRING), b_u64(&B, 1), b_str(&B, "x");
    b_u32(&B, FQ_GGUF_ARRAY), b_u64(&B, 1), b_u32(&B, FQ_GGUF_FLOAT32), b_u64(&B, 0);
    b_str(&B, "general.alignment"), b_u32(&B, FQ_GGUF_UINT32), b_u32(&B, 64);
    /* tensors: one block each, 64-aligned */
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        const fq_type_traits *tr = fq_type_get(ttypes[i]);
        char name[32];
        snprintf(name, sizeof name, "t%d.%s", i, tr->name);
        b_str(&B, name);
        b_u32(&B, i % 2 ? 2 : 1);
        b_u64(&B, (uint64_t)(tr->blck > 1 ? tr->blck : 4));
        if (i % 2) b_u64(&B, 1);
        b_u32(&B, ttypes[i]);
        b_u64(&B, off);
        uint64_t nb = tr->blck > 1 ? tr->type_size : 4 * tr->type_size;
        off += (nb + 63) / 64 * 64;
    }
    b_pad(&B, 64);
    for (uint64_t i = 0; i < off; i++) b_u8(&B, (uint8_t)(i * 37 + 11));
    put("gguf", "all-types.gguf", B.b, B.n);
    /* the same as a v2 file */
    B.b[4] = 2;
    put("gguf", "all-types-v2.gguf", B.b, B.n);
    free(B.b);
}

/* A tiny llama model: 8-token vocabulary, 1 layer, embedding E, weights of type ty. */
static void tiny_model(const char *name, uint32_t ty, int E, int F, int H, int HKV) {
    fq_err e;
    fq_gguf_writer *w = fq_gguf_writer_new(&e);
    FQ_ASSERT(w);
    static const char *const toks[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b",
                                       "\xe2\x96\x81" "a", "ab"};
    const int V = 8;
    float scores[8] = {0, 0, 0, -1, -2, -3, -0.5f, -0.7f};
    int32_t types[8] = {2, 3, 3, 1, 1, 1, 1, 1};
    int ok = fq_gguf_writer_set_str(w, "general.architecture", "llama", &e) == 0 &&
             fq_gguf_writer_set_u32(w, "llama.block_count", 1, &e) == 0 &&
             fq_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)E, &e) == 0 &&
             fq_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)F, &e) == 0 &&
             fq_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)H, &e) == 0 &&
             fq_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)HKV, &e) == 0 &&
             fq_gguf_writer_set_u32(w, "llama.context_length", 64, &e) == 0 &&
             fq_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f, &e) == 0 &&
             fq_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", &e) == 0 &&
             fq_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, (uint64_t)V, &e) == 0 &&
             fq_gguf_writer_set_arr(w, "tokenizer.ggml.scores", FQ_GGUF_FLOAT32, (uint64_t)V, scores, &e) == 0 &&
             fq_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", FQ_GGUF_INT32, (uint64_t)V, types, &e) == 0 &&
             fq_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1, &e) == 0 &&
             fq_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2, &e) == 0 &&
             fq_gguf_writer_set_str(w, "tokenizer.chat_template", "<|user|>\n{{ m }}</s>\n<|assistant|>\n", &e) == 0;
    FQ_ASSERT(ok);
    const int D = E / H, KV = HKV * D;
    struct { const char *name; int n_in, n_out, norm; } ts[] = {
        {"token_embd.weight", E, V, 0}, {"output_norm.weight", E, 1, 1},
        {"blk.0.attn_norm.weight", E, 1, 1}, {"blk.0.ffn_norm.weight", E, 1, 1},
        {"blk.0.attn_q.weight", E, E, 0}, {"blk.0.attn_k.weight", E, KV, 0},
        {"blk.0.attn_v.weight", E, KV, 0}, {"blk.0.attn_output.weight", E, E, 0},
        {"blk.0.ffn_gate.weight", E, F, 0}, {"blk.0.ffn_up.weight", E, F, 0},
        {"blk.0.ffn_down.weight", F, E, 0},
    };
    void *data[FQ_ARRAY_LEN(ts)];
    uint32_t s = 99;
    for (size_t i = 0; i < FQ_ARRAY_LEN(ts); i++) {
        int64_t n = (int64_t)ts[i].n_in * ts[i].n_out;
        float *x = malloc((size_t)n * sizeof(float));
        FQ_ASSERT(x);
        for (int64_t j = 0; j < n; j++) {
            s = s * 1664525u + 1013904223u;
            float r = ((float)(s >> 8) / 16777216.0f - 0.5f) / sqrtf((float)ts[i].n_in);
            x[j] = ts[i].norm ? 1.0f + r : r;
        }
        uint32_t t = ts[i].norm ? FQ_TYPE_F32 : ty;
        const fq_type_traits *tr = fq_type_get(t);
        if (t == FQ_TYPE_F32) {
            data[i] = x;
        } else {
            data[i] = malloc(fq_row_size(t, ts[i].n_in) * (size_t)ts[i].n_out);
            FQ_ASSERT(data[i] && tr->from_float);
            tr->from_float(x, data[i], n);
            free(x);
        }
        int64_t ne[2] = {ts[i].n_in, ts[i].n_out};
        if (fq_gguf_writer_add_tensor(w, ts[i].name, t, ts[i].norm ? 1 : 2, ne, data[i], &e)) {
            fprintf(stderr, "mkseeds: %s\n", e.msg);
            exit(1);
        }
    }
    char path[256];
    snprintf(path, sizeof path, "fuzz/corpus/gguf/%s", name);
    if (fq_gguf_writer_write(w, path, &e)) {
        fprintf(stderr, "mkseeds: %s\n", e.msg);
        exit(1);
    }
    g_files++;
    for (size_t i = 0; i < FQ_ARRAY_LEN(ts); i++) free(data[i]);
    fq_gguf_writer_free(w);
}

/* The real model and truncations at its section boundaries. */
static void real_model(void) {
    fq_err e;
    size_t n;
    char *b = fq_read_file(REAL, &n, &e);
    fq_gguf g;
    if (!b || fq_gguf_open_mem(&g, b, n, REAL, &e)) {
        fprintf(stderr, "mkseeds: %s\n", e.msg);
        exit(1);
    }
    put("gguf", "stories260K-ff192-q4_0.gguf", b, n);
    /* end of the metadata: where the first tensor info (its name's length) begins */
    const char *first = g.tensors[0].name;
    uint64_t at = 0;
    for (uint64_t i = 24; i + strlen(first) < n; i++)
        if (!memcmp(b + i, first, strlen(first)) && b[i - 8] == (char)strlen(first)) {
            at = i - 8;
            break;
        }
    put("gguf", "trunc-header.gguf", b, 24);
    put("gguf", "trunc-in-metadata.gguf", b, 24 + (at - 24) / 3);
    put("gguf", "trunc-after-metadata.gguf", b, at);
    put("gguf", "trunc-after-infos.gguf", b, g.data_offset);
    put("gguf", "trunc-in-data.gguf", b, g.data_offset + 4096);
    fq_gguf_close(&g);
    free(b);
}

static void rules(void) {
    static const char *const r[] = {
        "ffn_norm@*=bf16", "ffn_norm@21=bf16", "ffn_norm-4=fp8_e4m3", "k_cache=fp8_e5m2",
        "v_cache=int8:per_row", "attn_norm,ffn_norm@0-2=fp8_e4m3:round=stochastic",
        "kq,kq_soft_max@1,3=fp16", "ffn_*@*=mxfp4", "result_output=int4:group=32,asym",
        "inp_embd=nvfp4", "Qcur@-1=e3m4:fn", "Kcur@all=e5m2:finite", "kqv_merged_cont=tf32",
        "weight:blk.*.ffn_down.weight=int4:group=32", "weight:output.weight=q4_k",
        "weight:token_embd.weight=q8_0", "l_out@4=int8:per_tensor,round=rtz",
        "ffn_out@2=mxint8:round=rna", "ffn_up=int3:per_col", "ffn_gate=q6_k",
        "ffn_norm=fp4_e2m1:subnormal=off", "ffn_norm", "=bf16", "ffn_norm=", "foo=bf16",
        "ffn_norm=foo", "ffn_norm@99=bf16", "ffn_norm@a=bf16", "ffn_norm@1-=bf16",
        "ffn_norm-2@3=bf16", "result_output@1=bf16", "weight:=int4", "weight:nothing=int4",
        "ffn_norm=int4:group=abc", "ffn_norm=int4:group=0", "ffn_norm=int4:bogus",
        "ffn_norm@3-1,0=e9m30", "ffn_norm@9999999999999999999=bf16", "[=bf16", "*=f32",
        "ffn_norm=bf16\n*\n-1\nfp16", "ffn_norm=bf16\nint8:group=7\n2\nmxfp6_e3m2",
        "ffn_norm=bf16\nbf16\n99\n", "ffn_norm=bf16\nffn_norm@1",
    };
    for (size_t i = 0; i < FQ_ARRAY_LEN(r); i++) {
        char name[32];
        snprintf(name, sizeof name, "rule-%02zu", i);
        put_str("rules", name, r[i]);
    }
}

#define SEED(name, lit) {name, lit, sizeof(lit) - 1}
typedef struct {
    const char *name, *s;
    size_t n;
} seed;

static void tokenizer_seeds(void) {
    /* first byte: bits 0, 3-5 vocabulary, bit 1 add_special, bit 2 parse_special */
    static const seed t[] = {
        SEED("ascii", "\x00Once upon a time, there was a little girl named Lily."),
        SEED("ascii-spm", "\x01Hello world! 123 + 456 = 579\n\tTabs and  double  spaces"),
        SEED("special", "\x06<s>Hello</s> <unk> </s></s><s>"),
        SEED("special-spm", "\x07[INST] <<SYS>>\nBe brief\n<</SYS>>\n\nHi [/INST]</s>"),
        SEED("utf8", "\x01" "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87 \xe2\x96\x81"),
        SEED("invalid-utf8", "\x01\xff\xfe\xc3\x28\xe2\x82\x80\x80\xed\xa0\x80\xf4\x90\x80\x80\xc0\xaf"),
        SEED("truncated-utf8", "\x00\xe2\x82 \xf0\x9f\x98 \xc3"),
        SEED("nul", "\x02" "a\0b\0\0c"),
        SEED("spaces", "\x00        leading and trailing        "),
        SEED("newlines", "\x01\n\n\r\n\x0b\x0c\x1b[0m"),
        SEED("long-run", "\x01" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        SEED("empty", "\x02"),
        /* BPE: bits 3-4 with bit 0 pick gpt-2 (0x08), llama-bpe (0x09), qwen2 (0x10),
         * deepseek-coder (0x11), falcon (0x18), starcoder (0x19) */
        SEED("bpe-gpt2", "\x08Hello world! It's 2024 , don't  stop \n\n  ok ?"),
        SEED("bpe-llama3", "\x0f<|begin_of_text|>Hi<|eot_id|> caf\xc3\xa9" " 12345 \xf0\x9f\x98\x80\r\n\n x"),
        SEED("bpe-qwen2", "\x10\xe4\xbd\xa0\xe5\xa5\xbd 'S 'LL \xff\xfe\xc3\x28 1234 <|im_end|>"),
        SEED("bpe-deepseek", "\x11" "def f(x):\n\treturn x**2 # \xe4\xb8\xad\xe6\x96\x87 \xc3\xb5"),
        SEED("bpe-falcon", "\x18" "a\x03" "b $+<=>^~|` 123456 \xf2\x80\x80\x80"),
        SEED("bpe-starcoder", "\x19x = 1234567; // \xce\xb1\xce\xb2 \xd9\xa3"),
        /* the GPT-2 vocabulary as chameleon (0x20), tekken (0x21), deepseek-v3 (0x28), bloom
         * (0x29), viking (0x30) */
        SEED("pre-chameleon", "\x20xIMGIMGAZy <sentinel:12> a\tb    c  d don't 12.5! \xe2\x80\x94\xd9\xa3"),
        SEED("pre-tekken", "\x21HelloWorld ABC def a/b\n 1234 \xc3\x80" "Bc x  .//\n\ny"),
        SEED("pre-deepseek-v3", "\x28Hello, world! 12345.abc a ~~b \xe4\xb8\x80\xe4\xba\x8c" "ab"),
        SEED("pre-bloom", "\x29Hello world. How? (a)  b \xe2\x80\xa6\xe3\x80\x82x"),
        SEED("pre-viking", "\x30" "a12 b c, d! \xef\xbc\x8c"),
    };
    for (size_t i = 0; i < FQ_ARRAY_LEN(t); i++) put("tokenizer", t[i].name, t[i].s, t[i].n);
}

static void chat_seeds(void) {
    static const seed c[] = {
        SEED("zephyr", "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + "
                   "message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' "
                   "+ message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ "
                   "'<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and "
                   "add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"),
        SEED("llama2", "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set "
                   "system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set "
                   "system_message = false %}{% endif %}{% for message in loop_messages %}{% if loop.index0 == 0 "
                   "and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
                   "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% "
                   "endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' "
                   "[/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + "
                   "eos_token }}{% endif %}{% endfor %}"),
        SEED("chatml", "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
                   "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
                   "'<|im_start|>assistant\n' }}{% endif %}"),
        SEED("phi3", "{% for message in messages %}{% if message['role'] == 'user' %}{{'<|user|>\n' + "
                 "message['content'] + '<|end|>\n<|assistant|>\n'}}{% endif %}{% endfor %}"),
        SEED("phi4", "{% for message in messages %}{{'<|im_start|>' + message['role'] + '<|im_sep|>' + "
                 "message['content'] + '<|im_end|>'}}{% endfor %}"),
        SEED("mistral-v7", "[SYSTEM_PROMPT]{{ system }}[/SYSTEM_PROMPT][INST]{{ user }}[/INST]"),
        SEED("name-chatml", "chatml"),
        SEED("name-fields", "zephyr\0You are helpful.\0What is 2+2?"),
        SEED("name-fields-nosys", "llama2\0\0Hello <s> </s> [INST]"),
        SEED("unknown", "{{ messages }}"),
        SEED("name-llama3", "llama3"),
        SEED("name-fields-gemma", "gemma\0  Be brief.\n\0\t Hi  \n"),
        SEED("name-fields-phi3", "phi3\0 sys \0<|user|> <|end|>"),
        SEED("name-fields-llama3-blank", "llama3\0 \n \0 "),
        SEED("qwen-default-escaped", "{% set system_message = 'It\\'s \\\"me\\\"\\n' %}<|im_start|>"),
    };
    for (size_t i = 0; i < FQ_ARRAY_LEN(c); i++) put("chat", c[i].name, c[i].s, c[i].n);
    /* the families' real templates (tests/data/chat/README.md says where they come from) */
    static const char *const real[] = {
        "llama-3-8b-instruct", "llama-3.1-8b-instruct", "llama-3.2-3b-instruct",
        "qwen2-vocab", "qwen2.5-7b-instruct", "qwen3-0.6b", "gemma-2-2b-it", "gemma-3-it",
        "phi-3-mini-vocab", "phi-3.5-mini-instruct",
    };
    for (size_t i = 0; i < FQ_ARRAY_LEN(real); i++) {
        char path[256];
        snprintf(path, sizeof path, "tests/data/chat/%s.jinja", real[i]);
        FILE *f = fopen(path, "rb");
        static char text[1 << 16];
        size_t n = f ? fread(text, 1, sizeof text, f) : 0;
        if (!f || n == 0 || n == sizeof text) {
            fprintf(stderr, "mkseeds: cannot read %s\n", path);
            exit(1);
        }
        fclose(f);
        put("chat", real[i], text, n);
    }
}

int main(void) {
    const char *dirs[] = {"fuzz/corpus", "fuzz/corpus/gguf", "fuzz/corpus/rules",
                          "fuzz/corpus/tokenizer", "fuzz/corpus/chat"};
    for (size_t i = 0; i < FQ_ARRAY_LEN(dirs); i++)
        if (mkdir(dirs[i], 0755) && errno != EEXIST) {
            perror(dirs[i]);
            return 1;
        }
    all_types();
    tiny_model("tiny-f32.gguf", FQ_TYPE_F32, 8, 16, 2, 1);
    tiny_model("tiny-f16.gguf", FQ_TYPE_F16, 8, 12, 2, 2);
    tiny_model("tiny-bf16.gguf", FQ_TYPE_BF16, 16, 16, 4, 2);
    tiny_model("tiny-q8_0.gguf", FQ_TYPE_Q8_0, 32, 32, 4, 1);
    tiny_model("tiny-q4_0.gguf", FQ_TYPE_Q4_0, 32, 64, 2, 2);
    real_model();
    rules();
    tokenizer_seeds();
    chat_seeds();
    printf("mkseeds: wrote %d files under fuzz/corpus\n", g_files);
    return 0;
}
