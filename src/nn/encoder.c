/* encoder.c - a bidirectional Transformer encoder with a classification
 * head: the decoder's layers (attn_mha, layer norm, GELU MLP, pre-LN
 * residuals, dropout when training) without the causal mask and with a key padding mask, a pooled
 * vector ([CLS] or the masked mean) and a linear head. Parameters, gradients
 * and activations each live in one arena; the table of attn_param_ref names
 * every tensor for the optimizer and checkpoints. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/classify.h"
#include "attn/mha.h"
#include "attn/ops.h"
#include "attn/ops_nn.h"
#include "attn/rng.h"
#include "attn/tensor.h"
#include "block.h"
#include "encoder_int.h"
#include "../ops/omp_util.h"

#define SIZE_LIMIT ((size_t)1 << 24)


struct attn_encoder {
    attn_encoder_config cfg;
    size_t max_batch, max_rows;
    attn_arena *params, *grads, *acts;
    attn_workspace ws; /* the layers' attention scratch, shared */
    float *wte, *wpe, *lnf_w, *lnf_b, *head_w, *head_b;
    float *g_wte, *g_wpe, *g_lnf_w, *g_lnf_b, *g_head_w, *g_head_b;
    nn_block *blocks;
    attn_param_ref *table;
    size_t n_table, n_params;
    char *names;
    float *res_out, *lnf, *lnf_mean, *lnf_rstd, *scratch, *kpm;
    float *pooled, *logits, *probs, *d_logits, *d_pooled;
    float *d_res, *d_tmp, *d_big1, *d_big2;
    uint8_t *mask_x0; /* (max_rows, C): the embeddings' dropout flags */
    uint32_t *pos, *ids, *labels;
    size_t *lens;
    /* rows of wte whose gradient may be nonzero: the ids of every backward
     * since the last zero_grad (mark (V), list of n_rows, sorted on request) */
    uint8_t *row_mark;
    uint32_t *rows;
    size_t n_rows;
    int rows_sorted, grads_zeroed; /* grads_zeroed: the whole table was zeroed once */
    float drop_p;      /* dropout of the forwards (training), 0: none */
    float smoothing;   /* label smoothing of the loss (training), 0: none */
    uint64_t drop_key;     /* as set; drop_key_x0 and the blocks' keys: at drop_row0 */
    uint64_t drop_key_x0;
    size_t drop_row0;      /* the first example's place in the whole batch (data parallel) */
    size_t batch, seq;
    /* An untraced forward packs the rows: example b is rows [seq_off[b],
     * seq_off[b + 1]) of every activation, act_rows of them in all, and no
     * padding is computed (batches of mixed lengths are mostly padding; the
     * trainer's, bucketed by length, 3 %). A traced forward, or one whose
     * texts are longer than the fused attention packs (attn_flash_packs),
     * keeps the padded (B·T) rows, seq_off NULL. */
    size_t *seq_off_buf, *seq_off, act_rows;
    int have_labels;
};

attn_status attn_encoder_config_check(const attn_encoder_config *c)
{
    if (!c) return attn_error(ATTN_E_INVALID, "encoder configuration: NULL");
    if (!c->layers) return attn_error(ATTN_E_INVALID, "layers must be at least 1, got 0");
    if (!c->heads) return attn_error(ATTN_E_INVALID, "heads must be at least 1, got 0");
    if (!c->width) return attn_error(ATTN_E_INVALID, "width must be at least 1, got 0");
    if (c->context < 2) return attn_error(ATTN_E_INVALID, "context must be at least 2, got %zu", c->context);
    if (c->vocab_size < 4) return attn_error(ATTN_E_INVALID, "the vocabulary has no words");
    if (c->classes < 2) return attn_error(ATTN_E_INVALID, "need at least 2 classes, got %zu", c->classes);
    if (c->width % c->heads)
        return attn_error(ATTN_E_INVALID, "width %zu is not divisible by heads %zu", c->width, c->heads);
    if (c->pooling != ATTN_POOL_MEAN && c->pooling != ATTN_POOL_CLS)
        return attn_error(ATTN_E_INVALID, "pooling must be mean or cls");
    if (c->layers > 4096 || c->heads > SIZE_LIMIT || c->width > 65536 || c->context > SIZE_LIMIT ||
        c->vocab_size > SIZE_LIMIT || c->classes > SIZE_LIMIT)
        return attn_error(ATTN_E_INVALID,
                          "configuration too large (layers <= 4096, width <= 65536, context, "
                          "vocabulary and classes <= 2^24)");
    return ATTN_OK;
}

const attn_encoder_config *attn_encoder_get_config(const attn_encoder *e) { return e ? &e->cfg : NULL; }
size_t attn_encoder_param_count(const attn_encoder *e) { return e ? e->n_table : 0; }
const attn_param_ref *attn_encoder_params(const attn_encoder *e) { return e ? e->table : NULL; }
size_t attn_encoder_num_params(const attn_encoder *e) { return e ? e->n_params : 0; }
const float *attn_encoder_logits(const attn_encoder *e) { return e ? e->logits : NULL; }
const float *attn_encoder_attn_input(const attn_encoder *e, size_t l)
{
    return e && l < e->cfg.layers ? e->blocks[l].ln1 : NULL;
}
attn_mha *attn_encoder_mha(attn_encoder *e, size_t l)
{
    return e && l < e->cfg.layers ? e->blocks[l].mha : NULL;
}

void attn_encoder_free(attn_encoder *e)
{
    if (!e) return;
    if (e->blocks)
        for (size_t l = 0; l < e->cfg.layers; l++) {
            attn_mha_free(e->blocks[l].mha);
            attn_mha_cache_free(e->blocks[l].cache);
        }
    free(e->blocks), free(e->table), free(e->names);
    free(e->pos), free(e->ids), free(e->seq_off_buf), free(e->labels), free(e->lens);
    free(e->row_mark), free(e->rows);
    attn_arena_free(e->params), attn_arena_free(e->grads), attn_arena_free(e->acts);
    attn_workspace_free(&e->ws);
    free(e);
}

/* ---- building the table ------------------------------------------------------- */

attn_status attn_encoder_create(attn_encoder **out, const attn_encoder_config *c, size_t max_batch)
{
    if (!out) return attn_error(ATTN_E_INVALID, "attn_encoder_create: NULL");
    *out = NULL;
    attn_status st = attn_encoder_config_check(c);
    if (st) return st;
    if (!max_batch || max_batch > SIZE_LIMIT)
        return attn_error(ATTN_E_INVALID, "batch must be between 1 and 2^24, got %zu", max_batch);
    const size_t C = c->width, V = c->vocab_size, T = c->context, L = c->layers, K = c->classes;
    const size_t b = !!c->bias;
    size_t acts = 0; /* activations, about 16·C floats a row and layer */
    if (attn_size_mul("encoder", max_batch, T, &acts) || attn_size_mul("encoder", acts, C, &acts) ||
        attn_size_mul("encoder", acts, 16 * (L + 1), &acts) || acts > (size_t)1e11)
        return attn_error(ATTN_E_NOMEM, "batch %zu x context %zu is too large", max_batch, T);
    attn_encoder *e = calloc(1, sizeof *e);
    if (!e) return attn_error(ATTN_E_NOMEM, "cannot allocate an encoder");
    e->cfg = *c;
    e->cfg.bias = (int)b;
    e->max_batch = max_batch;
    const size_t R = max_batch * T;
    e->max_rows = R;
    const size_t n_tab = 2 + L * 12 + 4;
    e->blocks = calloc(L, sizeof *e->blocks);
    e->table = calloc(n_tab, sizeof *e->table);
    const size_t name_cap = n_tab * 48;
    e->names = malloc(name_cap);
    e->pos = malloc(R * sizeof *e->pos), e->ids = malloc(R * sizeof *e->ids);
    e->labels = malloc(max_batch * sizeof *e->labels), e->lens = malloc(max_batch * sizeof *e->lens);
    e->seq_off_buf = malloc((max_batch + 1) * sizeof *e->seq_off_buf);
    e->row_mark = calloc(V, 1), e->rows = malloc(V * sizeof *e->rows);
    if (!e->blocks || !e->table || !e->names || !e->pos || !e->ids || !e->labels || !e->lens ||
        !e->seq_off_buf || !e->row_mark || !e->rows) {
        attn_encoder_free(e);
        return attn_error(ATTN_E_NOMEM, "cannot allocate an encoder");
    }
    size_t own = V * C + T * C + L * (2 * C * (1 + b) + 8 * C * C + 4 * C * b + C * b) +
                 C * (1 + b) + K * C + K;
    size_t pad = 64 * (n_tab + 4);
    const size_t mask_floats = (C + 3) / 4; /* a row's dropout flags, C bytes */
    size_t per_row = L * (4 * C + 8 * C + 4 + 2 * mask_floats) + 2 * C + 2 + 1 + C + 2 * C + 8 * C +
                     mask_floats;
    size_t per_ex = C * 2 + K * 3;
    if ((st = attn_arena_create(&e->params, own * sizeof(float) + pad)) ||
        (st = attn_arena_create(&e->grads, own * sizeof(float) + pad)) ||
        (st = attn_arena_create(&e->acts, (R * per_row + max_batch * per_ex) * sizeof(float) +
                                              64 * (L * 14 + 33)))) {
        attn_encoder_free(e);
        return st;
    }
    for (size_t l = 0; l < L && !st; l++) {
        attn_mha_config mc = attn_mha_default_config(C, c->heads);
        mc.bias = (int)b;
        st = attn_mha_create(&e->blocks[l].mha, &mc);
        if (!st) st = attn_mha_cache_create(&e->blocks[l].cache);
    }
    nn_builder bd = {e->params, e->grads, e->acts, e->table, &e->n_table, &e->n_params,
                     e->names, name_cap, st};
    nn_take(&bd, &e->wte, &e->g_wte, "wte.weight", V, C);
    /* No weight decay on the token embedding: it is updated row-sparsely
     * (lazy Adam, as torch.optim.SparseAdam, which has no decay). */
    if (!bd.st) e->table[0].decay = 0;
    nn_take(&bd, &e->wpe, &e->g_wpe, "wpe.weight", T, C);
    for (size_t l = 0; l < L; l++) nn_block_build(&bd, &e->blocks[l], l, (int)b, C, R);
    nn_take(&bd, &e->lnf_w, &e->g_lnf_w, "ln_f.weight", C, 0);
    if (b) nn_take(&bd, &e->lnf_b, &e->g_lnf_b, "ln_f.bias", C, 0);
    nn_take(&bd, &e->head_w, &e->g_head_w, "head.weight", K, C);
    nn_take(&bd, &e->head_b, &e->g_head_b, "head.bias", K, 0);
    e->res_out = nn_act(&bd, R, C), e->lnf = nn_act(&bd, R, C);
    e->lnf_mean = nn_act(&bd, R, 1), e->lnf_rstd = nn_act(&bd, R, 1), e->kpm = nn_act(&bd, R, 1);
    e->scratch = nn_act(&bd, R, C), e->d_res = nn_act(&bd, R, C), e->d_tmp = nn_act(&bd, R, C);
    e->d_big1 = nn_act(&bd, R, 4 * C), e->d_big2 = nn_act(&bd, R, 4 * C);
    e->pooled = nn_act(&bd, max_batch, C), e->d_pooled = nn_act(&bd, max_batch, C);
    e->logits = nn_act(&bd, max_batch, K), e->probs = nn_act(&bd, max_batch, K);
    e->d_logits = nn_act(&bd, max_batch, K);
    e->mask_x0 = (uint8_t *)nn_act(&bd, R, mask_floats);
    for (size_t l = 0; l < L; l++) {
        e->blocks[l].mask_attn = (uint8_t *)nn_act(&bd, R, mask_floats);
        e->blocks[l].mask_mlp = (uint8_t *)nn_act(&bd, R, mask_floats);
    }
    if (bd.st) {
        attn_encoder_free(e);
        return bd.st;
    }
    for (size_t l = 0; l < L; l++)
        for (size_t j = 0; j < C; j++) e->blocks[l].ln1_w[j] = e->blocks[l].ln2_w[j] = 1.0f;
    for (size_t j = 0; j < C; j++) e->lnf_w[j] = 1.0f;
    *out = e;
    return ATTN_OK;
}

attn_status attn_encoder_init(attn_encoder *e, uint64_t seed)
{
    if (!e) return attn_error(ATTN_E_INVALID, "attn_encoder_init: NULL");
    nn_init_gpt2(e->table, e->n_table, e->cfg.layers, seed);
    return ATTN_OK;
}

void attn_encoder_zero_grad(attn_encoder *e)
{
    if (!e) return;
    const size_t C = e->cfg.width;
    for (size_t i = 1; i < e->n_table; i++) attn_zero_floats(e->table[i].grad, e->table[i].numel);
    /* wte's gradient is nonzero only in the rows the backwards touched: zero
     * those (the whole table the first time) instead of V·C floats. */
    if (!e->grads_zeroed) memset(e->g_wte, 0, e->table[0].numel * sizeof(float));
    else
        for (size_t r = 0; r < e->n_rows; r++) memset(e->g_wte + (size_t)e->rows[r] * C, 0, C * sizeof(float));
    for (size_t r = 0; r < e->n_rows; r++) e->row_mark[e->rows[r]] = 0;
    e->n_rows = 0, e->rows_sorted = 1, e->grads_zeroed = 1;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

const uint32_t *attn_encoder_grad_rows(attn_encoder *e, size_t *n)
{
    if (!e) return NULL;
    if (!e->rows_sorted) qsort(e->rows, e->n_rows, sizeof *e->rows, cmp_u32);
    e->rows_sorted = 1;
    if (n) *n = e->n_rows;
    return e->rows;
}

void nn_encoder_copy_weights(attn_encoder *dst, const attn_encoder *src, const uint32_t *ids, size_t n)
{
    const size_t C = src->cfg.width;
    for (size_t i = 1; i < src->n_table; i++)
        memcpy(dst->table[i].data, src->table[i].data, src->table[i].numel * sizeof(float));
    for (size_t i = 0; i < n; i++)
        memcpy(dst->wte + (size_t)ids[i] * C, src->wte + (size_t)ids[i] * C, C * sizeof(float));
}

void nn_encoder_add_grads(attn_encoder *dst, const attn_encoder *src)
{
    const size_t C = src->cfg.width;
    for (size_t i = 1; i < src->n_table; i++) {
        float *g = dst->table[i].grad;
        const float *h = src->table[i].grad;
        const size_t n = src->table[i].numel;
        ATTN_OMP_FOR_IF(n >= 4 * ATTN_OMP_MIN_WORK)
        for (size_t j = 0; j < n; j++) g[j] += h[j];
    }
    for (size_t r = 0; r < src->n_rows; r++) {
        const uint32_t row = src->rows[r];
        float *g = dst->g_wte + (size_t)row * C;
        const float *h = src->g_wte + (size_t)row * C;
        for (size_t j = 0; j < C; j++) g[j] += h[j];
        if (!dst->row_mark[row]) dst->row_mark[row] = 1, dst->rows[dst->n_rows++] = row, dst->rows_sorted = 0;
    }
}

/* ---- forward and backward ------------------------------------------------------ */

attn_status attn_encoder_set_label_smoothing(attn_encoder *e, float eps)
{
    if (!e) return attn_error(ATTN_E_INVALID, "attn_encoder_set_label_smoothing: NULL");
    if (!(eps >= 0.0f && eps < 1.0f))
        return attn_error(ATTN_E_INVALID, "label smoothing must be in [0, 1), got %g", (double)eps);
    e->smoothing = eps;
    return ATTN_OK;
}

attn_status attn_encoder_set_dropout(attn_encoder *e, float p, uint64_t key)
{
    if (!e) return attn_error(ATTN_E_INVALID, "attn_encoder_set_dropout: NULL");
    if (!(p >= 0.0f && p < 1.0f))
        return attn_error(ATTN_E_INVALID, "dropout must be in [0, 1), got %g", (double)p);
    e->drop_p = p, e->drop_key = key;
    for (size_t l = 0; l < e->cfg.layers; l++) e->blocks[l].drop_p = p;
    return ATTN_OK;
}

attn_status attn_encoder_set_dropout_row(attn_encoder *e, size_t row0)
{
    if (!e) return attn_error(ATTN_E_INVALID, "attn_encoder_set_dropout_row: NULL");
    e->drop_row0 = row0;
    return ATTN_OK;
}

/* The masks' keys for a forward of (rows, C) activations whose row 0 is row
 * row0·T of the whole batch: every site is a (B·T, C) tensor, so the slice
 * starts at element row0·T·C (attn_dropout_key_at). */
static void set_dropout_keys(attn_encoder *e, size_t T)
{
    const size_t first = e->drop_row0 * T * e->cfg.width;
    e->drop_key_x0 = attn_dropout_key_at(e->drop_key, first); /* site 0 is the embeddings */
    for (size_t l = 0; l < e->cfg.layers; l++) {
        e->blocks[l].key_attn = attn_dropout_key_at(attn_dropout_key(e->drop_key, 0, 1 + 2 * l), first);
        e->blocks[l].key_mlp = attn_dropout_key_at(attn_dropout_key(e->drop_key, 0, 2 + 2 * l), first);
    }
}

/* Example b's first row of the activations: packed or padded. */
static size_t first_row(const attn_encoder *e, size_t b)
{
    return e->seq_off ? e->seq_off[b] : b * e->seq;
}

/* The attention's shapes and key padding (bidirectional: no causal mask). */
static attn_mha_inputs mha_inputs(attn_encoder *e)
{
    attn_mha_inputs in;
    memset(&in, 0, sizeof in);
    in.workspace = &e->ws;
    in.batch = e->batch, in.tgt_len = e->seq, in.src_len = e->seq;
    if (e->seq_off) in.seq_offsets = e->seq_off; /* packed: no padding to mask */
    else in.key_padding_mask = e->kpm;
    in.key_padding_kind = ATTN_MASK_BOOL;
    return in;
}

/* What each example's pooled vector attended to, per layer and head, from
 * the heads' "attention" entries of the trace: the [CLS] row, or with mean
 * pooling the mean of the example's token rows (its padding keys have weight
 * 0). Recorded as "[batch<b>.]pooled_attention" (layers·heads, lens[b]), rows
 * on the axis "layer_head" (labelled "layer <l> head <h>"), columns "token". */
static attn_status record_pooled_attention(const attn_encoder *e, const size_t *lens, size_t B,
                                           size_t T, const attn_op_ctx *ctx)
{
    const attn_encoder_config *c = &e->cfg;
    const size_t L = c->layers, H = c->heads;
    const char *pre = ctx->prefix && *ctx->prefix ? ctx->prefix : NULL;
    float *rows = calloc(L * H * T, sizeof *rows);
    char **names = calloc(L * H, sizeof *names);
    attn_status st = rows && names ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < L * H; i++)
        if (!(names[i] = malloc(64))) st = attn_error(ATTN_E_NOMEM, "out of memory");
        else snprintf(names[i], 64, "layer %zu head %zu", i / H, i % H);
    if (!st) st = attn_trace_set_labels(ctx->trace, "layer_head", L * H, (const char *const *)names);
    for (size_t b = 0; !st && b < B; b++) {
        const size_t n = lens[b];
        char name[192], batch[32] = "";
        if (B > 1) snprintf(batch, sizeof batch, "batch%zu.", b);
        memset(rows, 0, L * H * T * sizeof *rows);
        for (size_t i = 0; !st && i < L * H; i++) {
            snprintf(name, sizeof name, "%s%slayer%zu.%shead%zu.attention", pre ? pre : "",
                     pre ? "." : "", i / H, batch, i % H);
            const attn_tensor *a = attn_trace_get(ctx->trace, name);
            if (!a || a->ndim != 2 || a->shape[0] != T || a->shape[1] != T) {
                st = attn_error(ATTN_E_INTERNAL, "encoder trace: no (T, T) entry %s", name);
                break;
            }
            float *r = rows + i * n;
            if (c->pooling == ATTN_POOL_CLS) memcpy(r, a->data, n * sizeof *r);
            else
                for (size_t q = 0; q < n; q++)
                    for (size_t k = 0; k < n; k++) r[k] += a->data[q * T + k] / (float)n;
        }
        size_t shape[2] = {L * H, n};
        snprintf(name, sizeof name, "%spooled_attention", batch);
        if (!st) st = attn_trace_record(ctx->trace, pre, name, rows, 2, shape, "layer_head", "token");
    }
    for (size_t i = 0; names && i < L * H; i++) free(names[i]);
    free(names), free(rows);
    return st;
}

attn_status attn_encoder_forward(attn_encoder *e, const uint32_t *ids, const size_t *lens,
                                 const uint32_t *labels, size_t B, size_t T, double *loss,
                                 const attn_op_ctx *ctx)
{
    if (!e || !ids || !lens) return attn_error(ATTN_E_INVALID, "attn_encoder_forward: NULL argument");
    const attn_encoder_config *c = &e->cfg;
    if (!B || B > e->max_batch || !T || T > c->context)
        return attn_error(ATTN_E_INVALID,
                          "encoder forward: batch %zu and length %zu must be in [1, %zu] and [1, %zu]",
                          B, T, e->max_batch, c->context);
    const size_t C = c->width, V = c->vocab_size, K = c->classes;
    for (size_t b = 0; b < B; b++) {
        if (!lens[b] || lens[b] > T)
            return attn_error(ATTN_E_INVALID, "encoder forward: example %zu has length %zu, not in [1, %zu]",
                              b, lens[b], T);
        if (labels && labels[b] >= K)
            return attn_error(ATTN_E_INVALID, "encoder forward: label %u of example %zu is not below %zu",
                              labels[b], b, K);
    }
    e->batch = B, e->seq = T, e->have_labels = 0;
    memcpy(e->lens, lens, B * sizeof *lens);
    /* packed rows where the fused attention takes them; a trace wants the
     * padded (T, T) */
    const size_t dh = C / c->heads;
    e->seq_off = !(ctx && ctx->trace) && attn_flash_packs(T, dh, dh) ? e->seq_off_buf : NULL;
    size_t R = B * T;
    if (e->seq_off) {
        R = 0;
        for (size_t b = 0; b < B; b++) {
            e->seq_off[b] = R;
            for (size_t t = 0; t < lens[b]; t++)
                e->ids[R + t] = ids[b * T + t], e->pos[R + t] = (uint32_t)t;
            R += lens[b];
        }
        e->seq_off[B] = R;
    } else {
        memcpy(e->ids, ids, R * sizeof *ids);
        for (size_t i = 0; i < R; i++) {
            e->pos[i] = (uint32_t)(i % T);
            e->kpm[i] = i % T >= lens[i / T] ? 1.0f : 0.0f;
        }
    }
    e->act_rows = R;
    for (size_t l = 0; l < c->layers; l++)
        e->blocks[l].seq_off = e->seq_off, e->blocks[l].seq_n = B, e->blocks[l].seq_t = T;
    float *x0 = e->blocks[0].res;
    attn_status st = attn_embedding_forward(x0, e->ids, e->wte, R, C, V, 0, NULL);
    if (!st) st = attn_embedding_forward(x0, e->pos, e->wpe, R, C, c->context, 1, NULL);
    set_dropout_keys(e, T);
    if (!st && e->drop_p > 0.0f)
        st = e->seq_off ? attn_dropout_forward_mask_packed(x0, e->mask_x0, x0, e->seq_off, B, T, C,
                                                            e->drop_p, e->drop_key_x0)
                        : attn_dropout_forward_mask(x0, e->mask_x0, x0, R * C, e->drop_p, e->drop_key_x0);
    if (!st) st = attn_op_record(ctx, "embed", x0, R, C, "token", "dim");
    attn_op_ctx sub;
    char name[160];
    for (size_t l = 0; !st && l < c->layers; l++) {
        float *next = l + 1 < c->layers ? e->blocks[l + 1].res : e->res_out;
        char layer[32];
        snprintf(layer, sizeof layer, "layer%zu", l);
        st = nn_block_forward(&e->blocks[l], mha_inputs(e), next, e->scratch, NULL, R, C,
                              nn_sub_ctx(&sub, name, sizeof name, ctx, layer));
    }
    if (!st)
        st = attn_layernorm_forward(e->lnf, e->lnf_mean, e->lnf_rstd, e->res_out, e->lnf_w, e->lnf_b,
                                    R, C, NN_LN_EPS, nn_sub_ctx(&sub, name, sizeof name, ctx, "ln_f"));
    if (st) return st;
    for (size_t b = 0; b < B; b++) {
        float *p = e->pooled + b * C;
        const float *h = e->lnf + first_row(e, b) * C;
        if (c->pooling == ATTN_POOL_CLS) {
            memcpy(p, h, C * sizeof(float));
            continue;
        }
        const float inv = 1.0f / (float)lens[b];
        for (size_t j = 0; j < C; j++) {
            float s = 0.0f;
            for (size_t t = 0; t < lens[b]; t++) s += h[t * C + j];
            p[j] = s * inv;
        }
    }
    st = attn_linear_forward(e->logits, e->pooled, e->head_w, e->head_b, B, C, K);
    if (!st) st = attn_op_record(ctx, "pooled", e->pooled, B, C, "example", "dim");
    if (!st) st = attn_op_record(ctx, "logits", e->logits, B, K, "example", "class");
    if (!st && ctx && ctx->trace) st = record_pooled_attention(e, lens, B, T, ctx);
    if (st || !labels) return st;
    memcpy(e->labels, labels, B * sizeof *labels);
    double l = 0.0;
    st = attn_crossentropy_forward(&l, NULL, e->probs, e->logits, e->labels, B, K, e->smoothing,
                                   NULL);
    if (st) return st;
    e->have_labels = 1;
    if (loss) *loss = l;
    return ATTN_OK;
}

attn_status attn_encoder_backward(attn_encoder *e, float loss_scale)
{
    if (!e) return attn_error(ATTN_E_INVALID, "attn_encoder_backward: NULL");
    if (!e->have_labels)
        return attn_error(ATTN_E_INVALID, "attn_encoder_backward: no forward with labels to differentiate");
    const attn_encoder_config *c = &e->cfg;
    const size_t C = c->width, V = c->vocab_size, K = c->classes, B = e->batch;
    const size_t R = e->act_rows;
    memset(e->d_logits, 0, B * K * sizeof(float));
    attn_status st = attn_crossentropy_backward(e->d_logits, e->probs, e->labels,
                                                loss_scale / (float)B, B, K, e->smoothing);
    memset(e->d_pooled, 0, B * C * sizeof(float));
    if (!st)
        st = attn_linear_backward(e->d_pooled, e->g_head_w, e->g_head_b, e->d_logits, e->pooled,
                                  e->head_w, B, C, K);
    if (st) return st;
    attn_zero_floats(e->d_tmp, R * C);
    for (size_t b = 0; b < B; b++) {
        const float *dp = e->d_pooled + b * C;
        float *dh = e->d_tmp + first_row(e, b) * C;
        if (c->pooling == ATTN_POOL_CLS) {
            memcpy(dh, dp, C * sizeof(float));
            continue;
        }
        const float inv = 1.0f / (float)e->lens[b];
        for (size_t t = 0; t < e->lens[b]; t++)
            for (size_t j = 0; j < C; j++) dh[t * C + j] = dp[j] * inv;
    }
    attn_zero_floats(e->d_res, R * C);
    st = attn_layernorm_backward(e->d_res, e->g_lnf_w, e->g_lnf_b, e->d_tmp, e->res_out, e->lnf_w,
                                 e->lnf_mean, e->lnf_rstd, R, C);
    for (size_t l = c->layers; !st && l-- > 0;) {
        st = nn_block_backward(&e->blocks[l], mha_inputs(e), e->d_res, e->d_tmp, e->d_big1,
                               e->d_big2, R, C);
    }
    float *d_x0 = e->d_res; /* past the embeddings' dropout */
    if (!st && e->drop_p > 0.0f) {
        st = attn_dropout_backward_mask(e->d_tmp, e->d_res, e->mask_x0, R * C, e->drop_p);
        d_x0 = e->d_tmp;
    }
    if (!st) st = attn_embedding_backward(e->g_wte, d_x0, e->ids, R, C, V);
    for (size_t i = 0; !st && i < R; i++)
        if (!e->row_mark[e->ids[i]]) {
            e->row_mark[e->ids[i]] = 1, e->rows[e->n_rows++] = e->ids[i];
            e->rows_sorted = 0;
        }
    if (!st) st = attn_embedding_backward(e->g_wpe, d_x0, e->pos, R, C, c->context);
    return st;
}
