/* test_gemm_bf16.c - ATTN_GEMM_BF16 and the products' precision switch.
 *
 * At every SIMD level this CPU has (the AVX-512 BF16 kernel where it runs,
 * else the built-in GEMM on rounded copies): each output within fp32
 * summation error of the exact sum of the bf16-rounded inputs' products, for
 * every transposition, odd shapes and accumulation; far from that bound
 * with the unrounded inputs (the rounding happened); the same bits on one
 * thread and two. attn_gemm_set_precision routes ATTN_GEMM_AUTO, and so a
 * model's layers, through it while set, and back after. A linear layer in
 * bf16 precision (whose bias and bias gradient the GEMM's epilogues fold in
 * where the AVX-512 BF16 kernel runs) gives the bits of the GEMM followed by
 * separate bias passes. */
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "../src/ops/flash_bf16.h"

static float bf16_value(float x)
{
    uint32_t u = (uint32_t)attn_bf16_round(x) << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Largest |c - exact| / (Σ|a||b| + tiny) over c, exact from the inputs as
 * given (rounded = 0) or rounded to bf16 (rounded = 1), c0 the accumulated-into start. */
static double worst(const float *c, const float *c0, const float *a, const float *b, size_t m,
                    size_t k, size_t n, int ta, int tb, int rounded)
{
    double w = 0.0;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = c0 ? (double)c0[i * n + j] : 0.0, mag = c0 ? fabs(s) : 0.0;
            for (size_t p = 0; p < k; p++) {
                /* op(a) (m, k) stored (k, m) when ta; op(b) (k, n) stored (n, k) when tb */
                double x = ta ? a[p * m + i] : a[i * k + p], y = tb ? b[j * k + p] : b[p * n + j];
                if (rounded) x = bf16_value((float)x), y = bf16_value((float)y);
                s += x * y, mag += fabs(x * y);
            }
            const double e = fabs((double)c[i * n + j] - s) / (mag + 1e-30);
            if (e > w) w = e;
        }
    return w;
}

static void fill(float *x, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 2.0f;
    }
}

/* a (m, k) and b (k, n) filled from two seeds, c1 and c2 (m, n) to fill */
typedef struct operands {
    float *a, *b, *c1, *c2;
} operands;

static operands operands_make(size_t m, size_t k, size_t n, unsigned seed_a, unsigned seed_b)
{
    operands o = {malloc(m * k * sizeof(float)), malloc(k * n * sizeof(float)),
                  malloc(m * n * sizeof(float)), malloc(m * n * sizeof(float))};
    assert_non_null(o.a), assert_non_null(o.b), assert_non_null(o.c1), assert_non_null(o.c2);
    fill(o.a, m * k, seed_a), fill(o.b, k * n, seed_b);
    return o;
}

static void operands_free(operands *o) { free(o->a), free(o->b), free(o->c1), free(o->c2); }

/* {37, 200, 150}: on the threads (4 row blocks, over 2^20 multiply-adds) with
 * m not a multiple of 16: a transposed a's pair rows (m words each) are
 * stored under a mask, never into the next one, which may be another
 * thread's (the race seldom shows: the second thread starts late). */
static const size_t shapes[][3] = {{1, 1, 1},     {7, 5, 3},     {13, 33, 17}, {64, 128, 96},
                                   {50, 77, 130}, {200, 64, 70}, {6, 300, 64}, {37, 200, 150}};

static void check_level(void)
{
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int acc = 0; acc < 2; acc++) {
                    const size_t m = shapes[s][0], k = shapes[s][1], n = shapes[s][2];
                    operands o = operands_make(m, k, n, 1u + (unsigned)s, 7u + (unsigned)s);
                    const float *a = o.a, *b = o.b;
                    float *c = o.c1, *c0 = o.c2; /* c0: what c accumulates into */
                    fill(c0, m * n, 99u);
                    memcpy(c, c0, m * n * sizeof *c);
                    assert_int_equal(attn_gemm(c, a, b, m, k, n, ta, tb, acc, ATTN_GEMM_BF16), ATTN_OK);
                    /* fp32 sums of k exact products: well inside 1e-5 of their magnitude */
                    const double e = worst(c, acc ? c0 : NULL, a, b, m, k, n, ta, tb, 1);
                    if (e > 1e-5)
                        fail_msg("m %zu k %zu n %zu ta %d tb %d acc %d: %.3g", m, k, n, ta, tb, acc, e);
                    if (k >= 33) /* against the unrounded inputs: bf16's 2^-9 shows */
                        assert_true(worst(c, acc ? c0 : NULL, a, b, m, k, n, ta, tb, 0) > 1e-4);
                    operands_free(&o);
                }
}

static void test_levels(void **state)
{
    (void)state;
    const attn_simd best = attn_simd_best();
    for (int lv = ATTN_SIMD_SCALAR; lv <= (int)best; lv++) {
        assert_int_equal(attn_simd_set((attn_simd)lv), ATTN_OK);
        check_level();
    }
    assert_int_equal(attn_simd_set(best), ATTN_OK);
}

/* Rows are computed in blocks fixed by the shape: threads change no bit. */
static void test_threads_same_bits(void **state)
{
    (void)state;
    const size_t m = 300, k = 130, n = 200;
    operands o = operands_make(m, k, n, 3, 5);
    const float *a = o.a, *b = o.b;
    float *c1 = o.c1, *c2 = o.c2;
    const int threads = attn_threads();
    attn_set_threads(1);
    assert_int_equal(attn_gemm(c1, a, b, m, k, n, 0, 1, 0, ATTN_GEMM_BF16), ATTN_OK);
    attn_set_threads(2);
    assert_int_equal(attn_gemm(c2, a, b, m, k, n, 0, 1, 0, ATTN_GEMM_BF16), ATTN_OK);
    attn_set_threads(threads);
    assert_memory_equal(c1, c2, m * n * sizeof *c1);
    operands_free(&o);
}

/* The switch: AUTO is BF16 while set, fp32 after; a model's loss moves by
 * bf16's rounding only. */
static void test_precision_switch(void **state)
{
    (void)state;
    const size_t m = 96, k = 80, n = 72;
    operands o = operands_make(m, k, n, 11, 13);
    const float *a = o.a, *b = o.b;
    float *c1 = o.c1, *c2 = o.c2;
    assert_int_equal(attn_gemm_precision(), ATTN_PRECISION_FP32);
    attn_gemm_set_precision(ATTN_PRECISION_BF16);
    assert_int_equal(attn_gemm_precision(), ATTN_PRECISION_BF16);
    assert_int_equal(attn_gemm(c1, a, b, m, k, n, 0, 0, 0, ATTN_GEMM_AUTO), ATTN_OK);
    assert_int_equal(attn_gemm(c2, a, b, m, k, n, 0, 0, 0, ATTN_GEMM_BF16), ATTN_OK);
    assert_memory_equal(c1, c2, m * n * sizeof *c1);
    attn_gemm_set_precision(ATTN_PRECISION_FP32);
    assert_int_equal(attn_gemm(c1, a, b, m, k, n, 0, 0, 0, ATTN_GEMM_AUTO), ATTN_OK);
    assert_int_equal(attn_gemm(c2, a, b, m, k, n, 0, 0, 0, attn_gemm_auto()), ATTN_OK);
    assert_memory_equal(c1, c2, m * n * sizeof *c1);

    /* a GPT whose products are GEMM-sized (8 x 32 rows, width 64) */
    const attn_gpt_config cfg = {50, 32, 2, 2, 64, 1};
    attn_gpt *g = NULL;
    assert_int_equal(attn_gpt_create(&g, &cfg, 8), ATTN_OK);
    assert_int_equal(attn_gpt_init(g, 5), ATTN_OK);
    uint32_t ids[8 * 32], tg[8 * 32];
    for (size_t i = 0; i < 8 * 32; i++) ids[i] = (uint32_t)(i * 7 % 50), tg[i] = (uint32_t)(i * 3 % 50);
    double l32 = 0.0, l16 = 0.0;
    assert_int_equal(attn_gpt_forward(g, ids, tg, 8, 32, &l32, NULL), ATTN_OK);
    attn_gemm_set_precision(ATTN_PRECISION_BF16);
    assert_int_equal(attn_gpt_forward(g, ids, tg, 8, 32, &l16, NULL), ATTN_OK);
    attn_gemm_set_precision(ATTN_PRECISION_FP32);
    assert_true(l16 != l32);
    assert_true(fabs(l16 - l32) < 1e-2 * fabs(l32));
    attn_gpt_free(g);
    operands_free(&o);
}

/* attn_linear_forward / _backward in bf16 precision against the GEMM and
 * plain loops for the bias: the same bits, on one thread and two, for odd
 * shapes (an odd number of rows is an odd k for the weight gradient). */
static void test_linear_bias_epilogues(void **state)
{
    (void)state;
    const size_t dims[][3] = {{37, 200, 150}, {300, 128, 384}, {64, 130, 17}, {1136, 128, 512}};
    const int threads = attn_threads();
    const attn_precision was = attn_gemm_set_precision(ATTN_PRECISION_BF16);
    for (size_t si = 0; si < sizeof dims / sizeof dims[0]; si++) {
        const size_t rows = dims[si][0], in = dims[si][1], out = dims[si][2];
        float *x = malloc(rows * in * sizeof *x), *w = malloc(out * in * sizeof *w);
        float *bias = malloc(out * sizeof *bias), *dy = malloc(rows * out * sizeof *dy);
        float *y1 = malloc(rows * out * sizeof *y1), *y2 = malloc(rows * out * sizeof *y2);
        float *dx1 = malloc(rows * in * sizeof *dx1), *dx2 = malloc(rows * in * sizeof *dx2);
        float *dw1 = malloc(out * in * sizeof *dw1), *dw2 = malloc(out * in * sizeof *dw2);
        float *db1 = malloc(out * sizeof *db1), *db2 = malloc(out * sizeof *db2);
        assert_true(x && w && bias && dy && y1 && y2 && dx1 && dx2 && dw1 && dw2 && db1 && db2);
        fill(x, rows * in, 3), fill(w, out * in, 5), fill(bias, out, 7), fill(dy, rows * out, 9);
        /* the expected bits: the products (through the bf16 GEMM when large
         * enough), then the bias added / summed in row order */
        assert_int_equal(attn_matmul_nt_forward(y1, x, w, rows, in, out, NULL), ATTN_OK);
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < out; j++) y1[i * out + j] += bias[j];
        fill(dx1, rows * in, 11), fill(dw1, out * in, 13), fill(db1, out, 15);
        assert_int_equal(attn_matmul_nt_backward(dx1, dw1, dy, x, w, rows, in, out), ATTN_OK);
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < out; j++) db1[j] += dy[i * out + j];
        for (int t = 1; t <= 2; t++) {
            attn_set_threads(t);
            assert_int_equal(attn_linear_forward(y2, x, w, bias, rows, in, out), ATTN_OK);
            assert_memory_equal(y1, y2, rows * out * sizeof *y1);
            fill(dx2, rows * in, 11), fill(dw2, out * in, 13), fill(db2, out, 15);
            assert_int_equal(attn_linear_backward(dx2, dw2, db2, dy, x, w, rows, in, out), ATTN_OK);
            assert_memory_equal(dx1, dx2, rows * in * sizeof *dx1);
            assert_memory_equal(dw1, dw2, out * in * sizeof *dw1);
            assert_memory_equal(db1, db2, out * sizeof *db1);
        }
        attn_set_threads(threads);
        free(x), free(w), free(bias), free(dy), free(y1), free(y2);
        free(dx1), free(dx2), free(dw1), free(dw2), free(db1), free(db2);
    }
    attn_gemm_set_precision(was);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_threads_same_bits),
        cmocka_unit_test(test_precision_switch),
        cmocka_unit_test(test_linear_bias_epilogues),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
