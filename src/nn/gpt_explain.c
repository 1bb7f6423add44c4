/* gpt_explain.c - a GPT's attention and hidden states on a text: the traced
 * run, the comparison of two runs, one head as a layer trace. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/gpt_explain.h"
#include "attn/ops.h"

attn_status attn_gpt_trace_text(attn_gpt *g, const uint32_t *ids, size_t n,
                                const char *const *labels, attn_trace *trace)
{
    if (!g || !ids || !labels || !trace)
        return attn_error(ATTN_E_INVALID, "attn_gpt_trace_text: NULL argument");
    const attn_gpt_config *c = attn_gpt_get_config(g);
    if (n == 0) return attn_error(ATTN_E_INVALID, "the text has no tokens (expected at least one)");
    if (n > c->context)
        return attn_error(ATTN_E_INVALID, "%zu tokens, but the model has %zu positions", n,
                          c->context);
    static const char *const axes[] = {"token", "query", "key"};
    for (size_t i = 0; i < 3; i++) {
        attn_status st = attn_trace_set_labels(trace, axes[i], n, labels);
        if (st) return st;
    }
    attn_op_ctx ctx = {trace, NULL};
    return attn_gpt_forward(g, ids, NULL, 1, n, NULL, &ctx);
}

attn_status attn_shared_tokens(const char *const *a, size_t na, const char *const *b, size_t nb,
                               size_t **pos_a, size_t **pos_b, size_t *n_shared)
{
    *pos_a = *pos_b = NULL;
    *n_shared = 0;
    size_t *pa = NULL, *pb = NULL, n = 0;
    if (na) {
        pa = malloc(na * sizeof *pa), pb = malloc(na * sizeof *pb);
        if (!pa || !pb) {
            free(pa), free(pb);
            return attn_error(ATTN_E_NOMEM, "out of memory");
        }
    }
    /* quadratic, but texts are at most a context long */
    for (size_t i = 0; i < na; i++) {
        size_t k = 0;
        while (k < i && strcmp(a[k], a[i])) k++;
        if (k < i) continue; /* seen: first occurrences only */
        for (size_t j = 0; j < nb; j++)
            if (!strcmp(a[i], b[j])) {
                pa[n] = i, pb[n] = j, n++;
                break;
            }
    }
    if (!n) free(pa), free(pb), pa = pb = NULL;
    *pos_a = pa, *pos_b = pb, *n_shared = n;
    return ATTN_OK;
}

double attn_cosine_similarity(const float *x, const float *y, size_t n)
{
    double xy = 0.0, xx = 0.0, yy = 0.0;
    for (size_t i = 0; i < n; i++) {
        xy += (double)x[i] * y[i];
        xx += (double)x[i] * x[i];
        yy += (double)y[i] * y[i];
    }
    return xx > 0.0 && yy > 0.0 ? xy / (sqrt(xx) * sqrt(yy)) : 0.0;
}

/* The "token" labels of a traced run and the number of tokens. */
static attn_status run_tokens(const attn_trace *t, const char *const **labels, size_t *n)
{
    *labels = attn_trace_labels(t, "token", n);
    if (!*labels || !*n)
        return attn_error(ATTN_E_INVALID, "attn_gpt_compare_hidden: a trace without token labels "
                                          "(expected a run of attn_gpt_trace_text)");
    return ATTN_OK;
}

attn_status attn_gpt_compare_hidden(attn_trace *a, const attn_trace *b, size_t layers)
{
    if (!a || !b || !layers) return attn_error(ATTN_E_INVALID, "attn_gpt_compare_hidden: NULL argument");
    const char *const *la, *const *lb;
    size_t na, nb, *pa = NULL, *pb = NULL, S = 0;
    attn_status st = run_tokens(a, &la, &na);
    if (!st) st = run_tokens(b, &lb, &nb);
    if (!st) st = attn_shared_tokens(la, na, lb, nb, &pa, &pb, &S);
    if (st || !S) return st;
    float *cos = malloc(S * layers * sizeof *cos), *pos = malloc(S * 2 * sizeof *pos);
    const char **names = malloc(S * sizeof *names);
    if (!cos || !pos || !names) st = attn_error(ATTN_E_NOMEM, "out of memory");
    for (size_t l = 0; !st && l < layers; l++) {
        char name[48];
        snprintf(name, sizeof name, "layer%zu.resid", l);
        const attn_tensor *ra = attn_trace_get(a, name), *rb = attn_trace_get(b, name);
        if (!ra || !rb || ra->ndim != 2 || rb->ndim != 2 || ra->shape[1] != rb->shape[1] ||
            ra->shape[0] < na || rb->shape[0] < nb) {
            st = attn_error(ATTN_E_INVALID, "attn_gpt_compare_hidden: no %s of the expected shape", name);
            break;
        }
        const size_t C = ra->shape[1];
        for (size_t s = 0; s < S; s++)
            cos[s * layers + l] = (float)attn_cosine_similarity(ra->data + pa[s] * C, rb->data + pb[s] * C, C);
    }
    for (size_t s = 0; !st && s < S; s++) {
        pos[2 * s] = (float)pa[s], pos[2 * s + 1] = (float)pb[s];
        names[s] = la[pa[s]];
    }
    const size_t sc[2] = {S, layers}, sp[2] = {S, 2};
    if (!st) st = attn_trace_set_labels(a, "shared_token", S, names);
    if (!st) st = attn_trace_record(a, "compare", "cosine", cos, 2, sc, "shared_token", "layer");
    if (!st) st = attn_trace_record(a, "compare", "positions", pos, 2, sp, "shared_token", NULL);
    free(cos), free(pos), free(names), free(pa), free(pb);
    return st;
}

/* The parameter called name, or NULL. */
static const attn_param_ref *param(const attn_gpt *g, const char *name)
{
    const attn_param_ref *p = attn_gpt_params(g);
    for (size_t i = 0; i < attn_gpt_param_count(g); i++)
        if (!strcmp(p[i].name, name)) return &p[i];
    return NULL;
}

/* Copies every entry of run named "<prefix><rest>" as "head0.<rest>". */
static attn_status copy_head(const attn_trace *run, const char *prefix, attn_trace *out)
{
    const size_t plen = strlen(prefix);
    for (size_t i = 0; i < attn_trace_count(run); i++) {
        attn_trace_entry e;
        attn_status st = attn_trace_entry_at(run, i, &e);
        if (st) return st;
        if (strncmp(e.name, prefix, plen)) continue;
        st = attn_trace_record(out, "head0", e.name + plen, e.tensor->data, e.tensor->ndim,
                               e.tensor->shape, e.row_axis, e.col_axis);
        if (st) return st;
    }
    return ATTN_OK;
}

/* Records rows [r0, r0 + d) of the packed projection (and bias) as head0.<w>, head0.<b>. */
static attn_status slice_rows(attn_trace *out, const attn_param_ref *w, const attn_param_ref *b,
                              size_t r0, size_t d, const char *wn, const char *bn)
{
    const size_t C = w->shape[1], sw[2] = {d, C}, sb[2] = {1, d};
    attn_status st = attn_trace_record(out, "head0", wn, w->data + r0 * C, 2, sw, "head_dim", "dim");
    if (!st && b) st = attn_trace_record(out, "head0", bn, b->data + r0, 2, sb, NULL, "head_dim");
    return st;
}

attn_status attn_gpt_head_trace(const attn_gpt *g, const attn_trace *run, size_t layer,
                                size_t head, attn_trace *out)
{
    const attn_gpt_config *c = attn_gpt_get_config(g);
    if (layer >= c->layers || head >= c->heads)
        return attn_error(ATTN_E_INVALID, "attn_gpt_head_trace: layer %zu head %zu of %zu x %zu",
                          layer, head, c->layers, c->heads);
    const size_t C = c->width, d = C / c->heads;
    char name[96], prefix[64];
    snprintf(name, sizeof name, "layer%zu.ln_1.output", layer);
    const attn_tensor *x = attn_trace_get(run, name);
    snprintf(prefix, sizeof prefix, "layer%zu.head%zu.", layer, head);
    snprintf(name, sizeof name, "%soutput", prefix);
    const attn_tensor *ho = attn_trace_get(run, name);
    if (!x || !ho || x->ndim != 2 || ho->ndim != 2 || ho->shape[1] != d)
        return attn_error(ATTN_E_INVALID, "attn_gpt_head_trace: the run lacks layer %zu's entries "
                                          "(expected a traced run of one sequence)", layer);
    snprintf(name, sizeof name, "h.%zu.attn.in_proj_weight", layer);
    const attn_param_ref *w = param(g, name);
    snprintf(name, sizeof name, "h.%zu.attn.in_proj_bias", layer);
    const attn_param_ref *b = param(g, name);
    snprintf(name, sizeof name, "h.%zu.attn.out_proj.weight", layer);
    const attn_param_ref *wo = param(g, name);
    if (!w || !wo) return attn_error(ATTN_E_INVALID, "attn_gpt_head_trace: no attention weights");
    const size_t T = x->shape[0];
    float *wos = malloc(C * d * sizeof *wos), *y = malloc(T * C * sizeof *y);
    attn_status st = wos && y ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < C; i++) memcpy(wos + i * d, wo->data + i * C + head * d, d * sizeof *wos);
    /* y (T, C) = head output (T, d) · w_o slice (C, d)ᵀ */
    if (!st) st = attn_matmul_nt_forward(y, ho->data, wos, T, d, C, NULL);
    size_t n_tok = 0;
    const char *const *tok = attn_trace_labels(run, "token", &n_tok);
    static const char *const axes[] = {"token", "query", "key"};
    for (size_t i = 0; !st && tok && i < 3; i++) st = attn_trace_set_labels(out, axes[i], n_tok, tok);
    if (!st) st = attn_trace_record(out, NULL, "embeddings", x->data, 2, x->shape, "token", "dim");
    if (!st) st = slice_rows(out, w, b, head * d, d, "w_q", "b_q");
    if (!st) st = slice_rows(out, w, b, C + head * d, d, "w_k", "b_k");
    if (!st) st = slice_rows(out, w, b, 2 * C + head * d, d, "w_v", "b_v");
    if (!st) st = copy_head(run, prefix, out);
    const size_t sw[2] = {C, d}, sy[2] = {T, C};
    if (!st) st = attn_trace_record(out, NULL, "w_o", wos, 2, sw, "out_dim", "concat_dim");
    if (!st) st = attn_trace_record(out, NULL, "concat", ho->data, 2, ho->shape, "query", "concat_dim");
    if (!st) st = attn_trace_record(out, NULL, "output", y, 2, sy, "query", "out_dim");
    free(wos), free(y);
    return st;
}
