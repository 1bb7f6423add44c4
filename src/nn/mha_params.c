/* mha_params.c - the multi-head layer's configuration, parameters (by their
 * state_dict names), initialisation and cache; mha.c has the math.
 *
 * Parameters live in one flat array (and gradients in another of the same
 * layout) so that optimizers and checkpoints see one buffer:
 *   w_q (H·d_k, E) | w_k (H·d_k, kdim) | w_v (H·d_v, vdim) | in_bias (q|k|v)
 *   | w_o (out, H·d_v) | b_o (out) | bias_k (H·d_k) | bias_v (H·d_v)
 * With d_k = d_v = E/H and kdim = vdim = E, w_q|w_k|w_v is exactly PyTorch's
 * packed in_proj_weight (3E, E). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/rng.h"
#include "mha_internal.h"

attn_mha_config attn_mha_default_config(size_t embed_dim, size_t num_heads)
{
    attn_mha_config c;
    memset(&c, 0, sizeof c);
    c.embed_dim = embed_dim;
    c.num_heads = num_heads;
    c.bias = 1;
    return c;
}

static attn_status resolve(attn_mha_config *c)
{
    if (!c->embed_dim || !c->num_heads)
        return attn_error(ATTN_E_INVALID,
                          "embed_dim and num_heads must be greater than 0, got embed_dim=%zu "
                          "and num_heads=%zu",
                          c->embed_dim, c->num_heads);
    if (!c->head_dim) {
        if (c->embed_dim % c->num_heads)
            return attn_error(ATTN_E_INVALID, "embed_dim %zu must be divisible by num_heads %zu",
                              c->embed_dim, c->num_heads);
        c->head_dim = c->embed_dim / c->num_heads;
    }
    if (!c->v_head_dim) c->v_head_dim = c->head_dim;
    if (!c->kdim) c->kdim = c->embed_dim;
    if (!c->vdim) c->vdim = c->embed_dim;
    if (!c->out_dim) c->out_dim = c->embed_dim;
    const size_t limit = (size_t)1 << 24; /* keeps every product below far from overflow */
    if (c->embed_dim > limit || c->num_heads > limit || c->head_dim > limit ||
        c->v_head_dim > limit || c->kdim > limit || c->vdim > limit || c->out_dim > limit ||
        c->num_heads * c->head_dim > limit || c->num_heads * c->v_head_dim > limit)
        return attn_error(ATTN_E_INVALID, "multi-head attention sizes above 2^24");
    c->bias = !!c->bias;
    c->add_bias_kv = !!c->add_bias_kv;
    c->add_zero_attn = !!c->add_zero_attn;
    return ATTN_OK;
}

static size_t add_param(attn_mha *m, size_t *offset, const char *name, size_t numel, int ndim,
                        size_t s0, size_t s1, size_t s2)
{
    param_entry *e = &m->table[m->n_table++];
    e->name = name;
    e->offset = *offset;
    e->numel = numel;
    e->ndim = ndim;
    e->shape[0] = s0, e->shape[1] = s1, e->shape[2] = s2;
    size_t at = *offset;
    *offset += numel;
    return at;
}

attn_status attn_mha_create(attn_mha **out, const attn_mha_config *cfg)
{
    if (!out || !cfg) return attn_error(ATTN_E_INVALID, "attn_mha_create: NULL argument");
    *out = NULL;
    attn_mha_config c = *cfg;
    attn_status st = resolve(&c);
    if (st) return st;
    attn_mha *m = calloc(1, sizeof *m);
    if (!m) return attn_error(ATTN_E_NOMEM, "cannot allocate a multi-head attention layer");
    m->cfg = c;
    m->hq = c.num_heads * c.head_dim;
    m->hv = c.num_heads * c.v_head_dim;
    m->packed = c.kdim == c.embed_dim && c.vdim == c.embed_dim && m->hq == c.embed_dim &&
                m->hv == c.embed_dim;
    const size_t E = c.embed_dim;
    size_t off = 0;
    if (m->packed) {
        m->o_wq = add_param(m, &off, "in_proj_weight", 3 * E * E, 2, 3 * E, E, 1);
        m->o_wk = m->o_wq + E * E;
        m->o_wv = m->o_wk + E * E;
    } else {
        m->o_wq = add_param(m, &off, "q_proj_weight", m->hq * E, 2, m->hq, E, 1);
        m->o_wk = add_param(m, &off, "k_proj_weight", m->hq * c.kdim, 2, m->hq, c.kdim, 1);
        m->o_wv = add_param(m, &off, "v_proj_weight", m->hv * c.vdim, 2, m->hv, c.vdim, 1);
    }
    const size_t nbin = 2 * m->hq + m->hv;
    m->o_bin = c.bias ? add_param(m, &off, "in_proj_bias", nbin, 1, nbin, 1, 1) : ABSENT;
    m->o_wo = add_param(m, &off, "out_proj.weight", c.out_dim * m->hv, 2, c.out_dim, m->hv, 1);
    m->o_bo = c.bias ? add_param(m, &off, "out_proj.bias", c.out_dim, 1, c.out_dim, 1, 1) : ABSENT;
    m->o_bk = c.add_bias_kv ? add_param(m, &off, "bias_k", m->hq, 3, 1, 1, m->hq) : ABSENT;
    m->o_bv = c.add_bias_kv ? add_param(m, &off, "bias_v", m->hv, 3, 1, 1, m->hv) : ABSENT;

    size_t shape[1] = {off};
    st = attn_arena_create(&m->arena, 2 * off * sizeof(float) + 256);
    if (!st) st = attn_arena_tensor(m->arena, &m->params, 1, shape);
    if (!st) st = attn_arena_tensor(m->arena, &m->grads, 1, shape);
    if (st) {
        attn_mha_free(m);
        return st;
    }
    *out = m;
    return ATTN_OK;
}

void attn_mha_free(attn_mha *m)
{
    if (!m) return;
    attn_arena_free(m->arena);
    attn_workspace_free(&m->ws);
    free(m);
}

const attn_mha_config *attn_mha_get_config(const attn_mha *m) { return m ? &m->cfg : NULL; }

size_t attn_mha_param_count(const attn_mha *m) { return m ? m->n_table : 0; }

attn_status attn_mha_param_at(attn_mha *m, size_t i, const char **name, attn_tensor *param,
                              attn_tensor *grad)
{
    if (!m || i >= m->n_table)
        return attn_error(ATTN_E_NOTFOUND, "parameter %zu of %zu", i, m ? m->n_table : 0);
    const param_entry *e = &m->table[i];
    if (name) *name = e->name;
    attn_status st = ATTN_OK;
    if (param) st = attn_tensor_view(param, m->params.data + e->offset, e->ndim, e->shape);
    if (!st && grad) st = attn_tensor_view(grad, m->grads.data + e->offset, e->ndim, e->shape);
    return st;
}

float *attn_mha_params(attn_mha *m, size_t *n)
{
    if (n) *n = m ? m->params.numel : 0;
    return m ? m->params.data : NULL;
}

float *attn_mha_grads(attn_mha *m, size_t *n)
{
    if (n) *n = m ? m->grads.numel : 0;
    return m ? m->grads.data : NULL;
}

void attn_mha_zero_grad(attn_mha *m)
{
    if (m) memset(m->grads.data, 0, m->grads.numel * sizeof(float));
}

attn_status attn_mha_init(attn_mha *m, uint64_t seed)
{
    if (!m) return attn_error(ATTN_E_INVALID, "attn_mha_init: NULL layer");
    attn_rng r;
    attn_rng_seed(&r, seed);
    const attn_mha_config *c = &m->cfg;
    float *p = m->params.data;
    memset(p, 0, m->params.numel * sizeof(float));
    if (m->packed) { /* xavier_uniform_ over the packed (3E, E) matrix, as PyTorch */
        float b = (float)sqrt(6.0 / (double)(4 * c->embed_dim));
        attn_rng_fill_uniform(&r, p + m->o_wq, 3 * c->embed_dim * c->embed_dim, -b, b);
    } else {
        float bq = (float)sqrt(6.0 / (double)(m->hq + c->embed_dim));
        float bk = (float)sqrt(6.0 / (double)(m->hq + c->kdim));
        float bv = (float)sqrt(6.0 / (double)(m->hv + c->vdim));
        attn_rng_fill_uniform(&r, p + m->o_wq, m->hq * c->embed_dim, -bq, bq);
        attn_rng_fill_uniform(&r, p + m->o_wk, m->hq * c->kdim, -bk, bk);
        attn_rng_fill_uniform(&r, p + m->o_wv, m->hv * c->vdim, -bv, bv);
    }
    /* out_proj: nn.Linear's kaiming_uniform(a=√5), i.e. U(±1/√fan_in). */
    float bo = (float)(1.0 / sqrt((double)m->hv));
    attn_rng_fill_uniform(&r, p + m->o_wo, c->out_dim * m->hv, -bo, bo);
    if (m->o_bk != ABSENT) {
        attn_rng_fill_normal(&r, p + m->o_bk, m->hq, 0.0f, (float)(1.0 / sqrt((double)m->hq)));
        attn_rng_fill_normal(&r, p + m->o_bv, m->hv, 0.0f, (float)(1.0 / sqrt((double)m->hv)));
    }
    return ATTN_OK;
}

size_t attn_mha_kv_len(const attn_mha *m, size_t src_len)
{
    return src_len + (m && m->cfg.add_bias_kv ? 1 : 0) + (m && m->cfg.add_zero_attn ? 1 : 0);
}

/* ---- cache ----------------------------------------------------------------- */

attn_status attn_mha_cache_create(attn_mha_cache **cache)
{
    if (!cache) return attn_error(ATTN_E_INVALID, "attn_mha_cache_create: NULL");
    *cache = calloc(1, sizeof **cache);
    return *cache ? ATTN_OK : attn_error(ATTN_E_NOMEM, "cannot allocate an attention cache");
}

void attn_mha_cache_free(attn_mha_cache *c)
{
    if (!c) return;
    attn_workspace_free(&c->ws);
    free(c);
}

attn_status attn_mha_record_params(attn_mha *m, attn_trace *t)
{
    if (!m || !t) return attn_error(ATTN_E_INVALID, "attn_mha_record_params: NULL");
    const attn_mha_config *c = &m->cfg;
    const size_t dk = c->head_dim, dv = c->v_head_dim;
    const float *bin = mha_part(m, m->o_bin);
    attn_status st = ATTN_OK;
    char pre[32];
    for (size_t h = 0; !st && h < c->num_heads; h++) {
        snprintf(pre, sizeof pre, "head%zu", h);
        size_t sq[2] = {dk, c->embed_dim}, sk[2] = {dk, c->kdim}, sv[2] = {dv, c->vdim};
        size_t bq[2] = {1, dk}, bv[2] = {1, dv};
        /* Head h owns rows [h·d, (h+1)·d) of each projection. */
        st = attn_trace_record(t, pre, "w_q", mha_part(m, m->o_wq) + h * dk * c->embed_dim, 2, sq,
                               "head_dim", "dim");
        if (!st) st = attn_trace_record(t, pre, "w_k", mha_part(m, m->o_wk) + h * dk * c->kdim, 2, sk, "head_dim", "dim");
        if (!st) st = attn_trace_record(t, pre, "w_v", mha_part(m, m->o_wv) + h * dv * c->vdim, 2, sv, "value_dim", "dim");
        if (!st && bin) st = attn_trace_record(t, pre, "b_q", bin + h * dk, 2, bq, NULL, "head_dim");
        if (!st && bin) st = attn_trace_record(t, pre, "b_k", bin + m->hq + h * dk, 2, bq, NULL, "head_dim");
        if (!st && bin) st = attn_trace_record(t, pre, "b_v", bin + 2 * m->hq + h * dv, 2, bv, NULL, "value_dim");
    }
    size_t so[2] = {c->out_dim, m->hv}, sb[2] = {1, c->out_dim};
    if (!st) st = attn_trace_record(t, NULL, "w_o", mha_part(m, m->o_wo), 2, so, "out_dim", "concat_dim");
    if (!st && m->o_bo != ABSENT) st = attn_trace_record(t, NULL, "b_o", mha_part(m, m->o_bo), 2, sb, NULL, "out_dim");
    return st;
}
