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
#include "../ops/omp_util.h"

/* The scratch of a call: the caller's workspace (in->workspace) or the layer's. */
static attn_workspace *scratch_of(attn_mha *m, const attn_mha_inputs *in)
{
    return in->workspace ? in->workspace : &m->ws;
}

/* *out = a·b·c, checked. */
static attn_status size3(size_t *out, size_t a, size_t b, size_t c)
{
    attn_status st = attn_size_mul("multi-head attention", a, b, out);
    return st ? st : attn_size_mul("multi-head attention", *out, c, out);
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
    size_t s2 = attn_mha_kv_len(m, in->src_len), big = 0;
    if (size3(&big, in->batch, m->cfg.num_heads, in->tgt_len) ||
        attn_size_mul("multi-head attention", big, s2, &big) || big > (size_t)1e15)
        return attn_error(ATTN_E_NOMEM, "multi-head attention: N·H·L·S too large");
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
    if (!in->seq_offsets) return ATTN_OK;
    if (in->query != in->key || in->key != in->value || in->tgt_len != in->src_len ||
        in->key_padding_mask || in->attn_mask || in->causal != ATTN_CAUSAL_NONE ||
        m->cfg.add_bias_kv || m->cfg.add_zero_attn)
        return attn_error(ATTN_E_INVALID, "multi-head attention: packed sequences need "
                                          "self-attention (query = key = value, L = S) without "
                                          "masks, causality, bias_kv or zero_attn");
    for (size_t n = 0; n < in->batch; n++)
        if (in->seq_offsets[n + 1] <= in->seq_offsets[n] ||
            in->seq_offsets[n + 1] - in->seq_offsets[n] > in->tgt_len)
            return attn_error(ATTN_E_INVALID,
                              "multi-head attention: packed sequence %zu spans rows %zu to %zu, "
                              "expected 1 to %zu rows",
                              n, in->seq_offsets[n], in->seq_offsets[n + 1], in->tgt_len);
    return ATTN_OK;
}

/* Rows of the queries (N·L, or packed the sequences' sum) and of the keys. */
static size_t rows_q(const attn_mha_inputs *in)
{
    return in->seq_offsets ? in->seq_offsets[in->batch] : in->batch * in->tgt_len;
}
static size_t rows_kv(const attn_mha_inputs *in)
{
    return in->seq_offsets ? in->seq_offsets[in->batch] : in->batch * in->src_len;
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
} fused_masks;

/* The floats of boolean masks in additive form: (count of attn_mask, of key padding). */
static void fused_masks_count(const attn_mha *m, const attn_mha_inputs *in, size_t *am, size_t *kpm)
{
    *am = *kpm = 0;
    if (odd_masks(m, in)) return;
    /* check_inputs bounded N·H·L·S */
    if (in->attn_mask && in->attn_mask_kind == ATTN_MASK_BOOL)
        *am = (in->attn_mask_per_head ? in->batch * m->cfg.num_heads : 1) * in->tgt_len * in->src_len;
    if (in->key_padding_mask && in->key_padding_kind == ATTN_MASK_BOOL) *kpm = in->batch * in->src_len;
}

static attn_status fused_masks_need(size_t *total, const attn_mha *m, const attn_mha_inputs *in)
{
    size_t am, kpm;
    fused_masks_count(m, in, &am, &kpm);
    attn_status st = attn_workspace_add(total, "attention mask", am, 1);
    return st ? st : attn_workspace_add(total, "key padding mask", kpm, 1);
}

/* The masks as the fused kernels take them, converted into ws's pieces
 * (counted by fused_masks_need). */
static void fused_masks_make(fused_masks *f, const attn_mha *m, const attn_mha_inputs *in,
                             attn_workspace *ws)
{
    memset(f, 0, sizeof *f);
    if (odd_masks(m, in)) return;
    size_t am, kpm;
    fused_masks_count(m, in, &am, &kpm);
    f->am = in->attn_mask, f->kpm = in->key_padding_mask;
    if (am) {
        float *own = attn_workspace_take(ws, am, 1);
        for (size_t i = 0; i < am; i++) own[i] = mask_value(in->attn_mask[i], ATTN_MASK_BOOL);
        f->am = own;
    }
    if (kpm) {
        float *own = attn_workspace_take(ws, kpm, 1);
        for (size_t i = 0; i < kpm; i++) own[i] = mask_value(in->key_padding_mask[i], ATTN_MASK_BOOL);
        f->kpm = own;
    }
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

/* Self-attention with in_proj_weight (m->packed) whose query, key and value
 * are one input: its three projections are one product, x · w_inᵀ, into one
 * (N·L, 3E) block. Every element is the sum it was as three products (the
 * same chain over E, and for the gradients the same chains over rows, and
 * over q's, k's then v's columns in turn for d_x), so the bits are the same;
 * one GEMM instead of three converts, packs and wakes the threads once. */
static int self_packed(const attn_mha *m, const attn_mha_inputs *in)
{
    return m->packed && in->query == in->key && in->key == in->value &&
           in->tgt_len == in->src_len;
}

/* qkv_rs: 0, or the row stride of q, k and v interleaved in one block. */
static attn_flash_desc whole_desc(const attn_mha *m, const attn_mha_inputs *in,
                                  const fused_masks *f, size_t qkv_rs)
{
    const attn_mha_config *c = &m->cfg;
    const size_t N = in->batch, L = in->tgt_len, S = in->src_len;
    attn_flash_desc d = fused_desc(m, in, 0, f, 0, NULL);
    d.batch = N;
    d.q_bs = L * m->hq, d.k_bs = S * m->hq, d.v_bs = S * m->hv, d.o_bs = L * m->hv;
    if (qkv_rs) {
        d.q_rs = d.k_rs = d.v_rs = qkv_rs;
        d.q_bs = L * qkv_rs, d.k_bs = d.v_bs = S * qkv_rs;
    }
    if (f->am) d.add_mask_bs = in->attn_mask_per_head ? c->num_heads * L * S : 0;
    if (f->kpm) d.key_mask_bs = S;
    d.seq_off = in->seq_offsets;
    return d;
}

/* The fused kernel's workspace (the backward's when `backward`) for this
 * call's descriptors (whole: all batches at once; else one batch, one head at
 * a time with odd masks), in floats: a piece of the layer's workspace, so the
 * kernel allocates nothing. The size depends on the shapes and the thread
 * count, not on the masks. */
static size_t flash_floats(const attn_mha *m, const attn_mha_inputs *in, int whole, int backward)
{
    fused_masks none;
    memset(&none, 0, sizeof none);
    const attn_flash_desc d = whole ? whole_desc(m, in, &none, 0)
                                    : fused_desc(m, in, 0, &none, odd_masks(m, in), NULL);
    return (backward ? attn_flash_backward_workspace(&d) : attn_flash_forward_workspace(&d)) /
           sizeof(float);
}

/* Gives d the workspace piece w of n floats (NULL: none). */
static void flash_use(attn_flash_desc *d, float *w, size_t n)
{
    d->workspace = w, d->workspace_bytes = w ? n * sizeof(float) : 0;
}

/* qp (N·L, hq), kp (N·S, hq), vp (N·S, hv) → concat (N·L, hv) → out; the
 * kernel's workspace fw (nfw floats). With qkv_rs (self_packed) qp is the
 * block (N·L, 3E) and kp, vp its columns from E and 2E. */
static attn_status whole_forward(const attn_mha *m, const attn_mha_inputs *in,
                                 const fused_masks *f, float *qp, float *kp, float *vp,
                                 float *concat, float *lse, float *out, float *fw, size_t nfw,
                                 size_t qkv_rs)
{
    const attn_mha_config *c = &m->cfg;
    const size_t NL = rows_q(in), NS = rows_kv(in);
    const float *bin = mha_part(m, m->o_bin);
    attn_status st = attn_linear_forward(qp, in->query, mha_part(m, m->o_wq), bin, NL,
                                         c->embed_dim, qkv_rs ? qkv_rs : m->hq);
    if (!st && !qkv_rs)
        st = attn_linear_forward(kp, in->key, mha_part(m, m->o_wk), bin ? bin + m->hq : NULL, NS,
                                 c->kdim, m->hq);
    if (!st && !qkv_rs)
        st = attn_linear_forward(vp, in->value, mha_part(m, m->o_wv), bin ? bin + 2 * m->hq : NULL,
                                 NS, c->vdim, m->hv);
    if (st) return st;
    attn_flash_desc d = whole_desc(m, in, f, qkv_rs);
    flash_use(&d, fw, nfw);
    st = attn_flash_forward(concat, lse, qp, kp, vp, &d);
    if (!st)
        st = attn_linear_forward(out, concat, mha_part(m, m->o_wo), mha_part(m, m->o_bo), NL, m->hv,
                                 c->out_dim);
    return st;
}

/* The input gradients and the projections' parameter gradients from dqp,
 * dkp, dvp (whole_backward's). Self-packed (cache->qkv_rs): dqp is the
 * (N·L, 3E) block, so one linear backward gives w_in's and b_in's gradients
 * and, when the three input gradients are one buffer (self-attention's),
 * d_x; else each input's part of d_x from its columns copied out to tmp
 * (N·L, E). */
static attn_status project_backward(attn_mha *m, float *d_query, float *d_key, float *d_value,
                                    const attn_mha_inputs *in, const attn_mha_cache *cache,
                                    float *dqp, float *dkp, float *dvp, float *tmp)
{
    const attn_mha_config *c = &m->cfg;
    const size_t NL = rows_q(in), NS = rows_kv(in), E = c->embed_dim;
    float *gbin = mha_grad_part(m, m->o_bin);
    const size_t rs = cache->qkv_rs;
    if (rs) {
        const int one = d_query == d_key && d_key == d_value;
        attn_status st = attn_linear_backward(one ? d_query : NULL, mha_grad_part(m, m->o_wq), gbin,
                                              dqp, in->query, mha_part(m, m->o_wq), NL, E, rs);
        float *dx[3] = {d_query, d_key, d_value};
        for (size_t part = 0; !st && !one && part < 3; part++) {
            if (!dx[part]) continue;
            for (size_t r = 0; r < NL; r++)
                memcpy(tmp + r * E, dqp + r * rs + part * E, E * sizeof(float));
            st = attn_linear_backward(dx[part], NULL, NULL, tmp, in->query,
                                      mha_part(m, m->o_wq) + part * E * E, NL, E, E);
        }
        return st;
    }
    attn_status st = attn_linear_backward(d_query, mha_grad_part(m, m->o_wq), gbin, dqp, in->query,
                                          mha_part(m, m->o_wq), NL, E, m->hq);
    if (!st)
        st = attn_linear_backward(d_key, mha_grad_part(m, m->o_wk), gbin ? gbin + m->hq : NULL, dkp,
                                  in->key, mha_part(m, m->o_wk), NS, c->kdim, m->hq);
    if (!st)
        st = attn_linear_backward(d_value, mha_grad_part(m, m->o_wv), gbin ? gbin + 2 * m->hq : NULL,
                                  dvp, in->value, mha_part(m, m->o_wv), NS, c->vdim, m->hv);
    return st;
}

/* The backward of whole_forward; its scratch (the masks, dconcat, dqp, dkp,
 * dvp, or self-packed the (N·L, 3E) block of the three and a copy of one
 * third) from ws. */
static attn_status whole_backward(attn_mha *m, float *d_query, float *d_key, float *d_value,
                                  const float *d_out, const attn_mha_inputs *in,
                                  const attn_mha_cache *cache, attn_workspace *ws)
{
    const attn_mha_config *c = &m->cfg;
    const size_t NL = rows_q(in), NS = rows_kv(in), rs = cache->qkv_rs;
    /* check_inputs bounded N, L and S by 2^24: N·L and N·S fit; self-packed
     * L = S and hq = hv = E: the same pieces, the block in the room of three */
    size_t total = 0;
    attn_status st = fused_masks_need(&total, m, in);
    if (!st) st = attn_workspace_add(&total, "attention gradients", NL, m->hv);
    if (!st) st = attn_workspace_add(&total, "attention gradients", NL, m->hq);
    if (!st) st = attn_workspace_add(&total, "attention gradients", NS, m->hq);
    if (!st) st = attn_workspace_add(&total, "attention gradients", NS, m->hv);
    if (!st && rs) st = attn_workspace_add(&total, "attention gradients", NL, m->hq);
    const size_t nfw = flash_floats(m, in, 1, 1);
    if (!st) st = attn_workspace_add(&total, "attention workspace", nfw, 1);
    if (!st) st = attn_workspace_reserve(ws, total);
    if (st) return st;
    fused_masks fm;
    fused_masks_make(&fm, m, in, ws);
    const fused_masks *f = &fm;
    float *dconcat = attn_workspace_take(ws, NL, m->hv), *dqp, *dkp, *dvp, *tmp = NULL;
    if (rs) {
        dqp = attn_workspace_take(ws, NL, rs), dkp = dqp + m->hq, dvp = dqp + 2 * m->hq;
        tmp = attn_workspace_take(ws, NL, m->hq);
        attn_zero_floats(dqp, NL * rs); /* the flash backward adds to them */
    } else {
        dqp = attn_workspace_take(ws, NL, m->hq);
        dkp = attn_workspace_take(ws, NS, m->hq), dvp = attn_workspace_take(ws, NS, m->hv);
        attn_zero_floats(dqp, NL * m->hq);
        attn_zero_floats(dkp, NS * m->hq), attn_zero_floats(dvp, NS * m->hv);
    }
    float *fw = attn_workspace_take(ws, nfw, 1);
    /* dconcat is written */
    st = attn_linear_backward_set(dconcat, mha_grad_part(m, m->o_wo), mha_grad_part(m, m->o_bo),
                                  d_out, cache->concat, mha_part(m, m->o_wo), NL, m->hv,
                                  c->out_dim);
    attn_flash_desc d = whole_desc(m, in, f, rs);
    flash_use(&d, fw, nfw);
    if (!st)
        st = attn_flash_backward(dqp, dkp, dvp, dconcat, cache->qp, cache->kp, cache->vp,
                                 cache->concat, cache->lse, &d);
    return st ? st : project_backward(m, d_query, d_key, d_value, in, cache, dqp, dkp, dvp, tmp);
}

/* Forward of batch n: concat (L, H·d_v) from qp, kp, vp; lse (H, L) or NULL;
 * the kernel's workspace fw (nfw floats). */
static attn_status fused_forward(const attn_mha *m, const attn_mha_inputs *in, size_t n,
                                 const fused_masks *f, const float *qp, const float *kp,
                                 const float *vp, float *concat, float *lse, float *mask,
                                 float *fw, size_t nfw)
{
    const attn_mha_config *c = &m->cfg;
    if (!odd_masks(m, in)) {
        attn_flash_desc d = fused_desc(m, in, n, f, 0, NULL);
        flash_use(&d, fw, nfw);
        return attn_flash_forward(concat, lse, qp, kp, vp, &d);
    }
    attn_status st = ATTN_OK;
    for (size_t h = 0; !st && h < c->num_heads; h++) {
        build_mask(mask, m, in, n, h);
        attn_flash_desc d = fused_desc(m, in, n, f, 1, mask);
        flash_use(&d, fw, nfw);
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
                                  float *mask, float *fw, size_t nfw)
{
    const attn_mha_config *c = &m->cfg;
    if (!odd_masks(m, in)) {
        attn_flash_desc d = fused_desc(m, in, n, f, 0, NULL);
        flash_use(&d, fw, nfw);
        return attn_flash_backward(dqp, dkp, dvp, dconcat, qp, kp, vp, concat, lse, &d);
    }
    attn_status st = ATTN_OK;
    const size_t dk = c->head_dim, dv = c->v_head_dim;
    for (size_t h = 0; !st && h < c->num_heads; h++) {
        build_mask(mask, m, in, n, h);
        attn_flash_desc d = fused_desc(m, in, n, f, 1, mask);
        flash_use(&d, fw, nfw);
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

/* The fused kernels on all batches at once (whole_batch): the projections,
 * concat and lse in the cache when one is given, else in the scratch ws. */
static attn_status forward_whole(attn_mha *m, float *out, const attn_mha_inputs *in,
                                 attn_mha_cache *cache, attn_workspace *ws)
{
    const size_t N = in->batch, L = in->tgt_len, S = in->src_len, H = m->cfg.num_heads;
    /* check_inputs bounded N, L and S by 2^24 and N·H·L·S by 1e15 */
    const size_t NL = rows_q(in), NS = rows_kv(in);
    attn_workspace *at = cache ? &cache->ws : ws;
    size_t scratch = 0, keep = 0, *tot = cache ? &keep : &scratch;
    attn_status st = fused_masks_need(&scratch, m, in);
    if (!st) st = attn_workspace_add(tot, "attention projections", NL, m->hq);
    if (!st) st = attn_workspace_add(tot, "attention projections", NS, m->hq);
    if (!st) st = attn_workspace_add(tot, "attention projections", NS, m->hv);
    if (!st) st = attn_workspace_add(tot, "attention projections", NL, m->hv);
    if (!st && cache) st = attn_workspace_add(&keep, "attention cache", N * H, L);
    const size_t nfw = flash_floats(m, in, 1, 0);
    if (!st) st = attn_workspace_add(&scratch, "attention workspace", nfw, 1);
    if (!st) st = attn_workspace_reserve(ws, scratch);
    if (!st && cache) st = attn_workspace_reserve(&cache->ws, keep);
    if (st) return st;
    fused_masks fm;
    fused_masks_make(&fm, m, in, ws);
    float *fw = attn_workspace_take(ws, nfw, 1);
    /* self_packed: one block (NL, 3E) in the room of the three (NL = NS, hq = hv = E) */
    const size_t qkv_rs = self_packed(m, in) ? 3 * m->hq : 0;
    float *qp, *kp, *vp;
    if (qkv_rs) {
        qp = attn_workspace_take(at, NL, qkv_rs), kp = qp + m->hq, vp = qp + 2 * m->hq;
    } else {
        qp = attn_workspace_take(at, NL, m->hq), kp = attn_workspace_take(at, NS, m->hq);
        vp = attn_workspace_take(at, NS, m->hv);
    }
    float *concat = attn_workspace_take(at, NL, m->hv);
    float *lse = cache ? attn_workspace_take(at, N * H, L) : NULL;
    if (cache) {
        cache->qp = qp, cache->kp = kp, cache->vp = vp, cache->concat = concat, cache->lse = lse;
        cache->qkv_rs = qkv_rs;
        cache->probs = NULL;
        cache->batch = N, cache->tgt_len = L, cache->src_len = S, cache->kv_len = S;
        cache->fused = 1;
    }
    return whole_forward(m, in, &fm, qp, kp, vp, concat, lse, out, fw, nfw, qkv_rs);
}

/* The per-batch forward's buffers: scratch pieces from ws, what the
 * backward needs from the cache's block. */
typedef struct fwd_bufs {
    float *qp, *kp, *vp, *concat;          /* of batch 0 (no cache) or all (cache) */
    float *qh, *kh, *vh, *oh, *wh, *mask; /* one head (reference path) */
    float *fw;                            /* the fused kernel's workspace */
    size_t nfw;                           /* its floats */
} fwd_bufs;

static attn_status forward_bufs(fwd_bufs *b, attn_mha *m, const attn_mha_inputs *in,
                                attn_mha_cache *cache, attn_workspace *ws, int fused,
                                fused_masks *fm)
{
    const attn_mha_config *c = &m->cfg;
    const size_t N = in->batch, L = in->tgt_len, S2 = attn_mha_kv_len(m, in->src_len);
    const size_t H = c->num_heads, dk = c->head_dim, dv = c->v_head_dim;
    /* check_inputs bounded N, L and S by 2^24 and N·H·L·S by 1e15 */
    const size_t rl = cache ? N * L : L, rs = cache ? N * S2 : S2; /* rows kept */
    memset(b, 0, sizeof *b);
    size_t scratch = 0, keep = 0, *tot = cache ? &keep : &scratch;
    attn_status st = fused ? fused_masks_need(&scratch, m, in) : ATTN_OK;
    if (!st && !fused) {
        st = attn_workspace_add(&scratch, "attention heads", L, dk);
        if (!st) st = attn_workspace_add(&scratch, "attention heads", S2, dk);
        if (!st) st = attn_workspace_add(&scratch, "attention heads", S2, dv);
        if (!st) st = attn_workspace_add(&scratch, "attention heads", L, dv);
        if (!st) st = attn_workspace_add(&scratch, "attention heads", L, S2);
    }
    if (!st && (!fused || odd_masks(m, in))) st = attn_workspace_add(&scratch, "attention mask", L, S2);
    b->nfw = fused ? flash_floats(m, in, 0, 0) : 0;
    if (!st && b->nfw) st = attn_workspace_add(&scratch, "attention workspace", b->nfw, 1);
    if (!st) st = attn_workspace_add(tot, "attention projections", rl, m->hq);
    if (!st) st = attn_workspace_add(tot, "attention projections", rs, m->hq);
    if (!st) st = attn_workspace_add(tot, "attention projections", rs, m->hv);
    if (!st) st = attn_workspace_add(tot, "attention projections", rl, m->hv);
    if (!st && cache) st = attn_workspace_add(&keep, "attention cache", N * H * L, fused ? 1 : S2);
    if (!st) st = attn_workspace_reserve(ws, scratch);
    if (!st && cache) st = attn_workspace_reserve(&cache->ws, keep);
    if (st) return st;
    memset(fm, 0, sizeof *fm);
    if (fused) fused_masks_make(fm, m, in, ws);
    if (!fused) {
        b->qh = attn_workspace_take(ws, L, dk), b->kh = attn_workspace_take(ws, S2, dk);
        b->vh = attn_workspace_take(ws, S2, dv), b->oh = attn_workspace_take(ws, L, dv);
        b->wh = attn_workspace_take(ws, L, S2);
    }
    if (!fused || odd_masks(m, in)) b->mask = attn_workspace_take(ws, L, S2);
    if (b->nfw) b->fw = attn_workspace_take(ws, b->nfw, 1);
    attn_workspace *at = cache ? &cache->ws : ws;
    b->qp = attn_workspace_take(at, rl, m->hq), b->kp = attn_workspace_take(at, rs, m->hq);
    b->vp = attn_workspace_take(at, rs, m->hv), b->concat = attn_workspace_take(at, rl, m->hv);
    if (cache) {
        float *extra = attn_workspace_take(at, N * H * L, fused ? 1 : S2);
        cache->qp = b->qp, cache->kp = b->kp, cache->vp = b->vp, cache->concat = b->concat;
        cache->lse = fused ? extra : NULL, cache->probs = fused ? NULL : extra;
        cache->batch = N, cache->tgt_len = L, cache->src_len = in->src_len, cache->kv_len = S2;
        cache->fused = fused, cache->qkv_rs = 0;
    }
    return ATTN_OK;
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
    attn_workspace *ws = scratch_of(m, in);
    if (fused && whole_batch(m, in)) return forward_whole(m, out, in, cache, ws);
    if (in->seq_offsets)
        return attn_error(ATTN_E_INVALID, "multi-head attention: packed sequences give no "
                                          "weights and no trace");

    /* ctx->prefix and a dot before every name, when set */
    char pre[128] = "";
    if (tracing && ctx->prefix && *ctx->prefix) snprintf(pre, sizeof pre, "%s.", ctx->prefix);
    fwd_bufs b;
    fused_masks fm;
    if ((st = forward_bufs(&b, m, in, cache, ws, fused, &fm))) return st;
    float *qh = b.qh, *kh = b.kh, *vh = b.vh, *oh = b.oh, *wh = b.wh, *mask = b.mask;
    if (weights) memset(weights, 0, N * (average_weights ? 1 : H) * L * S2 * sizeof(float));

    for (size_t n = 0; !st && n < N; n++) {
        float *qp = b.qp, *kp = b.kp, *vp = b.vp, *concat = b.concat;
        if (cache) {
            qp += n * L * m->hq, kp += n * S2 * m->hq;
            vp += n * S2 * m->hv, concat += n * L * m->hv;
        }
        if ((st = project(m, in, n, qp, kp, vp))) break;
        if (fused) {
            st = fused_forward(m, in, n, &fm, qp, kp, vp, concat,
                               cache ? cache->lse + n * H * L : NULL, mask, b.fw, b.nfw);
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
    attn_workspace *ws = scratch_of(m, in);
    if (fused && whole_batch(m, in)) return whole_backward(m, d_query, d_key, d_value, d_out, in, cache, ws);
    if (in->seq_offsets)
        return attn_error(ATTN_E_INVALID, "attn_mha_backward: packed sequences need a fused forward");
    const int odd = fused && odd_masks(m, in);
    size_t total = 0;
    const size_t rows[11] = {L, L, S2, S2, L, S2, S2, L, L, S2, S2};
    const size_t cols[11] = {m->hv, m->hq, m->hq, m->hv, dk, dk, dv, dv, dk, dk, dv};
    float *buf[11];
    st = fused ? fused_masks_need(&total, m, in) : ATTN_OK;
    for (size_t i = 0; !st && i < 11; i++) st = attn_workspace_add(&total, "attention gradients", rows[i], cols[i]);
    if (!st && odd) st = attn_workspace_add(&total, "attention mask", L, S2);
    const size_t nfw = fused ? flash_floats(m, in, 0, 1) : 0;
    if (!st && nfw) st = attn_workspace_add(&total, "attention workspace", nfw, 1);
    if (!st) st = attn_workspace_reserve(ws, total);
    if (st) return st;
    fused_masks fm;
    memset(&fm, 0, sizeof fm);
    if (fused) fused_masks_make(&fm, m, in, ws);
    for (size_t i = 0; i < 11; i++) buf[i] = attn_workspace_take(ws, rows[i], cols[i]);
    float *dconcat = buf[0], *dqp = buf[1], *dkp = buf[2], *dvp = buf[3], *qh = buf[4], *kh = buf[5];
    float *vh = buf[6], *doh = buf[7], *dqh = buf[8], *dkh = buf[9], *dvh = buf[10];
    float *mask = odd ? attn_workspace_take(ws, L, S2) : NULL;
    float *fw = nfw ? attn_workspace_take(ws, nfw, 1) : NULL;
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
                                cache->lse + n * H * L, mask, fw, nfw);
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
    return st;
}
