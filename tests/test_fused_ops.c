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

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_set_same_bits),
                                       cmocka_unit_test(test_adamw_levels)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
