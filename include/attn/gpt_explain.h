/* attn/gpt_explain.h - a GPT's attention and hidden states on a text, for
 * `attn explain --model` (nn floor: runs the model, computes comparisons).
 *
 * The renderers (explain.h, export.h) read what these functions record; they
 * never recompute. A traced run of one sequence of n tokens holds, besides
 * attn_gpt_forward's entries (gpt.h), the token labels on the axes "token",
 * "query" and "key", and, after attn_gpt_compare_hidden, the comparison with
 * a second run under "compare.*".
 */
#ifndef ATTN_GPT_EXPLAIN_H
#define ATTN_GPT_EXPLAIN_H

#include <stddef.h>
#include <stdint.h>
#include "attn/gpt.h"
#include "attn/status.h"
#include "attn/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Runs g over ids (1, n) with trace and labels the axes "token", "query" and
 * "key" with labels[0..n-1] (the decoded tokens). Errors: n = 0, or n larger
 * than the model's context (naming both). */
attn_status attn_gpt_trace_text(attn_gpt *g, const uint32_t *ids, size_t n,
                                const char *const *labels, attn_trace *trace);

/* Tokens the two label lists share, by text: for each distinct label of a
 * (first occurrence, in a's order) that b holds, its first position in a
 * (pos_a) and in b (pos_b). *n_shared receives the count; the arrays are
 * malloc'd (NULL when none), the caller frees them. */
attn_status attn_shared_tokens(const char *const *a, size_t na, const char *const *b, size_t nb,
                               size_t **pos_a, size_t **pos_b, size_t *n_shared);

/* Cosine similarity, in double, of x and y (n each); 0 when either is zero. */
double attn_cosine_similarity(const float *x, const float *y, size_t n);

/* Compares two traced runs (attn_gpt_trace_text) of a model with `layers`
 * blocks: for every token they share (attn_shared_tokens on their "token"
 * labels), the cosine similarity of its hidden state after each block
 * ("layer<l>.resid" rows) in the two runs. Records into a:
 *   "compare.cosine"    (S, layers)  rows "shared_token", columns "layer"
 *   "compare.positions" (S, 2)       its position in a and in b
 * and labels "shared_token" with the tokens. S = 0 records nothing. */
attn_status attn_gpt_compare_hidden(attn_trace *a, const attn_trace *b, size_t layers);

/* One head of one block as a stand-alone multi-head-layer trace (the layout
 * of attn/export.h, "layer" kind, one head) for the workbook export:
 * "embeddings" = the block's attention input (LN_1's output, "token" x
 * "dim"), head0.w_q/w_k/w_v/b_q/b_k/b_v = this head's slices of the packed
 * projection, head0.q ... head0.output copied from run, "concat" = the head's
 * output, "w_o" = its columns of the output projection (C x d) and "output" =
 * concat · w_oᵀ: this head's share of the attention output (the layer's
 * output is the sum of every head's share plus b_O). */
attn_status attn_gpt_head_trace(const attn_gpt *g, const attn_trace *run, size_t layer,
                                size_t head, attn_trace *out);

#ifdef __cplusplus
}
#endif
#endif
