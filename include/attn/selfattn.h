/* attn/selfattn.h - the article's simplified self-attention, and its example.
 *
 * Self-attention with no learned weights: Q = K = V = X, the embeddings.
 * Every intermediate goes into a trace so that the renderers can show it.
 */
#ifndef ATTN_SELFATTN_H
#define ATTN_SELFATTN_H

#include <stddef.h>
#include "attn/embeddings.h"
#include "attn/mha.h"
#include "attn/ops.h"
#include "attn/status.h"
#include "attn/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Runs softmax(X·Xᵀ · scale / temperature + mask) · X on the embeddings.
 *   out: (n_tokens, n_dims), or NULL
 * With a trace (may be NULL) it records "embeddings" and the attention op's
 * "scores", "scaled", ["mask"], "attention", "output", and labels the axes
 * "token", "query", "key" with the tokens and "dim", "value_dim" with the
 * dimension names. */
attn_status attn_self_attention(float *out, const attn_embeddings *x,
                                const attn_sdpa_params *params, attn_trace *trace);

/* The multi-head layer on the embeddings as one sequence: query = key =
 * value = X (batch 1). params (NULL: defaults) sets the heads' scale,
 * temperature and causal alignment (no masks). out: (n_tokens, out_dim) or NULL.
 * With a trace it records "embeddings", per head "head<h>.q", ".k", ".v" and
 * the attention op's entries, then "concat" and "output"; axes are labelled
 * with the tokens, the dimension names, and d0.., v0.., h0.v0.., o0... */
attn_status attn_mha_self_attention(float *out, attn_mha *mha, const attn_embeddings *x,
                                    const attn_sdpa_params *params, attn_trace *trace);
/* The start of such a trace, without running the layer: the axis labels,
 * the layer's weights (attn_mha_record_params) and "embeddings" (x). A
 * model's traced run (attn_encoder_layer_trace) adds the rest. */
attn_status attn_mha_trace_setup(attn_trace *trace, attn_mha *mha, const attn_embeddings *x);

/* ---- the built-in example (docs/seed.md) -------------------------------
 * A small vocabulary whose dimensions are named (animal, tech, grammar,
 * sentiment) and two sentences that share the ambiguous word "mouse". */

/* The vocabulary: one row per word, `mouse` both animal and tech. */
attn_status attn_seed_vocabulary(attn_embeddings *vocab);

/* Number of example sentences (2), and each one's text. */
size_t attn_seed_sentence_count(void);
const char *attn_seed_sentence(size_t i);

/* The word the example is about ("mouse"). */
const char *attn_seed_focus_word(void);

#ifdef __cplusplus
}
#endif
#endif
