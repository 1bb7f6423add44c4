/* mha.c - multi-head attention (nn.MultiheadAttention), forward and backward:
 * the fused kernels when no trace or weights are asked for, the reference
 * path (per head, with its intermediates) otherwise. mha_params.c creates the
 * layer and lays out its parameters. */
#include "attn/mha.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mha_internal.h"

/* Grows a cache buffer to n floats (kept between calls). */
static int reserve(float **buf, size_t *cap, size_t n)
{
    if (n <= *cap) return 1;
    float *p = realloc(*buf, n * sizeof(float));
    if (!p) return 0;
    *buf = p;
    *cap = n;
    return 1;
}

/* ---- forward and backward ---------------------------------------------------- */

/* a · b for sizes that attn_mha_forward checked against 2^62 already. */
static attn_status check_inputs(const attn_mha *m, const attn_mha_inputs *in)
{
    if (!in || !in->query || !in->key || !in->value)
        return attn_error(ATTN_E_INVALID, "multi-head attention: query, key and value are required");
    if (!in->batch || !in->tgt_len || !in->src_len)
        return attn_error(ATTN_E_INVALID,
                          "multi-head attention: sizes must be > 0, got N=%zu L=%zu S=%zu",
                          in->batch, in->tgt_len, in->src_len);
    const size_t limit = (size_t)1 << 24;
    if (in->batch > limit || in->tgt_len > limit || in->src_len > limit)
        return attn_error(ATTN_E_INVALID, "multi-head attention: N, L or S above 2^24");
    attn_status st;
    size_t s2 = attn_mha_kv_len(m, in->src_len);
    double big = (double)in->batch * (double)m->cfg.num_heads * (double)in->tgt_len * (double)s2;
    if (big > 1e15) return attn_error(ATTN_E_NOMEM, "multi-head attention: N·H·L·S too large");
    if (in->key_padding_kind != ATTN_MASK_BOOL && in->key_padding_kind != ATTN_MASK_ADDITIVE)
        return attn_error(ATTN_E_INVALID, "key_padding_mask: unknown mask kind");
    if (in->attn_mask_kind != ATTN_MASK_BOOL && in->attn_mask_kind != ATTN_MASK_ADDITIVE)
        return attn_error(ATTN_E_INVALID, "attn_mask: unknown mask kind");
    if ((st = attn_causal_check(in->causal))) return st;
    if (in->sdpa) {
        if ((st = attn_sdpa_check(in->sdpa))) return st;
        if (in->sdpa->bool_mask || in->sdpa->add_mask ||
            (in->sdpa->causal != ATTN_CAUSAL_NONE && in->sdpa->causal != in->causal))
            return attn_error(ATTN_E_INVALID, "multi-head attention: the masks and causality "
                                              "go in the inputs, not in their sdpa params");
    }
    return ATTN_OK;
}

/* One mask value in additive form: bool nonzero → -inf, float added. */
static float mask_value(float m, attn_mask_kind kind)
{
    return kind == ATTN_MASK_BOOL ? (m != 0.0f ? -INFINITY : 0.0f) : m;
}

/* The additive mask for batch n, head h, (L, S'): attn_mask, key padding and
 * causality over the S input keys; the extra key positions (bias_kv,
 * zero_attn) are always allowed, as PyTorch pads its masks with an "attend"
 * column for them. Returns 0 if no mask applies. */
static int build_mask(float *mask, const attn_mha *m, const attn_mha_inputs *in, size_t n,
                      size_t h)
{
    if (!in->attn_mask && !in->key_padding_mask && in->causal == ATTN_CAUSAL_NONE) return 0;
    const size_t L = in->tgt_len, S = in->src_len, S2 = attn_mha_kv_len(m, S);
    const float *am = NULL;
    if (in->attn_mask)
        am = in->attn_mask + (in->attn_mask_per_head ? (n * m->cfg.num_heads + h) * L * S : 0);
    const float *kp = in->key_padding_mask ? in->key_padding_mask + n * S : NULL;
    for (size_t i = 0; i < L; i++)
        for (size_t j = 0; j < S2; j++) {
            float v = 0.0f;
            if (j < S) {
                if (am) v += mask_value(am[i * S + j], in->attn_mask_kind);
                if (kp) v += mask_value(kp[j], in->key_padding_kind);
                if (!attn_causal_allows(in->causal, i, j, L, S)) v = -INFINITY;
            }
            mask[i * S2 + j] = v;
        }
    return 1;
}

/* The heads' factor on q·kᵀ: scale / temperature, as attn_sdpa_flash_forward
 * computes it (temperature 1 leaves the scale's bits as they are). */
static float mha_scale(const attn_mha_inputs *in, size_t d_k)
{
    const double t = in->sdpa ? (double)in->sdpa->temperature : 1.0;
    return (float)((double)attn_sdpa_scale(in->sdpa, d_k) / t);
}

/* The heads' sdpa params on the reference path: the caller's scale and
 * temperature; masks and causality are folded into an additive mask. */
static attn_sdpa_params head_params(const attn_mha_inputs *in, const float *mask)
{
    attn_sdpa_params p = in->sdpa ? *in->sdpa : attn_sdpa_defaults();
    p.bool_mask = NULL, p.causal = ATTN_CAUSAL_NONE;
    p.add_mask = mask;
    return p;
}

/* dst (rows, w) = columns [c0, c0 + w) of src (rows, stride). */
static void gather(float *dst, const float *src, size_t rows, size_t stride, size_t c0, size_t w)
{
    for (size_t i = 0; i < rows; i++) memcpy(dst + i * w, src + i * stride + c0, w * sizeof(float));
}

/* columns [c0, c0 + w) of dst (rows, stride) += src (rows, w) */
static void scatter_add(float *dst, const float *src, size_t rows, size_t stride, size_t c0,
                        size_t w)
{
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < w; j++) dst[i * stride + c0 + j] += src[i * w + j];
}

/* Projections of batch n into qp (L, hq), kp (S', hq), vp (S', hv). */
static attn_status project(const attn_mha *m, const attn_mha_inputs *in, size_t n, float *qp,
                           float *kp, float *vp)
{
    const attn_mha_config *c = &m->cfg;
    const size_t L = in->tgt_len, S = in->src_len;
    const float *bin = mha_part(m, m->o_bin);
    attn_status st = attn_linear_forward(qp, in->query + n * L * c->embed_dim, mha_part(m, m->o_wq),
                                         bin, L, c->embed_dim, m->hq);
    if (!st)
        st = attn_linear_forward(kp, in->key + n * S * c->kdim, mha_part(m, m->o_wk),
                                 bin ? bin + m->hq : NULL, S, c->kdim, m->hq);
    if (!st)
        st = attn_linear_forward(vp, in->value + n * S * c->vdim, mha_part(m, m->o_wv),
                                 bin ? bin + 2 * m->hq : NULL, S, c->vdim, m->hv);
    if (st) return st;
    size_t row = S;
    if (c->add_bias_kv) { /* one learned key/value position after the sequence */
        memcpy(kp + row * m->hq, mha_part(m, m->o_bk), m->hq * sizeof(float));
        memcpy(vp + row * m->hv, mha_part(m, m->o_bv), m->hv * sizeof(float));
        row++;
    }
    if (c->add_zero_attn) { /* and one all-zero position */
        memset(kp + row * m->hq, 0, m->hq * sizeof(float));
        memset(vp + row * m->hv, 0, m->hv * sizeof(float));
    }
    return ATTN_OK;
}

/* ---- the fused path ---------------------------------------------------------------
 * Without a trace and without attention weights the layer runs the fused
 * kernels on all heads of a batch at once, reading the projections in place
 * (row stride H·d, head stride d) and writing the concatenation directly. The
 * masks go in as they are (boolean ones converted once to additive form):
 * O(L·S) memory only where the caller's mask already is. With bias_kv or
 * zero_attn positions and a mask, the mask of each head is built as on the
 * reference path (those positions stay visible) and the heads run one by one. */

static int odd_masks(const attn_mha *m, const attn_mha_inputs *in)
{
    return (m->cfg.add_bias_kv || m->cfg.add_zero_attn) &&
           (in->attn_mask || in->key_padding_mask || in->causal != ATTN_CAUSAL_NONE);
}

typedef struct fused_masks {
    const float *am;  /* attn_mask, additive: (L, S) or (N·H, L, S) */
    const float *kpm; /* key padding, additive: (N, S) */
    float *own_am, *own_kpm;
} fused_masks;

static attn_status fused_masks_make(fused_masks *f, const attn_mha *m, const attn_mha_inputs *in)
{
    memset(f, 0, sizeof *f);
    if (odd_masks(m, in)) return ATTN_OK;
    const size_t L = in->tgt_len, S = in->src_len;
    if (in->attn_mask && in->attn_mask_kind == ATTN_MASK_BOOL) {
        size_t cnt = (in->attn_mask_per_head ? in->batch * m->cfg.num_heads : 1) * L * S;
        if (!(f->own_am = malloc(cnt * sizeof(float))))
            return attn_error(ATTN_E_NOMEM, "cannot allocate the attention mask");
        for (size_t i = 0; i < cnt; i++) f->own_am[i] = mask_value(in->attn_mask[i], ATTN_MASK_BOOL);
        f->am = f->own_am;
    } else {
        f->am = in->attn_mask;
    }
    if (in->key_padding_mask && in->key_padding_kind == ATTN_MASK_BOOL) {
        size_t cnt = in->batch * S;
        if (!(f->own_kpm = malloc(cnt * sizeof(float))))
            return attn_error(ATTN_E_NOMEM, "cannot allocate the key padding mask");
        for (size_t i = 0; i < cnt; i++)
            f->own_kpm[i] = mask_value(in->key_padding_mask[i], ATTN_MASK_BOOL);
        f->kpm = f->own_kpm;
    } else {
        f->kpm = in->key_padding_mask;
    }
    return ATTN_OK;
}

static void fused_masks_free(fused_masks *f)
{
    free(f->own_am), free(f->own_kpm);
}

/* Batch n, all heads (or head h alone when `one`, with the explicit mask). */
static attn_flash_desc fused_desc(const attn_mha *m, const attn_mha_inputs *in, size_t n,
                                  const fused_masks *f, int one, const float *mask)
{
    const attn_mha_config *c = &m->cfg;
    const size_t L = in->tgt_len, S = in->src_len, S2 = attn_mha_kv_len(m, S);
    attn_flash_desc d = attn_flash_desc_make(1, one ? 1 : c->num_heads, L, S2, c->head_dim,
                                             c->v_head_dim);
    d.q_rs = m->hq, d.q_hs = c->head_dim;
    d.k_rs = m->hq, d.k_hs = c->head_dim;
    d.v_rs = m->hv, d.v_hs = c->v_head_dim;
    d.o_rs = m->hv, d.o_hs = c->v_head_dim;
    d.scale = mha_scale(in, c->head_dim);
    if (one) {
        d.add_mask = mask;
        return d;
    }
    d.causal = in->causal;
    if (f->am) {
        d.add_mask = f->am + (in->attn_mask_per_head ? n * c->num_heads * L * S : 0);
        d.add_mask_hs = in->attn_mask_per_head ? L * S : 0;
    }
    if (f->kpm) d.key_mask = f->kpm + n * S;
    return d;
}

/* ---- all batches at once -------------------------------------------------------
 * Without the extra key positions (bias_kv, zero_attn) the projections of all
 * N batches are rows of one product each: (N·L, E) · w_qᵀ and so on, one GEMM
 * instead of N small ones, and the fused kernels take all N·H heads in one
 * call. Every head and every row is computed as on the per-batch path; only
 * the order in which the weight gradients sum over batches differs. */

static int whole_batch(const attn_mha *m, const attn_mha_inputs *in)
{
    return attn_mha_kv_len(m, in->src_len) == in->src_len && !odd_masks(m, in);
}

static attn_flash_desc whole_desc(const attn_mha *m, const attn_mha_inputs *in,
                                  const fused_masks *f)
{
    const attn_mha_config *c = &m->cfg;
    const size_t N = in->batch, L = in->tgt_len, S = in->src_len;
    attn_flash_desc d = fused_desc(m, in, 0, f, 0, NULL);
    d.batch = N;
    d.q_bs = L * m->hq, d.k_bs = S * m->hq, d.v_bs = S * m->hv, d.o_bs = L * m->hv;
    if (f->am) d.add_mask_bs = in->attn_mask_per_head ? c->num_heads * L * S : 0;
    if (f->kpm) d.key_mask_bs = S;
    return d;
}

/* qp (N·L, hq), kp (N·S, hq), vp (N·S, hv) → concat (N·L, hv) → out. */
static attn_status whole_forward(const attn_mha *m, const attn_mha_inputs *in,
                                 const fused_masks *f, float *qp, float *kp, float *vp,
                                 float *concat, float *lse, float *out)
{
    const attn_mha_config *c = &m->cfg;
    const size_t N = in->batch, L = in->tgt_len, S = in->src_len;
    const float *bin = mha_part(m, m->o_bin);
    attn_status st = attn_linear_forward(qp, in->query, mha_part(m, m->o_wq), bin, N * L,
                                         c->embed_dim, m->hq);
    if (!st)
        st = attn_linear_forward(kp, in->key, mha_part(m, m->o_wk), bin ? bin + m->hq : NULL, N * S,
                                 c->kdim, m->hq);
    if (!st)
        st = attn_linear_forward(vp, in->value, mha_part(m, m->o_wv), bin ? bin + 2 * m->hq : NULL,
                                 N * S, c->vdim, m->hv);
    if (st) return st;
    attn_flash_desc d = whole_desc(m, in, f);
    st = attn_flash_forward(concat, lse, qp, kp, vp, &d);
    if (!st)
        st = attn_linear_forward(out, concat, mha_part(m, m->o_wo), mha_part(m, m->o_bo), N * L, m->hv,
                                 c->out_dim);
    return st;
}

static attn_status whole_backward(attn_mha *m, float *d_query, float *d_key, float *d_value,
                                  const float *d_out, const attn_mha_inputs *in,
                                  const attn_mha_cache *cache, const fused_masks *f)
{
    const attn_mha_config *c = &m->cfg;
    const size_t N = in->batch, L = in->tgt_len, S = in->src_len;
    const size_t nq = N * L * m->hq, nk = N * S * m->hq, nv = N * S * m->hv, nc = N * L * m->hv;
    if (!reserve(&m->scratch, &m->cap_scratch, nc + nq + nk + nv))
        return attn_error(ATTN_E_NOMEM, "cannot allocate attention gradients");
    float *dconcat = m->scratch, *dqp = dconcat + nc, *dkp = dqp + nq, *dvp = dkp + nk;
    memset(m->scratch, 0, (nc + nq + nk + nv) * sizeof(float));
    attn_status st = attn_linear_backward(dconcat, mha_grad_part(m, m->o_wo), mha_grad_part(m, m->o_bo),
                                          d_out, cache->concat, mha_part(m, m->o_wo), N * L, m->hv,
                                          c->out_dim);
    attn_flash_desc d = whole_desc(m, in, f);
    if (!st)
        st = attn_flash_backward(dqp, dkp, dvp, dconcat, cache->qp, cache->kp, cache->vp,
                                 cache->concat, cache->lse, &d);
    float *gbin = mha_grad_part(m, m->o_bin);
    if (!st)
        st = attn_linear_backward(d_query, mha_grad_part(m, m->o_wq), gbin, dqp, in->query,
                                  mha_part(m, m->o_wq), N * L, c->embed_dim, m->hq);
    if (!st)
        st = attn_linear_backward(d_key, mha_grad_part(m, m->o_wk), gbin ? gbin + m->hq : NULL, dkp,
                                  in->key, mha_part(m, m->o_wk), N * S, c->kdim, m->hq);
    if (!st)
        st = attn_linear_backward(d_value, mha_grad_part(m, m->o_wv), gbin ? gbin + 2 * m->hq : NULL,
                                  dvp, in->value, mha_part(m, m->o_wv), N * S, c->vdim, m->hv);
    return st;
}

/* Forward of batch n: concat (L, H·d_v) from qp, kp, vp; lse (H, L) or NULL. */
static attn_status fused_forward(const attn_mha *m, const attn_mha_inputs *in, size_t n,
                                 const fused_masks *f, const float *qp, const float *kp,
                                 const float *vp, float *concat, float *lse, float *mask)
{
    const attn_mha_config *c = &m->cfg;
    if (!odd_masks(m, in)) {
        attn_flash_desc d = fused_desc(m, in, n, f, 0, NULL);
        return attn_flash_forward(concat, lse, qp, kp, vp, &d);
    }
    attn_status st = ATTN_OK;
    for (size_t h = 0; !st && h < c->num_heads; h++) {
        build_mask(mask, m, in, n, h);
        attn_flash_desc d = fused_desc(m, in, n, f, 1, mask);
        st = attn_flash_forward(concat + h * c->v_head_dim, lse ? lse + h * in->tgt_len : NULL,
                                qp + h * c->head_dim, kp + h * c->head_dim,
                                vp + h * c->v_head_dim, &d);
    }
    return st;
}

static attn_status fused_backward(const attn_mha *m, const attn_mha_inputs *in, size_t n,
                                  const fused_masks *f, float *dqp, float *dkp, float *dvp,
                                  const float *dconcat, const float *qp, const float *kp,
                                  const float *vp, const float *concat, const float *lse,
                                  float *mask)
{
    const attn_mha_config *c = &m->cfg;
    if (!odd_masks(m, in)) {
        attn_flash_desc d = fused_desc(m, in, n, f, 0, NULL);
        return attn_flash_backward(dqp, dkp, dvp, dconcat, qp, kp, vp, concat, lse, &d);
    }
    attn_status st = ATTN_OK;
    const size_t dk = c->head_dim, dv = c->v_head_dim;
    for (size_t h = 0; !st && h < c->num_heads; h++) {
        build_mask(mask, m, in, n, h);
        attn_flash_desc d = fused_desc(m, in, n, f, 1, mask);
        st = attn_flash_backward(dqp + h * dk, dkp + h * dk, dvp + h * dv, dconcat + h * dv,
                                 qp + h * dk, kp + h * dk, vp + h * dv, concat + h * dv,
                                 lse + h * in->tgt_len, &d);
    }
    return st;
}

static attn_status trace2(const attn_op_ctx *ctx, const char *prefix, const char *name,
                          const float *data, size_t rows, size_t cols, const char *ra,
                          const char *ca)
{
    size_t shape[2] = {rows, cols};
    return attn_trace_record(ctx->trace, prefix, name, data, 2, shape, ra, ca);
}

attn_status attn_mha_forward(attn_mha *m, float *out, float *weights, int average_weights,
                             const attn_mha_inputs *in, attn_mha_cache *cache,
                             const attn_op_ctx *ctx)
{
    if (!m || !out) return attn_error(ATTN_E_INVALID, "attn_mha_forward: NULL argument");
    attn_status st = check_inputs(m, in);
    if (st) return st;
    const attn_mha_config *c = &m->cfg;
    const size_t N = in->batch, L = in->tgt_len, S = in->src_len, S2 = attn_mha_kv_len(m, S);
    const size_t H = c->num_heads, dk = c->head_dim, dv = c->v_head_dim;
    const int tracing = ctx && ctx->trace;
    /* The fused kernels unless every intermediate or the weights are wanted. */
    const int fused = !tracing && !weights;

    if (fused && whole_batch(m, in)) {
        fused_masks fm;
        float *own = NULL, *qp, *lse = NULL;
        st = fused_masks_make(&fm, m, in);
        const size_t nq = N * L * m->hq, nk = N * S * m->hq, nv = N * S * m->hv;
        if (!st && cache) {
            if (!reserve(&cache->qp, &cache->cap_qp, nq) ||
                !reserve(&cache->kp, &cache->cap_kp, nk) ||
                !reserve(&cache->vp, &cache->cap_vp, nv) ||
                !reserve(&cache->lse, &cache->cap_lse, N * H * L) ||
                !reserve(&cache->concat, &cache->cap_concat, N * L * m->hv))
                st = attn_error(ATTN_E_NOMEM, "cannot allocate the attention cache");
            cache->batch = N, cache->tgt_len = L, cache->src_len = S, cache->kv_len = S2;
            cache->fused = 1;
        } else if (!st && !(own = malloc((nq + nk + nv + N * L * m->hv) * sizeof(float)))) {
            st = attn_error(ATTN_E_NOMEM, "cannot allocate attention buffers");
        }
        if (!st) {
            if (cache) qp = cache->qp, lse = cache->lse;
            else qp = own;
            float *kp = cache ? cache->kp : qp + nq, *vp = cache ? cache->vp : kp + nk;
            float *concat = cache ? cache->concat : vp + nv;
            st = whole_forward(m, in, &fm, qp, kp, vp, concat, lse, out);
        }
        free(own);
        fused_masks_free(&fm);
        return st;
    }

    /* ctx->prefix and a dot before every name, when set */
    char pre[128] = "";
    if (tracing && ctx->prefix && *ctx->prefix) snprintf(pre, sizeof pre, "%s.", ctx->prefix);
    /* Per-batch scratch, or the cache's storage for all batches. */
    float *qp = NULL, *kp = NULL, *vp = NULL, *concat = NULL;
    float *qh = NULL, *kh = NULL, *vh = NULL, *oh = NULL, *wh = NULL, *mask = NULL;
    if (!fused) {
        qh = malloc(L * dk * sizeof(float)), kh = malloc(S2 * dk * sizeof(float));
        vh = malloc(S2 * dv * sizeof(float)), oh = malloc(L * dv * sizeof(float));
        wh = malloc(L * S2 * sizeof(float));
    }
    if (!fused || odd_masks(m, in)) mask = malloc(L * S2 * sizeof(float));
    fused_masks fm;
    memset(&fm, 0, sizeof fm);
    if (fused) st = fused_masks_make(&fm, m, in);
    float *own = NULL;
    if (cache) {
        if (!st && (!reserve(&cache->qp, &cache->cap_qp, N * L * m->hq) ||
                    !reserve(&cache->kp, &cache->cap_kp, N * S2 * m->hq) ||
                    !reserve(&cache->vp, &cache->cap_vp, N * S2 * m->hv) ||
                    (fused ? !reserve(&cache->lse, &cache->cap_lse, N * H * L)
                           : !reserve(&cache->probs, &cache->cap_probs, N * H * L * S2)) ||
                    !reserve(&cache->concat, &cache->cap_concat, N * L * m->hv)))
            st = attn_error(ATTN_E_NOMEM, "cannot allocate the attention cache");
        cache->batch = N, cache->tgt_len = L, cache->src_len = S, cache->kv_len = S2;
        cache->fused = fused;
    } else {
        own = malloc((L * m->hq + S2 * m->hq + S2 * m->hv + L * m->hv) * sizeof(float));
    }
    if (!st && ((!fused && (!qh || !kh || !vh || !oh || !wh)) ||
                ((!fused || odd_masks(m, in)) && !mask) || (!cache && !own)))
        st = attn_error(ATTN_E_NOMEM, "cannot allocate attention buffers");
    if (!st && weights) memset(weights, 0, N * (average_weights ? 1 : H) * L * S2 * sizeof(float));

    for (size_t n = 0; !st && n < N; n++) {
        if (cache) {
            qp = cache->qp + n * L * m->hq, kp = cache->kp + n * S2 * m->hq;
            vp = cache->vp + n * S2 * m->hv, concat = cache->concat + n * L * m->hv;
        } else {
            qp = own, kp = qp + L * m->hq, vp = kp + S2 * m->hq, concat = vp + S2 * m->hv;
        }
        if ((st = project(m, in, n, qp, kp, vp))) break;
        if (fused) {
            st = fused_forward(m, in, n, &fm, qp, kp, vp, concat,
                               cache ? cache->lse + n * H * L : NULL, mask);
            if (!st)
                st = attn_linear_forward(out + n * L * c->out_dim, concat, mha_part(m, m->o_wo),
                                         mha_part(m, m->o_bo), L, m->hv, c->out_dim);
            continue;
        }
        int has_mask = build_mask(mask, m, in, n, 0);
        char prefix[192], batch[32] = "";
        if (N > 1) snprintf(batch, sizeof batch, "batch%zu.", n);
        for (size_t h = 0; !st && h < H; h++) {
            if (h && in->attn_mask_per_head) build_mask(mask, m, in, n, h);
            gather(qh, qp, L, m->hq, h * dk, dk);
            gather(kh, kp, S2, m->hq, h * dk, dk);
            gather(vh, vp, S2, m->hv, h * dv, dv);
            attn_sdpa_params p = head_params(in, has_mask ? mask : NULL);
            snprintf(prefix, sizeof prefix, "%s%shead%zu", pre, batch, h);
            attn_op_ctx hctx = {tracing ? ctx->trace : NULL, prefix};
            if (tracing) {
                st = trace2(&hctx, prefix, "q", qh, L, dk, "query", "head_dim");
                if (!st) st = trace2(&hctx, prefix, "k", kh, S2, dk, "key", "head_dim");
                if (!st) st = trace2(&hctx, prefix, "v", vh, S2, dv, "key", "value_dim");
                if (st) break;
            }
            float *ph = cache ? cache->probs + (n * H + h) * L * S2 : wh;
            if ((st = attn_sdpa_forward(oh, ph, qh, kh, vh, L, S2, dk, dv, &p, &hctx))) break;
            for (size_t i = 0; i < L; i++)
                memcpy(concat + i * m->hv + h * dv, oh + i * dv, dv * sizeof(float));
            if (weights && average_weights) {
                float *wn = weights + n * L * S2;
                for (size_t i = 0; i < L * S2; i++) wn[i] += ph[i] / (float)H;
            } else if (weights) {
                memcpy(weights + (n * H + h) * L * S2, ph, L * S2 * sizeof(float));
            }
        }
        if (st) break;
        float *on = out + n * L * c->out_dim;
        st = attn_linear_forward(on, concat, mha_part(m, m->o_wo), mha_part(m, m->o_bo), L, m->hv,
                                 c->out_dim);
        if (!st && tracing) {
            char lp[192]; /* "<prefix>.batch<n>" without the trailing dot */
            snprintf(lp, sizeof lp, "%s%.*s", pre, N > 1 ? (int)strlen(batch) - 1 : 0, batch);
            if (N == 1 && *pre) lp[strlen(lp) - 1] = 0;
            st = trace2(ctx, lp, "concat", concat, L, m->hv, "query", "concat_dim");
            if (!st) st = trace2(ctx, lp, "output", on, L, c->out_dim, "query", "out_dim");
        }
    }
    free(qh), free(kh), free(vh), free(oh), free(wh), free(mask), free(own);
    fused_masks_free(&fm);
    return st;
}

attn_status attn_mha_backward(attn_mha *m, float *d_query, float *d_key, float *d_value,
                              const float *d_out, const attn_mha_inputs *in,
                              const attn_mha_cache *cache)
{
    if (!m || !d_out || !cache) return attn_error(ATTN_E_INVALID, "attn_mha_backward: NULL argument");
    attn_status st = check_inputs(m, in);
    if (st) return st;
    const attn_mha_config *c = &m->cfg;
    const size_t N = in->batch, L = in->tgt_len, S = in->src_len, S2 = attn_mha_kv_len(m, S);
    const size_t H = c->num_heads, dk = c->head_dim, dv = c->v_head_dim;
    if (cache->batch != N || cache->tgt_len != L || cache->src_len != S || !cache->qp)
        return attn_error(ATTN_E_INVALID,
                          "attn_mha_backward: the cache holds a forward of N=%zu L=%zu S=%zu, "
                          "not N=%zu L=%zu S=%zu",
                          cache->batch, cache->tgt_len, cache->src_len, N, L, S);
    const int fused = cache->fused;
    if (fused && whole_batch(m, in)) {
        fused_masks fm;
        st = fused_masks_make(&fm, m, in);
        if (!st) st = whole_backward(m, d_query, d_key, d_value, d_out, in, cache, &fm);
        fused_masks_free(&fm);
        return st;
    }
    float *dconcat = malloc(L * m->hv * sizeof(float));
    float *dqp = malloc(L * m->hq * sizeof(float)), *dkp = malloc(S2 * m->hq * sizeof(float));
    float *dvp = malloc(S2 * m->hv * sizeof(float));
    float *qh = malloc(L * dk * sizeof(float)), *kh = malloc(S2 * dk * sizeof(float));
    float *vh = malloc(S2 * dv * sizeof(float)), *doh = malloc(L * dv * sizeof(float));
    float *dqh = malloc(L * dk * sizeof(float)), *dkh = malloc(S2 * dk * sizeof(float));
    float *dvh = malloc(S2 * dv * sizeof(float));
    float *mask = fused && odd_masks(m, in) ? malloc(L * S2 * sizeof(float)) : NULL;
    fused_masks fm;
    memset(&fm, 0, sizeof fm);
    if (!dconcat || !dqp || !dkp || !dvp || !qh || !kh || !vh || !doh || !dqh || !dkh || !dvh ||
        (fused && odd_masks(m, in) && !mask))
        st = attn_error(ATTN_E_NOMEM, "cannot allocate attention gradients");
    if (!st && fused) st = fused_masks_make(&fm, m, in);
    float *gbin = mha_grad_part(m, m->o_bin);
    for (size_t n = 0; !st && n < N; n++) {
        const float *qp = cache->qp + n * L * m->hq, *kp = cache->kp + n * S2 * m->hq;
        const float *vp = cache->vp + n * S2 * m->hv, *concat = cache->concat + n * L * m->hv;
        memset(dconcat, 0, L * m->hv * sizeof(float));
        st = attn_linear_backward(dconcat, mha_grad_part(m, m->o_wo), mha_grad_part(m, m->o_bo),
                                  d_out + n * L * c->out_dim, concat, mha_part(m, m->o_wo), L, m->hv,
                                  c->out_dim);
        memset(dqp, 0, L * m->hq * sizeof(float));
        memset(dkp, 0, S2 * m->hq * sizeof(float));
        memset(dvp, 0, S2 * m->hv * sizeof(float));
        if (!st && fused)
            st = fused_backward(m, in, n, &fm, dqp, dkp, dvp, dconcat, qp, kp, vp, concat,
                                cache->lse + n * H * L, mask);
        for (size_t h = 0; !st && !fused && h < H; h++) {
            gather(qh, qp, L, m->hq, h * dk, dk);
            gather(kh, kp, S2, m->hq, h * dk, dk);
            gather(vh, vp, S2, m->hv, h * dv, dv);
            gather(doh, dconcat, L, m->hv, h * dv, dv);
            memset(dqh, 0, L * dk * sizeof(float));
            memset(dkh, 0, S2 * dk * sizeof(float));
            memset(dvh, 0, S2 * dv * sizeof(float));
            attn_sdpa_params p = head_params(in, NULL);
            st = attn_sdpa_backward(dqh, dkh, dvh, doh, qh, kh, vh,
                                    cache->probs + (n * H + h) * L * S2, L, S2, dk, dv, &p);
            scatter_add(dqp, dqh, L, m->hq, h * dk, dk);
            scatter_add(dkp, dkh, S2, m->hq, h * dk, dk);
            scatter_add(dvp, dvh, S2, m->hv, h * dv, dv);
        }
        if (st) break;
        if (c->add_bias_kv) {
            float *gbk = mha_grad_part(m, m->o_bk), *gbv = mha_grad_part(m, m->o_bv);
            for (size_t j = 0; j < m->hq; j++) gbk[j] += dkp[S * m->hq + j];
            for (size_t j = 0; j < m->hv; j++) gbv[j] += dvp[S * m->hv + j];
        }
        /* Only the first S key/value rows came from the inputs. */
        st = attn_linear_backward(d_query ? d_query + n * L * c->embed_dim : NULL,
                                  mha_grad_part(m, m->o_wq), gbin, dqp, in->query + n * L * c->embed_dim,
                                  mha_part(m, m->o_wq), L, c->embed_dim, m->hq);
        if (!st)
            st = attn_linear_backward(d_key ? d_key + n * S * c->kdim : NULL, mha_grad_part(m, m->o_wk),
                                      gbin ? gbin + m->hq : NULL, dkp, in->key + n * S * c->kdim,
                                      mha_part(m, m->o_wk), S, c->kdim, m->hq);
        if (!st)
            st = attn_linear_backward(d_value ? d_value + n * S * c->vdim : NULL,
                                      mha_grad_part(m, m->o_wv), gbin ? gbin + 2 * m->hq : NULL, dvp,
                                      in->value + n * S * c->vdim, mha_part(m, m->o_wv), S, c->vdim,
                                      m->hv);
    }
    free(dconcat), free(dqp), free(dkp), free(dvp), free(qh), free(kh), free(vh), free(doh);
    free(dqh), free(dkh), free(dvh), free(mask);
    fused_masks_free(&fm);
    return st;
}
