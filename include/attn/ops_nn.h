/* attn/ops_nn.h - the layer ops of a GPT: layer norm, GELU, embedding
 * lookup, softmax cross-entropy, dropout.
 *
 * Same conventions as ops.h: attn_<op>_forward(outputs..., inputs..., sizes)
 * and attn_<op>_backward(gradients..., d_out, saved..., sizes). Buffers are
 * contiguous row-major float32 with their shape in a comment. Backward passes
 * ACCUMULATE into every gradient (+=), so a residual stream's gradient can
 * collect several contributions; zero them before the first call. Each op has
 * a reference twin (_ref) that accumulates in double; the default versions
 * run rows in parallel with OpenMP, with results independent of the thread
 * count (every reduction over rows is done in a fixed order).
 *
 * Every forward takes an attn_op_ctx (NULL: none). With a trace in it the op
 * records its output under "<prefix>.output" (layer norm also "mean" and
 * "rstd"; cross-entropy "row_loss") with its axes named ("token", "dim");
 * these ops have a single kernel per SIMD level, so traced and untraced runs
 * compute the same floats.
 */
#ifndef ATTN_OPS_NN_H
#define ATTN_OPS_NN_H

#include <stddef.h>
#include <stdint.h>
#include "attn/ops.h"
#include "attn/rng.h"
#include "attn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- layer norm (torch.nn.LayerNorm over the last dimension) -------------- */

/* y = (x - mean) * rstd * w + b, rstd = 1 / sqrt(var + eps), var biased.
 *   y, x: (rows, dim)  w: (dim)  b: (dim) or NULL
 *   mean, rstd: (rows), saved for the backward (either may be NULL when not
 *   training; both or neither). y may not alias x. */
attn_status attn_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                                   const float *w, const float *b, size_t rows, size_t dim,
                                   float eps, const attn_op_ctx *ctx);
attn_status attn_layernorm_ref(float *y, const float *x, const float *w, const float *b,
                               size_t rows, size_t dim, float eps);
/* The residual add and the layer norm after it in one pass over the rows:
 * s = x1 + x2 (written: the residual stream), then y = LayerNorm(s) as
 * attn_layernorm_forward gives it (the same bits as the add and the op in
 * turn), recorded as it records.
 *   s, y, x1, x2: (rows, dim)  w, b: (dim), b may be NULL  mean, rstd: (rows)
 *   or both NULL. s may be x1 or x2; y aliases none of them. */
attn_status attn_add_layernorm_forward(float *s, float *y, float *mean, float *rstd,
                                       const float *x1, const float *x2, const float *w,
                                       const float *b, size_t rows, size_t dim, float eps,
                                       const attn_op_ctx *ctx);
/* d_x += ..., d_w += sum over rows of d_y ∘ x̂, d_b += sum over rows of d_y.
 * d_w and d_b may be NULL.  d_x, d_y, x: (rows, dim)  mean, rstd: (rows) */
attn_status attn_layernorm_backward(float *d_x, float *d_w, float *d_b, const float *d_y,
                                    const float *x, const float *w, const float *mean,
                                    const float *rstd, size_t rows, size_t dim);

/* ---- GELU, tanh approximation (GPT-2; torch gelu(approximate="tanh")) ------ */

/* y = 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))   y, x: (n); y may alias x
 * only in the forward (the backward needs x). */
attn_status attn_gelu_forward(float *y, const float *x, size_t n, const attn_op_ctx *ctx);
attn_status attn_gelu_ref(float *y, const float *x, size_t n);
/* d_x += gelu'(x) ∘ d_y     d_x, d_y, x: (n) */
attn_status attn_gelu_backward(float *d_x, const float *d_y, const float *x, size_t n);
/* d_x = gelu'(x) ∘ d_y, written (each chunk zeroed just before the kernel
 * adds to it, while it is in cache): the bits of attn_gelu_backward on a
 * zeroed d_x without a pass over memory to zero it. */
attn_status attn_gelu_backward_set(float *d_x, const float *d_y, const float *x, size_t n);

/* ---- embedding lookup --------------------------------------------------- */

/* out[i] = table[ids[i]] (accumulate = 0) or out[i] += table[ids[i]] (1).
 *   out: (n, dim)  ids: (n), each < vocab  table: (vocab, dim) */
attn_status attn_embedding_forward(float *out, const uint32_t *ids, const float *table,
                                   size_t n, size_t dim, size_t vocab, int accumulate,
                                   const attn_op_ctx *ctx);
/* d_table[ids[i]] += d_out[i], in order of i (deterministic).
 *   d_table: (vocab, dim)  d_out: (n, dim) */
attn_status attn_embedding_backward(float *d_table, const float *d_out, const uint32_t *ids,
                                    size_t n, size_t dim, size_t vocab);

/* ---- softmax cross-entropy -------------------------------------------- */

/* loss = mean over rows of -log softmax(logits[i])[targets[i]] (in double,
 * max-subtracted); probs (may alias logits unless smoothing > 0) receives the
 * softmax, saved for the backward; row_loss (rows) or NULL receives each
 * row's loss (without smoothing). With label smoothing ε in [0, 1) the target
 * is (1−ε)·onehot + ε/vocab (torch's label_smoothing): the loss gains
 * ε·(mean over classes of −log p − the row's cross-entropy).
 *   probs, logits: (rows, vocab)  targets: (rows), each < vocab */
attn_status attn_crossentropy_forward(double *loss, float *row_loss, float *probs,
                                      const float *logits, const uint32_t *targets, size_t rows,
                                      size_t vocab, float smoothing, const attn_op_ctx *ctx);
attn_status attn_crossentropy_ref(double *loss, const float *logits, const uint32_t *targets,
                                  size_t rows, size_t vocab);
/* d_logits += scale · (probs − target), target = (1−ε)·onehot(targets) + ε/vocab
 * (ε = smoothing, as in the forward); scale = d_loss / rows for the mean loss.
 *   d_logits, probs: (rows, vocab)  targets: (rows) */
attn_status attn_crossentropy_backward(float *d_logits, const float *probs,
                                       const uint32_t *targets, float scale, size_t rows,
                                       size_t vocab, float smoothing);

/* ---- dropout (inverted, counter-based masks) ----------------------------- */

/* The mask of a call is a function of (key, element index) only: element i
 * is kept with probability 1 - p (a 32-bit hash of (key, i) at or above
 * p·2^32), so nothing is stored and the backward recomputes it. Derive key
 * from the run's seed, the step and the site (attn_dropout_key) and a
 * resumed run drops exactly the same elements.
 *   y = keep ? x / (1 - p) : 0     y, x: (n); y may alias x; p in [0, 1);
 *   p = 0 copies x (bit for bit). */
attn_status attn_dropout_forward(float *y, const float *x, size_t n, float p, uint64_t key,
                                  const attn_op_ctx *ctx);
/* d_x += keep ? d_y / (1 - p) : 0     d_x, d_y: (n), same p and key. */
attn_status attn_dropout_backward(float *d_x, const float *d_y, size_t n, float p, uint64_t key);
/* The same forward keeping its flags: mask (n) = 1 where kept, 0 where
 * dropped (all 1 when p = 0); y as attn_dropout_forward gives. */
attn_status attn_dropout_forward_mask(float *y, uint8_t *mask, const float *x, size_t n, float p,
                                       uint64_t key);
/* attn_dropout_forward_mask on packed sequences: x, y (seq_off[N], C) hold
 * N sequences back to back, sequence b the rows [seq_off[b], seq_off[b+1]),
 * at most T of them; row t of sequence b is hashed as row b·T + t of the
 * padded (N, T, C) tensor, so the flags are the padded batch's on its real
 * rows. mask (seq_off[N]·C): the flags, packed as y. */
attn_status attn_dropout_forward_mask_packed(float *y, uint8_t *mask, const float *x,
                                              const size_t *seq_off, size_t N, size_t T, size_t C,
                                              float p, uint64_t key);
/* Its backward from the flags (no hashing): d_x = mask ? d_y / (1 - p) : 0,
 * written (not added): the bits attn_dropout_backward gives on a zeroed d_x.
 * d_x may alias d_y. */
attn_status attn_dropout_backward_mask(float *d_x, const float *d_y, const uint8_t *mask, size_t n,
                                       float p);
/* A key for (seed, step, site): distinct sites (layers, places) of a step
 * get independent masks. */
uint64_t attn_dropout_key(uint64_t seed, uint64_t step, uint64_t site);
/* The key whose mask over elements 0, 1, ... is key's mask over elements
 * first, first + 1, ...: a slice of a tensor that starts at element `first`
 * drops what the whole tensor would (data parallel: a rank's rows). */
uint64_t attn_dropout_key_at(uint64_t key, size_t first);

/* ---- sampling -------------------------------------------------------------- */

/* One id drawn from logits (V): the argmax (lowest id on ties) at temperature
 * 0, else from softmax(logits / temperature) (max-subtracted, unnormalised)
 * kept to the top_k most likely ids (0: all) and to the fewest most likely
 * ids holding top_p of their mass (1: all), with one uniform draw of rng.
 * scratch: 2·V floats. */
attn_status attn_sample_logits(uint32_t *out, const float *logits, size_t V, float temperature,
                               size_t top_k, float top_p, attn_rng *rng, float *scratch);

#ifdef __cplusplus
}
#endif
#endif
