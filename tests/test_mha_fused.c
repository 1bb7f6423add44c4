/* test_mha_fused.c - the MHA layer's fused path (no weights, no trace) against
 * its reference path (weights requested), forward and backward, over masks,
 * causality, bias_kv / zero_attn positions and batches. */
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

typedef struct mcase {
    size_t E, H, N, L, S;
    int bias_kv, zero_attn, per_head;
    attn_causal causal;
    int attn_mask; /* 0 none, 1 bool, 2 additive */
    int key_pad;   /* 0 none, 1 bool, 2 additive */
} mcase;

static uint64_t seed;
static float frand(void)
{
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(seed >> 40) / (double)(1ULL << 24) * 2.0 - 1.0);
}

static float *filled(size_t n)
{
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = frand();
    return x;
}

static void run(const mcase *c)
{
    seed = 12345 + c->L * 7 + c->S;
    attn_mha_config cfg = attn_mha_default_config(c->E, c->H);
    cfg.add_bias_kv = c->bias_kv, cfg.add_zero_attn = c->zero_attn;
    attn_mha *m = NULL;
    assert_int_equal(attn_mha_create(&m, &cfg), ATTN_OK);
    assert_int_equal(attn_mha_init(m, 7), ATTN_OK);
    size_t np;
    float *params = attn_mha_params(m, &np);
    for (size_t i = 0; i < np; i++) params[i] += 0.05f * frand(); /* nonzero biases */
    const size_t N = c->N, L = c->L, S = c->S, E = c->E, H = c->H, S2 = attn_mha_kv_len(m, S);
    float *q = filled(N * L * E), *k = filled(N * S * E), *v = filled(N * S * E);
    float *dout = filled(N * L * E);
    size_t nm = (c->per_head ? N * H : 1) * L * S;
    float *am = NULL, *kp = NULL;
    if (c->attn_mask) {
        am = malloc(nm * sizeof(float));
        for (size_t i = 0; i < nm; i++) {
            float x = frand();
            am[i] = c->attn_mask == 1 ? (float)(x > 0.6f) : (x > 0.8f ? -INFINITY : x);
        }
    }
    if (c->key_pad) {
        kp = malloc(N * S * sizeof(float));
        for (size_t i = 0; i < N * S; i++) {
            float x = frand();
            kp[i] = c->key_pad == 1 ? (float)(x > 0.5f) : (x > 0.5f ? -INFINITY : 0.0f);
        }
        for (size_t n = 0; n < N; n++) kp[n * S] = 0.0f; /* one key always visible */
    }
    attn_mha_inputs in = {N, L, S, q, k, v, kp, c->key_pad == 1 ? ATTN_MASK_BOOL : ATTN_MASK_ADDITIVE,
                          am, c->per_head, c->attn_mask == 1 ? ATTN_MASK_BOOL : ATTN_MASK_ADDITIVE,
                          c->causal, NULL, NULL, NULL};
    float *out_ref = calloc(N * L * E, sizeof(float)), *out = calloc(N * L * E, sizeof(float));
    float *w = calloc(N * H * L * S2, sizeof(float));
    size_t ng;
    attn_mha_grads(m, &ng);
    float *g_ref = calloc(ng, sizeof(float));
    float *dq_ref = calloc(N * L * E, sizeof(float)), *dk_ref = calloc(N * S * E, sizeof(float));
    float *dv_ref = calloc(N * S * E, sizeof(float)), *dq = calloc(N * L * E, sizeof(float));
    float *dk = calloc(N * S * E, sizeof(float)), *dv = calloc(N * S * E, sizeof(float));
    attn_mha_cache *cache = NULL;
    assert_int_equal(attn_mha_cache_create(&cache), ATTN_OK);

    /* Reference path: weights requested. */
    attn_mha_zero_grad(m);
    assert_int_equal(attn_mha_forward(m, out_ref, w, 0, &in, cache, NULL), ATTN_OK);
    assert_int_equal(attn_mha_backward(m, dq_ref, dk_ref, dv_ref, dout, &in, cache), ATTN_OK);
    memcpy(g_ref, attn_mha_grads(m, NULL), ng * sizeof(float));
    /* Fused path. */
    attn_mha_zero_grad(m);
    assert_int_equal(attn_mha_forward(m, out, NULL, 0, &in, cache, NULL), ATTN_OK);
    assert_int_equal(attn_mha_backward(m, dq, dk, dv, dout, &in, cache), ATTN_OK);
    assert_close_f32(out, out_ref, N * L * E, 1e-5, 1e-4, "mha out");
    assert_close_f32(dq, dq_ref, N * L * E, 1e-4, 1e-3, "mha d_query");
    assert_close_f32(dk, dk_ref, N * S * E, 1e-4, 1e-3, "mha d_key");
    assert_close_f32(dv, dv_ref, N * S * E, 1e-4, 1e-3, "mha d_value");
    assert_close_f32(attn_mha_grads(m, NULL), g_ref, ng, 1e-4, 1e-3, "mha parameter grads");
    /* Without a cache, the same output. */
    memset(out, 0, N * L * E * sizeof(float));
    assert_int_equal(attn_mha_forward(m, out, NULL, 0, &in, NULL, NULL), ATTN_OK);
    assert_close_f32(out, out_ref, N * L * E, 1e-5, 1e-4, "mha out (no cache)");

    attn_mha_cache_free(cache);
    attn_mha_free(m);
    free(q), free(k), free(v), free(dout), free(am), free(kp), free(out_ref), free(out), free(w);
    free(g_ref), free(dq_ref), free(dk_ref), free(dv_ref), free(dq), free(dk), free(dv);
}

static void test_plain(void **state)
{
    (void)state;
    run(&(mcase){.E = 32, .H = 4, .N = 2, .L = 9, .S = 9});
    run(&(mcase){.E = 24, .H = 2, .N = 1, .L = 70, .S = 33});
}

static void test_masks(void **state)
{
    (void)state;
    run(&(mcase){.E = 32, .H = 4, .N = 2, .L = 17, .S = 23, .attn_mask = 1, .key_pad = 2});
    run(&(mcase){.E = 32, .H = 4, .N = 2, .L = 17, .S = 23, .attn_mask = 2, .key_pad = 1,
                 .per_head = 1});
    run(&(mcase){.E = 16, .H = 2, .N = 2, .L = 20, .S = 20, .causal = ATTN_CAUSAL_TOP_LEFT,
                 .key_pad = 1});
    run(&(mcase){.E = 16, .H = 2, .N = 1, .L = 10, .S = 30, .causal = ATTN_CAUSAL_BOTTOM_RIGHT,
                 .attn_mask = 2});
}

static void test_extra_positions(void **state)
{
    (void)state;
    run(&(mcase){.E = 16, .H = 2, .N = 2, .L = 11, .S = 13, .bias_kv = 1, .zero_attn = 1});
    run(&(mcase){.E = 16, .H = 2, .N = 2, .L = 11, .S = 13, .bias_kv = 1, .zero_attn = 1,
                 .causal = ATTN_CAUSAL_TOP_LEFT, .key_pad = 1, .attn_mask = 2, .per_head = 1});
}

/* One forward and backward of self-attention on x (N·L, E) into out and, when
 * `one`, the gradient dx summed into one buffer (else dq, dk, dv apart); k and
 * v are x itself (self_packed: the three projections in one product) or
 * copies of it (the three products). Parameter gradients into g. */
static void self_run(attn_mha *m, const float *x, const float *xk, const float *xv, const float *dout,
                     size_t N, size_t L, float *out, float *dq, float *dk, float *dv, int one,
                     float *g, size_t ng)
{
    attn_mha_inputs in = {N, L, L, x, xk, xv, NULL, ATTN_MASK_BOOL, NULL, 0, ATTN_MASK_BOOL,
                          ATTN_CAUSAL_NONE, NULL, NULL, NULL};
    attn_mha_cache *cache = NULL;
    assert_int_equal(attn_mha_cache_create(&cache), ATTN_OK);
    attn_mha_zero_grad(m);
    assert_int_equal(attn_mha_forward(m, out, NULL, 0, &in, cache, NULL), ATTN_OK);
    assert_int_equal(attn_mha_backward(m, dq, one ? dq : dk, one ? dq : dv, dout, &in, cache), ATTN_OK);
    memcpy(g, attn_mha_grads(m, NULL), ng * sizeof(float));
    attn_mha_cache_free(cache);
}

/* Self-attention (query, key and value one input) projects in one product:
 * the same bits as three (for one gradient buffer, self-attention's use, and
 * for three), in fp32 and bf16 products, through the GEMMs (E = 64) and the
 * small products' loops (E = 16). */
static void test_self_packed(void **state)
{
    (void)state;
    const size_t shapes[2][3] = {{64, 2, 40}, {16, 2, 9}}; /* E, N, L */
    for (int prec = 0; prec < 2; prec++)
        for (size_t s = 0; s < 2; s++) {
            const size_t E = shapes[s][0], N = shapes[s][1], L = shapes[s][2], n = N * L * E;
            attn_gemm_set_precision(prec ? ATTN_PRECISION_BF16 : ATTN_PRECISION_FP32);
            seed = 99 + s;
            attn_mha_config cfg = attn_mha_default_config(E, 4);
            attn_mha *m = NULL;
            assert_int_equal(attn_mha_create(&m, &cfg), ATTN_OK);
            assert_int_equal(attn_mha_init(m, 3), ATTN_OK);
            size_t np, ng;
            float *params = attn_mha_params(m, &np);
            for (size_t i = 0; i < np; i++) params[i] += 0.05f * frand(); /* nonzero biases */
            attn_mha_grads(m, &ng);
            float *x = filled(n), *dout = filled(n), *xk = malloc(n * sizeof(float)), *xv = malloc(n * sizeof(float));
            assert_non_null(xk), assert_non_null(xv);
            memcpy(xk, x, n * sizeof(float)), memcpy(xv, x, n * sizeof(float));
            float *o[2], *d[2][3], *g[2];
            for (int r = 0; r < 2; r++) {
                o[r] = malloc(n * sizeof(float)), g[r] = malloc(ng * sizeof(float));
                assert_non_null(o[r]), assert_non_null(g[r]);
                for (int t = 0; t < 3; t++) d[r][t] = calloc(n, sizeof(float)), assert_non_null(d[r][t]);
            }
            for (int one = 1; one >= 0; one--) {
                for (int r = 0; r < 2; r++)
                    for (int t = 0; t < 3; t++) memset(d[r][t], 0, n * sizeof(float));
                self_run(m, x, xk, xv, dout, N, L, o[0], d[0][0], d[0][1], d[0][2], one, g[0], ng);
                self_run(m, x, x, x, dout, N, L, o[1], d[1][0], d[1][1], d[1][2], one, g[1], ng);
                assert_memory_equal(o[0], o[1], n * sizeof(float));
                assert_memory_equal(g[0], g[1], ng * sizeof(float));
                for (int t = 0; t < (one ? 1 : 3); t++) assert_memory_equal(d[0][t], d[1][t], n * sizeof(float));
                /* and the gradient is not all zeros (the test could not fail) */
                float big = 0.0f;
                for (size_t i = 0; i < n; i++) big = fmaxf(big, fabsf(d[1][one ? 0 : 2][i]));
                assert_true(big > 1e-3f);
            }
            for (int r = 0; r < 2; r++) {
                free(o[r]), free(g[r]);
                for (int t = 0; t < 3; t++) free(d[r][t]);
            }
            free(x), free(dout), free(xk), free(xv);
            attn_mha_free(m);
        }
    attn_gemm_set_precision(ATTN_PRECISION_FP32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_plain), cmocka_unit_test(test_masks),
                                       cmocka_unit_test(test_extra_positions),
                                       cmocka_unit_test(test_self_packed)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
