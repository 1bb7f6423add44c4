/* test_grad.c - every backward against central finite differences of a
 * double-precision forward written here independently of the library.
 *
 * For a loss l = sum(out ∘ R) with a fixed random R, the gradient of input
 * element x_i is approximated by (l(x_i + h) - l(x_i - h)) / 2h in double,
 * h = 1e-5, which is accurate to ~1e-9 here: the comparison then measures the
 * library's float32 analytic gradient alone. */
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/mha.h"
#include "attn/rng.h"

#define ATOL 1e-4
#define RTOL 1e-3

/* ---- double-precision reference forwards ----------------------------------- */

/* out (L, dv) = softmax(q·kᵀ·f + mask) · v, fully masked rows zero. */
static void sdpa_d(double *out, const double *q, const double *k, const double *v,
                   const double *mask, size_t L, size_t S, size_t dk, size_t dv, double f)
{
    double *row = malloc(S * sizeof(double));
    for (size_t i = 0; i < L; i++) {
        double mx = -INFINITY;
        for (size_t j = 0; j < S; j++) {
            double s = 0;
            for (size_t p = 0; p < dk; p++) s += q[i * dk + p] * k[j * dk + p];
            row[j] = s * f + (mask ? mask[i * S + j] : 0.0);
            if (row[j] > mx) mx = row[j];
        }
        double sum = 0;
        for (size_t j = 0; j < S; j++) sum += (row[j] = mx == -INFINITY ? 0.0 : exp(row[j] - mx));
        for (size_t c = 0; c < dv; c++) {
            double o = 0;
            for (size_t j = 0; j < S; j++) o += (sum > 0 ? row[j] / sum : 0.0) * v[j * dv + c];
            out[i * dv + c] = o;
        }
    }
    free(row);
}

/* y (rows, out) = x · wᵀ + b */
static void linear_d(double *y, const double *x, const double *w, const double *b, size_t rows,
                     size_t in, size_t out)
{
    for (size_t i = 0; i < rows; i++)
        for (size_t o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (size_t p = 0; p < in; p++) s += x[i * in + p] * w[o * in + p];
            y[i * out + o] = s;
        }
}

static double *to_d(const float *x, size_t n)
{
    double *d = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static float *randf(attn_rng *r, size_t n, float amp)
{
    float *x = malloc(n * sizeof(float));
    attn_rng_fill_uniform(r, x, n, -amp, amp);
    return x;
}

static double dot_d(const double *a, const float *r, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * r[i];
    return s;
}

/* Central difference of `loss` with respect to each element of x (double). */
typedef double (*loss_fn)(void *ctx);
static void numeric_grad(double *g, double *x, size_t n, loss_fn loss, void *ctx)
{
    const double h = 1e-5;
    for (size_t i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + h;
        double lp = loss(ctx);
        x[i] = keep - h;
        double lm = loss(ctx);
        x[i] = keep;
        g[i] = (lp - lm) / (2 * h);
    }
}

static void assert_grad(const float *analytic, const double *numeric, size_t n, const char *what)
{
    float *nf = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) nf[i] = (float)numeric[i];
    assert_close_f32(analytic, nf, n, ATOL, RTOL, what);
    free(nf);
}

/* ---- attention op ---------------------------------------------------------- */

typedef struct sdpa_case {
    size_t L, S, dk, dv;
    double *q, *k, *v, *mask;
    const float *R;
    double f;
} sdpa_case;

static double sdpa_loss(void *p)
{
    sdpa_case *c = p;
    double *out = malloc(c->L * c->dv * sizeof(double));
    sdpa_d(out, c->q, c->k, c->v, c->mask, c->L, c->S, c->dk, c->dv, c->f);
    double l = dot_d(out, c->R, c->L * c->dv);
    free(out);
    return l;
}

static void check_sdpa(size_t L, size_t S, size_t dk, size_t dv, int masked, attn_causal causal,
                       float temperature, unsigned seed)
{
    attn_rng r;
    attn_rng_seed(&r, seed);
    float *q = randf(&r, L * dk, 1.5f), *k = randf(&r, S * dk, 1.5f), *v = randf(&r, S * dv, 1);
    float *R = randf(&r, L * dv, 1), *add = randf(&r, L * S, 1);
    attn_sdpa_params p = attn_sdpa_defaults();
    p.temperature = temperature;
    p.causal = causal;
    if (masked) {
        add[1] = -INFINITY; /* one masked entry in row 0 */
        p.add_mask = add;
    }
    float *out = malloc(L * dv * sizeof(float)), *w = malloc(L * S * sizeof(float));
    float *gq = calloc(L * dk, sizeof(float)), *gk = calloc(S * dk, sizeof(float));
    float *gv = calloc(S * dv, sizeof(float));
    assert_int_equal(attn_sdpa_forward(out, w, q, k, v, L, S, dk, dv, &p, NULL), ATTN_OK);
    assert_int_equal(attn_sdpa_backward(gq, gk, gv, R, q, k, v, w, L, S, dk, dv, &p), ATTN_OK);

    /* The double reference sees the same effective mask. */
    double *mask = malloc(L * S * sizeof(double));
    for (size_t i = 0; i < L; i++)
        for (size_t j = 0; j < S; j++) {
            int ok = causal == ATTN_CAUSAL_TOP_LEFT      ? j <= i
                     : causal == ATTN_CAUSAL_BOTTOM_RIGHT ? j + L <= i + S
                                                          : 1;
            mask[i * S + j] = !ok ? -INFINITY : (masked ? add[i * S + j] : 0.0);
        }
    sdpa_case c = {L, S, dk, dv, to_d(q, L * dk), to_d(k, S * dk), to_d(v, S * dv), mask, R,
                   1.0 / sqrt((double)dk) / temperature};
    double *gn = malloc((L + S) * (dk + dv) * sizeof(double));
    numeric_grad(gn, c.q, L * dk, sdpa_loss, &c);
    assert_grad(gq, gn, L * dk, "attention d_q");
    numeric_grad(gn, c.k, S * dk, sdpa_loss, &c);
    assert_grad(gk, gn, S * dk, "attention d_k");
    numeric_grad(gn, c.v, S * dv, sdpa_loss, &c);
    assert_grad(gv, gn, S * dv, "attention d_v");
    free(gn), free(c.q), free(c.k), free(c.v), free(mask);
    free(q), free(k), free(v), free(R), free(add), free(out), free(w), free(gq), free(gk), free(gv);
}

static void test_sdpa_backward(void **state)
{
    (void)state;
    check_sdpa(4, 4, 3, 3, 0, ATTN_CAUSAL_NONE, 1.0f, 1);
    check_sdpa(3, 6, 5, 2, 1, ATTN_CAUSAL_NONE, 1.0f, 2);  /* L < S, d_v != d_k, a mask */
    check_sdpa(6, 3, 2, 4, 0, ATTN_CAUSAL_BOTTOM_RIGHT, 1.0f, 3); /* fully masked rows */
    check_sdpa(5, 5, 4, 4, 1, ATTN_CAUSAL_TOP_LEFT, 0.7f, 4);
    check_sdpa(1, 1, 1, 1, 0, ATTN_CAUSAL_NONE, 1.0f, 5);
}

/* ---- matmul, linear, softmax ------------------------------------------------ */

typedef struct lin_case {
    size_t rows, in, out;
    double *x, *w, *b;
    const float *R;
} lin_case;

static double lin_loss(void *p)
{
    lin_case *c = p;
    double *y = malloc(c->rows * c->out * sizeof(double));
    linear_d(y, c->x, c->w, c->b, c->rows, c->in, c->out);
    double l = dot_d(y, c->R, c->rows * c->out);
    free(y);
    return l;
}

static void test_linear_and_matmul_backward(void **state)
{
    (void)state;
    const size_t rows = 4, in = 5, out = 3;
    attn_rng r;
    attn_rng_seed(&r, 9);
    float *x = randf(&r, rows * in, 1), *w = randf(&r, out * in, 1), *b = randf(&r, out, 1);
    float *R = randf(&r, rows * out, 1);
    float *gx = calloc(rows * in, sizeof(float)), *gw = calloc(out * in, sizeof(float));
    float *gb = calloc(out, sizeof(float));
    assert_int_equal(attn_linear_backward(gx, gw, gb, R, x, w, rows, in, out), ATTN_OK);
    lin_case c = {rows, in, out, to_d(x, rows * in), to_d(w, out * in), to_d(b, out), R};
    double *gn = malloc(rows * in * out * sizeof(double));
    numeric_grad(gn, c.x, rows * in, lin_loss, &c);
    assert_grad(gx, gn, rows * in, "linear d_x");
    numeric_grad(gn, c.w, out * in, lin_loss, &c);
    assert_grad(gw, gn, out * in, "linear d_w");
    numeric_grad(gn, c.b, out, lin_loss, &c);
    assert_grad(gb, gn, out, "linear d_bias");

    /* matmul a (rows, in) · b (in, out): b = wᵀ, so d_b = (d_w)ᵀ and d_a = d_x. */
    float *wt = malloc(in * out * sizeof(float)), *ga = calloc(rows * in, sizeof(float));
    float *gbt = calloc(in * out, sizeof(float));
    for (size_t i = 0; i < in; i++)
        for (size_t o = 0; o < out; o++) wt[i * out + o] = w[o * in + i];
    assert_int_equal(attn_matmul_backward(ga, gbt, R, x, wt, rows, in, out), ATTN_OK);
    assert_close_f32(ga, gx, rows * in, 1e-6, 1e-6, "matmul d_a");
    for (size_t i = 0; i < in; i++)
        for (size_t o = 0; o < out; o++) assert_float_equal(gbt[i * out + o], gw[o * in + i], 1e-6);
    /* Gradients accumulate: a second call doubles them. */
    assert_int_equal(attn_matmul_backward(ga, NULL, R, x, wt, rows, in, out), ATTN_OK);
    for (size_t i = 0; i < rows * in; i++) assert_float_equal(ga[i], 2 * gx[i], 1e-6);
    free(wt), free(ga), free(gbt);
    free(gn), free(c.x), free(c.w), free(c.b);
    free(x), free(w), free(b), free(R), free(gx), free(gw), free(gb);
}

typedef struct sm_case {
    size_t rows, cols;
    double *x;
    const float *R;
} sm_case;

static double sm_loss(void *p)
{
    sm_case *c = p;
    double l = 0;
    for (size_t i = 0; i < c->rows; i++) {
        double mx = -INFINITY, sum = 0;
        const double *x = c->x + i * c->cols;
        for (size_t j = 0; j < c->cols; j++) mx = fmax(mx, x[j]);
        for (size_t j = 0; j < c->cols; j++) sum += exp(x[j] - mx);
        for (size_t j = 0; j < c->cols; j++) l += exp(x[j] - mx) / sum * c->R[i * c->cols + j];
    }
    return l;
}

static void test_softmax_backward(void **state)
{
    (void)state;
    const size_t rows = 3, cols = 7;
    attn_rng r;
    attn_rng_seed(&r, 17);
    float *x = randf(&r, rows * cols, 3), *R = randf(&r, rows * cols, 1);
    float *y = malloc(rows * cols * sizeof(float)), *gx = calloc(rows * cols, sizeof(float));
    assert_int_equal(attn_softmax_forward(y, x, rows, cols, NULL), ATTN_OK);
    assert_int_equal(attn_softmax_backward(gx, R, y, rows, cols), ATTN_OK);
    sm_case c = {rows, cols, to_d(x, rows * cols), R};
    double *gn = malloc(rows * cols * sizeof(double));
    numeric_grad(gn, c.x, rows * cols, sm_loss, &c);
    assert_grad(gx, gn, rows * cols, "softmax d_x");
    free(gn), free(c.x), free(x), free(R), free(y), free(gx);
}

/* ---- multi-head attention ---------------------------------------------------- */

typedef struct mha_case {
    attn_mha_config cfg;
    size_t N, L, S;
    double *query, *key, *value, *params;
    const float *kpm; /* bool key padding (N, S) or NULL */
    int causal;
    const float *R;
} mha_case;

/* The layer, written out plainly in double. */
static double mha_loss(void *p)
{
    mha_case *c = p;
    const attn_mha_config *g = &c->cfg;
    const size_t E = g->embed_dim, H = g->num_heads, dk = g->head_dim, dv = g->v_head_dim;
    const size_t hq = H * dk, hv = H * dv, S2 = c->S + !!g->add_bias_kv + !!g->add_zero_attn;
    const double *wq = c->params, *wk = wq + hq * E, *wv = wk + hq * g->kdim;
    const double *bin = g->bias ? wv + hv * g->vdim : NULL;
    const double *wo = (bin ? bin + 2 * hq + hv : wv + hv * g->vdim);
    const double *bo = g->bias ? wo + g->out_dim * hv : NULL;
    const double *bk = g->add_bias_kv ? (bo ? bo + g->out_dim : wo + g->out_dim * hv) : NULL;
    const double *bv = bk ? bk + hq : NULL;
    double *qp = malloc(c->L * hq * sizeof(double)), *kp = calloc(S2 * hq, sizeof(double));
    double *vp = calloc(S2 * hv, sizeof(double)), *concat = malloc(c->L * hv * sizeof(double));
    double *qh = malloc(c->L * dk * sizeof(double)), *kh = malloc(S2 * dk * sizeof(double));
    double *vh = malloc(S2 * dv * sizeof(double)), *oh = malloc(c->L * dv * sizeof(double));
    double *mask = malloc(c->L * S2 * sizeof(double)), *out = malloc(c->L * g->out_dim * sizeof(double));
    double loss = 0;
    for (size_t n = 0; n < c->N; n++) {
        linear_d(qp, c->query + n * c->L * E, wq, bin, c->L, E, hq);
        linear_d(kp, c->key + n * c->S * g->kdim, wk, bin ? bin + hq : NULL, c->S, g->kdim, hq);
        linear_d(vp, c->value + n * c->S * g->vdim, wv, bin ? bin + 2 * hq : NULL, c->S, g->vdim, hv);
        if (bk) {
            memcpy(kp + c->S * hq, bk, hq * sizeof(double));
            memcpy(vp + c->S * hv, bv, hv * sizeof(double));
        }
        if (g->add_zero_attn) {
            memset(kp + (S2 - 1) * hq, 0, hq * sizeof(double));
            memset(vp + (S2 - 1) * hv, 0, hv * sizeof(double));
        }
        for (size_t i = 0; i < c->L; i++)
            for (size_t j = 0; j < S2; j++) {
                int masked = (c->causal && j > i) || (j < c->S && c->kpm && c->kpm[n * c->S + j]);
                mask[i * S2 + j] = masked ? -INFINITY : 0.0;
            }
        for (size_t h = 0; h < H; h++) {
            for (size_t i = 0; i < c->L; i++) memcpy(qh + i * dk, qp + i * hq + h * dk, dk * sizeof(double));
            for (size_t j = 0; j < S2; j++) memcpy(kh + j * dk, kp + j * hq + h * dk, dk * sizeof(double));
            for (size_t j = 0; j < S2; j++) memcpy(vh + j * dv, vp + j * hv + h * dv, dv * sizeof(double));
            sdpa_d(oh, qh, kh, vh, mask, c->L, S2, dk, dv, 1.0 / sqrt((double)dk));
            for (size_t i = 0; i < c->L; i++) memcpy(concat + i * hv + h * dv, oh + i * dv, dv * sizeof(double));
        }
        linear_d(out, concat, wo, bo, c->L, hv, g->out_dim);
        loss += dot_d(out, c->R + n * c->L * g->out_dim, c->L * g->out_dim);
    }
    free(qp), free(kp), free(vp), free(concat), free(qh), free(kh), free(vh), free(oh), free(mask), free(out);
    return loss;
}

static void check_mha(attn_mha_config cfg, size_t N, size_t L, size_t S, int padding, int causal,
                      unsigned seed)
{
    attn_mha *m = NULL;
    assert_int_equal(attn_mha_create(&m, &cfg), ATTN_OK);
    assert_int_equal(attn_mha_init(m, seed), ATTN_OK);
    cfg = *attn_mha_get_config(m);
    size_t np;
    float *params = attn_mha_params(m, &np);
    attn_rng r;
    attn_rng_seed(&r, seed + 100);
    if (cfg.bias) /* PyTorch starts biases at 0; give them values worth testing */
        for (size_t i = 0; i < np; i++)
            if (params[i] == 0.0f) params[i] = (float)(attn_rng_uniform(&r) - 0.5);
    float *q = randf(&r, N * L * cfg.embed_dim, 1), *k = randf(&r, N * S * cfg.kdim, 1);
    float *v = randf(&r, N * S * cfg.vdim, 1), *R = randf(&r, N * L * cfg.out_dim, 1);
    float *kpm = calloc(N * S, sizeof(float));
    if (padding && S > 1) kpm[S - 1] = 1; /* batch 0 ignores its last key */
    attn_mha_inputs in = {N, L, S, q, k, v, padding ? kpm : NULL, ATTN_MASK_BOOL, NULL, 0,
                          ATTN_MASK_BOOL, causal ? ATTN_CAUSAL_TOP_LEFT : ATTN_CAUSAL_NONE, NULL, NULL, NULL};
    attn_mha_cache *cache = NULL;
    assert_int_equal(attn_mha_cache_create(&cache), ATTN_OK);
    float *out = malloc(N * L * cfg.out_dim * sizeof(float));
    float *gq = calloc(N * L * cfg.embed_dim, sizeof(float)), *gk = calloc(N * S * cfg.kdim, sizeof(float));
    float *gv = calloc(N * S * cfg.vdim, sizeof(float));
    assert_int_equal(attn_mha_forward(m, out, NULL, 0, &in, cache, NULL), ATTN_OK);
    attn_mha_zero_grad(m);
    assert_int_equal(attn_mha_backward(m, gq, gk, gv, R, &in, cache), ATTN_OK);

    mha_case c = {cfg, N, L, S, to_d(q, N * L * cfg.embed_dim), to_d(k, N * S * cfg.kdim),
                  to_d(v, N * S * cfg.vdim), to_d(params, np), padding ? kpm : NULL, causal, R};
    /* The forward itself agrees with the plain double version. */
    double dl = 0;
    for (size_t i = 0; i < N * L * cfg.out_dim; i++) dl += (double)out[i] * R[i];
    assert_float_equal(dl, mha_loss(&c), 1e-4 * (1 + fabs(dl)));
    size_t most = np > N * L * 64 ? np : N * L * 64;
    double *gn = malloc(most * sizeof(double));
    numeric_grad(gn, c.query, N * L * cfg.embed_dim, mha_loss, &c);
    assert_grad(gq, gn, N * L * cfg.embed_dim, "mha d_query");
    numeric_grad(gn, c.key, N * S * cfg.kdim, mha_loss, &c);
    assert_grad(gk, gn, N * S * cfg.kdim, "mha d_key");
    numeric_grad(gn, c.value, N * S * cfg.vdim, mha_loss, &c);
    assert_grad(gv, gn, N * S * cfg.vdim, "mha d_value");
    numeric_grad(gn, c.params, np, mha_loss, &c);
    for (size_t i = 0; i < attn_mha_param_count(m); i++) {
        const char *name;
        attn_tensor pt, gt;
        assert_int_equal(attn_mha_param_at(m, i, &name, &pt, &gt), ATTN_OK);
        assert_grad(gt.data, gn + (pt.data - params), pt.numel, name);
    }
    free(gn), free(c.query), free(c.key), free(c.value), free(c.params);
    free(q), free(k), free(v), free(R), free(kpm), free(out), free(gq), free(gk), free(gv);
    attn_mha_cache_free(cache);
    attn_mha_free(m);
}

static void test_mha_backward(void **state)
{
    (void)state;
    attn_mha_config c = attn_mha_default_config(6, 2);
    check_mha(c, 2, 3, 4, 1, 0, 1);                 /* packed in_proj, key padding */
    c.bias = 0;
    check_mha(c, 1, 4, 4, 0, 1, 2);                 /* no bias, causal */
    c = attn_mha_default_config(6, 3);
    c.kdim = 5, c.vdim = 4, c.add_bias_kv = 1, c.add_zero_attn = 1;
    check_mha(c, 2, 2, 3, 1, 0, 3);                 /* separate projections, bias_kv, zero_attn */
    c = attn_mha_default_config(4, 2);
    c.head_dim = 3, c.v_head_dim = 5, c.out_dim = 7; /* d_v != d_k, another output width */
    check_mha(c, 1, 3, 5, 0, 0, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sdpa_backward),
        cmocka_unit_test(test_linear_and_matmul_backward),
        cmocka_unit_test(test_softmax_backward),
        cmocka_unit_test(test_mha_backward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
