/* gpt_kv.c - GPT inference: the incremental path with a KV cache, sampling,
 * and the generation loop (with or without the cache).
 *
 * The cache keeps, per block and head, the keys and values of every position
 * seen so far, (heads, context, head_dim) each, so that a head's keys are one
 * contiguous (S, d) matrix. A step of n new tokens runs each block as the
 * full forward does (nn_block_forward_kv: the same layer norms, projections
 * and MLP), its attention appending the new keys and values and running the
 * attention op of the n queries against all S cached keys with bottom-right
 * causal alignment (query i sees keys j <= i + S - n); a lone query takes the
 * op's direct one-query path. The activations are the model's own; the cache,
 * its scratch and the attention op's workspace (the arena's free end, taken
 * and given back by each call) are one arena. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/ops.h"
#include "attn/ops_nn.h"
#include "gpt_internal.h"

struct attn_gpt_kv {
    size_t layers, heads, head_dim, context, width, vocab;
    size_t len;
    attn_arena *arena; /* everything below */
    float *k, *v;      /* (layers, heads, context, head_dim) each */
    float *qkv;        /* (context, 3C) */
    float *q, *o;      /* (context, head_dim) */
    float *concat;     /* (context, C) */
    float *ln;         /* (1, C): the last position's final layer norm */
};

void attn_gpt_kv_free(attn_gpt_kv *kv)
{
    if (!kv) return;
    attn_arena_free(kv->arena);
    free(kv);
}

/* Adds the padded bytes of an ndim-tensor of `shape` to *total, overflow-checked. */
static attn_status add_bytes(size_t *total, int ndim, const size_t *shape)
{
    size_t numel;
    attn_status st = attn_shape_numel(ndim, shape, &numel);
    if (st) return st;
    if (numel > (SIZE_MAX - 64) / sizeof(float) - 1 ||
        *total > SIZE_MAX - (numel * sizeof(float) + 64))
        return attn_error(ATTN_E_NOMEM, "KV cache: size overflows size_t");
    *total += (numel * sizeof(float) + 63) / 64 * 64;
    return ATTN_OK;
}

/* The cache's buffers, as (ndim, shape) pairs: sized once, then carved. */
#define KV_BUFFERS 7

attn_status attn_gpt_kv_create(attn_gpt_kv **out, const attn_gpt *g)
{
    if (!out || !g) return attn_error(ATTN_E_INVALID, "attn_gpt_kv_create: NULL");
    *out = NULL;
    const attn_gpt_config *c = &g->cfg;
    const size_t T = c->context, C = c->width, d = C / c->heads;
    const size_t shapes[KV_BUFFERS][4] = {
        {c->layers, c->heads, T, d}, {c->layers, c->heads, T, d}, {T, 3 * C, 0, 0},
        {T, d, 0, 0}, {T, d, 0, 0}, {T, C, 0, 0}, {1, C, 0, 0}};
    const int ndims[KV_BUFFERS] = {4, 4, 2, 2, 2, 2, 2};
    size_t bytes = 0;
    attn_status st = ATTN_OK;
    for (int i = 0; !st && i < KV_BUFFERS; i++) st = add_bytes(&bytes, ndims[i], shapes[i]);
    if (st) return st;
    /* and the attention op's workspace for a whole-context prefill of one
     * head (at today's thread count; with more threads it allocates) */
    attn_flash_desc fd = attn_flash_desc_make(1, 1, T, T, d, d);
    fd.causal = ATTN_CAUSAL_BOTTOM_RIGHT;
    const size_t ws = attn_flash_forward_workspace(&fd) + 64;
    if (bytes > SIZE_MAX - ws) return attn_error(ATTN_E_NOMEM, "KV cache: size overflows size_t");
    bytes += ws;
    attn_gpt_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return attn_error(ATTN_E_NOMEM, "cannot allocate a KV cache");
    kv->layers = c->layers, kv->heads = c->heads, kv->head_dim = d;
    kv->context = T, kv->width = C, kv->vocab = c->vocab_size;
    st = attn_arena_create(&kv->arena, bytes);
    float **slots[KV_BUFFERS] = {&kv->k, &kv->v, &kv->qkv, &kv->q, &kv->o, &kv->concat, &kv->ln};
    for (int i = 0; !st && i < KV_BUFFERS; i++) {
        attn_tensor t;
        st = attn_arena_tensor(kv->arena, &t, ndims[i], shapes[i]);
        if (!st) *slots[i] = t.data;
    }
    if (st) {
        attn_gpt_kv_free(kv);
        return attn_error(ATTN_E_NOMEM, "cannot allocate a KV cache for context %zu", T);
    }
    *out = kv;
    return ATTN_OK;
}

void attn_gpt_kv_reset(attn_gpt_kv *kv)
{
    if (kv) kv->len = 0;
}

size_t attn_gpt_kv_len(const attn_gpt_kv *kv) { return kv ? kv->len : 0; }

attn_status attn_gpt_kv_step_traced(attn_gpt *g, attn_gpt_kv *kv, const uint32_t *ids, size_t n,
                                    float *logits, const attn_op_ctx *ctx)
{
    if (!g || !kv || !ids || !logits) return attn_error(ATTN_E_INVALID, "attn_gpt_kv_step: NULL");
    const attn_gpt_config *c = &g->cfg;
    if (kv->width != c->width || kv->layers != c->layers || kv->context != c->context ||
        kv->heads != c->heads)
        return attn_error(ATTN_E_INVALID, "attn_gpt_kv_step: the cache belongs to another model");
    if (!n || kv->len + n > c->context)
        return attn_error(ATTN_E_INVALID,
                          "KV cache: %zu cached + %zu new tokens exceed the context of %zu",
                          kv->len, n, c->context);
    const size_t C = c->width, V = c->vocab_size, T = c->context, L = c->layers;
    for (size_t i = 0; i < n; i++) g->pos[i] = (uint32_t)(kv->len + i);
    float *x = L ? g->blocks[0].res : g->res_out;
    attn_status st = attn_embedding_forward(x, ids, g->wte, n, C, V, 0, NULL);
    if (!st) st = attn_embedding_forward(x, g->pos, g->wpe, n, C, T, 1, NULL);
    if (!st) st = attn_op_record(ctx, "embed", x, n, C, "token", "dim");
    nn_kv_view view = {.head_stride = T * kv->head_dim, .heads = kv->heads, .past = kv->len,
                       .qkv = kv->qkv, .q = kv->q, .o = kv->o, .concat = kv->concat,
                       .scratch = kv->arena};
    for (size_t l = 0; !st && l < L; l++) {
        view.k = kv->k + l * kv->heads * view.head_stride;
        view.v = kv->v + l * kv->heads * view.head_stride;
        float *next = l + 1 < L ? g->blocks[l + 1].res : g->res_out;
        attn_op_ctx sub;
        char name[160], layer[32];
        snprintf(layer, sizeof layer, "layer%zu", l);
        st = nn_block_forward_kv(&g->blocks[l], &view, next, g->scratch, n, C,
                                 nn_sub_ctx(&sub, name, sizeof name, ctx, layer));
    }
    /* Only the last position's logits are needed (the head is tied). */
    const float *last = g->res_out + (n - 1) * C;
    if (!st)
        st = attn_layernorm_forward(kv->ln, NULL, NULL, last, g->lnf_w, g->lnf_b, 1, C,
                                    NN_LN_EPS, NULL);
    if (!st) st = attn_linear_forward(logits, kv->ln, g->wte, NULL, 1, C, V);
    if (!st) kv->len += n;
    return st;
}

attn_status attn_gpt_kv_step(attn_gpt *g, attn_gpt_kv *kv, const uint32_t *ids, size_t n,
                             float *logits)
{
    return attn_gpt_kv_step_traced(g, kv, ids, n, logits, NULL);
}

/* ---- sampling ------------------------------------------------------------------ */

attn_status attn_sample(uint32_t *out, const float *logits, size_t V, const attn_sample_opts *o,
                        attn_rng *rng, float *scratch)
{
    if (!o) return attn_error(ATTN_E_INVALID, "attn_sample: NULL argument or empty vocabulary");
    return attn_sample_logits(out, logits, V, o->temperature, o->top_k, o->top_p, rng, scratch);
}

/* ---- generation -------------------------------------------------------------- */

size_t attn_gpt_window_keep(const attn_gpt_config *c)
{
    return c && c->context / 2 ? c->context / 2 : 1;
}

attn_status attn_gpt_generate(attn_gpt *g, const uint32_t *prompt, size_t n_prompt,
                              const attn_generate_opts *o, attn_token_fn on_token, void *user)
{
    if (!g || !prompt || !o) return attn_error(ATTN_E_INVALID, "attn_gpt_generate: NULL argument");
    if (!n_prompt) return attn_error(ATTN_E_INVALID, "generation needs a prompt of at least one token");
    const size_t V = g->cfg.vocab_size, T = g->cfg.context, keep = attn_gpt_window_keep(&g->cfg);
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] >= V)
            return attn_error(ATTN_E_INVALID, "prompt token %u is not below the vocabulary size %zu",
                              (unsigned)prompt[i], V);
    if (n_prompt > SIZE_MAX / 2 - o->max_new) return attn_error(ATTN_E_NOMEM, "too many tokens");
    const size_t total = n_prompt + o->max_new;
    uint32_t *seq = malloc(total * sizeof *seq);
    float *logits = malloc(V * sizeof(float)), *scratch = malloc(2 * V * sizeof(float));
    attn_gpt_kv *kv = NULL;
    attn_status st = ATTN_OK;
    if (!seq || !logits || !scratch) st = attn_error(ATTN_E_NOMEM, "cannot allocate generation buffers");
    if (!st && o->use_cache) st = attn_gpt_kv_create(&kv, g);
    attn_rng rng;
    attn_rng_seed(&rng, o->seed);
    size_t n = n_prompt, start = 0, fed = 0; /* fed: tokens of seq in the cache */
    if (!st) memcpy(seq, prompt, n_prompt * sizeof *seq);
    for (size_t step = 0; !st && step < o->max_new; step++) {
        int reset = 0;
        if (n - start > T) { /* the window is full: restart it at its last K tokens */
            start = n - keep;
            reset = 1;
        }
        if (o->use_cache) {
            if (reset || step == 0) {
                attn_gpt_kv_reset(kv);
                fed = start;
            }
            st = attn_gpt_kv_step(g, kv, seq + fed, n - fed, logits);
            fed = n;
        } else {
            st = attn_gpt_forward(g, seq + start, NULL, 1, n - start, NULL, NULL);
            if (!st) memcpy(logits, g->logits + (n - start - 1) * V, V * sizeof(float));
        }
        uint32_t tok = 0;
        if (!st) st = attn_sample(&tok, logits, V, &o->sample, &rng, scratch);
        if (st) break;
        seq[n++] = tok;
        if (on_token && on_token(tok, user)) break;
    }
    attn_gpt_kv_free(kv);
    free(seq), free(logits), free(scratch);
    return st;
}
