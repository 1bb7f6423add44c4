/* test_fused_ops.c - the training step's write-instead-of-add ops give the
 * bits of the ones they replace (their values, threads and SIMD levels are
 * the op harness's: test_op_harness.c). */
#include "test_support.h"

#include <stdlib.h>
#include <string.h>

#include "attn/ops.h"
#include "attn/ops_nn.h"
#include "attn/optim.h"

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / 8388608.0f - 1.0f;
}

/* The _set backwards promise the bits of the accumulating ones on zeros (the
 * trainer's losses did not move when it took them): small shapes (loops) and
 * GEMM-sized ones, at every SIMD level, on 1 and 2 threads. */
static void test_set_same_bits(void **state)
{
    (void)state;
    unsigned seed = 12345;
    static const size_t shapes[][3] = {{5, 7, 3}, {20, 16, 16}, {130, 67, 129}, {96, 128, 65}};
    const attn_simd saved = attn_simd_level();
    const int saved_threads = attn_threads();
    for (int q = 0; q < 2 * ((int)attn_simd_best() + 1); q++) {
        if (attn_simd_set((attn_simd)(q / 2)) != ATTN_OK) continue;
        attn_set_threads(1 + q % 2);
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            const size_t r = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
            float *x = test_nan_buffer(r * in), *w = test_nan_buffer(out * in);
            float *dy = test_nan_buffer(r * out), *b = test_nan_buffer(r * in);
            float *a = calloc(r * in, sizeof *a), *wa = calloc(out * in, sizeof *wa);
            float *wb = calloc(out * in, sizeof *wb);
            assert_true(a && wa && wb);
            for (size_t i = 0; i < r * in; i++) x[i] = frand(&seed);
            for (size_t i = 0; i < out * in; i++) w[i] = frand(&seed);
            for (size_t i = 0; i < r * out; i++) dy[i] = frand(&seed);
            assert_int_equal(attn_linear_backward(a, wa, NULL, dy, x, w, r, in, out), ATTN_OK);
            assert_int_equal(attn_linear_backward_set(b, wb, NULL, dy, x, w, r, in, out), ATTN_OK);
            assert_memory_equal(a, b, r * in * sizeof *a);
            assert_memory_equal(wa, wb, out * in * sizeof *wa);
            memset(a, 0, r * in * sizeof *a), free(b), b = test_nan_buffer(r * in);
            assert_int_equal(attn_gelu_backward(a, x, x, r * in), ATTN_OK);
            assert_int_equal(attn_gelu_backward_set(b, x, x, r * in), ATTN_OK);
            assert_memory_equal(a, b, r * in * sizeof *a);
            free(x), free(w), free(dy), free(a), free(b), free(wa), free(wb);
        }
    }
    attn_simd_set(saved);
    attn_set_threads(saved_threads);
}

/* Three AdamW steps over a matrix with decay (odd sizes: the vector loops'
 * tails), a vector without, and one large enough for the threads. */
#define AD_N 3
static const size_t ad_numel[AD_N] = {37 * 29, 5, 70001};

static void adamw_run(float *w[AD_N], float *g[AD_N])
{
    attn_param_ref p[AD_N];
    for (int i = 0; i < AD_N; i++) {
        memset(&p[i], 0, sizeof p[i]);
        p[i].name = "p", p[i].data = w[i], p[i].grad = g[i], p[i].numel = ad_numel[i];
        p[i].ndim = i == 1 ? 1 : 2, p[i].decay = i != 1;
        p[i].shape[0] = i == 0 ? 37 : ad_numel[i], p[i].shape[1] = i == 0 ? 29 : 1;
    }
    const attn_adamw_config ac = {0.9f, 0.99f, 1e-8f, 0.1f};
    attn_adamw *o = NULL;
    assert_int_equal(attn_adamw_create(&o, p, AD_N, &ac), ATTN_OK);
    unsigned seed = 777;
    for (int step = 0; step < 3; step++) {
        for (int i = 0; i < AD_N; i++)
            for (size_t j = 0; j < ad_numel[i]; j++) g[i][j] = frand(&seed) * (float)(1 + j % 7);
        assert_int_equal(attn_adamw_step(o, 1e-2f), ATTN_OK);
    }
    attn_adamw_free(o);
}

/* The SIMD updates give the plain loop's bits at every level and thread
 * count; and the first step moves each weight by lr (its sign against the
 * gradient's) after the decay, as Adam's bias-corrected first step does. */
static void test_adamw_levels(void **state)
{
    (void)state;
    float *ref[AD_N], *w[AD_N], *g[AD_N];
    for (int i = 0; i < AD_N; i++) {
        ref[i] = malloc(ad_numel[i] * sizeof(float)), w[i] = malloc(ad_numel[i] * sizeof(float));
        g[i] = malloc(ad_numel[i] * sizeof(float));
        assert_true(ref[i] && w[i] && g[i]);
        for (size_t j = 0; j < ad_numel[i]; j++) ref[i][j] = 0.5f;
    }
    const attn_simd saved = attn_simd_level();
    const int saved_threads = attn_threads();
    assert_int_equal(attn_simd_set(ATTN_SIMD_SCALAR), ATTN_OK);
    attn_set_threads(1);
    { /* one step by hand: w = 0.5·(1 − lr·wd) − lr·g/(|g| + eps·...) */
        float one[1] = {0.5f}, g1[1] = {-0.25f};
        attn_param_ref p1 = {"w", one, g1, 1, 2, {1, 1}, 1};
        const attn_adamw_config ac = {0.9f, 0.99f, 1e-8f, 0.1f};
        attn_adamw *o = NULL;
        assert_int_equal(attn_adamw_create(&o, &p1, 1, &ac), ATTN_OK);
        assert_int_equal(attn_adamw_step(o, 1e-2f), ATTN_OK);
        assert_float_equal(one[0], 0.5 * (1 - 1e-3) + 1e-2, 1e-7);
        attn_adamw_free(o);
    }
    adamw_run(ref, g);
    for (int q = 0; q < 2 * ((int)attn_simd_best() + 1); q++) {
        if (attn_simd_set((attn_simd)(q / 2)) != ATTN_OK) continue;
        attn_set_threads(1 + q % 2);
        for (int i = 0; i < AD_N; i++)
            for (size_t j = 0; j < ad_numel[i]; j++) w[i][j] = 0.5f;
        adamw_run(w, g);
        for (int i = 0; i < AD_N; i++) assert_memory_equal(w[i], ref[i], ad_numel[i] * sizeof(float));
    }
    attn_simd_set(saved);
    attn_set_threads(saved_threads);
    for (int i = 0; i < AD_N; i++) free(ref[i]), free(w[i]), free(g[i]);
}

/* The layer norm's SIMD row kernels give the C kernels' bits (the training's
 * losses do not depend on the level): forward and backward, with and without
 * bias, dims with and without a tail of the 16 lanes and of the 64-column
 * parameter blocks, rows enough for the threads. */
static void layernorm_run_all(const size_t *dims, size_t n_dims, size_t rows, float **out)
{
    unsigned seed = 99;
    size_t at = 0;
    for (size_t s = 0; s < n_dims; s++) {
        const size_t dim = dims[s], n = rows * dim;
        float *x = malloc(n * sizeof *x), *dy = malloc(n * sizeof *dy), *w = malloc(dim * sizeof *w);
        float *b = malloc(dim * sizeof *b);
        assert_true(x && dy && w && b);
        for (size_t i = 0; i < n; i++) x[i] = 3.0f * frand(&seed) + 0.5f, dy[i] = frand(&seed);
        for (size_t j = 0; j < dim; j++) w[j] = 1.0f + frand(&seed), b[j] = frand(&seed);
        for (int bias = 0; bias < 2; bias++) {
            float *y = out[0] + at, *mean = out[1] + at, *rstd = out[2] + at, *dx = out[3] + at;
            float *dw = out[4] + at, *db = out[5] + at;
            for (size_t i = 0; i < n; i++) dx[i] = 0.25f;
            for (size_t j = 0; j < dim; j++) dw[j] = db[j] = 0.5f;
            assert_int_equal(attn_layernorm_forward(y, mean, rstd, x, w, bias ? b : NULL, rows,
                                                    dim, 1e-5f, NULL), ATTN_OK);
            assert_int_equal(attn_layernorm_backward(dx, dw, bias ? db : NULL, dy, x, w, mean,
                                                     rstd, rows, dim), ATTN_OK);
            at += n;
        }
        free(x), free(dy), free(w), free(b);
    }
}

static void test_layernorm_levels(void **state)
{
    (void)state;
    static const size_t dims[] = {1, 7, 16, 37, 128, 200};
    const size_t nd = sizeof dims / sizeof *dims, rows = 300;
    size_t total = 0;
    for (size_t s = 0; s < nd; s++) total += 2 * rows * dims[s];
    float *ref[6], *got[6];
    for (int k = 0; k < 6; k++) {
        ref[k] = test_nan_buffer(total), got[k] = test_nan_buffer(total);
        memset(ref[k], 0, total * sizeof(float)), memset(got[k], 0, total * sizeof(float));
    }
    const attn_simd saved = attn_simd_level();
    const int saved_threads = attn_threads();
    assert_int_equal(attn_simd_set(ATTN_SIMD_SCALAR), ATTN_OK);
    attn_set_threads(1);
    layernorm_run_all(dims, nd, rows, ref);
    /* (the C kernels against the double reference: test_op_harness) */
    for (int q = 0; q < 2 * ((int)attn_simd_best() + 1); q++) {
        if (attn_simd_set((attn_simd)(q / 2)) != ATTN_OK) continue;
        attn_set_threads(1 + q % 2);
        layernorm_run_all(dims, nd, rows, got);
        for (int k = 0; k < 6; k++) assert_memory_equal(got[k], ref[k], total * sizeof(float));
    }
    attn_simd_set(saved);
    attn_set_threads(saved_threads);
    for (int k = 0; k < 6; k++) free(ref[k]), free(got[k]);
}

/* The residual add fused with the layer norm after it: the bits of the add
 * and attn_layernorm_forward in turn at every level and thread count (also
 * with the sum written over its first input, as the blocks do not but may),
 * and within float rounding of the double reference on the sum. */
static void test_add_layernorm(void **state)
{
    (void)state;
    static const size_t dims[] = {7, 128, 200};
    const size_t rows = 257;
    unsigned seed = 4242;
    const attn_simd saved = attn_simd_level();
    const int saved_threads = attn_threads();
    for (size_t s = 0; s < sizeof dims / sizeof *dims; s++) {
        const size_t dim = dims[s], n = rows * dim;
        float *x1 = malloc(n * sizeof *x1), *x2 = malloc(n * sizeof *x2), *w = malloc(dim * sizeof *w);
        float *b = malloc(dim * sizeof *b), *sum = malloc(n * sizeof *sum), *y = malloc(n * sizeof *y);
        float *s2 = test_nan_buffer(n), *y2 = test_nan_buffer(n), *yr = malloc(n * sizeof *yr);
        float m[257], r[257], m2[257], r2[257];
        assert_true(x1 && x2 && w && b && sum && y && yr);
        for (size_t i = 0; i < n; i++) x1[i] = 2.0f * frand(&seed), x2[i] = frand(&seed) + 0.25f;
        for (size_t j = 0; j < dim; j++) w[j] = 1.0f + frand(&seed), b[j] = frand(&seed);
        for (int q = 0; q < 2 * ((int)attn_simd_best() + 1); q++) {
            if (attn_simd_set((attn_simd)(q / 2)) != ATTN_OK) continue;
            attn_set_threads(1 + q % 2);
            for (int bias = 0; bias < 2; bias++) {
                const float *bb = bias ? b : NULL;
                for (size_t i = 0; i < n; i++) sum[i] = x1[i] + x2[i];
                assert_int_equal(attn_layernorm_forward(y, m, r, sum, w, bb, rows, dim, 1e-5f, NULL), ATTN_OK);
                assert_int_equal(attn_add_layernorm_forward(s2, y2, m2, r2, x1, x2, w, bb, rows, dim,
                                                            1e-5f, NULL), ATTN_OK);
                assert_memory_equal(s2, sum, n * sizeof *sum);
                assert_memory_equal(y2, y, n * sizeof *y);
                assert_memory_equal(m2, m, rows * sizeof *m);
                assert_memory_equal(r2, r, rows * sizeof *r);
                memcpy(s2, x1, n * sizeof *s2); /* the sum over its first input */
                assert_int_equal(attn_add_layernorm_forward(s2, y2, NULL, NULL, s2, x2, w, bb, rows,
                                                            dim, 1e-5f, NULL), ATTN_OK);
                assert_memory_equal(s2, sum, n * sizeof *sum);
                assert_memory_equal(y2, y, n * sizeof *y);
                assert_int_equal(attn_layernorm_ref(yr, sum, w, bb, rows, dim, 1e-5f), ATTN_OK);
                assert_close_f32(y2, yr, n, 1e-5, 1e-5, "add_layernorm vs reference");
            }
        }
        assert_int_equal(attn_add_layernorm_forward(s2, y2, NULL, NULL, x1, NULL, w, b, rows, dim,
                                                    1e-5f, NULL), ATTN_E_INVALID);
        free(x1), free(x2), free(w), free(b), free(sum), free(y), free(s2), free(y2), free(yr);
    }
    attn_simd_set(saved);
    attn_set_threads(saved_threads);
}

/* The linear layer's bias add and bias gradient run on the threads for large
 * outputs: each element is the serial loop's (one add; one column summed in
 * row order), so the bits are a hand loop's on 1 and 2 threads, for widths
 * that are and are not multiples of the 16-column slabs. */
static void test_linear_bias_threads(void **state)
{
    (void)state;
    unsigned seed = 777;
    static const size_t shapes[][3] = {{3, 4, 5}, {300, 64, 129}, {257, 32, 512}};
    const int saved_threads = attn_threads();
    for (int th = 1; th <= 2; th++) {
        attn_set_threads(th);
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            const size_t r = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
            float *x = malloc(r * in * sizeof *x), *w = malloc(out * in * sizeof *w);
            float *bias = malloc(out * sizeof *bias), *y = malloc(r * out * sizeof *y);
            float *y0 = malloc(r * out * sizeof *y0), *gb = calloc(out, sizeof *gb);
            float *gb0 = calloc(out, sizeof *gb0), *gw = calloc(out * in, sizeof *gw);
            assert_true(x && w && bias && y && y0 && gb && gb0 && gw);
            for (size_t i = 0; i < r * in; i++) x[i] = frand(&seed);
            for (size_t i = 0; i < out * in; i++) w[i] = frand(&seed);
            for (size_t j = 0; j < out; j++) bias[j] = frand(&seed), gb[j] = gb0[j] = frand(&seed);
            assert_int_equal(attn_linear_forward(y0, x, w, NULL, r, in, out), ATTN_OK);
            for (size_t i = 0; i < r; i++)
                for (size_t j = 0; j < out; j++) y0[i * out + j] += bias[j];
            assert_int_equal(attn_linear_forward(y, x, w, bias, r, in, out), ATTN_OK);
            assert_memory_equal(y, y0, r * out * sizeof *y);
            for (size_t i = 0; i < r; i++) /* y0 as d_y: gb0 by the serial loop */
                for (size_t j = 0; j < out; j++) gb0[j] += y0[i * out + j];
            assert_int_equal(attn_linear_backward(NULL, gw, gb, y0, x, w, r, in, out), ATTN_OK);
            assert_memory_equal(gb, gb0, out * sizeof *gb);
            free(x), free(w), free(bias), free(y), free(y0), free(gb), free(gb0), free(gw);
        }
    }
    attn_set_threads(saved_threads);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_set_same_bits),
                                       cmocka_unit_test(test_adamw_levels),
                                       cmocka_unit_test(test_layernorm_levels),
                                       cmocka_unit_test(test_add_layernorm),
                                       cmocka_unit_test(test_linear_bias_threads)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
