/* test_fused_ops.c - the training step's write-instead-of-add ops give the
 * bits of the ones they replace (their values, threads and SIMD levels are
 * the op harness's: test_op_harness.c). */
#include "test_support.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_set_same_bits)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
