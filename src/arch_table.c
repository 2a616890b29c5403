/* arch_table.c - the rows of arch_table.h. */
#include "arch_table.h"

#include <string.h>

static const char *const role_names[FQ_T_COUNT] = {
    [FQ_T_TOKEN_EMBD] = "token_embd.weight",
    [FQ_T_OUTPUT_NORM] = "output_norm.weight",
    [FQ_T_OUTPUT] = "output.weight",
    [FQ_T_ROPE_FREQS] = "rope_freqs.weight",
    [FQ_T_ATTN_NORM] = "attn_norm.weight",
    [FQ_T_ATTN_Q] = "attn_q.weight",
    [FQ_T_ATTN_K] = "attn_k.weight",
    [FQ_T_ATTN_V] = "attn_v.weight",
    [FQ_T_ATTN_QKV] = "attn_qkv.weight",
    [FQ_T_ATTN_OUTPUT] = "attn_output.weight",
    [FQ_T_ATTN_Q_BIAS] = "attn_q.bias",
    [FQ_T_ATTN_K_BIAS] = "attn_k.bias",
    [FQ_T_ATTN_V_BIAS] = "attn_v.bias",
    [FQ_T_ATTN_OUTPUT_BIAS] = "attn_output.bias",
    [FQ_T_ATTN_Q_NORM] = "attn_q_norm.weight",
    [FQ_T_ATTN_K_NORM] = "attn_k_norm.weight",
    [FQ_T_ATTN_POST_NORM] = "post_attention_norm.weight",
    [FQ_T_FFN_NORM] = "ffn_norm.weight",
    [FQ_T_FFN_GATE] = "ffn_gate.weight",
    [FQ_T_FFN_UP] = "ffn_up.weight",
    [FQ_T_FFN_DOWN] = "ffn_down.weight",
    [FQ_T_FFN_POST_NORM] = "post_ffw_norm.weight",
};

const char *fq_tensor_role_name(int role) {
    return role >= 0 && role < FQ_T_COUNT ? role_names[role] : "?";
}

int fq_tensor_role_per_layer(int role) { return role >= FQ_T_FIRST_LAYER && role < FQ_T_COUNT; }

#define B FQ_TBIT
/* tensors every pre-norm transformer layer of the llama kind has */
#define T_BASE (B(FQ_T_TOKEN_EMBD) | B(FQ_T_OUTPUT_NORM) | B(FQ_T_ATTN_OUTPUT) | B(FQ_T_FFN_DOWN))
#define T_QKV (B(FQ_T_ATTN_Q) | B(FQ_T_ATTN_K) | B(FQ_T_ATTN_V))
#define T_GLU (B(FQ_T_FFN_GATE) | B(FQ_T_FFN_UP))
#define T_PRE (B(FQ_T_ATTN_NORM) | B(FQ_T_FFN_NORM))
#define T_POST (B(FQ_T_ATTN_POST_NORM) | B(FQ_T_FFN_POST_NORM))
#define T_QKNORM (B(FQ_T_ATTN_Q_NORM) | B(FQ_T_ATTN_K_NORM))
#define T_BIASES (B(FQ_T_ATTN_Q_BIAS) | B(FQ_T_ATTN_K_BIAS) | B(FQ_T_ATTN_V_BIAS))

static const fq_arch_desc rows[] = {
    {
        .name = "llama",
        .covers = "Llama 2, Llama 3/3.1/3.2 (rope_freqs), TinyLlama, Mistral 7B, Mistral-Nemo "
                  "(head size from key_length), SmolLM",
        .reference = "llama.cpp c392e509 build_llama",
        .required = T_BASE | T_QKV | T_GLU | T_PRE,
        .optional = B(FQ_T_OUTPUT) | B(FQ_T_ROPE_FREQS) | T_BIASES | B(FQ_T_ATTN_OUTPUT_BIAS),
        .rope_mode = FQ_ROPE_NORM, .ffn_act = FQ_ACT_SILU, .qscale = FQ_QSCALE_SOFTMAX,
        .rms_eps_default = 1e-5f,
    },
    {
        .name = "qwen2",
        .covers = "Qwen2, Qwen2.5 (dense)",
        .reference = "llama.cpp c392e509 build_qwen2",
        .required = T_BASE | T_QKV | T_GLU | T_PRE | T_BIASES,
        .optional = B(FQ_T_OUTPUT) | B(FQ_T_ATTN_OUTPUT_BIAS),
        .rope_mode = FQ_ROPE_NEOX, .ffn_act = FQ_ACT_SILU, .qscale = FQ_QSCALE_SOFTMAX,
        .rms_eps_default = 1e-6f,
    },
    {
        .name = "qwen3",
        .covers = "Qwen3 (dense)",
        .reference = "ik_llama.cpp 8337e4cd build_qwen3",
        .required = T_BASE | T_QKV | T_GLU | T_PRE | T_QKNORM,
        .optional = B(FQ_T_OUTPUT),
        .flags = FQ_ARCH_V_F16_PLAIN | FQ_ARCH_ACT_Q8_2,
        .rope_mode = FQ_ROPE_NEOX, .ffn_act = FQ_ACT_SILU, .qk_norm = FQ_QKNORM_HEAD,
        .qscale = FQ_QSCALE_SOFTMAX, .rms_eps_default = 1e-6f,
    },
    {
        .name = "gemma2",
        .covers = "Gemma 2 (2B, 9B, 27B)",
        .reference = "llama.cpp c392e509 build_gemma2",
        .required = T_BASE | T_QKV | T_GLU | T_PRE | T_POST,
        .flags = FQ_ARCH_EMBD_SCALE | FQ_ARCH_POST_NORMS,
        .rope_mode = FQ_ROPE_NEOX, .ffn_act = FQ_ACT_GELU_FP16,
        .swa_rule = FQ_SWA_PATTERN, .swa_pattern = 2, .swa_default = 4096,
        .attn_softcap_default = 50.0f, .final_softcap_default = 30.0f,
        .qscale = FQ_QSCALE_Q_SCALED, .qscale_embd_layers = 46, .tied_output = 1, .rms_eps_default = 1e-6f,
    },
    {
        .name = "gemma3",
        .covers = "Gemma 3 (text: 1B, 4B, 12B, 27B)",
        .reference = "ik_llama.cpp 8337e4cd build_gemma3",
        .required = T_BASE | T_QKV | T_GLU | T_PRE | T_POST | T_QKNORM,
        .optional = B(FQ_T_OUTPUT),
        .flags = FQ_ARCH_EMBD_SCALE | FQ_ARCH_POST_NORMS | FQ_ARCH_V_F16_PLAIN |
                 FQ_ARCH_SWA_LOCAL_UNSCALED | FQ_ARCH_ACT_Q8_2,
        .rope_mode = FQ_ROPE_NEOX, .ffn_act = FQ_ACT_GELU_F32, .qk_norm = FQ_QKNORM_HEAD,
        .swa_rule = FQ_SWA_PATTERN, .swa_pattern = 6, .swa_key_required = 1,
        .swa_rope_base = 10000.0f, .qscale = FQ_QSCALE_SOFTMAX, .qscale_embd_layers = 62,
        .rms_eps_default = 1e-6f,
    },
    {
        .name = "phi3",
        .covers = "Phi-3 / Phi-3.5 mini (4k context; sliding window on every layer)",
        .reference = "llama.cpp c392e509 build_phi3",
        .required = B(FQ_T_TOKEN_EMBD) | B(FQ_T_OUTPUT_NORM) | B(FQ_T_OUTPUT) |
                    B(FQ_T_ATTN_NORM) | B(FQ_T_ATTN_QKV) | B(FQ_T_ATTN_OUTPUT) |
                    B(FQ_T_FFN_NORM) | B(FQ_T_FFN_UP) | B(FQ_T_FFN_DOWN),
        .flags = FQ_ARCH_FUSED_QKV | FQ_ARCH_FUSED_GATE_UP,
        .rope_mode = FQ_ROPE_NEOX, .ffn_act = FQ_ACT_SILU, .swa_rule = FQ_SWA_ALL,
        .swa_key_required = 1, .qscale = FQ_QSCALE_Q_AFTER_ROPE, .tied_output = 2,
        .rms_eps_default = 1e-5f,
    },
    {
        .name = "olmo2",
        .covers = "OLMo 2 (1B, 7B, 13B; Q/K norm over the projection needs n_head_kv = n_head "
                  "as in llama.cpp c392e509)",
        .reference = "llama.cpp c392e509 build_olmo2",
        .required = T_BASE | T_QKV | T_GLU | T_POST | T_QKNORM | B(FQ_T_OUTPUT),
        .flags = FQ_ARCH_POST_NORMS | FQ_ARCH_NO_PRE_NORMS,
        .rope_mode = FQ_ROPE_NEOX, .ffn_act = FQ_ACT_SILU, .qk_norm = FQ_QKNORM_FULL,
        .qscale = FQ_QSCALE_SOFTMAX, .tied_output = 2, .rms_eps_default = 1e-6f,
    },
};

const fq_arch_desc *fq_arch_find(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (strlen(rows[i].name) == len && memcmp(rows[i].name, name, len) == 0) return &rows[i];
    return NULL;
}

const fq_arch_desc *fq_arch_all(int *n) {
    *n = (int)(sizeof rows / sizeof rows[0]);
    return rows;
}

const char *fq_arch_names(void) { return "llama, qwen2, qwen3, gemma2, gemma3, phi3, olmo2"; }
