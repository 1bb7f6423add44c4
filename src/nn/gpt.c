/* gpt.c - a GPT-2 style decoder: parameters, initialisation, forward and
 * backward over a batch. Parameters, gradients and activations each live in
 * one arena (the attention layers keep theirs inside attn_mha); the table of
 * attn_param_ref names every tensor for optimizers and checkpoints. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/ops.h"
#include "attn/ops_nn.h"
#include "gpt_internal.h"

#define SIZE_LIMIT ((size_t)1 << 24)

attn_status attn_gpt_config_check(const attn_gpt_config *c)
{
    if (!c) return attn_error(ATTN_E_INVALID, "GPT configuration: NULL");
    if (!c->layers) return attn_error(ATTN_E_INVALID, "layers must be at least 1, got 0");
    if (!c->heads) return attn_error(ATTN_E_INVALID, "heads must be at least 1, got 0");
    if (!c->width) return attn_error(ATTN_E_INVALID, "width must be at least 1, got 0");
    if (!c->context) return attn_error(ATTN_E_INVALID, "context must be at least 1, got 0");
    if (!c->vocab_size) return attn_error(ATTN_E_INVALID, "the vocabulary is empty");
    if (c->width % c->heads)
        return attn_error(ATTN_E_INVALID, "width %zu is not divisible by heads %zu", c->width,
                          c->heads);
    if (c->layers > 4096 || c->heads > SIZE_LIMIT || c->width > 65536 || c->context > SIZE_LIMIT ||
        c->vocab_size > SIZE_LIMIT)
        return attn_error(ATTN_E_INVALID,
                          "configuration too large (layers <= 4096, width <= 65536, context "
                          "and vocabulary <= 2^24)");
    return ATTN_OK;
}

size_t attn_gpt_config_params(const attn_gpt_config *c)
{
    const size_t C = c->width, b = c->bias ? 1 : 0;
    size_t block = 2 * C * (1 + b)           /* ln_1, ln_2 */
                   + 3 * C * C + 3 * C * b   /* in_proj */
                   + C * C + C * b           /* out_proj */
                   + 4 * C * C + 4 * C * b   /* c_fc */
                   + 4 * C * C + C * b;      /* c_proj */
    return c->vocab_size * C + c->context * C + c->layers * block + C * (1 + b);
}

const attn_gpt_config *attn_gpt_get_config(const attn_gpt *g) { return g ? &g->cfg : NULL; }
size_t attn_gpt_param_count(const attn_gpt *g) { return g ? g->n_table : 0; }
const attn_param_ref *attn_gpt_params(const attn_gpt *g) { return g ? g->table : NULL; }
size_t attn_gpt_num_params(const attn_gpt *g) { return g ? g->n_params : 0; }
const float *attn_gpt_logits(const attn_gpt *g) { return g ? g->logits : NULL; }

void attn_gpt_free(attn_gpt *g)
{
    if (!g) return;
    if (g->blocks)
        for (size_t l = 0; l < g->cfg.layers; l++) {
            attn_mha_free(g->blocks[l].mha);
            attn_mha_cache_free(g->blocks[l].cache);
        }
    free(g->blocks);
    free(g->table);
    free(g->names);
    free(g->pos), free(g->ids), free(g->targets);
    attn_arena_free(g->params);
    attn_arena_free(g->grads);
    attn_arena_free(g->acts);
    free(g);
}

/* ---- building the table -------------------------------------------------------- */

typedef struct builder {
    attn_gpt *g;
    char *name_at;
    size_t name_left;
    attn_status st;
} builder;

/* A parameter in our arenas: data and grad views of the same shape. */
static void take(builder *b, float **data, float **grad, const char *name, size_t s0, size_t s1)
{
    if (b->st) return;
    attn_tensor p, gr;
    size_t shape[2] = {s0, s1};
    int ndim = s1 ? 2 : 1;
    b->st = attn_arena_tensor(b->g->params, &p, ndim, shape);
    if (!b->st) b->st = attn_arena_tensor(b->g->grads, &gr, ndim, shape);
    if (b->st) return;
    *data = p.data, *grad = gr.data;
    attn_param_ref *r = &b->g->table[b->g->n_table++];
    int n = snprintf(b->name_at, b->name_left, "%s", name);
    r->name = b->name_at;
    b->name_at += n + 1, b->name_left -= (size_t)n + 1;
    r->data = p.data, r->grad = gr.data, r->numel = p.numel, r->ndim = ndim;
    r->shape[0] = s0, r->shape[1] = s1 ? s1 : 1;
    r->decay = ndim == 2;
    b->g->n_params += p.numel;
}

/* A parameter of block l's attention layer, by its state_dict name. */
static void take_mha(builder *b, size_t l, const char *mha_name, const float **data)
{
    if (b->st) return;
    attn_gpt *g = b->g;
    attn_mha *m = g->blocks[l].mha;
    for (size_t i = 0; i < attn_mha_param_count(m); i++) {
        const char *name;
        attn_tensor p, gr;
        if ((b->st = attn_mha_param_at(m, i, &name, &p, &gr))) return;
        if (strcmp(name, mha_name)) continue;
        attn_param_ref *r = &g->table[g->n_table++];
        int n = snprintf(b->name_at, b->name_left, "h.%zu.attn.%s", l, mha_name);
        r->name = b->name_at;
        b->name_at += n + 1, b->name_left -= (size_t)n + 1;
        r->data = p.data, r->grad = gr.data, r->numel = p.numel, r->ndim = p.ndim;
        r->shape[0] = p.shape[0], r->shape[1] = p.ndim == 2 ? p.shape[1] : 1;
        r->decay = p.ndim == 2;
        g->n_params += p.numel;
        *data = p.data;
        return;
    }
    b->st = attn_error(ATTN_E_INTERNAL, "attention layer has no parameter '%s'", mha_name);
}

static float *act(builder *b, size_t rows, size_t cols)
{
    if (b->st) return NULL;
    attn_tensor t;
    size_t shape[2] = {rows, cols};
    b->st = attn_arena_tensor(b->g->acts, &t, 2, shape);
    return b->st ? NULL : t.data;
}

attn_status attn_gpt_create(attn_gpt **out, const attn_gpt_config *c, size_t max_batch)
{
    if (!out) return attn_error(ATTN_E_INVALID, "attn_gpt_create: NULL");
    *out = NULL;
    attn_status st = attn_gpt_config_check(c);
    if (st) return st;
    if (!max_batch || max_batch > SIZE_LIMIT)
        return attn_error(ATTN_E_INVALID, "batch must be between 1 and 2^24, got %zu", max_batch);
    const size_t C = c->width, V = c->vocab_size, T = c->context, L = c->layers, b = !!c->bias;
    if ((double)max_batch * (double)T * (double)(V > 4 * C ? V : 4 * C) > 1e11)
        return attn_error(ATTN_E_NOMEM, "batch %zu x context %zu is too large", max_batch, T);
    attn_gpt *g = calloc(1, sizeof *g);
    if (!g) return attn_error(ATTN_E_NOMEM, "cannot allocate a GPT");
    g->cfg = *c;
    g->cfg.bias = (int)b;
    g->max_batch = max_batch;
    const size_t R = max_batch * T;
    g->max_rows = R;
    const size_t n_tab = 2 + L * 12 + 2;
    g->blocks = calloc(L, sizeof *g->blocks);
    g->table = calloc(n_tab, sizeof *g->table);
    const size_t name_cap = n_tab * 48;
    g->names = malloc(name_cap);
    g->pos = malloc(R * sizeof(uint32_t));
    g->ids = malloc(R * sizeof(uint32_t));
    g->targets = malloc(R * sizeof(uint32_t));
    if (!g->blocks || !g->table || !g->names || !g->pos || !g->ids || !g->targets) {
        attn_gpt_free(g);
        return attn_error(ATTN_E_NOMEM, "cannot allocate a GPT");
    }
    /* Our own parameters (the attention layers hold theirs). */
    size_t own = attn_gpt_config_params(c) - L * (4 * C * C + 4 * C * b);
    size_t pad = 64 * (n_tab + 4);
    /* Activations per row: per block res, ln1, mid, ln2 (C each), fc, act (4C),
     * 4 stats; then res_out, lnf, logits, probs, loss, scratch, gradients. */
    size_t per_row = L * (4 * C + 8 * C + 4) + 2 * C + 2 + 3 * V + 1 + 2 * C + 3 * C + 8 * C;
    if ((st = attn_arena_create(&g->params, own * sizeof(float) + pad)) ||
        (st = attn_arena_create(&g->grads, own * sizeof(float) + pad)) ||
        (st = attn_arena_create(&g->acts, R * per_row * sizeof(float) + 64 * (L * 12 + 32)))) {
        attn_gpt_free(g);
        return st;
    }
    for (size_t l = 0; l < L && !st; l++) {
        attn_mha_config mc = attn_mha_default_config(C, c->heads);
        mc.bias = (int)b;
        st = attn_mha_create(&g->blocks[l].mha, &mc);
        if (!st) st = attn_mha_cache_create(&g->blocks[l].cache);
    }
    builder bd = {g, g->names, name_cap, st};
    char name[64];
    take(&bd, &g->wte, &g->g_wte, "wte.weight", V, C);
    take(&bd, &g->wpe, &g->g_wpe, "wpe.weight", T, C);
    for (size_t l = 0; l < L; l++) {
        gpt_block *k = &g->blocks[l];
#define NAME(s) (snprintf(name, sizeof name, "h.%zu.%s", l, s), name)
        take(&bd, &k->ln1_w, &k->g_ln1_w, NAME("ln_1.weight"), C, 0);
        if (b) take(&bd, &k->ln1_b, &k->g_ln1_b, NAME("ln_1.bias"), C, 0);
        take_mha(&bd, l, "in_proj_weight", &k->in_w);
        if (b) take_mha(&bd, l, "in_proj_bias", &k->in_b);
        take_mha(&bd, l, "out_proj.weight", &k->out_w);
        if (b) take_mha(&bd, l, "out_proj.bias", &k->out_b);
        take(&bd, &k->ln2_w, &k->g_ln2_w, NAME("ln_2.weight"), C, 0);
        if (b) take(&bd, &k->ln2_b, &k->g_ln2_b, NAME("ln_2.bias"), C, 0);
        take(&bd, &k->fc_w, &k->g_fc_w, NAME("mlp.c_fc.weight"), 4 * C, C);
        if (b) take(&bd, &k->fc_b, &k->g_fc_b, NAME("mlp.c_fc.bias"), 4 * C, 0);
        take(&bd, &k->proj_w, &k->g_proj_w, NAME("mlp.c_proj.weight"), C, 4 * C);
        if (b) take(&bd, &k->proj_b, &k->g_proj_b, NAME("mlp.c_proj.bias"), C, 0);
#undef NAME
        k->res = act(&bd, R, C), k->ln1 = act(&bd, R, C), k->mid = act(&bd, R, C);
        k->ln2 = act(&bd, R, C), k->fc = act(&bd, R, 4 * C), k->act = act(&bd, R, 4 * C);
        k->ln1_mean = act(&bd, R, 1), k->ln1_rstd = act(&bd, R, 1);
        k->ln2_mean = act(&bd, R, 1), k->ln2_rstd = act(&bd, R, 1);
    }
    take(&bd, &g->lnf_w, &g->g_lnf_w, "ln_f.weight", C, 0);
    if (b) take(&bd, &g->lnf_b, &g->g_lnf_b, "ln_f.bias", C, 0);
    g->res_out = act(&bd, R, C), g->lnf = act(&bd, R, C);
    g->lnf_mean = act(&bd, R, 1), g->lnf_rstd = act(&bd, R, 1);
    g->logits = act(&bd, R, V), g->probs = act(&bd, R, V), g->d_logits = act(&bd, R, V);
    g->row_loss = act(&bd, R, 1), g->scratch = act(&bd, R, C);
    g->d_res = act(&bd, R, C), g->d_tmp = act(&bd, R, C);
    g->d_big1 = act(&bd, R, 4 * C), g->d_big2 = act(&bd, R, 4 * C);
    if (bd.st) {
        attn_gpt_free(g);
        return bd.st;
    }
    for (size_t l = 0; l < L; l++) /* layer norms start as the identity */
        for (size_t j = 0; j < C; j++) g->blocks[l].ln1_w[j] = g->blocks[l].ln2_w[j] = 1.0f;
    for (size_t j = 0; j < C; j++) g->lnf_w[j] = 1.0f;
    *out = g;
    return ATTN_OK;
}

attn_status attn_gpt_init(attn_gpt *g, uint64_t seed)
{
    if (!g) return attn_error(ATTN_E_INVALID, "attn_gpt_init: NULL");
    attn_rng r;
    attn_rng_seed(&r, seed);
    const float std = 0.02f, std_res = (float)(0.02 / sqrt(2.0 * (double)g->cfg.layers));
    for (size_t i = 0; i < g->n_table; i++) {
        attn_param_ref *p = &g->table[i];
        const char *n = p->name;
        size_t len = strlen(n);
        if (p->ndim == 2) {
            int residual = strstr(n, "attn.out_proj.weight") || strstr(n, "mlp.c_proj.weight");
            attn_rng_fill_normal(&r, p->data, p->numel, 0.0f, residual ? std_res : std);
        } else {
            float v = len > 7 && strcmp(n + len - 7, ".weight") == 0 ? 1.0f : 0.0f;
            for (size_t j = 0; j < p->numel; j++) p->data[j] = v;
        }
    }
    return ATTN_OK;
}

void attn_gpt_zero_grad(attn_gpt *g)
{
    if (!g) return;
    for (size_t i = 0; i < g->n_table; i++)
        memset(g->table[i].grad, 0, g->table[i].numel * sizeof(float));
}

/* ---- forward and backward -------------------------------------------------------- */

static attn_mha_inputs mha_inputs(const float *x, size_t B, size_t T)
{
    attn_mha_inputs in;
    memset(&in, 0, sizeof in);
    in.batch = B, in.tgt_len = T, in.src_len = T;
    in.query = in.key = in.value = x;
    in.causal = ATTN_CAUSAL_TOP_LEFT;
    return in;
}

static void add(float *y, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

attn_status attn_gpt_forward(attn_gpt *g, const uint32_t *ids, const uint32_t *targets,
                             size_t B, size_t T, double *loss)
{
    if (!g || !ids) return attn_error(ATTN_E_INVALID, "attn_gpt_forward: NULL argument");
    const attn_gpt_config *c = &g->cfg;
    if (!B || B > g->max_batch || !T || T > c->context)
        return attn_error(ATTN_E_INVALID,
                          "GPT forward: batch %zu and length %zu must be in [1, %zu] and [1, %zu]",
                          B, T, g->max_batch, c->context);
    const size_t C = c->width, V = c->vocab_size, R = B * T;
    g->batch = B, g->seq = T, g->have_targets = 0;
    memcpy(g->ids, ids, R * sizeof *ids);
    for (size_t i = 0; i < R; i++) g->pos[i] = (uint32_t)(i % T);
    float *x0 = c->layers ? g->blocks[0].res : g->res_out;
    attn_status st = attn_embedding_forward(x0, g->ids, g->wte, R, C, V, 0);
    if (!st) st = attn_embedding_forward(x0, g->pos, g->wpe, R, C, c->context, 1);
    for (size_t l = 0; !st && l < c->layers; l++) {
        gpt_block *k = &g->blocks[l];
        float *next = l + 1 < c->layers ? g->blocks[l + 1].res : g->res_out;
        st = attn_layernorm_forward(k->ln1, k->ln1_mean, k->ln1_rstd, k->res, k->ln1_w, k->ln1_b,
                                    R, C, GPT_LN_EPS);
        attn_mha_inputs in = mha_inputs(k->ln1, B, T);
        if (!st) st = attn_mha_forward(k->mha, g->scratch, NULL, 0, &in, k->cache, NULL);
        if (st) break;
        add(k->mid, k->res, g->scratch, R * C);
        st = attn_layernorm_forward(k->ln2, k->ln2_mean, k->ln2_rstd, k->mid, k->ln2_w, k->ln2_b,
                                    R, C, GPT_LN_EPS);
        if (!st) st = attn_linear_forward(k->fc, k->ln2, k->fc_w, k->fc_b, R, C, 4 * C);
        if (!st) st = attn_gelu_forward(k->act, k->fc, R * 4 * C);
        if (!st) st = attn_linear_forward(g->scratch, k->act, k->proj_w, k->proj_b, R, 4 * C, C);
        if (!st) add(next, k->mid, g->scratch, R * C);
    }
    if (!st)
        st = attn_layernorm_forward(g->lnf, g->lnf_mean, g->lnf_rstd, g->res_out, g->lnf_w,
                                    g->lnf_b, R, C, GPT_LN_EPS);
    if (!st) st = attn_linear_forward(g->logits, g->lnf, g->wte, NULL, R, C, V); /* tied head */
    if (st || !targets) return st;
    memcpy(g->targets, targets, R * sizeof *targets);
    double l = 0.0;
    st = attn_crossentropy_forward(&l, g->row_loss, g->probs, g->logits, g->targets, R, V);
    if (st) return st;
    g->have_targets = 1;
    if (loss) *loss = l;
    return ATTN_OK;
}

attn_status attn_gpt_backward(attn_gpt *g, float loss_scale)
{
    if (!g) return attn_error(ATTN_E_INVALID, "attn_gpt_backward: NULL");
    if (!g->have_targets)
        return attn_error(ATTN_E_INVALID, "attn_gpt_backward: no forward with targets to differentiate");
    const attn_gpt_config *c = &g->cfg;
    const size_t C = c->width, V = c->vocab_size, B = g->batch, T = g->seq, R = B * T;
    memset(g->d_logits, 0, R * V * sizeof(float));
    attn_status st = attn_crossentropy_backward(g->d_logits, g->probs, g->targets,
                                                loss_scale / (float)R, R, V);
    memset(g->d_tmp, 0, R * C * sizeof(float));
    if (!st) st = attn_linear_backward(g->d_tmp, g->g_wte, NULL, g->d_logits, g->lnf, g->wte, R, C, V);
    memset(g->d_res, 0, R * C * sizeof(float));
    if (!st)
        st = attn_layernorm_backward(g->d_res, g->g_lnf_w, g->g_lnf_b, g->d_tmp, g->res_out,
                                     g->lnf_w, g->lnf_mean, g->lnf_rstd, R, C);
    for (size_t l = c->layers; !st && l-- > 0;) {
        gpt_block *k = &g->blocks[l];
        /* x_l+1 = mid + c_proj(gelu(c_fc(ln_2(mid)))) */
        memset(g->d_big1, 0, R * 4 * C * sizeof(float));
        st = attn_linear_backward(g->d_big1, k->g_proj_w, k->g_proj_b, g->d_res, k->act, k->proj_w,
                                  R, 4 * C, C);
        memset(g->d_big2, 0, R * 4 * C * sizeof(float));
        if (!st) st = attn_gelu_backward(g->d_big2, g->d_big1, k->fc, R * 4 * C);
        memset(g->d_tmp, 0, R * C * sizeof(float));
        if (!st)
            st = attn_linear_backward(g->d_tmp, k->g_fc_w, k->g_fc_b, g->d_big2, k->ln2, k->fc_w, R,
                                      C, 4 * C);
        if (!st)
            st = attn_layernorm_backward(g->d_res, k->g_ln2_w, k->g_ln2_b, g->d_tmp, k->mid,
                                         k->ln2_w, k->ln2_mean, k->ln2_rstd, R, C);
        /* mid = x_l + attn(ln_1(x_l)); q = k = v = ln_1(x_l), so one gradient buffer. */
        memset(g->d_tmp, 0, R * C * sizeof(float));
        attn_mha_inputs in = mha_inputs(k->ln1, B, T);
        if (!st) st = attn_mha_backward(k->mha, g->d_tmp, g->d_tmp, g->d_tmp, g->d_res, &in, k->cache);
        if (!st)
            st = attn_layernorm_backward(g->d_res, k->g_ln1_w, k->g_ln1_b, g->d_tmp, k->res,
                                         k->ln1_w, k->ln1_mean, k->ln1_rstd, R, C);
    }
    if (!st) st = attn_embedding_backward(g->g_wte, g->d_res, g->ids, R, C, V);
    if (!st) st = attn_embedding_backward(g->g_wpe, g->d_res, g->pos, R, C, c->context);
    return st;
}
