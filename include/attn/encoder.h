/* attn/encoder.h - a bidirectional Transformer encoder with a classification
 * head (nn floor); its trainer is in attn/classify.h.
 *
 * The encoder (PyTorch-style parameter names):
 *   x_0   = drop(wte[ids] + wpe[positions])                    (B, T, C)
 *   x_l+½ = x_l + drop(MHA(LN_1(x_l), key_padding_mask))       each block l
 *   x_l+1 = x_l+½ + drop(c_proj(GELU_tanh(c_fc(LN_2(x_l+½)))))
 * (drop: dropout when training, attn_encoder_set_dropout; else the identity)
 *   h     = LN_f(x_L);  pooled = h[:, 0] ([CLS]) or the mean of h over the
 *           tokens that are not padding;  logits = head(pooled)  (B, K)
 * Token 0 of every example is [CLS]; padding ([PAD]) is masked as keys, so
 * padding never changes another token's output. Parameters: wte.weight (V, C),
 * wpe.weight (T, C), h.<l>.ln_1.weight [.bias], h.<l>.attn.in_proj_weight
 * (3C, C) [in_proj_bias], h.<l>.attn.out_proj.weight [.bias],
 * h.<l>.ln_2.weight [.bias], h.<l>.mlp.c_fc.weight (4C, C) [.bias],
 * h.<l>.mlp.c_proj.weight (C, 4C) [.bias], ln_f.weight [.bias],
 * head.weight (K, C), head.bias (K).
 */
#ifndef ATTN_ENCODER_H
#define ATTN_ENCODER_H

#include <stddef.h>
#include <stdint.h>
#include "attn/mha.h"
#include "attn/ops.h"
#include "attn/params.h"
#include "attn/status.h"
#include "attn/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attn_pooling { ATTN_POOL_MEAN = 0, ATTN_POOL_CLS = 1 } attn_pooling;

typedef struct attn_encoder_config {
    size_t vocab_size, context, layers, heads, width, classes;
    int bias;
    attn_pooling pooling;
} attn_encoder_config;

attn_status attn_encoder_config_check(const attn_encoder_config *c);

typedef struct attn_encoder attn_encoder;

attn_status attn_encoder_create(attn_encoder **e, const attn_encoder_config *c, size_t max_batch);
void attn_encoder_free(attn_encoder *e);
const attn_encoder_config *attn_encoder_get_config(const attn_encoder *e);
/* Weights N(0, 0.02) (residual projections N(0, 0.02/√(2·layers))), biases 0,
 * layer norms 1, the head N(0, 0.02); deterministic for a seed. */
attn_status attn_encoder_init(attn_encoder *e, uint64_t seed);
size_t attn_encoder_param_count(const attn_encoder *e);
const attn_param_ref *attn_encoder_params(const attn_encoder *e);
size_t attn_encoder_num_params(const attn_encoder *e);
/* Zeroes every gradient; wte.weight's only in the rows touched since the
 * last call (the whole table on the first call), the rest being zero. */
void attn_encoder_zero_grad(attn_encoder *e);
/* The rows of wte.weight whose gradient may be nonzero (the token ids of the
 * backwards since attn_encoder_zero_grad), distinct and ascending: *n of
 * them, valid until the next backward or zero_grad. For a row-sparse
 * optimizer (attn_adamw_set_rows); wte.weight is parameter 0 and has no
 * weight decay. */
const uint32_t *attn_encoder_grad_rows(attn_encoder *e, size_t *n);

/* Forward over ids (B, T): row b holds lens[b] tokens (1..T; the first is
 * [CLS]) then padding. With labels (B) also the mean cross-entropy into
 * *loss and what the backward needs. ctx (may be NULL): with a trace, the
 * run records what attn_gpt_forward does (under ctx->prefix: "embed",
 * "layer<l>.head<h>.attention" (T, T) and the rest of each block,
 * "ln_f.output"), then "pooled" (B, C), "logits" (B, K) and
 * "pooled_attention" (layers·heads, lens[0]): per layer and head what the
 * pooled vector attended to (the [CLS] row, or the mean of the token rows);
 * "batch<b>." in front of the per-example names when B > 1. The caller
 * labels the "token" axis. */
attn_status attn_encoder_forward(attn_encoder *e, const uint32_t *ids, const size_t *lens,
                                 const uint32_t *labels, size_t batch, size_t seq, double *loss,
                                 const attn_op_ctx *ctx);
const float *attn_encoder_logits(const attn_encoder *e); /* (B, K) of the last forward */
/* Dropout of the following forwards and their backwards (training): p in
 * [0, 1) on x_0 and on each block's attention and MLP outputs before the
 * residual adds (inverted: kept values scaled by 1/(1-p)), with masks a
 * function of key (attn_dropout_key of the seed and step), the site and the
 * element only. p = 0, the state after create: none (evaluation). */
attn_status attn_encoder_set_dropout(attn_encoder *e, float p, uint64_t key);
/* The following forwards' example 0 is example row0 of a whole batch of the
 * same padded length (data parallel: a rank's slice); the masks are those of
 * the whole batch's elements, so every slicing drops the same. 0 after create. */
attn_status attn_encoder_set_dropout_row(attn_encoder *e, size_t row0);
/* The loss of the following forwards with labels: (1−ε)·cross-entropy + ε·
 * the mean over classes of −log p (torch's label_smoothing), ε in [0, 1);
 * 0, the state after create: the cross-entropy. */
attn_status attn_encoder_set_label_smoothing(attn_encoder *e, float eps);
/* The input of block l's attention (LN_1 output) of the last forward: (B, T, C). */
const float *attn_encoder_attn_input(const attn_encoder *e, size_t layer);
attn_mha *attn_encoder_mha(attn_encoder *e, size_t layer);
/* Layer `layer`'s attention in a traced forward of one example (`run`, its
 * "token" axis labelled) as a multi-head walkthrough trace for the exporters
 * (attn_mha_self_attention's names: the layer's weights, its input as
 * "embeddings", each head's entries, "concat", "output"), copied into `out`;
 * nothing is recomputed. */
attn_status attn_encoder_layer_trace(attn_encoder *e, const attn_trace *run, size_t layer,
                                     attn_trace *out);
/* Backward of loss_scale · loss of the last forward with labels. */
attn_status attn_encoder_backward(attn_encoder *e, float loss_scale);

#ifdef __cplusplus
}
#endif
#endif
