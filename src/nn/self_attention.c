/* self_attention.c - the article's self-attention with Q = K = V = X. */
#include "attn/selfattn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Labels "<stem>0", "<stem>1", ... (or "h<i>.<stem><j>" per head) for an axis. */
static attn_status numbered_labels(attn_trace *t, const char *axis, const char *stem, size_t n,
                                   size_t per_head)
{
    char **labels = calloc(n, sizeof(char *));
    attn_status st = labels ? ATTN_OK : attn_error(ATTN_E_NOMEM, "cannot allocate labels");
    for (size_t i = 0; !st && i < n; i++) {
        if (!(labels[i] = malloc(64))) {
            st = attn_error(ATTN_E_NOMEM, "cannot allocate labels");
            break;
        }
        if (per_head) snprintf(labels[i], 64, "h%zu.%.8s%zu", i / per_head, stem, i % per_head);
        else snprintf(labels[i], 64, "%.8s%zu", stem, i);
    }
    if (!st) st = attn_trace_set_labels(t, axis, n, (const char *const *)labels);
    for (size_t i = 0; labels && i < n; i++) free(labels[i]);
    free(labels);
    return st;
}

/* The tokens, then "<bias_k>" and "<zero>" for the positions the layer adds. */
static attn_status key_labels(attn_trace *t, const attn_embeddings *x, const attn_mha_config *c)
{
    size_t n = x->n_tokens + !!c->add_bias_kv + !!c->add_zero_attn, k = x->n_tokens;
    const char **labels = malloc(n * sizeof(char *));
    if (!labels) return attn_error(ATTN_E_NOMEM, "cannot allocate labels");
    memcpy(labels, x->tokens, x->n_tokens * sizeof(char *));
    if (c->add_bias_kv) labels[k++] = "<bias_k>";
    if (c->add_zero_attn) labels[k++] = "<zero>";
    attn_status st = attn_trace_set_labels(t, "key", n, labels);
    free(labels);
    return st;
}

attn_status attn_mha_trace_setup(attn_trace *trace, attn_mha *m, const attn_embeddings *x)
{
    if (!trace || !m || !x || !x->data || !x->n_tokens)
        return attn_error(ATTN_E_INVALID, "attn_mha_trace_setup: NULL or empty argument");
    const attn_mha_config *c = attn_mha_get_config(m);
    const size_t t = x->n_tokens;
    const char *const *tok = (const char *const *)x->tokens;
    size_t shape[2] = {t, x->n_dims};
    attn_status st = attn_trace_set_labels(trace, "token", t, tok);
    if (!st) st = attn_trace_set_labels(trace, "query", t, tok);
    if (!st) st = key_labels(trace, x, c);
    if (!st) st = attn_trace_set_labels(trace, "dim", x->n_dims, (const char *const *)x->dims);
    if (!st) st = attn_mha_record_params(m, trace);
    if (!st) st = numbered_labels(trace, "head_dim", "d", c->head_dim, 0);
    if (!st) st = numbered_labels(trace, "value_dim", "v", c->v_head_dim, 0);
    if (!st) st = numbered_labels(trace, "concat_dim", "v", c->num_heads * c->v_head_dim, c->v_head_dim);
    if (!st) st = numbered_labels(trace, "out_dim", "o", c->out_dim, 0);
    if (!st) st = attn_trace_record(trace, NULL, "embeddings", x->data, 2, shape, "token", "dim");
    return st;
}

attn_status attn_mha_self_attention(float *out, attn_mha *m, const attn_embeddings *x,
                                    const attn_sdpa_params *params, attn_trace *trace)
{
    if (!m || !x || !x->data || !x->n_tokens)
        return attn_error(ATTN_E_INVALID, "multi-head self-attention: empty input");
    const attn_mha_config *c = attn_mha_get_config(m);
    if (c->embed_dim != x->n_dims || c->kdim != x->n_dims || c->vdim != x->n_dims)
        return attn_error(ATTN_E_INVALID,
                          "the embeddings have %zu dimensions, but the layer expects embed_dim "
                          "%zu (kdim %zu, vdim %zu)",
                          x->n_dims, c->embed_dim, c->kdim, c->vdim);
    const size_t t = x->n_tokens;
    attn_status st = trace ? attn_mha_trace_setup(trace, m, x) : ATTN_OK;
    if (st) return st;
    float *o = out;
    if (!o && !(o = malloc(t * c->out_dim * sizeof(float))))
        return attn_error(ATTN_E_NOMEM, "cannot allocate %zu x %zu outputs", t, c->out_dim);
    attn_mha_inputs in;
    memset(&in, 0, sizeof in);
    in.batch = 1, in.tgt_len = t, in.src_len = t;
    in.query = in.key = in.value = x->data;
    in.causal = params ? params->causal : ATTN_CAUSAL_NONE;
    in.sdpa = params;
    attn_op_ctx ctx = {trace, NULL};
    st = attn_mha_forward(m, o, NULL, 0, &in, NULL, &ctx);
    if (o != out) free(o);
    return st;
}
