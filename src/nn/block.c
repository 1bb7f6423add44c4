/* block.c - the Transformer block shared by the decoder and the encoder. */
#include "block.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "attn/ops.h"
#include "attn/ops_nn.h"
#include "attn/rng.h"
#include "../ops/omp_util.h"

static void record(nn_builder *b, const char *name, float *data, float *grad, int ndim,
                   size_t s0, size_t s1, size_t numel)
{
    attn_param_ref *r = &b->table[(*b->n_table)++];
    int n = snprintf(b->name_at, b->name_left, "%s", name);
    r->name = b->name_at;
    b->name_at += n + 1, b->name_left -= (size_t)n + 1;
    r->data = data, r->grad = grad, r->numel = numel, r->ndim = ndim;
    r->shape[0] = s0, r->shape[1] = ndim == 2 ? s1 : 1;
    r->decay = ndim == 2; /* weight decay on matrices only */
    *b->n_params += numel;
}

void nn_take(nn_builder *b, float **data, float **grad, const char *name, size_t s0, size_t s1)
{
    if (b->st) return;
    attn_tensor p, g;
    size_t shape[2] = {s0, s1};
    int ndim = s1 ? 2 : 1;
    b->st = attn_arena_tensor(b->params, &p, ndim, shape);
    if (!b->st) b->st = attn_arena_tensor(b->grads, &g, ndim, shape);
    if (b->st) return;
    *data = p.data, *grad = g.data;
    record(b, name, p.data, g.data, ndim, s0, s1, p.numel);
}

void nn_take_mha(nn_builder *b, attn_mha *m, size_t l, const char *mha_name, const float **data)
{
    if (b->st) return;
    for (size_t i = 0; i < attn_mha_param_count(m); i++) {
        const char *name;
        attn_tensor p, g;
        if ((b->st = attn_mha_param_at(m, i, &name, &p, &g))) return;
        if (strcmp(name, mha_name)) continue;
        char full[96];
        snprintf(full, sizeof full, "h.%zu.attn.%s", l, mha_name);
        record(b, full, p.data, g.data, p.ndim, p.shape[0], p.ndim == 2 ? p.shape[1] : 1, p.numel);
        if (data) *data = p.data;
        return;
    }
    b->st = attn_error(ATTN_E_INTERNAL, "attention layer has no parameter '%s'", mha_name);
}

float *nn_act(nn_builder *b, size_t rows, size_t cols)
{
    if (b->st) return NULL;
    attn_tensor t;
    size_t shape[2] = {rows, cols};
    b->st = attn_arena_tensor(b->acts, &t, 2, shape);
    return b->st ? NULL : t.data;
}

void nn_init_gpt2(attn_param_ref *table, size_t n_table, size_t layers, uint64_t seed)
{
    attn_rng r;
    attn_rng_seed(&r, seed);
    const float std = 0.02f, std_res = (float)(0.02 / sqrt(2.0 * (double)layers));
    for (size_t i = 0; i < n_table; i++) {
        attn_param_ref *p = &table[i];
        const char *n = p->name;
        size_t len = strlen(n);
        if (p->ndim == 2) {
            int residual = strstr(n, "attn.out_proj.weight") || strstr(n, "mlp.c_proj.weight");
            attn_rng_fill_normal(&r, p->data, p->numel, 0.0f, residual ? std_res : std);
        } else { /* layer-norm weights start as the identity, biases at 0 */
            float v = len > 7 && strcmp(n + len - 7, ".weight") == 0 ? 1.0f : 0.0f;
            for (size_t j = 0; j < p->numel; j++) p->data[j] = v;
        }
    }
}

void nn_block_build(nn_builder *b, nn_block *k, size_t l, int bias, size_t C, size_t R)
{
    char name[64];
#define NAME(s) (snprintf(name, sizeof name, "h.%zu.%s", l, s), name)
    nn_take(b, &k->ln1_w, &k->g_ln1_w, NAME("ln_1.weight"), C, 0);
    if (bias) nn_take(b, &k->ln1_b, &k->g_ln1_b, NAME("ln_1.bias"), C, 0);
    nn_take_mha(b, k->mha, l, "in_proj_weight", &k->in_w);
    if (bias) nn_take_mha(b, k->mha, l, "in_proj_bias", &k->in_b);
    nn_take_mha(b, k->mha, l, "out_proj.weight", &k->out_w);
    if (bias) nn_take_mha(b, k->mha, l, "out_proj.bias", &k->out_b);
    nn_take(b, &k->ln2_w, &k->g_ln2_w, NAME("ln_2.weight"), C, 0);
    if (bias) nn_take(b, &k->ln2_b, &k->g_ln2_b, NAME("ln_2.bias"), C, 0);
    nn_take(b, &k->fc_w, &k->g_fc_w, NAME("mlp.c_fc.weight"), 4 * C, C);
    if (bias) nn_take(b, &k->fc_b, &k->g_fc_b, NAME("mlp.c_fc.bias"), 4 * C, 0);
    nn_take(b, &k->proj_w, &k->g_proj_w, NAME("mlp.c_proj.weight"), C, 4 * C);
    if (bias) nn_take(b, &k->proj_b, &k->g_proj_b, NAME("mlp.c_proj.bias"), C, 0);
#undef NAME
    k->res = nn_act(b, R, C), k->ln1 = nn_act(b, R, C), k->mid = nn_act(b, R, C);
    k->ln2 = nn_act(b, R, C), k->fc = nn_act(b, R, 4 * C), k->act = nn_act(b, R, 4 * C);
    k->ln1_mean = nn_act(b, R, 1), k->ln1_rstd = nn_act(b, R, 1);
    k->ln2_mean = nn_act(b, R, 1), k->ln2_rstd = nn_act(b, R, 1);
}

static void add(float *y, const float *a, const float *b, size_t n)
{
    /* a generated token's row stays off the threads (a region costs more) */
    if (n < ((size_t)1 << 15)) {
        for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
        return;
    }
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

const attn_op_ctx *nn_sub_ctx(attn_op_ctx *sub, char *buf, size_t n, const attn_op_ctx *ctx,
                              const char *name)
{
    if (!ctx || !ctx->trace) return NULL;
    if (ctx->prefix && *ctx->prefix) snprintf(buf, n, "%s.%s", ctx->prefix, name);
    else snprintf(buf, n, "%s", name);
    sub->trace = ctx->trace, sub->prefix = buf;
    return sub;
}

/* ln_1 of the block's input k->res (R, C) into k->ln1. */
static attn_status block_ln1(nn_block *k, size_t R, size_t C, const attn_op_ctx *ctx)
{
    attn_op_ctx sub;
    char name[160];
    return attn_layernorm_forward(k->ln1, k->ln1_mean, k->ln1_rstd, k->res, k->ln1_w, k->ln1_b,
                                  R, C, NN_LN_EPS,
                                  nn_sub_ctx(&sub, name, sizeof name, ctx, "ln_1"));
}

/* Dropout in place on x (n), keeping the flags in mask when there is one. */
static attn_status block_drop(const nn_block *k, float *x, uint8_t *mask, size_t n, float p,
                              uint64_t key, size_t C)
{
    if (mask && k->seq_off)
        return attn_dropout_forward_mask_packed(x, mask, x, k->seq_off, k->seq_n, k->seq_t, C, p, key);
    return mask ? attn_dropout_forward_mask(x, mask, x, n, p, key)
                : attn_dropout_forward(x, x, n, p, key, NULL);
}

/* Its backward into d_x (n): from the flags, or hashing again into a zeroed d_x. */
static attn_status block_drop_backward(float *d_x, const float *d_y, const uint8_t *mask, size_t n,
                                       float p, uint64_t key)
{
    if (mask) return attn_dropout_backward_mask(d_x, d_y, mask, n, p);
    memset(d_x, 0, n * sizeof(float));
    return attn_dropout_backward(d_x, d_y, n, p, key);
}

/* The rest of the block once the attention's output (R, C) is in scratch:
 * the residual add, the MLP and its residual add into next (R, C). */
static attn_status block_rest(nn_block *k, float *next, float *scratch, size_t R, size_t C,
                              const attn_op_ctx *ctx)
{
    attn_op_ctx sub;
    char name[160];
    attn_status st = ATTN_OK;
    if (k->drop_p > 0.0f) st = block_drop(k, scratch, k->mask_attn, R * C, k->drop_p, k->key_attn, C);
    if (st) return st;
    if (ctx && ctx->trace) { /* "mid" recorded before ln_2's entries */
        add(k->mid, k->res, scratch, R * C);
        st = attn_op_record(ctx, "mid", k->mid, R, C, "token", "dim");
        if (!st)
            st = attn_layernorm_forward(k->ln2, k->ln2_mean, k->ln2_rstd, k->mid, k->ln2_w,
                                        k->ln2_b, R, C, NN_LN_EPS,
                                        nn_sub_ctx(&sub, name, sizeof name, ctx, "ln_2"));
    } else { /* the same bits in one pass */
        st = attn_add_layernorm_forward(k->mid, k->ln2, k->ln2_mean, k->ln2_rstd, k->res, scratch,
                                        k->ln2_w, k->ln2_b, R, C, NN_LN_EPS, NULL);
    }
    if (!st) st = attn_linear_forward(k->fc, k->ln2, k->fc_w, k->fc_b, R, C, 4 * C);
    if (!st) st = attn_op_record(ctx, "mlp.fc", k->fc, R, 4 * C, "token", "hidden");
    if (!st) st = attn_gelu_forward(k->act, k->fc, R * 4 * C, NULL);
    if (!st) st = attn_op_record(ctx, "mlp.gelu", k->act, R, 4 * C, "token", "hidden");
    if (!st) st = attn_linear_forward(scratch, k->act, k->proj_w, k->proj_b, R, 4 * C, C);
    if (!st) st = attn_op_record(ctx, "mlp.output", scratch, R, C, "token", "dim");
    if (!st && k->drop_p > 0.0f) st = block_drop(k, scratch, k->mask_mlp, R * C, k->drop_p, k->key_mlp, C);
    if (st) return st;
    add(next, k->mid, scratch, R * C);
    return attn_op_record(ctx, "resid", next, R, C, "token", "dim");
}

attn_status nn_block_forward(nn_block *k, attn_mha_inputs in, float *next, float *scratch,
                             float *weights, size_t R, size_t C, const attn_op_ctx *ctx)
{
    attn_status st = block_ln1(k, R, C, ctx);
    in.query = in.key = in.value = k->ln1;
    if (!st) st = attn_mha_forward(k->mha, scratch, weights, 0, &in, k->cache, ctx);
    return st ? st : block_rest(k, next, scratch, R, C, ctx);
}

/* Keys (of heads × S × d cached floats) from which a lone query's heads run
 * on the threads: below, a parallel region costs more than the heads. */
#define KV_PAR_WORK ((size_t)1 << 16)

/* A generated token's step (n = 1): its query, key and value of head h are
 * slices of the one qkv row, so each head appends its key and value and
 * writes its output straight into concat; the heads are independent, each
 * computed by the same serial op whichever thread runs it (so the threads
 * change no bit). Untraced only (a trace records each head in turn). The
 * shared scratch arena is not theirs, and the caller keeps S within the op's
 * one-query path, which needs none. 0 if a head failed: the caller then runs the serial loop, which
 * reports the error on this thread. */
static int heads_one_query(const nn_kv_view *kv, const attn_sdpa_params *params, size_t C)
{
    const size_t H = kv->heads, d = C / H, S = kv->past + 1;
    attn_sdpa_params own = *params;
    own.scratch = NULL;
    const attn_sdpa_params *p = &own;
    int failed = 0;
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic) reduction(| : failed) if (H * S * d >= KV_PAR_WORK)
#endif
    for (size_t h = 0; h < H; h++) {
        float *kc = kv->k + h * kv->head_stride, *vc = kv->v + h * kv->head_stride;
        memcpy(kc + kv->past * d, kv->qkv + C + h * d, d * sizeof(float));
        memcpy(vc + kv->past * d, kv->qkv + 2 * C + h * d, d * sizeof(float));
        failed |= attn_sdpa_forward(kv->concat + h * d, NULL, kv->qkv + h * d, kc, vc, 1, S, d, d,
                                    p, NULL) != ATTN_OK;
    }
    return !failed;
}

/* The attention of the n new rows of k->ln1 over the cache: their keys and
 * values appended at kv->past, each head's n queries against its S = past + n
 * cached keys, bottom-right aligned (query i sees keys j <= i + past), then
 * the output projection into out (n, C). The projections are the layer's own
 * weights (k->in_w, k->out_w), the attention the library's op. */
static attn_status cached_attention(nn_block *k, const nn_kv_view *kv, float *out, size_t n,
                                    size_t C, const attn_op_ctx *ctx)
{
    const size_t H = kv->heads, d = C / H, S = kv->past + n;
    attn_sdpa_params p = attn_sdpa_defaults();
    p.causal = ATTN_CAUSAL_BOTTOM_RIGHT;
    p.scratch = kv->scratch;
    attn_status st = attn_linear_forward(kv->qkv, k->ln1, k->in_w, k->in_b, n, C, 3 * C);
    /* Within the op's one-query path the heads need no workspace; past it,
     * each would allocate one per token: the serial loop uses the arena. */
    const int done = !st && n == 1 && S <= ATTN_SDPA_ONE_QUERY_MAX_KEYS && !(ctx && ctx->trace) &&
                     heads_one_query(kv, &p, C);
    for (size_t h = 0; !st && !done && h < H; h++) {
        float *kc = kv->k + h * kv->head_stride, *vc = kv->v + h * kv->head_stride;
        for (size_t i = 0; i < n; i++) {
            const float *row = kv->qkv + i * 3 * C;
            memcpy(kv->q + i * d, row + h * d, d * sizeof(float));
            memcpy(kc + (kv->past + i) * d, row + C + h * d, d * sizeof(float));
            memcpy(vc + (kv->past + i) * d, row + 2 * C + h * d, d * sizeof(float));
        }
        /* With a trace, each head records what the full forward's do
         * ("head<h>.q", ".k", ".v" and the op's entries): the new rows'
         * queries over all S cached keys. */
        attn_op_ctx sub;
        char name[160], head[32];
        snprintf(head, sizeof head, "head%zu", h);
        const attn_op_ctx *hctx = nn_sub_ctx(&sub, name, sizeof name, ctx, head);
        st = attn_op_record(hctx, "q", kv->q, n, d, "query", "head_dim");
        if (!st) st = attn_op_record(hctx, "k", kc, S, d, "key", "head_dim");
        if (!st) st = attn_op_record(hctx, "v", vc, S, d, "key", "value_dim");
        if (!st) st = attn_sdpa_forward(kv->o, NULL, kv->q, kc, vc, n, S, d, d, &p, hctx);
        for (size_t i = 0; !st && i < n; i++)
            memcpy(kv->concat + i * C + h * d, kv->o + i * d, d * sizeof(float));
    }
    if (!st) st = attn_op_record(ctx, "concat", kv->concat, n, C, "token", "dim");
    if (!st) st = attn_linear_forward(out, kv->concat, k->out_w, k->out_b, n, C, C);
    if (!st) st = attn_op_record(ctx, "output", out, n, C, "query", "out_dim");
    return st;
}

attn_status nn_block_forward_kv(nn_block *k, const nn_kv_view *kv, float *next, float *scratch,
                                size_t n, size_t C, const attn_op_ctx *ctx)
{
    attn_status st = block_ln1(k, n, C, ctx);
    if (!st) st = cached_attention(k, kv, scratch, n, C, ctx);
    return st ? st : block_rest(k, next, scratch, n, C, ctx);
}

attn_status nn_block_backward(nn_block *k, attn_mha_inputs in, float *d_res, float *d_tmp,
                              float *d_big1, float *d_big2, size_t R, size_t C)
{
    /* next = mid + drop(c_proj(gelu(c_fc(ln_2(mid))))) */
    attn_status st = ATTN_OK;
    const float *d_mlp = d_res, *d_attn = d_res; /* the gradients past dropout */
    if (k->drop_p > 0.0f) {
        st = block_drop_backward(d_tmp, d_res, k->mask_mlp, R * C, k->drop_p, k->key_mlp);
        d_mlp = d_tmp;
    }
    /* the _set ops write their input gradients: no zeroing passes */
    if (!st)
        st = attn_linear_backward_set(d_big1, k->g_proj_w, k->g_proj_b, d_mlp, k->act, k->proj_w,
                                      R, 4 * C, C);
    if (!st) st = attn_gelu_backward_set(d_big2, d_big1, k->fc, R * 4 * C);
    if (!st)
        st = attn_linear_backward_set(d_tmp, k->g_fc_w, k->g_fc_b, d_big2, k->ln2, k->fc_w, R, C,
                                      4 * C);
    if (!st)
        st = attn_layernorm_backward(d_res, k->g_ln2_w, k->g_ln2_b, d_tmp, k->mid, k->ln2_w,
                                     k->ln2_mean, k->ln2_rstd, R, C);
    /* mid = x + drop(attn(ln_1(x))); q = k = v = ln_1(x), so one gradient
     * buffer. d_big1 is free again: it takes the gradient past dropout. */
    if (!st && k->drop_p > 0.0f) {
        st = block_drop_backward(d_big1, d_res, k->mask_attn, R * C, k->drop_p, k->key_attn);
        d_attn = d_big1;
    }
    attn_zero_floats(d_tmp, R * C);
    in.query = in.key = in.value = k->ln1;
    if (!st) st = attn_mha_backward(k->mha, d_tmp, d_tmp, d_tmp, d_attn, &in, k->cache);
    if (!st)
        st = attn_layernorm_backward(d_res, k->g_ln1_w, k->g_ln1_b, d_tmp, k->res, k->ln1_w,
                                     k->ln1_mean, k->ln1_rstd, R, C);
    return st;
}
