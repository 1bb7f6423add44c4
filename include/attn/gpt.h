/* attn/gpt.h - a GPT-2 style decoder: forward, backward, incremental
 * inference with a KV cache, sampling.
 *
 *   x_0   = wte[ids] + wpe[positions]                          (B, T, C)
 *   x_l+½ = x_l + MHA_causal(LN_1(x_l))                        each block l
 *   x_l+1 = x_l+½ + c_proj(GELU_tanh(c_fc(LN_2(x_l+½))))
 *   logits = LN_f(x_L) · wteᵀ                                   (B, T, V)  (tied head)
 *
 * The attention is attn_mha (torch.nn.MultiheadAttention layout: a packed
 * in_proj_weight (3C, C) of q|k|v rows, out_proj), run over the whole batch
 * with ATTN_CAUSAL_TOP_LEFT, so faster attention kernels speed training up
 * without changes here. Biases (linear and layer norm) are optional, as
 * nanoGPT's `bias`. Parameters, by name (PyTorch-style):
 *   wte.weight (V, C), wpe.weight (T, C), then for each block l
 *   h.<l>.ln_1.weight (C) [.bias], h.<l>.attn.in_proj_weight (3C, C)
 *   [h.<l>.attn.in_proj_bias (3C)], h.<l>.attn.out_proj.weight (C, C) [.bias],
 *   h.<l>.ln_2.weight [.bias], h.<l>.mlp.c_fc.weight (4C, C) [.bias (4C)],
 *   h.<l>.mlp.c_proj.weight (C, 4C) [.bias], then ln_f.weight [.bias].
 * The model does not know its tokenizer: it sees token ids below vocab_size.
 */
#ifndef ATTN_GPT_H
#define ATTN_GPT_H

#include <stddef.h>
#include <stdint.h>
#include "attn/ops.h"
#include "attn/params.h"
#include "attn/rng.h"
#include "attn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_gpt_config {
    size_t vocab_size; /* V */
    size_t context;    /* T, the most positions (block size) */
    size_t layers;     /* number of blocks */
    size_t heads;      /* attention heads; width % heads == 0 */
    size_t width;      /* C, the embedding width */
    int bias;          /* biases in linear layers and layer norms */
} attn_gpt_config;

/* One-line errors for nonsense: zero sizes, width not divisible by heads,
 * sizes so large that buffers would overflow. */
attn_status attn_gpt_config_check(const attn_gpt_config *c);
/* 4 layers, 4 heads, width 128, context 64, no bias (attn/train.h's defaults). */
attn_gpt_config attn_gpt_defaults(void);
/* Number of parameters the configuration gives (tied head counted once). */
size_t attn_gpt_config_params(const attn_gpt_config *c);

typedef struct attn_gpt attn_gpt;

/* Allocates parameters, gradients and activations for batches of up to
 * max_batch rows of up to `context` tokens (one arena each); zero weights. */
attn_status attn_gpt_create(attn_gpt **g, const attn_gpt_config *c, size_t max_batch);
void attn_gpt_free(attn_gpt *g);
const attn_gpt_config *attn_gpt_get_config(const attn_gpt *g);

/* GPT-2 initialisation, deterministic for a seed: weights N(0, 0.02), the
 * residual projections (attn.out_proj, mlp.c_proj) N(0, 0.02/√(2·layers)),
 * biases 0, layer-norm weights 1. */
attn_status attn_gpt_init(attn_gpt *g, uint64_t seed);

/* Every parameter tensor, in a fixed order (attn_param_ref: attn/params.h). */
size_t attn_gpt_param_count(const attn_gpt *g);
const attn_param_ref *attn_gpt_params(const attn_gpt *g); /* attn_gpt_param_count entries */
size_t attn_gpt_num_params(const attn_gpt *g);            /* total elements */
void attn_gpt_zero_grad(attn_gpt *g);

/* Forward over ids (B, T), 1 <= B <= max_batch, 1 <= T <= context. With
 * targets (B, T) also the mean cross-entropy (*loss, may be NULL otherwise)
 * and what the backward needs. Logits stay readable until the next forward.
 * ctx (may be NULL): with a trace the attention takes the reference path and
 * the run records, under ctx->prefix, "embed" (B·T, C), each block's entries
 * under "layer<l>" (see below), "ln_f.output" and "logits" (B·T, V); rows
 * are the "token" axis (queries and keys of the heads "query" and "key"),
 * which the caller labels. Block l records "layer<l>.ln_1.output",
 * "layer<l>.head<h>.q", ".k", ".v", ".scores", ".scaled", ".mask",
 * ".attention" (T, T) and ".output" per head ("layer<l>.batch<b>.head<h>..."
 * when B > 1), "layer<l>.concat", "layer<l>.output" (the attention layer's
 * output), "layer<l>.mid", "layer<l>.ln_2.output", "layer<l>.mlp.fc",
 * ".mlp.gelu", ".mlp.output" and "layer<l>.resid" (the hidden state after
 * the block). Without a trace nothing is kept and the fused kernels run. */
attn_status attn_gpt_forward(attn_gpt *g, const uint32_t *ids, const uint32_t *targets,
                             size_t batch, size_t seq, double *loss, const attn_op_ctx *ctx);
const float *attn_gpt_logits(const attn_gpt *g); /* (B, T, V) of the last forward */

/* Backward of loss_scale · loss of the last forward with targets:
 * gradients accumulate into the parameters' grad (gradient accumulation
 * passes 1/steps). */
attn_status attn_gpt_backward(attn_gpt *g, float loss_scale);
/* Called by the following backwards each time the gradients of parameters
 * [first, first + n) of attn_gpt_params are complete for that backward:
 * ln_f's, then each block's from the last; the embeddings (wte, wpe) are
 * complete when the backward returns. Data parallelism starts summing them
 * while the backward goes on; an error stops the backward. fn NULL: none. */
typedef attn_status (*attn_gpt_grads_hook)(void *user, size_t first, size_t n);
void attn_gpt_set_backward_hook(attn_gpt *g, attn_gpt_grads_hook fn, void *user);

/* ---- inference with a KV cache -------------------------------------------- */

typedef struct attn_gpt_kv attn_gpt_kv;
attn_status attn_gpt_kv_create(attn_gpt_kv **kv, const attn_gpt *g);
void attn_gpt_kv_free(attn_gpt_kv *kv);
void attn_gpt_kv_reset(attn_gpt_kv *kv);
size_t attn_gpt_kv_len(const attn_gpt_kv *kv);

/* Appends n tokens at positions len .. len+n-1 (len + n <= context): their
 * queries attend to every cached key and to themselves and earlier new ones
 * (bottom-right causal alignment), keys and values are appended to the cache.
 * logits (V) receives the last new token's logits (and no other position's
 * are computed). Each block is the full forward's (the same ops) on the n
 * new rows, with the model's activations as scratch; n == 1 is the
 * generation step (about 12·C²·layers multiply-adds, matrix-vector products
 * on the threads once the matrices outgrow the caches, the attention op's
 * one-query path, no allocation). Either way the logits are those of attn_gpt_forward over the cached tokens
 * plus the new ones, up to float rounding (the sums run in another order). */
attn_status attn_gpt_kv_step(attn_gpt *g, attn_gpt_kv *kv, const uint32_t *ids, size_t n,
                             float *logits);
/* The same step with a trace (ctx may be NULL: attn_gpt_kv_step): the
 * attention takes the reference path and the step records, under
 * ctx->prefix, "embed" (n, C) and each block's entries as attn_gpt_forward
 * names them ("layer<l>.ln_1.output", "layer<l>.head<h>.q" (n, d), ".k" and
 * ".v" (past + n, d): every cached key, ".scores", ".scaled", ".mask",
 * ".attention" (n, past + n), ".output", "layer<l>.concat", ...,
 * "layer<l>.resid") for the n new rows: row i is position past + i of the
 * full forward's maps, over its first past + n keys. */
attn_status attn_gpt_kv_step_traced(attn_gpt *g, attn_gpt_kv *kv, const uint32_t *ids, size_t n,
                                    float *logits, const attn_op_ctx *ctx);

/* ---- sampling and generation ------------------------------------------------ */

typedef struct attn_sample_opts {
    float temperature; /* 0: greedy (argmax, lowest id on ties) */
    size_t top_k;      /* 0: off */
    float top_p;       /* 1: off; in (0, 1] */
} attn_sample_opts;

/* Draws one id from logits (V); scratch holds 2·V floats. Max-subtracted. */
attn_status attn_sample(uint32_t *out, const float *logits, size_t vocab,
                        const attn_sample_opts *o, attn_rng *rng, float *scratch);

/* Called with each new token; return nonzero to stop early. */
typedef int (*attn_token_fn)(uint32_t token, void *user);

typedef struct attn_generate_opts {
    size_t max_new;       /* tokens to generate */
    attn_sample_opts sample;
    uint64_t seed;
    int use_cache;        /* 1: KV cache (prefill, then one token per step);
                             0: the full forward over the window every step */
} attn_generate_opts;

/* Generates after prompt (n_prompt >= 1 ids).
 *
 * Which tokens condition each prediction: the model sees a window of the
 * sequence (prompt, then generated tokens), at most T = context tokens. The
 * window starts at token 0; a prediction whose window would hold T + 1
 * tokens restarts it instead at the last K = attn_gpt_window_keep() tokens
 * (T/2). So, with s the window's start, token i is predicted from tokens
 * s .. i-1, and s jumps from i - 1 - T to i - K when i - s exceeds T (a
 * prompt longer than T starts at its last K tokens). Positions are counted
 * from the window's start (the learned embeddings cover 0 .. T-1 only).
 *
 * Both paths compute exactly these windows, so at temperature 0 they give
 * the same tokens: without the cache (use_cache 0) every token is a full
 * forward over its window (as nanoGPT's generate runs the model over its
 * cropped context); with it, the window's tokens are prefilled in one batched pass
 * when it (re)starts and then each token is one cached step. Learned
 * absolute positions rule out sliding the window one token at a time with a
 * cache (every key would change), hence the restart: each one costs a
 * prefill of K tokens, spread over the T - K + 1 tokens until the next, and
 * every prediction still sees at least K tokens of context. */
attn_status attn_gpt_generate(attn_gpt *g, const uint32_t *prompt, size_t n_prompt,
                              const attn_generate_opts *o, attn_token_fn on_token, void *user);
/* K, the tokens the window keeps when it restarts: context/2 (at least 1). */
size_t attn_gpt_window_keep(const attn_gpt_config *c);

#ifdef __cplusplus
}
#endif
#endif
