/* gpt_kv.c - GPT inference: the incremental path with a KV cache, sampling,
 * and the generation loop (with or without the cache).
 *
 * The cache keeps, per block and head, the keys and values of every position
 * seen so far, (heads, context, head_dim) each, so that a head's keys are one
 * contiguous (S, d) matrix. A step of n new tokens computes their q|k|v with
 * the block's own in_proj weights, appends k and v, and runs the attention op
 * of the n queries against all S cached keys with bottom-right causal
 * alignment (query i sees keys j <= i + S - n). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/ops.h"
#include "attn/ops_nn.h"
#include "gpt_internal.h"

struct attn_gpt_kv {
    size_t layers, heads, head_dim, context, width, vocab;
    size_t len;
    float *k, *v;   /* (layers, heads, context, head_dim) each */
    float *x, *ln, *qkv, *concat, *tmp, *fc, *act, *qh, *oh; /* scratch, (context, ·) */
    float *att;     /* (context): one query's attention weights */
};

void attn_gpt_kv_free(attn_gpt_kv *kv)
{
    if (!kv) return;
    free(kv->k), free(kv->v), free(kv->x), free(kv->ln), free(kv->qkv);
    free(kv->concat), free(kv->tmp), free(kv->fc), free(kv->act), free(kv->qh), free(kv->oh);
    free(kv->att);
    free(kv);
}

attn_status attn_gpt_kv_create(attn_gpt_kv **out, const attn_gpt *g)
{
    if (!out || !g) return attn_error(ATTN_E_INVALID, "attn_gpt_kv_create: NULL");
    *out = NULL;
    const attn_gpt_config *c = &g->cfg;
    attn_gpt_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return attn_error(ATTN_E_NOMEM, "cannot allocate a KV cache");
    kv->layers = c->layers, kv->heads = c->heads, kv->head_dim = c->width / c->heads;
    kv->context = c->context, kv->width = c->width, kv->vocab = c->vocab_size;
    const size_t T = c->context, C = c->width, n = c->layers * T * C;
    kv->k = malloc(n * sizeof(float)), kv->v = malloc(n * sizeof(float));
    kv->x = malloc(T * C * sizeof(float)), kv->ln = malloc(T * C * sizeof(float));
    kv->qkv = malloc(T * 3 * C * sizeof(float));
    kv->concat = malloc(T * C * sizeof(float)), kv->tmp = malloc(T * C * sizeof(float));
    kv->fc = malloc(T * 4 * C * sizeof(float)), kv->act = malloc(T * 4 * C * sizeof(float));
    kv->qh = malloc(T * C * sizeof(float)), kv->oh = malloc(T * C * sizeof(float));
    kv->att = malloc(T * sizeof(float));
    if (!kv->k || !kv->v || !kv->x || !kv->ln || !kv->qkv || !kv->concat ||
        !kv->tmp || !kv->fc || !kv->act || !kv->qh || !kv->oh || !kv->att) {
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

/* ---- the one-token step --------------------------------------------------------
 *
 * A generated token's step is about 12·C² multiply-adds per block, a few tens
 * of microseconds: so small that the fixed costs of the batched ops would
 * dominate it. Each OpenMP region, even one whose `if` clause is false, costs
 * libgomp a futex system call at its closing barrier (2-3 µs here, more
 * than a row's layer norm), and the fused attention kernel allocates and packs
 * a workspace per head. So this path is serial, allocates nothing, and works
 * on single rows: the layer norm, GELU and one-row products (linear,
 * matmul) run serially at this size, and the attention of one query over the
 * cache is computed directly. */

/* o (d) = softmax(q · kᵀ · scale) · v for one query q (d) over the S cached
 * keys and values k, v (S, d); att (S) is scratch. The scores are a
 * matrix-vector product (one sum per key would be a chain of dependent adds). */
static void attend_one(float *o, float *att, const float *q, const float *k, const float *v,
                       size_t S, size_t d, float scale)
{
    (void)attn_matmul_nt_forward(att, q, k, 1, d, S, NULL); /* sizes checked by the caller */
    float mx = -INFINITY;
    for (size_t j = 0; j < S; j++) {
        att[j] *= scale;
        if (att[j] > mx) mx = att[j];
    }
    float sum = 0.0f;
    for (size_t j = 0; j < S; j++) sum += att[j] = expf(att[j] - mx);
    const float inv = 1.0f / sum;
    memset(o, 0, d * sizeof(float));
    for (size_t j = 0; j < S; j++) {
        const float p = att[j] * inv;
        for (size_t t = 0; t < d; t++) o[t] += p * v[j * d + t];
    }
}

/* The step of one token `id` at position kv->len; logits (V). */
static void step_one(const attn_gpt *g, attn_gpt_kv *kv, uint32_t id, float *logits)
{
    const attn_gpt_config *c = &g->cfg;
    const size_t C = c->width, H = c->heads, T = c->context, d = C / H, pos = kv->len;
    const size_t S = pos + 1;
    const float scale = (float)(1.0 / sqrt((double)d));
    float *x = kv->x, *ln = kv->ln, *qkv = kv->qkv, *cat = kv->concat, *tmp = kv->tmp;
    const float *te = g->wte + (size_t)id * C, *pe = g->wpe + pos * C;
    for (size_t j = 0; j < C; j++) x[j] = te[j] + pe[j];
    for (size_t l = 0; l < c->layers; l++) {
        const nn_block *k = &g->blocks[l];
        (void)attn_layernorm_forward(ln, NULL, NULL, x, k->ln1_w, k->ln1_b, 1, C, NN_LN_EPS, NULL);
        (void)attn_linear_forward(qkv, ln, k->in_w, k->in_b, 1, C, 3 * C);
        for (size_t h = 0; h < H; h++) {
            float *kc = kv->k + ((l * H + h) * T) * d, *vc = kv->v + ((l * H + h) * T) * d;
            memcpy(kc + pos * d, qkv + C + h * d, d * sizeof(float));
            memcpy(vc + pos * d, qkv + 2 * C + h * d, d * sizeof(float));
            attend_one(cat + h * d, kv->att, qkv + h * d, kc, vc, S, d, scale);
        }
        (void)attn_linear_forward(tmp, cat, k->out_w, k->out_b, 1, C, C);
        for (size_t j = 0; j < C; j++) x[j] += tmp[j];
        (void)attn_layernorm_forward(ln, NULL, NULL, x, k->ln2_w, k->ln2_b, 1, C, NN_LN_EPS, NULL);
        (void)attn_linear_forward(kv->fc, ln, k->fc_w, k->fc_b, 1, C, 4 * C);
        (void)attn_gelu_forward(kv->act, kv->fc, 4 * C, NULL); /* cannot fail: sizes checked */
        (void)attn_linear_forward(tmp, kv->act, k->proj_w, k->proj_b, 1, 4 * C, C);
        for (size_t j = 0; j < C; j++) x[j] += tmp[j];
    }
    (void)attn_layernorm_forward(ln, NULL, NULL, x, g->lnf_w, g->lnf_b, 1, C, NN_LN_EPS, NULL);
    (void)attn_linear_forward(logits, ln, g->wte, NULL, 1, C, c->vocab_size); /* tied head */
    kv->len = S;
}

attn_status attn_gpt_kv_step(attn_gpt *g, attn_gpt_kv *kv, const uint32_t *ids, size_t n,
                             float *logits)
{
    if (!g || !kv || !ids || !logits) return attn_error(ATTN_E_INVALID, "attn_gpt_kv_step: NULL");
    const attn_gpt_config *c = &g->cfg;
    if (kv->width != c->width || kv->layers != c->layers || kv->context != c->context)
        return attn_error(ATTN_E_INVALID, "attn_gpt_kv_step: the cache belongs to another model");
    if (!n || kv->len + n > c->context)
        return attn_error(ATTN_E_INVALID,
                          "KV cache: %zu cached + %zu new tokens exceed the context of %zu",
                          kv->len, n, c->context);
    const size_t C = c->width, V = c->vocab_size, T = c->context, H = c->heads;
    const size_t d = C / H, S = kv->len + n;
    if (n == 1) {
        if (ids[0] >= V)
            return attn_error(ATTN_E_INVALID, "token %u is not below the vocabulary size %zu",
                              (unsigned)ids[0], V);
        step_one(g, kv, ids[0], logits);
        return ATTN_OK;
    }
    for (size_t i = 0; i < n; i++) g->pos[i] = (uint32_t)(kv->len + i);
    attn_status st = attn_embedding_forward(kv->x, ids, g->wte, n, C, V, 0, NULL);
    if (!st) st = attn_embedding_forward(kv->x, g->pos, g->wpe, n, C, T, 1, NULL);
    attn_sdpa_params p = attn_sdpa_defaults();
    p.causal = ATTN_CAUSAL_BOTTOM_RIGHT;
    for (size_t l = 0; !st && l < c->layers; l++) {
        const nn_block *k = &g->blocks[l];
        st = attn_layernorm_forward(kv->ln, NULL, NULL, kv->x, k->ln1_w, k->ln1_b, n, C, NN_LN_EPS, NULL);
        if (!st) st = attn_linear_forward(kv->qkv, kv->ln, k->in_w, k->in_b, n, C, 3 * C);
        for (size_t h = 0; !st && h < H; h++) {
            float *kc = kv->k + ((l * H + h) * T) * d, *vc = kv->v + ((l * H + h) * T) * d;
            for (size_t i = 0; i < n; i++) {
                const float *row = kv->qkv + i * 3 * C;
                memcpy(kv->qh + i * d, row + h * d, d * sizeof(float));
                memcpy(kc + (kv->len + i) * d, row + C + h * d, d * sizeof(float));
                memcpy(vc + (kv->len + i) * d, row + 2 * C + h * d, d * sizeof(float));
            }
            st = attn_sdpa_forward(kv->oh, NULL, kv->qh, kc, vc, n, S, d, d, &p, NULL);
            for (size_t i = 0; !st && i < n; i++)
                memcpy(kv->concat + i * C + h * d, kv->oh + i * d, d * sizeof(float));
        }
        if (!st) st = attn_linear_forward(kv->tmp, kv->concat, k->out_w, k->out_b, n, C, C);
        if (st) break;
        for (size_t i = 0; i < n * C; i++) kv->x[i] += kv->tmp[i];
        st = attn_layernorm_forward(kv->ln, NULL, NULL, kv->x, k->ln2_w, k->ln2_b, n, C, NN_LN_EPS, NULL);
        if (!st) st = attn_linear_forward(kv->fc, kv->ln, k->fc_w, k->fc_b, n, C, 4 * C);
        if (!st) st = attn_gelu_forward(kv->act, kv->fc, n * 4 * C, NULL);
        if (!st) st = attn_linear_forward(kv->tmp, kv->act, k->proj_w, k->proj_b, n, 4 * C, C);
        if (!st)
            for (size_t i = 0; i < n * C; i++) kv->x[i] += kv->tmp[i];
    }
    /* Only the last position's logits are needed. */
    const float *last = kv->x + (n - 1) * C;
    if (!st) st = attn_layernorm_forward(kv->ln, NULL, NULL, last, g->lnf_w, g->lnf_b, 1, C, NN_LN_EPS, NULL);
    if (!st) st = attn_linear_forward(logits, kv->ln, g->wte, NULL, 1, C, V);
    if (!st) kv->len = S;
    return st;
}

/* ---- sampling ------------------------------------------------------------------ */

typedef struct ranked {
    float p;
    uint32_t id;
} ranked;

static int by_prob_desc(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id < y->id ? -1 : 1; /* ties by id: deterministic */
}

attn_status attn_sample(uint32_t *out, const float *logits, size_t V, const attn_sample_opts *o,
                        attn_rng *rng, float *scratch)
{
    if (!out || !logits || !o || !rng || !scratch || !V)
        return attn_error(ATTN_E_INVALID, "attn_sample: NULL argument or empty vocabulary");
    if (!(o->temperature >= 0.0f) || !(o->top_p > 0.0f && o->top_p <= 1.0f))
        return attn_error(ATTN_E_INVALID, "sampling: temperature must be >= 0 and top-p in (0, 1]");
    size_t best = 0;
    for (size_t j = 1; j < V; j++)
        if (logits[j] > logits[best]) best = j;
    if (o->temperature == 0.0f) {
        *out = (uint32_t)best;
        return ATTN_OK;
    }
    /* Probabilities at the temperature, max-subtracted (not normalised). */
    ranked *r = (ranked *)(void *)scratch; /* 2·V floats hold V pairs */
    for (size_t j = 0; j < V; j++) {
        r[j].p = expf((logits[j] - logits[best]) / o->temperature);
        r[j].id = (uint32_t)j;
    }
    size_t keep = V;
    if (o->top_k || o->top_p < 1.0f) {
        qsort(r, V, sizeof *r, by_prob_desc);
        if (o->top_k && o->top_k < keep) keep = o->top_k;
        if (o->top_p < 1.0f) { /* the fewest most likely ids holding top_p of the mass */
            double kept = 0.0, cum = 0.0;
            for (size_t j = 0; j < keep; j++) kept += r[j].p;
            for (size_t j = 0; j < keep; j++) {
                cum += r[j].p;
                if (cum >= (double)o->top_p * kept) {
                    keep = j + 1;
                    break;
                }
            }
        }
    }
    double sum = 0.0;
    for (size_t j = 0; j < keep; j++) sum += r[j].p;
    const double u = attn_rng_uniform(rng) * sum;
    double acc = 0.0;
    for (size_t j = 0; j < keep; j++) {
        acc += r[j].p;
        if (u < acc) {
            *out = r[j].id;
            return ATTN_OK;
        }
    }
    *out = r[keep - 1].id;
    return ATTN_OK;
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
