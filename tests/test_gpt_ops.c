/* test_gpt_ops.c - the GPT's layer ops (layer norm, GELU, embedding,
 * cross-entropy) and a whole decoder block against central finite
 * differences of double-precision forwards written here, as test_grad.c does
 * for attention; and the fast forwards against their reference twins. */
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/gpt.h"
#include "attn/ops.h"
#include "attn/ops_nn.h"
#include "attn/rng.h"
#include "attn/tokenizer.h"
#include "attn/train.h"

#define ATOL 1e-4
#define RTOL 1e-3
#define H_STEP 1e-5

static float *randf(attn_rng *r, size_t n, float amp)
{
    float *x = malloc(n * sizeof(float));
    attn_rng_fill_uniform(r, x, n, -amp, amp);
    return x;
}

static void check_grad(const float *analytic, const double *numeric, size_t n, const char *what)
{
    float *nf = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) nf[i] = (float)numeric[i];
    assert_close_f32(analytic, nf, n, ATOL, RTOL, what);
    free(nf);
}

/* ---- double forwards --------------------------------------------------------- */

static void ln_d(double *y, const double *x, const double *w, const double *b, size_t rows, size_t C)
{
    for (size_t i = 0; i < rows; i++) {
        double m = 0, v = 0;
        for (size_t j = 0; j < C; j++) m += x[i * C + j];
        m /= (double)C;
        for (size_t j = 0; j < C; j++) v += (x[i * C + j] - m) * (x[i * C + j] - m);
        double r = 1.0 / sqrt(v / (double)C + 1e-5);
        for (size_t j = 0; j < C; j++) y[i * C + j] = (x[i * C + j] - m) * r * w[j] + (b ? b[j] : 0);
    }
}

static double gelu_d(double x)
{
    return 0.5 * x * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
}

static double ce_d(const double *logits, const uint32_t *t, size_t rows, size_t V)
{
    double total = 0;
    for (size_t i = 0; i < rows; i++) {
        double mx = -INFINITY, s = 0;
        for (size_t j = 0; j < V; j++) mx = fmax(mx, logits[i * V + j]);
        for (size_t j = 0; j < V; j++) s += exp(logits[i * V + j] - mx);
        total += log(s) + mx - logits[i * V + t[i]];
    }
    return total / (double)rows;
}

/* d/dv of f for every element of v (a double copy of the float data). */
typedef double (*loss_fn)(void *ctx);
static void numeric(double *g, double *v, size_t n, loss_fn f, void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        double keep = v[i];
        v[i] = keep + H_STEP;
        double lp = f(ctx);
        v[i] = keep - H_STEP;
        double lm = f(ctx);
        v[i] = keep;
        g[i] = (lp - lm) / (2 * H_STEP);
    }
}

static double *to_d(const float *x, size_t n)
{
    double *d = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static double dot_r(const double *y, const float *R, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += y[i] * R[i];
    return s;
}

/* ---- layer norm ----------------------------------------------------------------- */

typedef struct ln_case {
    double *x, *w, *b;
    const float *R;
    size_t rows, C;
} ln_case;

static double ln_loss(void *p)
{
    ln_case *c = p;
    double *y = malloc(c->rows * c->C * sizeof(double));
    ln_d(y, c->x, c->w, c->b, c->rows, c->C);
    double l = dot_r(y, c->R, c->rows * c->C);
    free(y);
    return l;
}

static void test_layernorm(void **state)
{
    (void)state;
    attn_rng r;
    attn_rng_seed(&r, 11);
    const size_t rows = 5, C = 7;
    float *x = randf(&r, rows * C, 2), *w = randf(&r, C, 1.5f), *b = randf(&r, C, 1);
    float *R = randf(&r, rows * C, 1), *y = malloc(rows * C * 4), *yr = malloc(rows * C * 4);
    float mean[5], rstd[5];
    float *dx = calloc(rows * C, 4), *dw = calloc(C, 4), *db = calloc(C, 4);
    assert_int_equal(attn_layernorm_forward(y, mean, rstd, x, w, b, rows, C, 1e-5f, NULL), ATTN_OK);
    assert_int_equal(attn_layernorm_ref(yr, x, w, b, rows, C, 1e-5f), ATTN_OK);
    assert_close_f32(y, yr, rows * C, 1e-5, 1e-5, "layernorm vs reference");
    assert_int_equal(attn_layernorm_backward(dx, dw, db, R, x, w, mean, rstd, rows, C), ATTN_OK);
    ln_case c = {to_d(x, rows * C), to_d(w, C), to_d(b, C), R, rows, C};
    double *g = malloc(rows * C * sizeof(double));
    numeric(g, c.x, rows * C, ln_loss, &c);
    check_grad(dx, g, rows * C, "layernorm d_x");
    numeric(g, c.w, C, ln_loss, &c);
    check_grad(dw, g, C, "layernorm d_w");
    numeric(g, c.b, C, ln_loss, &c);
    check_grad(db, g, C, "layernorm d_b");
    free(g), free(c.x), free(c.w), free(c.b);
    free(x), free(w), free(b), free(R), free(y), free(yr), free(dx), free(dw), free(db);
}

/* ---- GELU ------------------------------------------------------------------------ */

typedef struct gelu_case {
    double *x;
    const float *R;
    size_t n;
} gelu_case;

static double gelu_loss(void *p)
{
    gelu_case *c = p;
    double s = 0;
    for (size_t i = 0; i < c->n; i++) s += gelu_d(c->x[i]) * c->R[i];
    return s;
}

static void test_gelu(void **state)
{
    (void)state;
    attn_rng r;
    attn_rng_seed(&r, 12);
    const size_t n = 40;
    float *x = randf(&r, n, 4), *R = randf(&r, n, 1), *y = malloc(n * 4), *yr = malloc(n * 4);
    float *dx = calloc(n, 4);
    x[0] = 0, x[1] = -10, x[2] = 10; /* the flat tails and the middle */
    gelu_case c = {to_d(x, n), R, n};
    double *g = malloc(n * sizeof(double));
    numeric(g, c.x, n, gelu_loss, &c);
    /* Every SIMD level (vector bodies and tails: n = 40 is 2·16 + 8, 5·8). */
    const attn_simd saved = attn_simd_level();
    for (int lv = ATTN_SIMD_SCALAR; lv <= ATTN_SIMD_AVX512; lv++) {
        if (attn_simd_set((attn_simd)lv) != ATTN_OK) continue;
        assert_int_equal(attn_gelu_forward(y, x, n, NULL), ATTN_OK);
        assert_int_equal(attn_gelu_ref(yr, x, n), ATTN_OK);
        assert_close_f32(y, yr, n, 1e-6, 1e-5, "gelu vs reference");
        memset(dx, 0, n * sizeof(float));
        assert_int_equal(attn_gelu_backward(dx, R, x, n), ATTN_OK);
        check_grad(dx, g, n, "gelu d_x");
    }
    attn_simd_set(saved);
    free(g), free(c.x), free(x), free(R), free(y), free(yr), free(dx);
}

/* ---- embedding ------------------------------------------------------------------- */

static void test_embedding(void **state)
{
    (void)state;
    attn_rng r;
    attn_rng_seed(&r, 13);
    const size_t V = 5, C = 3, n = 6;
    const uint32_t ids[6] = {4, 0, 4, 2, 4, 1}; /* a repeated id sums its gradients */
    float *table = randf(&r, V * C, 1), *R = randf(&r, n * C, 1), *out = malloc(n * C * 4);
    float *dt = calloc(V * C, 4);
    assert_int_equal(attn_embedding_forward(out, ids, table, n, C, V, 0, NULL), ATTN_OK);
    for (size_t i = 0; i < n; i++) assert_memory_equal(out + i * C, table + ids[i] * C, C * 4);
    assert_int_equal(attn_embedding_backward(dt, R, ids, n, C, V), ATTN_OK);
    /* the loss sum(out ∘ R) is linear: d table[v] = sum of R rows with id v */
    float want[15] = {0};
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < C; j++) want[ids[i] * C + j] += R[i * C + j];
    assert_close_f32(dt, want, V * C, 1e-6, 0, "embedding d_table");
    const uint32_t bad[1] = {5};
    assert_int_equal(attn_embedding_forward(out, bad, table, 1, C, V, 0, NULL), ATTN_E_INVALID);
    free(table), free(R), free(out), free(dt);
}

/* ---- cross-entropy ---------------------------------------------------------------- */

typedef struct ce_case {
    double *logits;
    const uint32_t *t;
    size_t rows, V;
} ce_case;

static double ce_loss(void *p)
{
    ce_case *c = p;
    return ce_d(c->logits, c->t, c->rows, c->V);
}

static void test_crossentropy(void **state)
{
    (void)state;
    attn_rng r;
    attn_rng_seed(&r, 14);
    const size_t rows = 4, V = 9;
    const uint32_t t[4] = {0, 8, 3, 3};
    float *logits = randf(&r, rows * V, 3), *probs = malloc(rows * V * 4);
    float *d = calloc(rows * V, 4), row_loss[4];
    logits[5] = 80.0f; /* a large logit: max subtraction keeps it finite */
    double loss = 0, ref = 0;
    assert_int_equal(attn_crossentropy_forward(&loss, row_loss, probs, logits, t, rows, V, 0.0f, NULL), ATTN_OK);
    assert_int_equal(attn_crossentropy_ref(&ref, logits, t, rows, V), ATTN_OK);
    ce_case c = {to_d(logits, rows * V), t, rows, V};
    assert_true(fabs(loss - ce_d(c.logits, t, rows, V)) < 1e-5);
    assert_true(fabs(loss - ref) < 1e-5);
    assert_int_equal(attn_crossentropy_backward(d, probs, t, 1.0f / (float)rows, rows, V, 0.0f), ATTN_OK);
    double *g = malloc(rows * V * sizeof(double));
    numeric(g, c.logits, rows * V, ce_loss, &c);
    check_grad(d, g, rows * V, "cross-entropy d_logits");
    free(g), free(c.logits), free(logits), free(probs), free(d);
}

/* ---- a whole decoder (one block, biases) ------------------------------------------- */

typedef struct gpt_case {
    const attn_gpt_config *c;
    double **p; /* double copies of every parameter, in table order */
    const uint32_t *x, *y;
    size_t B, T;
} gpt_case;

/* The model of attn/gpt.h with one block, in double, written out here. */
static double gpt_loss(void *ctx)
{
    gpt_case *k = ctx;
    const size_t B = k->B, T = k->T, C = k->c->width, V = k->c->vocab_size, H = k->c->heads;
    const size_t d = C / H, R = B * T;
    double **p = k->p; /* wte wpe ln1w ln1b inw inb outw outb ln2w ln2b fcw fcb projw projb lnfw lnfb */
    double *h = calloc(R * C, 8), *a = calloc(R * C, 8), *qkv = calloc(R * 3 * C, 8);
    double *o = calloc(R * C, 8), *m = calloc(R * 4 * C, 8), *lg = calloc(R * V, 8);
    for (size_t i = 0; i < R; i++)
        for (size_t j = 0; j < C; j++) h[i * C + j] = p[0][k->x[i] * C + j] + p[1][(i % T) * C + j];
    ln_d(a, h, p[2], p[3], R, C);
    for (size_t i = 0; i < R; i++)
        for (size_t j = 0; j < 3 * C; j++) {
            double s = p[5][j];
            for (size_t q = 0; q < C; q++) s += a[i * C + q] * p[4][j * C + q];
            qkv[i * 3 * C + j] = s;
        }
    for (size_t b = 0; b < B; b++)
        for (size_t hd = 0; hd < H; hd++)
            for (size_t i = 0; i < T; i++) {
                double sc[64], mx = -INFINITY, sum = 0;
                const double *q = qkv + (b * T + i) * 3 * C + hd * d;
                for (size_t j = 0; j <= i; j++) {
                    const double *kk = qkv + (b * T + j) * 3 * C + C + hd * d;
                    double s = 0;
                    for (size_t e = 0; e < d; e++) s += q[e] * kk[e];
                    sc[j] = s / sqrt((double)d);
                    mx = fmax(mx, sc[j]);
                }
                for (size_t j = 0; j <= i; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (size_t e = 0; e < d; e++) {
                    double s = 0;
                    for (size_t j = 0; j <= i; j++) s += sc[j] / sum * qkv[(b * T + j) * 3 * C + 2 * C + hd * d + e];
                    o[(b * T + i) * C + hd * d + e] = s;
                }
            }
    for (size_t i = 0; i < R; i++)
        for (size_t j = 0; j < C; j++) {
            double s = p[7][j];
            for (size_t q = 0; q < C; q++) s += o[i * C + q] * p[6][j * C + q];
            h[i * C + j] += s;
        }
    ln_d(a, h, p[8], p[9], R, C);
    for (size_t i = 0; i < R; i++)
        for (size_t j = 0; j < 4 * C; j++) {
            double s = p[11][j];
            for (size_t q = 0; q < C; q++) s += a[i * C + q] * p[10][j * C + q];
            m[i * 4 * C + j] = gelu_d(s);
        }
    for (size_t i = 0; i < R; i++)
        for (size_t j = 0; j < C; j++) {
            double s = p[13][j];
            for (size_t q = 0; q < 4 * C; q++) s += m[i * 4 * C + q] * p[12][j * 4 * C + q];
            h[i * C + j] += s;
        }
    ln_d(a, h, p[14], p[15], R, C);
    for (size_t i = 0; i < R; i++)
        for (size_t v = 0; v < V; v++) {
            double s = 0;
            for (size_t q = 0; q < C; q++) s += a[i * C + q] * p[0][v * C + q];
            lg[i * V + v] = s;
        }
    double l = ce_d(lg, k->y, R, V);
    free(h), free(a), free(qkv), free(o), free(m), free(lg);
    return l;
}

static void test_block(void **state)
{
    (void)state;
    attn_gpt_config c = {7, 5, 1, 2, 6, 1};
    const size_t B = 2, T = 5;
    attn_gpt *g = NULL;
    assert_int_equal(attn_gpt_create(&g, &c, B), ATTN_OK);
    assert_int_equal(attn_gpt_init(g, 5), ATTN_OK);
    const attn_param_ref *p = attn_gpt_params(g);
    const size_t n = attn_gpt_param_count(g);
    assert_int_equal(n, 16);
    /* Larger weights than GPT-2's 0.02 so that every path carries signal. */
    attn_rng r;
    attn_rng_seed(&r, 6);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < p[i].numel; j++) p[i].data[j] += (float)(0.4 * (attn_rng_uniform(&r) - 0.5));
    const uint32_t x[10] = {1, 2, 3, 4, 5, 6, 0, 1, 1, 2}, y[10] = {2, 3, 4, 5, 6, 0, 1, 1, 2, 6};
    double loss = 0;
    assert_int_equal(attn_gpt_forward(g, x, y, B, T, &loss, NULL), ATTN_OK);
    attn_gpt_zero_grad(g);
    assert_int_equal(attn_gpt_backward(g, 1.0f), ATTN_OK);
    double *dp[16];
    for (size_t i = 0; i < n; i++) dp[i] = to_d(p[i].data, p[i].numel);
    gpt_case k = {&c, dp, x, y, B, T};
    assert_true(fabs(gpt_loss(&k) - loss) < 1e-5);
    for (size_t i = 0; i < n; i++) {
        double *gnum = malloc(p[i].numel * sizeof(double));
        numeric(gnum, dp[i], p[i].numel, gpt_loss, &k);
        check_grad(p[i].grad, gnum, p[i].numel, p[i].name);
        free(gnum);
    }
    for (size_t i = 0; i < n; i++) free(dp[i]);
    attn_gpt_free(g);
}

/* The backward hook: what it reports is final when reported. */
typedef struct hook_log {
    const attn_param_ref *p;
    size_t calls, first[8], n[8];
    float *copy[64];
} hook_log;

static attn_status log_hook(void *user, size_t first, size_t n)
{
    hook_log *h = user;
    assert_true(h->calls < 8);
    h->first[h->calls] = first, h->n[h->calls++] = n;
    for (size_t i = first; i < first + n; i++) {
        h->copy[i] = malloc(h->p[i].numel * sizeof(float));
        assert_non_null(h->copy[i]);
        memcpy(h->copy[i], h->p[i].grad, h->p[i].numel * sizeof(float));
    }
    return ATTN_OK;
}

static attn_status failing_hook(void *user, size_t first, size_t n)
{
    (void)user, (void)first, (void)n;
    return attn_error(ATTN_E_IO, "the hook failed");
}

static void test_backward_hook(void **state)
{
    (void)state;
    for (int bias = 0; bias < 2; bias++) {
        attn_gpt_config c = {7, 5, 3, 2, 6, bias};
        attn_gpt *g = NULL;
        assert_int_equal(attn_gpt_create(&g, &c, 2), ATTN_OK);
        assert_int_equal(attn_gpt_init(g, 5), ATTN_OK);
        const size_t n = attn_gpt_param_count(g);
        hook_log h;
        memset(&h, 0, sizeof h);
        h.p = attn_gpt_params(g);
        const uint32_t x[10] = {1, 2, 3, 4, 5, 6, 0, 1, 1, 2}, y[10] = {2, 3, 4, 5, 6, 0, 1, 1, 2, 6};
        double loss = 0;
        assert_int_equal(attn_gpt_forward(g, x, y, 2, 5, &loss, NULL), ATTN_OK);
        attn_gpt_zero_grad(g);
        attn_gpt_set_backward_hook(g, log_hook, &h);
        assert_int_equal(attn_gpt_backward(g, 1.0f), ATTN_OK);
        /* ln_f, then blocks 2, 1, 0: every tensor but wte and wpe, once */
        assert_int_equal(h.calls, 4);
        assert_int_equal(h.first[0] + h.n[0], n);
        assert_string_equal(h.p[h.first[0]].name, "ln_f.weight");
        for (size_t k = 1; k < 4; k++) {
            assert_int_equal(h.first[k] + h.n[k], h.first[k - 1]);
            char want[16];
            snprintf(want, sizeof want, "h.%zu.", 3 - k);
            assert_memory_equal(h.p[h.first[k]].name, want, strlen(want));
            assert_memory_equal(h.p[h.first[k] + h.n[k] - 1].name, want, strlen(want));
        }
        assert_int_equal(h.first[3], 2);
        for (size_t i = 2; i < n; i++) {
            assert_memory_equal(h.copy[i], h.p[i].grad, h.p[i].numel * sizeof(float));
            free(h.copy[i]);
        }
        /* an error stops the backward; NULL removes the hook */
        attn_gpt_set_backward_hook(g, failing_hook, NULL);
        assert_int_equal(attn_gpt_backward(g, 1.0f), ATTN_E_IO);
        attn_gpt_set_backward_hook(g, NULL, NULL);
        assert_int_equal(attn_gpt_backward(g, 1.0f), ATTN_OK);
        attn_gpt_free(g);
    }
}

static void test_config_errors(void **state)
{
    (void)state;
    attn_gpt_config c = {65, 64, 4, 4, 128, 0};
    assert_int_equal(attn_gpt_config_params(&c), 804096); /* nanoGPT's baby GPT */
    c.layers = 0;
    assert_int_equal(attn_gpt_config_check(&c), ATTN_E_INVALID);
    c.layers = 4, c.width = 130;
    assert_int_equal(attn_gpt_config_check(&c), ATTN_E_INVALID);
    assert_non_null(strstr(attn_last_error(), "not divisible"));
    c.width = 128, c.context = 0;
    assert_int_equal(attn_gpt_config_check(&c), ATTN_E_INVALID);
}

/* --eval-iters 0: the trainer's whole-split loss is the token-weighted mean of
 * every non-overlapping window, however the windows fall into batches (here
 * 11 validation windows in batches of 4: the last batch has 3). */
static void test_evaluate_whole_split(void **state)
{
    (void)state;
    char text[1200];
    for (size_t i = 0; i < sizeof text; i++) text[i] = (char)('a' + (i * 7 + i / 13) % 11);
    attn_tokenizer *tok = NULL;
    assert_int_equal(attn_char_tokenizer_from_text(&tok, text, sizeof text, "text"), ATTN_OK);
    attn_gpt_config m = {0, 8, 1, 2, 8, 1};
    attn_train_config c = attn_train_defaults();
    c.batch = 4, c.eval_iters = 0, c.val_fraction = 0.08f; /* 96 validation tokens */
    attn_trainer *t = NULL;
    assert_int_equal(attn_trainer_create(&t, &m, &c, tok, text, sizeof text, "text"), ATTN_OK);
    double whole = 0.0;
    assert_int_equal(attn_trainer_evaluate(t, 1, &whole), ATTN_OK);
    uint32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(attn_tokenizer_encode(attn_trainer_tokenizer(t), text, sizeof text, "text",
                                           &ids, &n), ATTN_OK);
    const size_t n_train = (size_t)((double)n * (1.0 - (double)c.val_fraction));
    const size_t windows = (n - n_train - 1) / 8;
    assert_int_equal(windows, 11);
    double sum = 0.0;
    for (size_t w = 0; w < windows; w++) {
        double l = 0.0;
        const uint32_t *x = ids + n_train + w * 8;
        assert_int_equal(attn_gpt_forward(attn_trainer_model(t), x, x + 1, 1, 8, &l, NULL), ATTN_OK);
        sum += l;
    }
    assert_true(isfinite(whole) && whole > 1.0);
    assert_true(fabs(whole - sum / (double)windows) < 1e-6);
    double again = 0.0;
    assert_int_equal(attn_trainer_evaluate(t, 1, &again), ATTN_OK);
    assert_true(again == whole);
    free(ids);
    attn_trainer_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm), cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_embedding), cmocka_unit_test(test_crossentropy),
        cmocka_unit_test(test_block), cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_evaluate_whole_split), cmocka_unit_test(test_backward_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
