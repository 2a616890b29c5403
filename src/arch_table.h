/* arch_table.h - model families as rows of data.
 *
 * One row per `general.architecture` value fqlm runs: the GGUF key prefix, which tensors a
 * file of that family must / may hold (with their shapes as rules over the hyperparameters),
 * and the flags the forward pass reads. The loader (model.c) reads any row; the forward
 * pass (forward.c) branches on the flags. A new family is a new row, plus at most a new
 * flag where it needs a kind of step no row had before.
 *
 * What each row mirrors: llama.cpp c392e509's graph builder for the family (qwen2, llama,
 * gemma2, phi3, olmo2) or ik_llama.cpp 8337e4cd's (qwen3, gemma3: c392e509 has neither);
 * see tests/data/arch/README.md for the computation order and node names of each. */
#ifndef FQ_ARCH_TABLE_H
#define FQ_ARCH_TABLE_H

#include <stddef.h>
#include <stdint.h>

/* Tensor roles. Names are llama.cpp's GGUF names; per-layer roles are "blk.L.<name>". */
enum fq_tensor_role {
    FQ_T_TOKEN_EMBD,      /* token_embd.weight        [E, V] */
    FQ_T_OUTPUT_NORM,     /* output_norm.weight       [E] */
    FQ_T_OUTPUT,          /* output.weight            [E, V] */
    FQ_T_ROPE_FREQS,      /* rope_freqs.weight        [n_rot/2] (Llama 3.1 frequency factors) */
    /* per layer */
    FQ_T_ATTN_NORM,       /* attn_norm.weight         [E] */
    FQ_T_ATTN_Q,          /* attn_q.weight            [E, H d] */
    FQ_T_ATTN_K,          /* attn_k.weight            [E, Hkv d] */
    FQ_T_ATTN_V,          /* attn_v.weight            [E, Hkv d] */
    FQ_T_ATTN_QKV,        /* attn_qkv.weight          [E, H d + 2 Hkv d] (phi3: Q, K, V rows) */
    FQ_T_ATTN_OUTPUT,     /* attn_output.weight       [H d, E] */
    FQ_T_ATTN_Q_BIAS,     /* attn_q.bias              [H d] */
    FQ_T_ATTN_K_BIAS,     /* attn_k.bias              [Hkv d] */
    FQ_T_ATTN_V_BIAS,     /* attn_v.bias              [Hkv d] */
    FQ_T_ATTN_OUTPUT_BIAS,/* attn_output.bias         [E] */
    FQ_T_ATTN_Q_NORM,     /* attn_q_norm.weight       [d] per head, or [H d] over the projection */
    FQ_T_ATTN_K_NORM,     /* attn_k_norm.weight       [d] per head, or [Hkv d] */
    FQ_T_ATTN_POST_NORM,  /* post_attention_norm.weight [E] */
    FQ_T_FFN_NORM,        /* ffn_norm.weight          [E] */
    FQ_T_FFN_GATE,        /* ffn_gate.weight          [E, F] */
    FQ_T_FFN_UP,          /* ffn_up.weight            [E, F], or [E, 2F] fused gate|up (phi3) */
    FQ_T_FFN_DOWN,        /* ffn_down.weight          [F, E] */
    FQ_T_FFN_POST_NORM,   /* post_ffw_norm.weight     [E] */
    FQ_T_COUNT
};
#define FQ_T_FIRST_LAYER FQ_T_ATTN_NORM
#define FQ_TBIT(r) (UINT32_C(1) << (r))

/* The tensor's GGUF name without "blk.L." and ".weight"/".bias" decided by the role:
 * e.g. "attn_q.bias", "post_ffw_norm.weight". */
const char *fq_tensor_role_name(int role);
int fq_tensor_role_per_layer(int role);

enum fq_rope_mode { FQ_ROPE_NORM = 0, FQ_ROPE_NEOX = 2 }; /* ggml's rope mode numbers */

enum fq_ffn_act {
    FQ_ACT_SILU,        /* SwiGLU: silu(gate) * up, silu as ggml: x / (1 + expf(-x)) */
    FQ_ACT_GELU_FP16,   /* GeGLU, GELU-tanh through ggml's fp16 lookup table (c392e509 CPU) */
    FQ_ACT_GELU_F32,    /* GeGLU, GELU-tanh in float32 (ik_llama.cpp's AVX2 path) */
};

enum fq_qk_norm {
    FQ_QKNORM_NONE,
    FQ_QKNORM_HEAD,     /* RMSNorm over each d-value head, one weight of d shared by heads */
    FQ_QKNORM_FULL,     /* RMSNorm over the whole projection row (olmo2) */
};

/* Which layers use the sliding-window mask (and the local rope base/scale). */
enum fq_swa_rule {
    FQ_SWA_NONE,
    FQ_SWA_ALL,         /* every layer when sliding_window > 0 (phi3 in c392e509) */
    FQ_SWA_PATTERN,     /* layer L is global iff (L + 1) % swa_pattern == 0, else local
                         * (gemma2: pattern 2 -> even layers local; gemma3: pattern 6) */
};

/* Where the 1/sqrt(.) query scale is applied. */
enum fq_qscale {
    FQ_QSCALE_SOFTMAX,      /* kq_scale = 1/sqrt(d) inside the softmax (llama) */
    FQ_QSCALE_Q_AFTER_ROPE, /* Q *= 1/sqrt(d) after RoPE, kq_scale 1 (phi3: llama.cpp names the
                             * scaled Q "Qcur" again; fqlm's node is Qcur_scaled) */
    FQ_QSCALE_Q_SCALED,     /* Qcur_scaled = Q * 1/sqrt(d) after RoPE, kq_scale 1 (gemma2) */
};

/* flags */
#define FQ_ARCH_EMBD_SCALE      (1u << 0)  /* inp_scaled = inp_embd * sqrtf(n_embd) */
#define FQ_ARCH_POST_NORMS      (1u << 1)  /* attn_post_norm after W_o, ffn_post_norm after W_down */
#define FQ_ARCH_NO_PRE_NORMS    (1u << 2)  /* no attn_norm / ffn_norm (olmo2) */
#define FQ_ARCH_FUSED_QKV       (1u << 3)  /* one attn_qkv matrix (phi3) */
#define FQ_ARCH_FUSED_GATE_UP   (1u << 4)  /* ffn_up holds gate rows then up rows (phi3) */
#define FQ_ARCH_V_F16_PLAIN     (1u << 5)  /* the reference multiplies an F16 V cache by unrounded
                                            * f32 softmax weights (ik_llama.cpp); else they are
                                            * rounded to F16 first (ggml's mul_mat) */
#define FQ_ARCH_SWA_LOCAL_UNSCALED (1u << 6) /* local layers: rope scale 1 (gemma3) */
#define FQ_ARCH_ACT_Q8_2        (1u << 7)  /* the reference rounds activations for Q8_0, Q5_0,
                                            * Q4_K and Q6_K weights to ik_llama.cpp's Q8_2
                                            * (blocks of 32, bf16 scale) instead of ggml's
                                            * Q8_0 / Q8_K partner formats */
/* Read for every family: attention.key_length / value_length (head size d, default
 * n_embd / n_head), rope.dimension_count, rope.scaling.type (none / linear; others are
 * refused), expert_count (> 0 refused: no MoE). */

typedef struct fq_arch_desc {
    const char *name;           /* general.architecture value, also the GGUF key prefix */
    const char *covers;         /* real models this row runs (README, inspect) */
    const char *reference;      /* the engine whose graph the row mirrors */
    uint32_t required;          /* FQ_TBIT(role) set: must be present */
    uint32_t optional;          /* may be present (used when present) */
    uint32_t flags;             /* FQ_ARCH_* */
    int rope_mode;              /* enum fq_rope_mode */
    int ffn_act;                /* enum fq_ffn_act */
    int qk_norm;                /* enum fq_qk_norm */
    int swa_rule;               /* enum fq_swa_rule */
    int swa_pattern;            /* for FQ_SWA_PATTERN */
    int swa_key_required;       /* attention.sliding_window must be present */
    int swa_default;            /* window when the key is absent (0: no window) */
    float swa_rope_base;        /* local layers' rope base (0: the file's rope.freq_base) */
    float attn_softcap_default; /* <key prefix>.attn_logit_softcapping when absent (0: none) */
    float final_softcap_default;/* <key prefix>.final_logit_softcapping when absent (0: none) */
    int qscale;                 /* enum fq_qscale */
    int qscale_embd_layers;     /* a model of this many layers (Gemma 2/3 27B: 46 / 62) scales
                                 * queries by 1/sqrt(n_embd / n_head), not 1/sqrt(d), as
                                 * llama.cpp derives query_pre_attn_scalar from the model type */
    int tied_output;            /* 0: output.weight optional (tied when absent);
                                 * 1: always token_embd (output.weight ignored: gemma2);
                                 * 2: output.weight required */
    float rms_eps_default;
} fq_arch_desc;

/* The row for an architecture name (len bytes, not NUL-terminated), or NULL. */
const fq_arch_desc *fq_arch_find(const char *name, size_t len);
/* Every row, in table order; *n is set to the count. */
const fq_arch_desc *fq_arch_all(int *n);
/* "llama, qwen2, ..." for error messages. */
const char *fq_arch_names(void);

#endif
