/* self_attention.c - the article's self-attention with Q = K = V = X. */
#include "attn/selfattn.h"

#include <stdlib.h>

attn_status attn_self_attention(float *out, const attn_embeddings *x,
                                const attn_sdpa_params *params, attn_trace *trace)
{
    if (!x || !x->data || !x->n_tokens || !x->n_dims)
        return attn_error(ATTN_E_INVALID, "self-attention: empty embeddings");
    const size_t t = x->n_tokens, d = x->n_dims;
    attn_status st = ATTN_OK;
    if (trace) {
        const char *const *tok = (const char *const *)x->tokens;
        const char *const *dims = (const char *const *)x->dims;
        size_t shape[2] = {t, d};
        st = attn_trace_set_labels(trace, "token", t, tok);
        if (!st) st = attn_trace_set_labels(trace, "query", t, tok);
        if (!st) st = attn_trace_set_labels(trace, "key", t, tok);
        if (!st) st = attn_trace_set_labels(trace, "dim", d, dims);
        if (!st) st = attn_trace_set_labels(trace, "value_dim", d, dims);
        if (!st) st = attn_trace_record(trace, NULL, "embeddings", x->data, 2, shape, "token", "dim");
        if (st) return st;
    }
    float *o = out;
    if (!o && !(o = malloc(t * d * sizeof(float))))
        return attn_error(ATTN_E_NOMEM, "self-attention: cannot allocate %zu x %zu outputs", t, d);
    attn_op_ctx ctx = {trace, NULL};
    /* Q = K = V = X: the article's simplification, no learned weights. */
    st = attn_sdpa_forward(o, NULL, x->data, x->data, x->data, t, t, d, d, params, &ctx);
    if (o != out) free(o);
    return st;
}
