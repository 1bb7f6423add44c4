/* test_decode_ops.c - the kernels of a generated token's step against their
 * reference twins: the attention op's one-query path (a KV-cache step) and
 * the threaded matrix-vector product (the projections and the tied head). */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/rng.h"

static float *randn(size_t n, uint64_t seed)
{
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    attn_rng r;
    attn_rng_seed(&r, seed);
    attn_rng_fill_normal(&r, x, n, 0.0f, 1.0f);
    return x;
}

/* Hand-computed: q = [1, 0], keys [1, 0] and [0, 1], values [1, 2] and
 * [3, 4], scale 1: weights softmax([1, 0]) = [e, 1] / (e + 1)
 * = [0.73105858, 0.26894142], output [1.53788284, 2.53788284]. With
 * temperature 2 (scores halved): [0.62245933, 0.37754067] and
 * [1.75508134, 2.75508134]. */
static void test_one_query_hand(void **state)
{
    (void)state;
    const float q[] = {1, 0}, k[] = {1, 0, 0, 1}, v[] = {1, 2, 3, 4};
    attn_sdpa_params p = attn_sdpa_defaults();
    p.scale_mode = ATTN_SCALE_CUSTOM, p.scale = 1.0f;
    p.causal = ATTN_CAUSAL_BOTTOM_RIGHT; /* a lone last query sees every key */
    float out[2];
    assert_int_equal(attn_sdpa_forward(out, NULL, q, k, v, 1, 2, 2, 2, &p, NULL), ATTN_OK);
    const float want[] = {1.53788284f, 2.53788284f};
    assert_close_f32(out, want, 2, 1e-6, 1e-6, "one query");
    p.temperature = 2.0f;
    assert_int_equal(attn_sdpa_forward(out, NULL, q, k, v, 1, 2, 2, 2, &p, NULL), ATTN_OK);
    const float want_t[] = {1.75508134f, 2.75508134f};
    assert_close_f32(out, want_t, 2, 1e-6, 1e-6, "one query, temperature 2");
    /* Top-left alignment lets the lone query see key 0 only: the output is v[0]. */
    p.temperature = 1.0f, p.causal = ATTN_CAUSAL_TOP_LEFT;
    assert_int_equal(attn_sdpa_forward(out, NULL, q, k, v, 1, 2, 2, 2, &p, NULL), ATTN_OK);
    assert_close_f32(out, v, 2, 1e-6, 1e-6, "one query, top-left");
}

/* The one-query path (flash_tmpl.h's one_query) at every SIMD level against
 * the reference and the fused kernel on odd sizes: key counts and widths
 * past and short of the vectors (1, 8, 16 floats) and of the 8 vectors the
 * output is summed in at a time. Its sums run in another order than the
 * reference's and its exp is the softmax's polynomial, hence a tolerance. */
static void test_one_query_twins(void **state)
{
    (void)state;
    const size_t ss[] = {1, 3, 17, 64, 301, 1024}, ds[] = {1, 5, 16, 24, 64, 130};
    const attn_simd level = attn_simd_level();
    for (int lv = ATTN_SIMD_SCALAR; lv <= (int)attn_simd_best(); lv++)
        for (size_t a = 0; a < sizeof ss / sizeof *ss; a++)
            for (size_t b = 0; b < sizeof ds / sizeof *ds; b++) {
                const size_t S = ss[a], d = ds[b];
                float *q = randn(d, 1 + a), *k = randn(S * d, 2 + b), *v = randn(S * d, 3 + a + b);
                float out[130], ref[130], fused[130];
                attn_sdpa_params p = attn_sdpa_defaults();
                p.causal = b % 2 ? ATTN_CAUSAL_BOTTOM_RIGHT : ATTN_CAUSAL_NONE;
                p.temperature = a % 2 ? 0.7f : 1.0f;
                attn_simd_set((attn_simd)lv);
                assert_int_equal(attn_sdpa_forward(out, NULL, q, k, v, 1, S, d, d, &p, NULL),
                                 ATTN_OK);
                attn_simd_set(level);
                assert_int_equal(attn_sdpa_ref(ref, NULL, q, k, v, 1, S, d, d, &p, NULL), ATTN_OK);
                assert_int_equal(attn_sdpa_flash_forward(fused, NULL, q, k, v, 1, S, d, d, &p),
                                 ATTN_OK);
                char what[96];
                snprintf(what, sizeof what, "one query [%s] S %zu d %zu vs reference",
                         attn_simd_name((attn_simd)lv), S, d);
                assert_close_f32(out, ref, d, 1e-5, 1e-4, what);
                assert_close_f32(out, fused, d, 1e-5, 1e-4, "one query vs fused kernel");
                free(q), free(k), free(v);
            }
}

/* c = a · bᵀ for one and three rows of a, big enough for the threads: close
 * to the reference, and bit for bit the serial result (each column computed
 * alone, below the threads' threshold), with 1 and 2 threads. */
static void test_matvec_threads(void **state)
{
    (void)state;
    const size_t K = 771, N = 1029; /* odd: tails in both directions */
    float *b = randn(N * K, 5), *a = randn(3 * K, 6);
    float *c = malloc(3 * N * sizeof(float)), *ref = malloc(3 * N * sizeof(float));
    float *one = malloc(3 * N * sizeof(float));
    assert_non_null(c), assert_non_null(ref), assert_non_null(one);
    const int threads = attn_threads();
    for (size_t m = 1; m <= 3; m += 2) {
        assert_int_equal(attn_matmul_nt_ref(ref, a, b, m, K, N), ATTN_OK);
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < N; j++) /* one output at a time: serial */
                assert_int_equal(attn_matmul_nt_forward(one + i * N + j, a + i * K, b + j * K, 1,
                                                        K, 1, NULL),
                                 ATTN_OK);
        for (int t = 1; t <= 2; t++) {
            attn_set_threads(t);
            memset(c, 0, 3 * N * sizeof(float));
            assert_int_equal(attn_matmul_nt_forward(c, a, b, m, K, N, NULL), ATTN_OK);
            assert_close_f32(c, ref, m * N, 1e-4, 1e-4, "matrix-vector vs reference");
            assert_memory_equal(c, one, m * N * sizeof(float));
        }
    }
    attn_set_threads(threads);
    free(a), free(b), free(c), free(ref), free(one);
}

/* Attention with its scratch from the caller's arena: the same bits as with
 * its own allocations (fused and traced reference paths), the arena handed
 * back as it was; an arena without room makes the op allocate instead. */
static void test_scratch_arena(void **state)
{
    (void)state;
    const size_t L = 37, S = 53, d = 16;
    float *q = randn(L * d, 7), *k = randn(S * d, 8), *v = randn(S * d, 9);
    float own[37 * 16], arena_out[37 * 16];
    attn_arena *big = NULL, *tiny = NULL;
    assert_int_equal(attn_arena_create(&big, 1 << 20), ATTN_OK);
    assert_int_equal(attn_arena_create(&tiny, 256), ATTN_OK);
    attn_tensor keep;
    size_t one[1] = {8};
    assert_int_equal(attn_arena_tensor(big, &keep, 1, one), ATTN_OK); /* a caller's buffer */
    const size_t used = attn_arena_used(big);
    for (int ref = 0; ref < 2; ref++)
        for (int c = 0; c < 2; c++)
            for (int where = 0; where < 3; where++) { /* own, big arena, tiny arena */
                attn_sdpa_params p = attn_sdpa_defaults();
                p.causal = c ? ATTN_CAUSAL_BOTTOM_RIGHT : ATTN_CAUSAL_NONE;
                p.scratch = where == 1 ? big : where == 2 ? tiny : NULL;
                attn_trace *tr = NULL;
                assert_int_equal(attn_trace_create(&tr), ATTN_OK);
                attn_op_ctx traced = {tr, "h"};
                float *o = where ? arena_out : own;
                assert_int_equal(attn_sdpa_forward(o, NULL, q, k, v, L, S, d, d, &p,
                                                   ref ? &traced : NULL),
                                 ATTN_OK);
                attn_trace_free(tr);
                if (where) assert_memory_equal(own, arena_out, sizeof own);
                assert_int_equal(attn_arena_used(big), used);
                assert_int_equal(attn_arena_used(tiny), 0);
            }
    attn_arena_free(big), attn_arena_free(tiny);
    free(q), free(k), free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_query_hand),
        cmocka_unit_test(test_one_query_twins),
        cmocka_unit_test(test_matvec_threads),
        cmocka_unit_test(test_scratch_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
