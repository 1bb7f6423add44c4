/* attn/mha.h - multi-head attention, compatible with torch.nn.MultiheadAttention.
 *
 *   Q_h = query · W_qhᵀ + b_qh         (L, d_k)   for each head h
 *   K_h = key   · W_khᵀ + b_kh         (S, d_k)   [+ bias_k row] [+ zero row]
 *   V_h = value · W_vhᵀ + b_vh         (S, d_v)   [+ bias_v row] [+ zero row]
 *   O_h = softmax(Q_h·K_hᵀ / √d_k + mask) · V_h   (L, d_v)
 *   out = concat(O_1..O_H) · W_oᵀ + b_o           (L, out_dim)
 *
 * With d_k = d_v = E/H (the defaults) and out_dim = E this is exactly
 * nn.MultiheadAttention(E, H, batch_first=True) with the same parameters,
 * named as in its state_dict. One documented difference: a query row that may
 * attend to nothing (every key masked) gets zero attention and an output equal
 * to out_proj.bias, as PyTorch's scaled_dot_product_attention does, not NaN.
 *
 * d_v may differ from d_k and out_dim from E: the article's "V projection to
 * another width" and "several heads concatenated into a larger space".
 */
#ifndef ATTN_MHA_H
#define ATTN_MHA_H

#include <stddef.h>
#include "attn/ops.h"
#include "attn/status.h"
#include "attn/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_mha_config {
    size_t embed_dim;   /* E: width of the query (and default of everything) */
    size_t num_heads;   /* H */
    size_t kdim;        /* width of the key input; 0 = E */
    size_t vdim;        /* width of the value input; 0 = E */
    size_t head_dim;    /* d_k per head; 0 = E / H (E must divide by H) */
    size_t v_head_dim;  /* d_v per head; 0 = head_dim */
    size_t out_dim;     /* width of the output; 0 = E */
    int bias;           /* in_proj_bias and out_proj.bias */
    int add_bias_kv;    /* learned bias_k / bias_v appended as one more key position */
    int add_zero_attn;  /* one all-zero key/value position appended */
} attn_mha_config;

/* PyTorch's defaults for nn.MultiheadAttention(E, H): bias on, the rest off. */
attn_mha_config attn_mha_default_config(size_t embed_dim, size_t num_heads);

typedef struct attn_mha attn_mha;

/* Validates the configuration (E % H, zero sizes: one-line errors as PyTorch
 * words them) and allocates parameters (zero) and gradients (zero). */
attn_status attn_mha_create(attn_mha **mha, const attn_mha_config *cfg);
void attn_mha_free(attn_mha *mha);

/* The resolved configuration (no zeros left). */
const attn_mha_config *attn_mha_get_config(const attn_mha *mha);

/* PyTorch's initialisation in distribution: xavier-uniform projections,
 * zero biases, xavier-normal bias_k/bias_v; deterministic for a seed. */
attn_status attn_mha_init(attn_mha *mha, uint64_t seed);

/* Parameters by their state_dict names: "in_proj_weight" (packed q|k|v rows
 * when kdim = vdim = E and d_k = d_v = E/H) or "q_proj_weight",
 * "k_proj_weight", "v_proj_weight"; "in_proj_bias" (q|k|v), "out_proj.weight",
 * "out_proj.bias", "bias_k", "bias_v" (shape (1, 1, H·d)). `grad` (may be
 * NULL) receives the matching gradient tensor. */
size_t attn_mha_param_count(const attn_mha *mha);
attn_status attn_mha_param_at(attn_mha *mha, size_t i, const char **name, attn_tensor *param,
                              attn_tensor *grad);
/* All parameters and all gradients as flat arrays (for optimizers). */
float *attn_mha_params(attn_mha *mha, size_t *n);
float *attn_mha_grads(attn_mha *mha, size_t *n);
void attn_mha_zero_grad(attn_mha *mha);

typedef enum attn_mask_kind {
    ATTN_MASK_BOOL = 0,    /* nonzero = masked out (PyTorch MHA's convention) */
    ATTN_MASK_ADDITIVE = 1 /* added to the scaled scores (-inf masks) */
} attn_mask_kind;

typedef struct attn_mha_inputs {
    size_t batch;              /* N */
    size_t tgt_len;            /* L */
    size_t src_len;            /* S */
    const float *query;        /* (N, L, E) */
    const float *key;          /* (N, S, kdim) */
    const float *value;        /* (N, S, vdim) */
    const float *key_padding_mask; /* (N, S) or NULL */
    attn_mask_kind key_padding_kind;
    const float *attn_mask;    /* (L, S) or (N·H, L, S) or NULL */
    int attn_mask_per_head;    /* 1: attn_mask is (N·H, L, S), index n·H + h */
    attn_mask_kind attn_mask_kind;
    attn_causal causal;        /* also mask future input keys (top-left or bottom-right);
                                  the bias_kv / zero_attn positions stay visible, as in
                                  PyTorch with an explicit causal attn_mask */
    /* The heads' attention: scale mode, scale and temperature (NULL: 1/√d_k,
     * temperature 1). Its masks must be NULL (the masks are the fields
     * above) and its causal NONE or equal to `causal`, the one that rules. */
    const attn_sdpa_params *sdpa;
    /* Scratch for the call (a model's, shared by its layers), or NULL: the
     * layer's own. Either way a call allocates only when it needs more than
     * any call before; one layer or workspace serves one thread at a time. */
    attn_workspace *workspace;
    /* Packed sequences (NULL: none): self-attention (query = key = value,
     * L = S) over N sequences of different lengths stored back to back,
     * sequence n the rows [seq_offsets[n], seq_offsets[n + 1]) of query and
     * of out (seq_offsets[N] rows in all), 1 to L of them, each attending to
     * its own rows only. The result is the padded batch's (lengths as a key
     * padding mask) on its real rows, without the padding's work. Only on
     * the fused path (no weights, no trace) with short sequences (L ≤ 64,
     * head dims multiples of 16), no masks, no bias_kv or zero_attn. */
    const size_t *seq_offsets;
} attn_mha_inputs;

/* Key positions seen by the heads: S, + 1 with add_bias_kv, + 1 with add_zero_attn. */
size_t attn_mha_kv_len(const attn_mha *mha, size_t src_len);

/* Activations the backward pass needs; filled by a forward that is given one. */
typedef struct attn_mha_cache attn_mha_cache;
attn_status attn_mha_cache_create(attn_mha_cache **cache);
void attn_mha_cache_free(attn_mha_cache *cache);

/* out: (N, L, out_dim). weights (may be NULL): per head (N, H, L, S') or, with
 * average_weights, their mean over heads (N, L, S'); S' = attn_mha_kv_len.
 * cache (may be NULL) keeps what attn_mha_backward needs. With a trace in ctx
 * records, per head, "head<h>.q", ".k", ".v" and the attention op's entries,
 * then "concat" and "output" ("batch<n>." in front when N > 1, ctx->prefix
 * and a dot in front of everything when set). */
attn_status attn_mha_forward(attn_mha *mha, float *out, float *weights, int average_weights,
                             const attn_mha_inputs *in, attn_mha_cache *cache,
                             const attn_op_ctx *ctx);

/* Gradients of the inputs (any may be NULL; they accumulate, so passing one
 * buffer as all three sums them, as self-attention needs) and of every
 * parameter (accumulated into the layer's gradients).
 *   d_out: (N, L, out_dim)  d_query: (N, L, E)  d_key: (N, S, kdim)
 *   d_value: (N, S, vdim) */
attn_status attn_mha_backward(attn_mha *mha, float *d_query, float *d_key, float *d_value,
                              const float *d_out, const attn_mha_inputs *in,
                              const attn_mha_cache *cache);

/* Records the parameters as each head sees them: "head<h>.w_q" (d_k, E),
 * "head<h>.w_k" (d_k, kdim), "head<h>.w_v" (d_v, vdim), and with biases
 * "head<h>.b_q", ".b_k" (1, d_k), ".b_v" (1, d_v); then "w_o" (out_dim, H·d_v)
 * and "b_o" (1, out_dim). So that renderers (a workbook's formulas) can show
 * how Q, K, V and the output are made. */
attn_status attn_mha_record_params(attn_mha *mha, attn_trace *trace);

#ifdef __cplusplus
}
#endif
#endif
