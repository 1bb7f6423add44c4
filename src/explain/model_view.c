/* model_view.c - checks and selections the renderers of a model's run share. */
#include <stdio.h>
#include <string.h>

#include "export_util.h"
#include "model_view.h"

void model_view_range(const attn_model_view *v, size_t *l0, size_t *l1, size_t *h0, size_t *h1)
{
    *l0 = v->layer >= 0 ? (size_t)v->layer : 0;
    *l1 = v->layer >= 0 ? *l0 + 1 : v->layers;
    *h0 = v->head >= 0 ? (size_t)v->head : 0;
    *h1 = v->head >= 0 ? *h0 + 1 : v->heads;
}

const attn_tensor *model_view_map(const attn_trace *t, size_t l, size_t h)
{
    char name[64];
    snprintf(name, sizeof name, "layer%zu.head%zu.attention", l, h);
    return attn_trace_get(t, name);
}

size_t model_view_top_key(const attn_tensor *map, size_t q)
{
    const size_t T = map->shape[1];
    const float *row = map->data + q * T;
    size_t best = 0;
    for (size_t j = 1; j < T; j++)
        if (row[j] > row[best]) best = j;
    return best;
}

/* Every map of run t for layers x heads, T x T, with T token labels. */
static attn_status check_run(const attn_trace *t, size_t layers, size_t heads, size_t T,
                             const char *what)
{
    size_t n = 0;
    if (!t || !attn_trace_labels(t, "token", &n) || n != T)
        return attn_error(ATTN_E_INVALID, "%s: a run without its %zu token labels", what, T);
    for (size_t l = 0; l < layers; l++)
        for (size_t h = 0; h < heads; h++) {
            const attn_tensor *m = model_view_map(t, l, h);
            if (!m || m->ndim != 2 || m->shape[0] != T || m->shape[1] != T)
                return attn_error(ATTN_E_INVALID, "%s: no %zu x %zu map of layer %zu head %zu", what,
                                  T, T, l, h);
        }
    return ATTN_OK;
}

attn_status attn_model_view_check(const attn_model_view *v)
{
    if (!v || !v->trace || !v->ids || !v->n_tokens || !v->layers || !v->heads)
        return attn_error(ATTN_E_INVALID, "model view: missing run, ids or sizes");
    if (v->layer >= (long)v->layers || v->head >= (long)v->heads)
        return attn_error(ATTN_E_INVALID, "model view: layer %ld head %ld of %zu x %zu", v->layer,
                          v->head, v->layers, v->heads);
    attn_status st = check_run(v->trace, v->layers, v->heads, v->n_tokens, "model view");
    if (!st && v->compare)
        st = check_run(v->compare, v->layers, v->heads, v->compare_n, "model view (compare)");
    return st;
}

attn_status export_each_model_map(const attn_model_view *v, export_matrix_fn fn, void *user)
{
    attn_status st = attn_model_view_check(v);
    size_t l0, l1, h0, h1;
    model_view_range(v, &l0, &l1, &h0, &h1);
    char entry[64]; /* the trace entry's name, for captions */
    for (size_t l = l0; !st && l < l1; l++)
        for (size_t h = h0; !st && h < h1; h++) {
            export_matrix m;
            memset(&m, 0, sizeof m);
            m.caption = v->title;
            m.t = model_view_map(v->trace, l, h);
            m.row_axis = "query", m.col_axis = "key";
            m.rows = attn_trace_labels(v->trace, "query", &m.n_rows);
            m.cols = attn_trace_labels(v->trace, "key", &m.n_cols);
            snprintf(m.stem, sizeof m.stem, "layer%zu-head%zu-attention", l, h);
            snprintf(entry, sizeof entry, "layer%zu.head%zu.attention", l, h);
            m.entry = entry;
            st = fn(&m, user);
        }
    return st;
}
