/* test_ops.c - matmul, softmax and attention: hand-computed values and
 * properties that any correct attention must have. */
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

/* ---- hand-computed: 3 tokens, 2 dimensions --------------------------------
 * X = [[1,0],[0,1],[1,1]], Q = K = V = X, d = 2, scale 1/√2 = 0.70710678.
 * Scores = X·Xᵀ = [[1,0,1],[0,1,1],[1,1,2]].
 * Scaled = Scores/√2: row 0 = [r, 0, r], row 1 = [0, r, r], row 2 = [r, r, 2r]
 *   with r = 0.70710678.
 * e^r = 2.02811498, e^2r = 4.11325038.
 * Row 0: sum = 2·e^r + 1 = 5.05622996;
 *   weights = [2.02811498, 1, 2.02811498] / 5.05622996
 *           = [0.40111209, 0.19777581, 0.40111209].
 *   output = 0.40111209·[1,0] + 0.19777581·[0,1] + 0.40111209·[1,1]
 *          = [0.80222419, 0.59888791].
 * Row 1 mirrors row 0: weights [0.19777581, 0.40111209, 0.40111209],
 *   output [0.59888791, 0.80222419].
 * Row 2: sum = 2·e^r + e^2r = 8.16948034;
 *   weights = [0.24825508, 0.24825508, 0.50348984],
 *   output = 0.24825508·[1,0] + 0.24825508·[0,1] + 0.50348984·[1,1]
 *          = [0.75174492, 0.75174492]. */
static const float hand_x[] = {1, 0, 0, 1, 1, 1};
static const float hand_scores[] = {1, 0, 1, 0, 1, 1, 1, 1, 2};
static const float hand_weights[] = {0.40111209f, 0.19777581f, 0.40111209f,
                                     0.19777581f, 0.40111209f, 0.40111209f,
                                     0.24825508f, 0.24825508f, 0.50348984f};
static const float hand_out[] = {0.80222419f, 0.59888791f, 0.59888791f,
                                 0.80222419f, 0.75174492f, 0.75174492f};

static void test_hand_computed(void **state)
{
    (void)state;
    float out[6], w[9], scores[9];
    assert_int_equal(attn_matmul_nt_forward(scores, hand_x, hand_x, 3, 2, 3, NULL), ATTN_OK);
    assert_close_f32(scores, hand_scores, 9, 1e-6, 0, "scores");
    for (int ref = 0; ref < 2; ref++) {
        attn_status st = ref ? attn_sdpa_ref(out, w, hand_x, hand_x, hand_x, 3, 3, 2, 2, NULL, NULL)
                             : attn_sdpa_forward(out, w, hand_x, hand_x, hand_x, 3, 3, 2, 2, NULL, NULL);
        assert_int_equal(st, ATTN_OK);
        assert_close_f32(w, hand_weights, 9, 1e-6, 0, "weights");
        assert_close_f32(out, hand_out, 6, 1e-6, 0, "output");
    }
}

/* The trace holds every step under its name, with the same numbers. */
static void test_trace_records_steps(void **state)
{
    (void)state;
    attn_trace *t = NULL;
    float out[6];
    assert_int_equal(attn_trace_create(&t), ATTN_OK);
    attn_op_ctx ctx = {t, "head0"};
    assert_int_equal(attn_sdpa_forward(out, NULL, hand_x, hand_x, hand_x, 3, 3, 2, 2, NULL, &ctx),
                     ATTN_OK);
    const attn_tensor *s = attn_trace_get(t, "head0.scores");
    const attn_tensor *sc = attn_trace_get(t, "head0.scaled");
    const attn_tensor *a = attn_trace_get(t, "head0.attention");
    const attn_tensor *o = attn_trace_get(t, "head0.output");
    assert_non_null(s);
    assert_non_null(sc);
    assert_non_null(a);
    assert_non_null(o);
    assert_null(attn_trace_get(t, "head0.mask")); /* no mask was applied */
    assert_int_equal(a->ndim, 2);
    assert_int_equal(a->shape[0], 3);
    assert_int_equal(a->shape[1], 3);
    assert_close_f32(s->data, hand_scores, 9, 1e-6, 0, "trace scores");
    for (int i = 0; i < 9; i++)
        assert_float_equal(sc->data[i], hand_scores[i] * 0.70710678f, 1e-6);
    assert_close_f32(a->data, hand_weights, 9, 1e-6, 0, "trace attention");
    assert_close_f32(o->data, hand_out, 6, 1e-6, 0, "trace output");
    assert_float_equal(attn_trace_get(t, "head0.scale")->data[0], 0.70710678f, 1e-7);
    attn_trace_free(t);
}

/* Deterministic pseudo-random floats in [-1, 1). */
static void fill(float *x, size_t n, unsigned seed, float amplitude)
{
    unsigned s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = amplitude * ((float)(s >> 8) / (float)(1u << 24) * 2.0f - 1.0f);
    }
}

static void test_rows_sum_to_one(void **state)
{
    (void)state;
    enum { L = 7, S = 11, D = 5 };
    float q[L * D], k[S * D], v[S * D], out[L * D], w[L * S];
    fill(q, L * D, 1, 3), fill(k, S * D, 2, 3), fill(v, S * D, 3, 1);
    assert_int_equal(attn_sdpa_forward(out, w, q, k, v, L, S, D, D, NULL, NULL), ATTN_OK);
    for (int i = 0; i < L; i++) {
        double sum = 0;
        for (int j = 0; j < S; j++) {
            assert_true(w[i * S + j] >= 0.0f);
            sum += w[i * S + j];
        }
        assert_float_equal(sum, 1.0, 1e-6);
    }
}

/* softmax(x + c) = softmax(x): adding a constant to a row changes nothing. */
static void test_softmax_shift_invariance(void **state)
{
    (void)state;
    enum { R = 4, C = 9 };
    float x[R * C], xs[R * C], y[R * C], ys[R * C];
    fill(x, R * C, 5, 4);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++) xs[i * C + j] = x[i * C + j] + 100.0f * (float)(i + 1);
    for (int ref = 0; ref < 2; ref++) {
        assert_int_equal(ref ? attn_softmax_ref(y, x, R, C) : attn_softmax_forward(y, x, R, C, NULL),
                         ATTN_OK);
        assert_int_equal(ref ? attn_softmax_ref(ys, xs, R, C)
                             : attn_softmax_forward(ys, xs, R, C, NULL),
                         ATTN_OK);
        /* x + 100i is rounded to float: allow for that rounding of the input. */
        assert_close_f32(ys, y, R * C, 2e-5, 1e-4, "shifted softmax");
    }
}

/* Permuting the tokens permutes the outputs (self-attention is
 * permutation-equivariant without positions). */
static void test_permutation_equivariance(void **state)
{
    (void)state;
    enum { T = 6, D = 4 };
    static const int perm[T] = {3, 0, 5, 1, 4, 2};
    float x[T * D], xp[T * D], out[T * D], outp[T * D];
    fill(x, T * D, 7, 2);
    for (int i = 0; i < T; i++) memcpy(xp + i * D, x + perm[i] * D, D * sizeof(float));
    assert_int_equal(attn_sdpa_forward(out, NULL, x, x, x, T, T, D, D, NULL, NULL), ATTN_OK);
    assert_int_equal(attn_sdpa_forward(outp, NULL, xp, xp, xp, T, T, D, D, NULL, NULL), ATTN_OK);
    for (int i = 0; i < T; i++)
        assert_close_f32(outp + i * D, out + perm[i] * D, D, 1e-6, 1e-6, "permuted output");
}

/* Inputs of magnitude 1e4 give scores of 1e8: the max-subtraction keeps
 * everything finite, and the weights still sum to 1. */
static void test_large_magnitudes_finite(void **state)
{
    (void)state;
    enum { T = 5, D = 3 };
    float x[T * D], out[T * D], w[T * T];
    fill(x, T * D, 11, 1e4f);
    for (int ref = 0; ref < 2; ref++) {
        attn_status st = ref ? attn_sdpa_ref(out, w, x, x, x, T, T, D, D, NULL, NULL)
                             : attn_sdpa_forward(out, w, x, x, x, T, T, D, D, NULL, NULL);
        assert_int_equal(st, ATTN_OK);
        for (int i = 0; i < T * D; i++) assert_true(isfinite(out[i]));
        for (int i = 0; i < T; i++) {
            double sum = 0;
            for (int j = 0; j < T; j++) sum += w[i * T + j];
            assert_float_equal(sum, 1.0, 1e-5);
        }
    }
}

/* A row that may attend to nothing: weights 0 and output 0, never NaN. */
static void test_fully_masked_row_is_zero(void **state)
{
    (void)state;
    enum { L = 3, S = 4, D = 2 };
    float q[L * D], k[S * D], v[S * D], out[L * D], w[L * S];
    fill(q, L * D, 13, 1), fill(k, S * D, 14, 1), fill(v, S * D, 15, 1);
    uint8_t mask[L * S] = {1, 1, 0, 0, /* row 1 fully masked: */ 0, 0, 0, 0, 1, 1, 1, 1};
    attn_sdpa_params p = attn_sdpa_defaults();
    p.bool_mask = mask;
    for (int ref = 0; ref < 2; ref++) {
        assert_int_equal(ref ? attn_sdpa_ref(out, w, q, k, v, L, S, D, D, &p, NULL)
                             : attn_sdpa_forward(out, w, q, k, v, L, S, D, D, &p, NULL),
                         ATTN_OK);
        for (int j = 0; j < S; j++) assert_true(w[1 * S + j] == 0.0f);
        for (int j = 0; j < D; j++) assert_true(out[1 * D + j] == 0.0f);
        assert_true(w[0 * S + 2] == 0.0f && w[0 * S + 3] == 0.0f);
        assert_float_equal(w[0] + w[1], 1.0, 1e-6);
    }
    /* The same through an additive -inf mask, and softmax directly. */
    float row[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, y[4];
    assert_int_equal(attn_softmax_forward(y, row, 1, 4, NULL), ATTN_OK);
    for (int j = 0; j < 4; j++) assert_true(y[j] == 0.0f);
    assert_int_equal(attn_softmax_ref(y, row, 1, 4), ATTN_OK);
    for (int j = 0; j < 4; j++) assert_true(y[j] == 0.0f);
}

/* Causal alignment when L != S: top-left (PyTorch's is_causal) lets query i
 * see keys 0..i; bottom-right lets it see keys 0..i+S-L. */
static void test_causal_alignments(void **state)
{
    (void)state;
    enum { L = 3, S = 5, D = 2 };
    float q[L * D], k[S * D], v[S * D], out[L * D], w[L * S];
    fill(q, L * D, 21, 1), fill(k, S * D, 22, 1), fill(v, S * D, 23, 1);
    attn_sdpa_params p = attn_sdpa_defaults();
    p.causal = ATTN_CAUSAL_TOP_LEFT;
    assert_int_equal(attn_sdpa_forward(out, w, q, k, v, L, S, D, D, &p, NULL), ATTN_OK);
    for (int i = 0; i < L; i++)
        for (int j = 0; j < S; j++) assert_true((w[i * S + j] > 0.0f) == (j <= i));
    p.causal = ATTN_CAUSAL_BOTTOM_RIGHT;
    assert_int_equal(attn_sdpa_forward(out, w, q, k, v, L, S, D, D, &p, NULL), ATTN_OK);
    for (int i = 0; i < L; i++)
        for (int j = 0; j < S; j++) assert_true((w[i * S + j] > 0.0f) == (j <= i + S - L));
    /* L > S bottom-right: the first L - S rows see no key and are zero. */
    float w2[S * L], out2[S * D];
    assert_int_equal(attn_sdpa_forward(out2, w2, k, q, q, S, L, D, D, &p, NULL), ATTN_OK);
    for (int j = 0; j < L; j++) assert_true(w2[0 * L + j] == 0.0f && w2[1 * L + j] == 0.0f);
    assert_true(w2[2 * L + 0] == 1.0f);
}

/* Scale modes and temperature change the scaled scores as documented. */
static void test_scale_and_temperature(void **state)
{
    (void)state;
    attn_sdpa_params p = attn_sdpa_defaults();
    assert_float_equal(attn_sdpa_scale(&p, 4), 0.5f, 0);
    p.scale_mode = ATTN_SCALE_NONE;
    assert_float_equal(attn_sdpa_scale(&p, 4), 1.0f, 0);
    p.scale_mode = ATTN_SCALE_CUSTOM;
    p.scale = 0.25f;
    assert_float_equal(attn_sdpa_scale(&p, 4), 0.25f, 0);

    attn_trace *t = NULL;
    float out[6];
    assert_int_equal(attn_trace_create(&t), ATTN_OK);
    attn_op_ctx ctx = {t, NULL};
    p.scale_mode = ATTN_SCALE_NONE;
    p.temperature = 2.0f;
    assert_int_equal(attn_sdpa_forward(out, NULL, hand_x, hand_x, hand_x, 3, 3, 2, 2, &p, &ctx),
                     ATTN_OK);
    const attn_tensor *sc = attn_trace_get(t, "scaled");
    for (int i = 0; i < 9; i++) assert_float_equal(sc->data[i], hand_scores[i] / 2.0f, 0);
    attn_trace_free(t);
}

/* Boolean and additive masks combine; the mask entry records what was applied. */
static void test_masks_combine(void **state)
{
    (void)state;
    uint8_t allow[9] = {1, 1, 1, 1, 1, 0, 1, 1, 1};
    float add[9] = {0, -1, 0, 0, 0, 0, 0.5f, 0, 0};
    attn_sdpa_params p = attn_sdpa_defaults();
    p.bool_mask = allow;
    p.add_mask = add;
    attn_trace *t = NULL;
    float out[6], w[9];
    assert_int_equal(attn_trace_create(&t), ATTN_OK);
    attn_op_ctx ctx = {t, NULL};
    assert_int_equal(attn_sdpa_forward(out, w, hand_x, hand_x, hand_x, 3, 3, 2, 2, &p, &ctx),
                     ATTN_OK);
    const attn_tensor *m = attn_trace_get(t, "mask");
    assert_non_null(m);
    assert_true(m->data[5] == -INFINITY);
    assert_float_equal(m->data[1], -1.0f, 0);
    assert_float_equal(m->data[6], 0.5f, 0);
    assert_true(w[5] == 0.0f);
    /* Row 0 by hand: scaled [r, 0, r] + [0, -1, 0] → e^r, e^-1, e^r. */
    double r = 1 / sqrt(2.0), s = 2 * exp(r) + exp(-1.0);
    assert_float_equal(w[0], exp(r) / s, 1e-6);
    assert_float_equal(w[1], exp(-1.0) / s, 1e-6);
    attn_trace_free(t);
}

/* The default matmul kernels agree with the double-accumulating reference. */
static void test_matmul_matches_reference(void **state)
{
    (void)state;
    static const size_t shapes[][3] = {{1, 1, 1}, {3, 7, 5}, {17, 33, 9}, {64, 64, 64}, {5, 130, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        size_t m = shapes[s][0], k = shapes[s][1], n = shapes[s][2];
        float *a = malloc(m * k * sizeof(float)), *b = malloc(k * n * sizeof(float));
        float *c = malloc(m * n * sizeof(float)), *r = malloc(m * n * sizeof(float));
        assert_non_null(a), assert_non_null(b), assert_non_null(c), assert_non_null(r);
        fill(a, m * k, 31 + (unsigned)s, 1), fill(b, k * n, 41 + (unsigned)s, 1);
        assert_int_equal(attn_matmul_forward(c, a, b, m, k, n, NULL), ATTN_OK);
        assert_int_equal(attn_matmul_ref(r, a, b, m, k, n), ATTN_OK);
        assert_close_f32(c, r, m * n, 1e-5, 1e-5, "matmul");
        /* b read as (N, K) for the Bᵀ form */
        assert_int_equal(attn_matmul_nt_forward(c, a, b, m, k, n, NULL), ATTN_OK);
        assert_int_equal(attn_matmul_nt_ref(r, a, b, m, k, n), ATTN_OK);
        assert_close_f32(c, r, m * n, 1e-5, 1e-5, "matmul_nt");
        free(a), free(b), free(c), free(r);
    }
}

/* Bad arguments are errors with a message, never a crash. */
static void test_bad_arguments(void **state)
{
    (void)state;
    float out[6], w[9];
    attn_sdpa_params p = attn_sdpa_defaults();
    assert_int_equal(attn_sdpa_forward(out, w, hand_x, hand_x, hand_x, 0, 3, 2, 2, NULL, NULL),
                     ATTN_E_INVALID);
    assert_non_null(strstr(attn_last_error(), "L=0"));
    assert_int_equal(attn_sdpa_forward(NULL, w, hand_x, hand_x, hand_x, 3, 3, 2, 2, NULL, NULL),
                     ATTN_E_INVALID);
    p.temperature = 0;
    assert_int_equal(attn_sdpa_forward(out, w, hand_x, hand_x, hand_x, 3, 3, 2, 2, &p, NULL),
                     ATTN_E_INVALID);
    assert_non_null(strstr(attn_last_error(), "temperature"));
    p = attn_sdpa_defaults();
    p.scale_mode = ATTN_SCALE_CUSTOM;
    p.scale = NAN;
    assert_int_equal(attn_sdpa_forward(out, w, hand_x, hand_x, hand_x, 3, 3, 2, 2, &p, NULL),
                     ATTN_E_INVALID);
    p = attn_sdpa_defaults();
    p.causal = (attn_causal)7;
    assert_int_equal(attn_sdpa_forward(out, w, hand_x, hand_x, hand_x, 3, 3, 2, 2, &p, NULL),
                     ATTN_E_INVALID);
    assert_int_equal(attn_matmul_forward(out, hand_x, hand_x, 3, 0, 2, NULL), ATTN_E_INVALID);
    assert_int_equal(attn_softmax_forward(out, hand_x, 0, 2, NULL), ATTN_E_INVALID);
    /* Sizes whose product overflows are refused before any allocation. */
    assert_int_equal(attn_sdpa_forward(out, w, hand_x, hand_x, hand_x, (size_t)1 << 40,
                                       (size_t)1 << 40, 2, 2, NULL, NULL),
                     ATTN_E_NOMEM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_computed),
        cmocka_unit_test(test_trace_records_steps),
        cmocka_unit_test(test_rows_sum_to_one),
        cmocka_unit_test(test_softmax_shift_invariance),
        cmocka_unit_test(test_permutation_equivariance),
        cmocka_unit_test(test_large_magnitudes_finite),
        cmocka_unit_test(test_fully_masked_row_is_zero),
        cmocka_unit_test(test_causal_alignments),
        cmocka_unit_test(test_scale_and_temperature),
        cmocka_unit_test(test_masks_combine),
        cmocka_unit_test(test_matmul_matches_reference),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
