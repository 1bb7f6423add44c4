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
    attn_workspace_free(&g->ws);
    free(g);
}

/* ---- building the table -------------------------------------------------------- */

attn_status attn_gpt_create(attn_gpt **out, const attn_gpt_config *c, size_t max_batch)
{
    if (!out) return attn_error(ATTN_E_INVALID, "attn_gpt_create: NULL");
    *out = NULL;
    attn_status st = attn_gpt_config_check(c);
    if (st) return st;
    if (!max_batch || max_batch > SIZE_LIMIT)
        return attn_error(ATTN_E_INVALID, "batch must be between 1 and 2^24, got %zu", max_batch);
    const size_t C = c->width, V = c->vocab_size, T = c->context, L = c->layers, b = !!c->bias;
    size_t rows = 0; /* the widest activation: logits or the MLP's hidden layer */
    if (attn_size_mul("GPT", max_batch, T, &rows) || attn_size_mul("GPT", rows, V > 4 * C ? V : 4 * C, &rows) ||
        rows > (size_t)1e11)
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
    nn_builder bd = {g->params, g->grads, g->acts, g->table, &g->n_table, &g->n_params,
                     g->names, name_cap, st};
    nn_take(&bd, &g->wte, &g->g_wte, "wte.weight", V, C);
    nn_take(&bd, &g->wpe, &g->g_wpe, "wpe.weight", T, C);
    for (size_t l = 0; l < L; l++) nn_block_build(&bd, &g->blocks[l], l, (int)b, C, R);
    nn_take(&bd, &g->lnf_w, &g->g_lnf_w, "ln_f.weight", C, 0);
    if (b) nn_take(&bd, &g->lnf_b, &g->g_lnf_b, "ln_f.bias", C, 0);
    g->res_out = nn_act(&bd, R, C), g->lnf = nn_act(&bd, R, C);
    g->lnf_mean = nn_act(&bd, R, 1), g->lnf_rstd = nn_act(&bd, R, 1);
    g->logits = nn_act(&bd, R, V), g->probs = nn_act(&bd, R, V), g->d_logits = nn_act(&bd, R, V);
    g->row_loss = nn_act(&bd, R, 1), g->scratch = nn_act(&bd, R, C);
    g->d_res = nn_act(&bd, R, C), g->d_tmp = nn_act(&bd, R, C);
    g->d_big1 = nn_act(&bd, R, 4 * C), g->d_big2 = nn_act(&bd, R, 4 * C);
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
    nn_init_gpt2(g->table, g->n_table, g->cfg.layers, seed);
    return ATTN_OK;
}

void attn_gpt_zero_grad(attn_gpt *g)
{
    if (!g) return;
    /* megabytes at the start of every step: the tensors on the threads */
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (g->n_params >= 65536)
#endif
    for (size_t i = 0; i < g->n_table; i++)
        memset(g->table[i].grad, 0, g->table[i].numel * sizeof(float));
}

/* ---- forward and backward -------------------------------------------------------- */

/* The attention's shapes: causal self-attention over B sequences of T. */
static attn_mha_inputs mha_inputs(attn_gpt *g, size_t B, size_t T)
{
    attn_mha_inputs in;
    memset(&in, 0, sizeof in);
    in.workspace = &g->ws;
    in.batch = B, in.tgt_len = T, in.src_len = T;
    in.causal = ATTN_CAUSAL_TOP_LEFT;
    return in;
}

attn_status attn_gpt_forward(attn_gpt *g, const uint32_t *ids, const uint32_t *targets,
                             size_t B, size_t T, double *loss, const attn_op_ctx *ctx)
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
    attn_status st = attn_embedding_forward(x0, g->ids, g->wte, R, C, V, 0, NULL);
    if (!st) st = attn_embedding_forward(x0, g->pos, g->wpe, R, C, c->context, 1, NULL);
    if (!st) st = attn_op_record(ctx, "embed", x0, R, C, "token", "dim");
    attn_op_ctx sub;
    char name[160];
    for (size_t l = 0; !st && l < c->layers; l++) {
        float *next = l + 1 < c->layers ? g->blocks[l + 1].res : g->res_out;
        char layer[32];
        snprintf(layer, sizeof layer, "layer%zu", l);
        st = nn_block_forward(&g->blocks[l], mha_inputs(g, B, T), next, g->scratch, NULL, R, C,
                              nn_sub_ctx(&sub, name, sizeof name, ctx, layer));
    }
    if (!st)
        st = attn_layernorm_forward(g->lnf, g->lnf_mean, g->lnf_rstd, g->res_out, g->lnf_w,
                                    g->lnf_b, R, C, NN_LN_EPS,
                                    nn_sub_ctx(&sub, name, sizeof name, ctx, "ln_f"));
    if (!st) st = attn_linear_forward(g->logits, g->lnf, g->wte, NULL, R, C, V); /* tied head */
    if (!st) st = attn_op_record(ctx, "logits", g->logits, R, V, "token", "vocab");
    if (st || !targets) return st;
    memcpy(g->targets, targets, R * sizeof *targets);
    double l = 0.0;
    st = attn_crossentropy_forward(&l, g->row_loss, g->probs, g->logits, g->targets, R, V, 0.0f, NULL);
    if (st) return st;
    g->have_targets = 1;
    if (loss) *loss = l;
    return ATTN_OK;
}

void attn_gpt_set_backward_hook(attn_gpt *g, attn_gpt_grads_hook fn, void *user)
{
    if (g) g->hook = fn, g->hook_user = user;
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
                                                loss_scale / (float)R, R, V, 0.0f);
    if (!st)
        st = attn_linear_backward_set(g->d_tmp, g->g_wte, NULL, g->d_logits, g->lnf, g->wte, R, C, V);
    memset(g->d_res, 0, R * C * sizeof(float));
    if (!st)
        st = attn_layernorm_backward(g->d_res, g->g_lnf_w, g->g_lnf_b, g->d_tmp, g->res_out,
                                     g->lnf_w, g->lnf_mean, g->lnf_rstd, R, C);
    /* the table: wte, wpe, each block's tensors (per_block), ln_f's */
    const size_t per_block = (g->n_table - 2 - (c->bias ? 2 : 1)) / c->layers, lnf = 2 + c->layers * per_block;
    if (!st && g->hook) st = g->hook(g->hook_user, lnf, g->n_table - lnf);
    for (size_t l = c->layers; !st && l-- > 0;) {
        st = nn_block_backward(&g->blocks[l], mha_inputs(g, B, T), g->d_res, g->d_tmp,
                               g->d_big1, g->d_big2, R, C);
        if (!st && g->hook) st = g->hook(g->hook_user, 2 + l * per_block, per_block);
    }
    if (!st) st = attn_embedding_backward(g->g_wte, g->d_res, g->ids, R, C, V);
    if (!st) st = attn_embedding_backward(g->g_wpe, g->d_res, g->pos, R, C, c->context);
    return st;
}
