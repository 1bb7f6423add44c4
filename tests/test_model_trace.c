/* test_model_trace.c - traced runs of the decoder and the encoder: every
 * layer's and head's attention map, each block's hidden state and the
 * encoder's pooled attention are recorded, and they equal an independent
 * computation in double from the same weights (written here from the
 * models' definitions, not with the library's ops). A run without a trace
 * keeps nothing and gives the same logits. The KV-cache path traced step by
 * step records the new rows of the full forward's maps and states. */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/classify.h"
#include "attn/gpt.h"
#include "attn/rng.h"
#include "attn/selfattn.h"

#define TOL 2e-5

/* ---- the independent model, in double ------------------------------------------ */

typedef struct ref_model {
    const attn_param_ref *p;
    size_t n_p;
    size_t C, H, layers;
    int bias, causal;
} ref_model;

/* Block l's parameter "h.<l>.<what>", or the model's "<what>" (l = TOP). */
#define TOP ((size_t)-1)
static const float *param(const ref_model *m, const char *what, size_t l)
{
    char name[96];
    if (l == TOP) snprintf(name, sizeof name, "%s", what);
    else snprintf(name, sizeof name, "h.%zu.%s", l, what);
    for (size_t i = 0; i < m->n_p; i++)
        if (!strcmp(m->p[i].name, name)) return m->p[i].data;
    if (!m->bias && strstr(name, "bias")) return NULL;
    fail_msg("no parameter %s", name);
    return NULL;
}

static void layernorm(double *y, const double *x, const float *w, const float *b, size_t T,
                      size_t C)
{
    for (size_t t = 0; t < T; t++) {
        double mean = 0.0, var = 0.0;
        for (size_t j = 0; j < C; j++) mean += x[t * C + j];
        mean /= (double)C;
        for (size_t j = 0; j < C; j++) var += (x[t * C + j] - mean) * (x[t * C + j] - mean);
        const double r = 1.0 / sqrt(var / (double)C + 1e-5);
        for (size_t j = 0; j < C; j++)
            y[t * C + j] = (x[t * C + j] - mean) * r * w[j] + (b ? b[j] : 0.0);
    }
}

/* y (T, out) = x (T, in) · wᵀ + b */
static void linear(double *y, const double *x, const float *w, const float *b, size_t T,
                   size_t in, size_t out)
{
    for (size_t t = 0; t < T; t++)
        for (size_t o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (size_t i = 0; i < in; i++) s += x[t * in + i] * w[o * in + i];
            y[t * out + o] = s;
        }
}

/* One sequence of n real tokens (padding beyond n is never seen: the encoder
 * masks padded keys, the decoder's sequences have no padding). x (n, C)
 * becomes the hidden state after every block; att (layers, H, n, n). */
static void ref_forward(const ref_model *m, double *x, double *att, size_t n)
{
    const size_t C = m->C, H = m->H, d = C / H;
    double *ln = malloc(n * C * sizeof *ln), *qkv = malloc(n * 3 * C * sizeof *qkv);
    double *cat = malloc(n * C * sizeof *cat), *o = malloc(n * C * sizeof *o);
    double *fc = malloc(n * 4 * C * sizeof *fc);
    assert_non_null(ln), assert_non_null(qkv), assert_non_null(cat), assert_non_null(o);
    assert_non_null(fc);
    for (size_t l = 0; l < m->layers; l++) {
        layernorm(ln, x, param(m, "ln_1.weight", l), param(m, "ln_1.bias", l), n, C);
        linear(qkv, ln, param(m, "attn.in_proj_weight", l),
               param(m, "attn.in_proj_bias", l), n, C, 3 * C);
        for (size_t h = 0; h < H; h++)
            for (size_t i = 0; i < n; i++) {
                double *a = att + ((l * H + h) * n + i) * n, mx = -INFINITY, sum = 0.0;
                const size_t keys = m->causal ? i + 1 : n;
                for (size_t j = 0; j < keys; j++) {
                    double s = 0.0;
                    for (size_t k = 0; k < d; k++)
                        s += qkv[i * 3 * C + h * d + k] * qkv[j * 3 * C + C + h * d + k];
                    a[j] = s / sqrt((double)d);
                    mx = a[j] > mx ? a[j] : mx;
                }
                for (size_t j = 0; j < n; j++) {
                    a[j] = j < keys ? exp(a[j] - mx) : 0.0;
                    sum += a[j];
                }
                for (size_t j = 0; j < n; j++) a[j] /= sum;
                for (size_t k = 0; k < d; k++) {
                    double s = 0.0;
                    for (size_t j = 0; j < n; j++) s += a[j] * qkv[j * 3 * C + 2 * C + h * d + k];
                    cat[i * C + h * d + k] = s;
                }
            }
        linear(o, cat, param(m, "attn.out_proj.weight", l),
               param(m, "attn.out_proj.bias", l), n, C, C);
        for (size_t i = 0; i < n * C; i++) x[i] += o[i];
        layernorm(ln, x, param(m, "ln_2.weight", l), param(m, "ln_2.bias", l), n, C);
        linear(fc, ln, param(m, "mlp.c_fc.weight", l), param(m, "mlp.c_fc.bias", l),
               n, C, 4 * C);
        for (size_t i = 0; i < n * 4 * C; i++) {
            const double v = fc[i];
            fc[i] = 0.5 * v * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (v + 0.044715 * v * v * v)));
        }
        linear(o, fc, param(m, "mlp.c_proj.weight", l),
               param(m, "mlp.c_proj.bias", l), n, 4 * C, C);
        for (size_t i = 0; i < n * C; i++) x[i] += o[i];
    }
    free(ln), free(qkv), free(cat), free(o), free(fc);
}

static void embed(const ref_model *m, double *x, const uint32_t *ids, size_t n)
{
    const float *wte = param(m, "wte.weight", TOP), *wpe = param(m, "wpe.weight", TOP);
    for (size_t t = 0; t < n; t++)
        for (size_t j = 0; j < m->C; j++)
            x[t * m->C + j] = (double)wte[ids[t] * m->C + j] + (double)wpe[t * m->C + j];
}

static const attn_tensor *entry(const attn_trace *tr, const char *name, size_t rows, size_t cols)
{
    const attn_tensor *t = attn_trace_get(tr, name);
    if (!t) fail_msg("the trace has no entry %s", name);
    if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols)
        fail_msg("%s: shape (%zu, %zu), expected (%zu, %zu)", name, t->shape[0],
                 t->ndim == 2 ? t->shape[1] : 0, rows, cols);
    return t;
}

static void expect_close(const float *got, const double *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want[i]) <= TOL * (1.0 + fabs(want[i]))))
            fail_msg("%s[%zu] = %.9g, expected %.9g", what, i, (double)got[i], want[i]);
}

/* Checks every head's attention (rows of length T, of which the first n are
 * the sequence's) and every block's hidden state of sequence b against the
 * reference; batch is the "batch<b>." part of the head names. */
static void check_sequence(const ref_model *m, const attn_trace *tr, const uint32_t *ids,
                           size_t b, size_t B, size_t n, size_t T, double *att_out)
{
    const size_t C = m->C, H = m->H;
    double *x = malloc(n * C * sizeof *x), *att = malloc(m->layers * H * n * n * sizeof *att);
    assert_non_null(x), assert_non_null(att);
    embed(m, x, ids + b * T, n);
    ref_forward(m, x, att, n);
    char name[96], what[128];
    for (size_t l = 0; l < m->layers; l++)
        for (size_t h = 0; h < H; h++) {
            if (B > 1) snprintf(name, sizeof name, "layer%zu.batch%zu.head%zu.attention", l, b, h);
            else snprintf(name, sizeof name, "layer%zu.head%zu.attention", l, h);
            const attn_tensor *a = entry(tr, name, T, T);
            for (size_t i = 0; i < n; i++) {
                snprintf(what, sizeof what, "%s row %zu", name, i);
                expect_close(a->data + i * T, att + ((l * H + h) * n + i) * n, n, what);
            }
        }
    snprintf(name, sizeof name, "layer%zu.resid", m->layers - 1);
    const attn_tensor *r = entry(tr, name, B * T, C);
    expect_close(r->data + b * T * C, x, n * C, name);
    if (att_out) memcpy(att_out, att, m->layers * H * n * n * sizeof *att);
    free(x), free(att);
}

/* Entries of every layer are there, named as documented (batch of 2). */
static void expect_names(const attn_trace *tr, size_t layers)
{
    static const char *const per_layer[] = {"ln_1.output", "batch1.concat", "batch1.output", "mid",
                                            "ln_2.output", "mlp.fc", "mlp.gelu", "mlp.output",
                                            "resid"};
    char name[64];
    for (size_t l = 0; l < layers; l++)
        for (size_t i = 0; i < sizeof per_layer / sizeof *per_layer; i++) {
            snprintf(name, sizeof name, "layer%zu.%s", l, per_layer[i]);
            if (!attn_trace_get(tr, name)) fail_msg("the trace has no entry %s", name);
        }
    if (!attn_trace_get(tr, "embed") || !attn_trace_get(tr, "ln_f.output") ||
        !attn_trace_get(tr, "logits"))
        fail_msg("the trace lacks embed, ln_f.output or logits");
}

static void random_ids(uint32_t *ids, size_t n, size_t vocab, uint64_t seed)
{
    attn_rng r;
    attn_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) ids[i] = (uint32_t)(attn_rng_next(&r) % vocab);
}

/* Scales matrices up (so that the maps are far from uniform) and gives the
 * biases and norms random values (so that they are tested). */
static void perturb(const attn_param_ref *p, size_t n, uint64_t seed)
{
    attn_rng r;
    attn_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        if (p[i].ndim == 2)
            for (size_t j = 0; j < p[i].numel; j++) p[i].data[j] *= 15.0f;
        else
            attn_rng_fill_uniform(&r, p[i].data, p[i].numel, strstr(p[i].name, "weight") ? 0.5f : -0.3f,
                                  strstr(p[i].name, "weight") ? 1.5f : 0.3f);
    }
}

static void decoder_trace(void **state)
{
    (void)state;
    enum { V = 11, T = 6, B = 2, L = 3, H = 2, C = 12 };
    attn_gpt_config c = {V, T, L, H, C, 1};
    attn_gpt *g = NULL;
    assert_int_equal(attn_gpt_create(&g, &c, B), ATTN_OK);
    assert_int_equal(attn_gpt_init(g, 5), ATTN_OK);
    perturb(attn_gpt_params(g), attn_gpt_param_count(g), 9);
    uint32_t ids[B * T];
    random_ids(ids, B * T, V, 3);
    float plain[B * T * V];
    assert_int_equal(attn_gpt_forward(g, ids, NULL, B, T, NULL, NULL), ATTN_OK);
    memcpy(plain, attn_gpt_logits(g), sizeof plain);

    attn_trace *tr = NULL;
    assert_int_equal(attn_trace_create(&tr), ATTN_OK);
    attn_op_ctx ctx = {tr, NULL};
    assert_int_equal(attn_gpt_forward(g, ids, NULL, B, T, NULL, &ctx), ATTN_OK);
    ref_model m = {attn_gpt_params(g), attn_gpt_param_count(g), C, H, L, 1, 1};
    for (size_t b = 0; b < B; b++) check_sequence(&m, tr, ids, b, B, T, T, NULL);
    expect_names(tr, L);
    /* the traced (reference) path and the fused one agree */
    for (size_t i = 0; i < B * T * V; i++) assert_true(fabsf(plain[i] - attn_gpt_logits(g)[i]) < 1e-4f);
    const size_t count = attn_trace_count(tr);
    assert_int_equal(attn_gpt_forward(g, ids, NULL, B, T, NULL, NULL), ATTN_OK);
    assert_int_equal(attn_trace_count(tr), count); /* nothing kept without a trace */

    /* A prefix goes in front of every name. */
    attn_trace *tp = NULL;
    assert_int_equal(attn_trace_create(&tp), ATTN_OK);
    attn_op_ctx pctx = {tp, "run1"};
    assert_int_equal(attn_gpt_forward(g, ids, NULL, 1, 4, NULL, &pctx), ATTN_OK);
    entry(tp, "run1.layer2.head1.attention", 4, 4);
    entry(tp, "run1.layer0.resid", 4, C);
    entry(tp, "run1.logits", 4, V);
    entry(tp, "run1.layer1.concat", 4, C); /* batch 1: no "batch0." */
    entry(tp, "run1.layer1.output", 4, C);
    assert_null(attn_trace_get(tp, "layer0.resid"));

    /* A filtered trace keeps the maps and hidden states only, with the full trace's values. */
    attn_trace *tf = NULL;
    assert_int_equal(attn_trace_create(&tf), ATTN_OK);
    const char *pat[] = {"run1.layer*.head*.attention", "run1.layer*.resid"};
    assert_int_equal(attn_trace_set_filter(tf, 2, pat), ATTN_OK);
    attn_op_ctx fctx = {tf, "run1"};
    assert_int_equal(attn_gpt_forward(g, ids, NULL, 1, 4, NULL, &fctx), ATTN_OK);
    assert_int_equal(attn_trace_count(tf), L * H + L);
    assert_null(attn_trace_get(tf, "run1.logits"));
    for (size_t i = 0; i < L * H + L; i++) {
        attn_trace_entry fe;
        assert_int_equal(attn_trace_entry_at(tf, i, &fe), ATTN_OK);
        const attn_tensor *want = attn_trace_get(tp, fe.name);
        assert_non_null(want);
        assert_int_equal(fe.tensor->numel, want->numel);
        for (size_t k = 0; k < want->numel; k++) assert_true(fe.tensor->data[k] == want->data[k]);
    }
    for (size_t l = 0; l < L; l++)
        for (size_t h = 0; h < H; h++) {
            char name[64];
            snprintf(name, sizeof name, "run1.layer%zu.head%zu.attention", l, h);
            assert_non_null(attn_trace_get(tf, name));
        }
    attn_trace_free(tf);
    attn_trace_free(tp);
    attn_trace_free(tr);
    attn_gpt_free(g);
}

static void encoder_trace(void **state)
{
    (void)state;
    enum { V = 17, T = 7, B = 2, L = 2, H = 3, C = 12, K = 4 };
    for (int pool = 0; pool < 2; pool++) {
        attn_encoder_config c = {V, T, L, H, C, K, 1, pool ? ATTN_POOL_CLS : ATTN_POOL_MEAN};
        attn_encoder *e = NULL;
        assert_int_equal(attn_encoder_create(&e, &c, B), ATTN_OK);
        assert_int_equal(attn_encoder_init(e, 8), ATTN_OK);
        perturb(attn_encoder_params(e), attn_encoder_param_count(e), 10);
        uint32_t ids[B * T];
        random_ids(ids, B * T, V, 4);
        const size_t lens[B] = {T, 4}; /* the second example is padded */
        attn_trace *tr = NULL;
        assert_int_equal(attn_trace_create(&tr), ATTN_OK);
        attn_op_ctx ctx = {tr, NULL};
        assert_int_equal(attn_encoder_forward(e, ids, lens, NULL, B, T, NULL, &ctx), ATTN_OK);
        ref_model m = {attn_encoder_params(e), attn_encoder_param_count(e), C, H, L, 1, 0};
        expect_names(tr, L);
        for (size_t b = 0; b < B; b++) {
            const size_t n = lens[b];
            double *att = malloc(L * H * n * n * sizeof *att), *pooled = calloc(L * H * n, sizeof *pooled);
            assert_non_null(att), assert_non_null(pooled);
            check_sequence(&m, tr, ids, b, B, n, T, att);
            /* the pooled vector's attention: the [CLS] row or the mean of the rows */
            for (size_t i = 0; i < L * H; i++)
                for (size_t q = 0; q < (pool ? 1 : n); q++)
                    for (size_t k = 0; k < n; k++) pooled[i * n + k] += att[(i * n + q) * n + k] / (pool ? 1.0 : (double)n);
            char name[64];
            snprintf(name, sizeof name, "batch%zu.pooled_attention", b);
            expect_close(entry(tr, name, L * H, n)->data, pooled, L * H * n, name);
            free(att), free(pooled);
        }
        size_t nl = 0;
        const char *const *rows = attn_trace_labels(tr, "layer_head", &nl);
        assert_int_equal(nl, L * H);
        assert_string_equal(rows[H + 1], "layer 1 head 1");
        attn_trace_free(tr);
        attn_encoder_free(e);
    }
}

/* attn_encoder_layer_trace: the exporters' walkthrough of a layer, copied
 * from a traced forward of one example, holds what a plain run of that
 * layer's MHA on the same input records (attn_mha_self_attention): the same
 * entries in the same order with the same bits, and the same labels. */
static void encoder_layer_trace(void **state)
{
    (void)state;
    enum { V = 11, T = 5, L = 2, H = 2, C = 8, K = 3 };
    attn_encoder_config c = {V, T, L, H, C, K, 1, ATTN_POOL_CLS};
    attn_encoder *e = NULL;
    assert_int_equal(attn_encoder_create(&e, &c, 1), ATTN_OK);
    assert_int_equal(attn_encoder_init(e, 3), ATTN_OK);
    perturb(attn_encoder_params(e), attn_encoder_param_count(e), 5);
    uint32_t ids[T];
    random_ids(ids, T, V, 2);
    const size_t lens[1] = {T};
    static const char *const tokens[T] = {"[CLS]", "a", "b", "c", "d"};
    attn_trace *run = NULL, *got = NULL, *want = NULL;
    assert_int_equal(attn_trace_create(&run), ATTN_OK);
    assert_int_equal(attn_trace_create(&got), ATTN_OK);
    assert_int_equal(attn_trace_create(&want), ATTN_OK);
    attn_op_ctx ctx = {run, NULL};
    assert_int_equal(attn_encoder_forward(e, ids, lens, NULL, 1, T, NULL, &ctx), ATTN_OK);
    assert_int_equal(attn_encoder_layer_trace(e, run, L, got), ATTN_E_INVALID); /* no such layer */
    assert_int_equal(attn_encoder_layer_trace(e, run, L - 1, got), ATTN_E_INVALID); /* no token labels */
    assert_int_equal(attn_trace_set_labels(run, "token", T, tokens), ATTN_OK);
    assert_int_equal(attn_encoder_layer_trace(e, run, L - 1, got), ATTN_OK);
    /* the plain run, on the layer's input as the forward left it */
    char *dims[C], dn[C][8];
    for (size_t i = 0; i < C; i++) snprintf(dn[i], sizeof dn[i], "d%zu", i), dims[i] = dn[i];
    attn_embeddings x = {T, C, (char **)tokens, dims, (float *)attn_encoder_attn_input(e, L - 1)};
    assert_int_equal(attn_mha_self_attention(NULL, attn_encoder_mha(e, L - 1), &x, NULL, want), ATTN_OK);
    assert_int_equal(attn_trace_count(got), attn_trace_count(want));
    assert_true(attn_trace_count(want) > 4 * H);
    for (size_t i = 0; i < attn_trace_count(want); i++) {
        attn_trace_entry a, b;
        assert_int_equal(attn_trace_entry_at(got, i, &a), ATTN_OK);
        assert_int_equal(attn_trace_entry_at(want, i, &b), ATTN_OK);
        assert_string_equal(a.name, b.name);
        assert_int_equal(a.tensor->numel, b.tensor->numel);
        assert_memory_equal(a.tensor->data, b.tensor->data, b.tensor->numel * sizeof(float));
    }
    static const char *const axes[] = {"token", "query", "key", "dim", "head_dim", "value_dim", "concat_dim", "out_dim"};
    for (size_t i = 0; i < sizeof axes / sizeof *axes; i++) {
        size_t na = 0, nb = 0;
        const char *const *la = attn_trace_labels(got, axes[i], &na), *const *lb = attn_trace_labels(want, axes[i], &nb);
        assert_non_null(la), assert_int_equal(na, nb);
        for (size_t k = 0; k < na; k++) assert_string_equal(la[k], lb[k]);
    }
    assert_non_null(attn_trace_get(got, "head1.attention"));
    assert_null(attn_trace_get(got, "head1.mask")); /* the padding mask of the forward stays out */
    attn_trace_free(run), attn_trace_free(got), attn_trace_free(want);
    attn_encoder_free(e);
}

/* Rows [r0, r0 + rows) and columns [0, cols) of the full run's entry `name`
 * (its shape (R, C)) equal the step's entry of shape (rows, cols). */
static void rows_match(const attn_trace *full, const attn_trace *step, const char *name,
                       size_t r0, size_t rows, size_t cols, float tol)
{
    const attn_tensor *f = attn_trace_get(full, name);
    if (!f) fail_msg("the full run has no entry %s", name);
    const attn_tensor *s = entry(step, name, rows, cols);
    assert_true(f->ndim == 2 && r0 + rows <= f->shape[0] && cols <= f->shape[1]);
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) {
            const float a = f->data[(r0 + i) * f->shape[1] + j], b = s->data[i * cols + j];
            if (!(fabsf(a - b) <= tol))
                fail_msg("%s (%zu, %zu): cached step %.9g, full forward %.9g", name, i, j, b, a);
        }
}

/* The KV-cache path with a trace (a prefill of 3 tokens, then one token at a
 * time) records, for every layer and head, the new rows of the full
 * forward's maps over the keys cached so far, and the same hidden states. */
static void decoder_kv_trace(void **state)
{
    (void)state;
    enum { V = 11, T = 7, L = 3, H = 2, C = 12, PREFILL = 3 };
    attn_gpt_config c = {V, T, L, H, C, 1};
    attn_gpt *g = NULL;
    attn_gpt_kv *kv = NULL;
    assert_int_equal(attn_gpt_create(&g, &c, 1), ATTN_OK);
    assert_int_equal(attn_gpt_init(g, 7), ATTN_OK);
    perturb(attn_gpt_params(g), attn_gpt_param_count(g), 13);
    uint32_t ids[T];
    random_ids(ids, T, V, 21);
    attn_trace *full = NULL;
    assert_int_equal(attn_trace_create(&full), ATTN_OK);
    attn_op_ctx fctx = {full, NULL};
    assert_int_equal(attn_gpt_forward(g, ids, NULL, 1, T, NULL, &fctx), ATTN_OK);
    float want[V];
    memcpy(want, attn_gpt_logits(g) + (T - 1) * V, sizeof want);
    assert_int_equal(attn_gpt_kv_create(&kv, g), ATTN_OK);
    float logits[V];
    size_t steps = 0, maps = 0;
    for (size_t past = 0; past < T; steps++) {
        const size_t n = past ? 1 : PREFILL, S = past + n;
        attn_trace *tr = NULL;
        assert_int_equal(attn_trace_create(&tr), ATTN_OK);
        attn_op_ctx ctx = {tr, "step"};
        attn_op_ctx plain = {tr, NULL};
        assert_int_equal(attn_gpt_kv_step_traced(g, kv, ids + past, n, logits, past ? &plain : &ctx),
                         ATTN_OK);
        if (!past) { /* a prefix goes in front of every name; then again without one */
            entry(tr, "step.layer0.head1.attention", n, S);
            assert_null(attn_trace_get(tr, "layer0.resid"));
            attn_trace_free(tr);
            assert_int_equal(attn_trace_create(&tr), ATTN_OK);
            plain.trace = tr;
            attn_gpt_kv_reset(kv);
            assert_int_equal(attn_gpt_kv_step_traced(g, kv, ids, n, logits, &plain), ATTN_OK);
        }
        rows_match(full, tr, "embed", past, n, C, 1e-6f);
        char name[64];
        for (size_t l = 0; l < L; l++) {
            for (size_t h = 0; h < H; h++) {
                snprintf(name, sizeof name, "layer%zu.head%zu.attention", l, h);
                rows_match(full, tr, name, past, n, S, 2e-5f);
                maps++;
                snprintf(name, sizeof name, "layer%zu.head%zu.k", l, h);
                rows_match(full, tr, name, 0, S, C / H, 1e-4f);
                snprintf(name, sizeof name, "layer%zu.head%zu.q", l, h);
                rows_match(full, tr, name, past, n, C / H, 1e-4f);
            }
            snprintf(name, sizeof name, "layer%zu.output", l);
            rows_match(full, tr, name, past, n, C, 1e-4f);
            snprintf(name, sizeof name, "layer%zu.resid", l);
            rows_match(full, tr, name, past, n, C, 1e-4f);
        }
        attn_trace_free(tr);
        past = S;
    }
    assert_int_equal(steps, T - PREFILL + 1);
    assert_int_equal(maps, steps * L * H);
    for (size_t i = 0; i < V; i++) assert_true(fabsf(logits[i] - want[i]) < 1e-4f);
    /* The full maps are causal: what the steps never saw is zero there. */
    const attn_tensor *a = entry(full, "layer2.head1.attention", T, T);
    for (size_t i = 0; i < T; i++)
        for (size_t j = i + 1; j < T; j++) assert_true(a->data[i * T + j] == 0.0f);
    attn_gpt_kv_free(kv);
    attn_trace_free(full);
    attn_gpt_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decoder_trace),
        cmocka_unit_test(decoder_kv_trace),
        cmocka_unit_test(encoder_trace),
        cmocka_unit_test(encoder_layer_trace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
