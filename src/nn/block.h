/* block.h - the pre-LayerNorm Transformer block and the parameter-table
 * builder shared by the decoder (gpt.c) and the encoder (encoder.c).
 * Internal to src/nn.
 *
 *   mid  = x + drop(attn(ln_1(x)))           (attention: attn_mha, masks in `in`)
 *   next = mid + drop(c_proj(gelu(c_fc(ln_2(mid)))))
 * drop: dropout with k->drop_p (0: the identity)
 */
#ifndef ATTN_NN_BLOCK_H
#define ATTN_NN_BLOCK_H

#include "attn/mha.h"
#include "attn/tensor.h"
#include "attn/params.h"

#define NN_LN_EPS 1e-5f

typedef struct nn_block {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b, *fc_w, *fc_b, *proj_w, *proj_b;
    float *g_ln1_w, *g_ln1_b, *g_ln2_w, *g_ln2_b, *g_fc_w, *g_fc_b, *g_proj_w, *g_proj_b;
    attn_mha *mha;
    attn_mha_cache *cache;
    const float *in_w, *in_b, *out_w, *out_b; /* inside the mha's own storage */
    /* dropout on the attention and MLP outputs before their residual adds
     * (p = 0: none, the decoder's case); masks from key_attn and key_mlp
     * (attn_dropout_key), set by the model before the forward and kept for
     * the backward */
    float drop_p;
    uint64_t key_attn, key_mlp;
    /* (max_rows, C) bytes each or NULL: the forward's keep flags, which the
     * backward then reads instead of hashing again (the encoder's) */
    uint8_t *mask_attn, *mask_mlp;
    /* packed sequences (the encoder's; NULL: rows padded or one sequence):
     * the rows are seq_n sequences back to back from these offsets, each at
     * most seq_t long; the masks are then those of the padded (seq_n·seq_t)
     * rows (attn_dropout_forward_mask_packed) */
    const size_t *seq_off;
    size_t seq_n, seq_t;
    /* saved activations, each (max_rows, ·) */
    float *res, *ln1, *ln1_mean, *ln1_rstd, *mid, *ln2, *ln2_mean, *ln2_rstd, *fc, *act;
} nn_block;

/* Hands out parameters (with gradients) and activations from a model's
 * arenas and records each parameter in its table; the first failure sticks
 * in `st` and makes later calls no-ops. */
typedef struct nn_builder {
    attn_arena *params, *grads, *acts;
    attn_param_ref *table;
    size_t *n_table, *n_params;
    char *name_at; /* storage of the table's names */
    size_t name_left;
    attn_status st;
} nn_builder;

/* A parameter of shape (s0, s1), or (s0) when s1 is 0. */
void nn_take(nn_builder *b, float **data, float **grad, const char *name, size_t s0, size_t s1);
/* Block l's attention parameter `mha_name` (a state_dict name), recorded as
 * "h.<l>.attn.<mha_name>"; *data (may be NULL) points into the layer. */
void nn_take_mha(nn_builder *b, attn_mha *m, size_t l, const char *mha_name, const float **data);
/* A (rows, cols) activation buffer. */
float *nn_act(nn_builder *b, size_t rows, size_t cols);

/* GPT-2 initialisation of a parameter table: matrices N(0, 0.02), the
 * residual projections (attn.out_proj, mlp.c_proj) N(0, 0.02/sqrt(2·layers)),
 * layer-norm weights 1, biases 0. Deterministic for a seed. */
void nn_init_gpt2(attn_param_ref *table, size_t n, size_t layers, uint64_t seed);

/* Block l's parameters ("h.<l>.ln_1.weight", ...) and its activations for up
 * to `rows` rows of width C; k->mha must exist already. */
void nn_block_build(nn_builder *b, nn_block *k, size_t l, int bias, size_t C, size_t rows);

/* A context for a part of a traced model: prefix "<ctx->prefix>.<name>"
 * (or "<name>") in buf; NULL when ctx carries no trace. */
const attn_op_ctx *nn_sub_ctx(attn_op_ctx *sub, char *buf, size_t n, const attn_op_ctx *ctx,
                              const char *name);

/* One block forward on k->res (R, C) into next (R, C). `in` carries the
 * attention's shapes and masks (its query/key/value are set to k->ln1).
 * scratch: (R, C). weights (may be NULL): the attention weights per head.
 * With a trace in ctx (prefix P, e.g. "layer3") it records "P.ln_1.output",
 * the attention layer's entries ("P.head<h>.q" ... "P.head<h>.attention",
 * "P.concat", "P.output"), "P.mid" (x + attention), "P.ln_2.output",
 * "P.mlp.fc", "P.mlp.gelu", "P.mlp.output" and "P.resid" (the block's
 * output, the next hidden state); rows are "token" (B·T of them). */
attn_status nn_block_forward(nn_block *k, attn_mha_inputs in, float *next, float *scratch,
                             float *weights, size_t R, size_t C, const attn_op_ctx *ctx);

/* A view of one layer's part of a KV cache and the scratch of a cached step. */
typedef struct nn_kv_view {
    float *k, *v;       /* (heads, ·, head_dim) each; head h at h * head_stride */
    size_t head_stride; /* floats from one head's keys to the next's */
    size_t heads, past; /* positions already cached */
    float *qkv;         /* scratch (n, 3C) */
    float *q, *o;       /* scratch (n, head_dim) each */
    float *concat;      /* scratch (n, C) */
    attn_arena *scratch; /* the attention op's scratch (may be NULL: it allocates) */
} nn_kv_view;

/* The same block on n new rows k->res (n, C) whose earlier positions sit in
 * the cache: their keys and values are appended to it (at kv->past) and the
 * queries attend over all cached positions with bottom-right causal
 * alignment. next: (n, C); scratch: (n, C); k's activations hold n rows.
 * Inference only: no dropout is expected (k->drop_p is 0 in a decoder). */
attn_status nn_block_forward_kv(nn_block *k, const nn_kv_view *kv, float *next, float *scratch,
                                size_t n, size_t C, const attn_op_ctx *ctx);

/* Its backward: d_res (R, C) holds d next on entry and d k->res on return.
 * d_tmp (R, C), d_big1 and d_big2 (R, 4C) are scratch. */
attn_status nn_block_backward(nn_block *k, attn_mha_inputs in, float *d_res, float *d_tmp,
                              float *d_big1, float *d_big2, size_t R, size_t C);

#endif
