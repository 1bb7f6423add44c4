/* test_fused_ops.c - the training step's write-instead-of-add ops and its
 * fused residual add + layer norm give the bits of the ones they replace
 * (their values, threads and SIMD levels are the op harness's:
 * test_op_harness.c). */
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/ops.h"
#include "attn/ops_nn.h"

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

/* The residual add fused with the layer norm after it gives the bits of the
 * add followed by attn_layernorm_forward (its twin), and stays within float
 * rounding of the double reference; with and without a bias, rows below and
 * above the threads' threshold, dims off the 16 lanes, at every SIMD level, on
 * 1 and 2 threads; s may alias a. */
static void test_add_layernorm_same_bits(void **state)
{
    (void)state;
    unsigned seed = 777;
    static const size_t shapes[][2] = {{3, 5}, {7, 128}, {300, 130}, {768, 128}};
    const attn_simd saved = attn_simd_level();
    const int saved_threads = attn_threads();
    for (int q = 0; q < 2 * ((int)attn_simd_best() + 1); q++) {
        if (attn_simd_set((attn_simd)(q / 2)) != ATTN_OK) continue;
        attn_set_threads(1 + q % 2);
        for (size_t t = 0; t < 2 * sizeof shapes / sizeof *shapes; t++) {
            const size_t r = shapes[t / 2][0], c = shapes[t / 2][1], n = r * c;
            const int with_bias = (int)(t % 2);
            float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *s = malloc(n * sizeof *s);
            float *y = test_nan_buffer(n), *s2 = malloc(n * sizeof *s2), *y2 = test_nan_buffer(n);
            float *yr = malloc(n * sizeof *yr), *w = malloc(c * sizeof *w), *bias = malloc(c * sizeof *bias);
            float *m = malloc(r * sizeof *m), *rs = malloc(r * sizeof *rs);
            float *m2 = malloc(r * sizeof *m2), *rs2 = malloc(r * sizeof *rs2);
            assert_true(a && b && s && s2 && yr && w && bias && m && rs && m2 && rs2);
            for (size_t i = 0; i < n; i++) a[i] = 3.0f * frand(&seed) + 0.5f, b[i] = frand(&seed);
            for (size_t j = 0; j < c; j++) w[j] = 1.0f + 0.5f * frand(&seed), bias[j] = frand(&seed);
            const float *bp = with_bias ? bias : NULL;
            for (size_t i = 0; i < n; i++) s2[i] = a[i] + b[i];
            assert_int_equal(attn_layernorm_forward(y2, m2, rs2, s2, w, bp, r, c, 1e-5f, NULL), ATTN_OK);
            assert_int_equal(attn_add_layernorm_forward(s, y, m, rs, a, b, w, bp, r, c, 1e-5f), ATTN_OK);
            assert_memory_equal(s, s2, n * sizeof *s);
            assert_memory_equal(y, y2, n * sizeof *y);
            assert_memory_equal(m, m2, r * sizeof *m);
            assert_memory_equal(rs, rs2, r * sizeof *rs);
            assert_int_equal(attn_layernorm_ref(yr, s2, w, bp, r, c, 1e-5f), ATTN_OK);
            for (size_t i = 0; i < n; i++) assert_float_equal(y[i], yr[i], 2e-5f * (1.0f + fabsf(yr[i])));
            /* in place: s is a */
            assert_int_equal(attn_add_layernorm_forward(a, y, NULL, NULL, a, b, w, bp, r, c, 1e-5f), ATTN_OK);
            assert_memory_equal(a, s2, n * sizeof *a);
            assert_memory_equal(y, y2, n * sizeof *y);
            free(a), free(b), free(s), free(y), free(s2), free(y2), free(yr), free(w), free(bias);
            free(m), free(rs), free(m2), free(rs2);
        }
    }
    /* bad input is refused */
    float v = 1.0f;
    assert_int_equal(attn_add_layernorm_forward(NULL, &v, NULL, NULL, &v, &v, &v, NULL, 1, 1, 1e-5f), ATTN_E_INVALID);
    assert_int_equal(attn_add_layernorm_forward(&v, &v, &v, NULL, &v, &v, &v, NULL, 1, 1, 1e-5f), ATTN_E_INVALID);
    attn_simd_set(saved);
    attn_set_threads(saved_threads);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_set_same_bits),
                                       cmocka_unit_test(test_add_layernorm_same_bits)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
