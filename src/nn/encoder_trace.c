/* encoder_trace.c - one encoder layer's attention as the exporters' multi-head
 * walkthrough, copied out of a traced forward: nothing is recomputed, so the
 * pages and files show the numbers the model used. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/classify.h"
#include "attn/selfattn.h"

/* Names attn_mha_self_attention's trace has and the block records under its
 * prefix: the heads' entries ("head<h>.<...>"), "concat" and "output". The
 * heads' "mask" is the encoder's key-padding mask, all zeros for the one
 * unpadded example, which a plain run of the layer has not. */
static int layer_entry(const char *rest)
{
    if (!strcmp(rest, "concat") || !strcmp(rest, "output")) return 1;
    if (strncmp(rest, "head", 4)) return 0;
    const char *dot = strchr(rest, '.');
    return dot && strcmp(dot + 1, "mask") != 0;
}

attn_status attn_encoder_layer_trace(attn_encoder *e, const attn_trace *run, size_t layer,
                                     attn_trace *out)
{
    if (!e || !run || !out) return attn_error(ATTN_E_INVALID, "attn_encoder_layer_trace: NULL argument");
    const attn_encoder_config *c = attn_encoder_get_config(e);
    if (layer >= c->layers)
        return attn_error(ATTN_E_INVALID, "attn_encoder_layer_trace: layer %zu of %zu", layer, c->layers);
    char prefix[64], name[96];
    const int np = snprintf(prefix, sizeof prefix, "layer%zu.", layer);
    snprintf(name, sizeof name, "%sln_1.output", prefix);
    size_t n = 0;
    const char *const *tokens = attn_trace_labels(run, "token", &n);
    const attn_tensor *in = attn_trace_get(run, name);
    if (!tokens || !in || in->ndim != 2 || in->shape[0] != n || in->shape[1] != c->width)
        return attn_error(ATTN_E_INVALID,
                          "attn_encoder_layer_trace: not a traced forward of one example with token labels");
    /* the layer's input, its dimensions named d0.. */
    attn_embeddings x;
    memset(&x, 0, sizeof x);
    x.n_tokens = n, x.n_dims = c->width, x.tokens = (char **)tokens, x.data = in->data;
    x.dims = calloc(c->width, sizeof *x.dims);
    attn_status st = x.dims ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < c->width; i++)
        if (!(x.dims[i] = malloc(24))) st = attn_error(ATTN_E_NOMEM, "out of memory");
        else snprintf(x.dims[i], 24, "d%zu", i);
    if (!st) st = attn_mha_trace_setup(out, attn_encoder_mha(e, layer), &x);
    for (size_t i = 0; !st && i < attn_trace_count(run); i++) {
        attn_trace_entry en;
        if ((st = attn_trace_entry_at(run, i, &en))) break;
        if (strncmp(en.name, prefix, (size_t)np) || !layer_entry(en.name + np)) continue;
        st = attn_trace_record(out, NULL, en.name + np, en.tensor->data, en.tensor->ndim,
                               en.tensor->shape, en.row_axis, en.col_axis);
    }
    for (size_t i = 0; x.dims && i < c->width; i++) free(x.dims[i]);
    free(x.dims);
    return st;
}
