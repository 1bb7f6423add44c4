/* test_packed.c - packed sequences (rows of different-length sequences back
 * to back, no padding) against the padded batch with a key padding mask:
 * the fused attention (the same bits as each sequence alone), the MHA layer
 * forward and backward, dropout's flags, and the encoder's untraced (packed)
 * forward and backward against its traced (padded) one; and the bad
 * arguments each refuses. Then a batch in two parts on two encoders (the
 * classifier trainer's steps) against the whole batch on one. */
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "../src/nn/encoder_int.h"

static attn_rng rng;
static float frand(void) { return (float)(2.0 * attn_rng_uniform(&rng) - 1.0); }
static float *filled(size_t n)
{
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    attn_rng_fill_uniform(&rng, x, n, -1.0f, 1.0f);
    return x;
}

/* Largest |a - b| over n, relative to max(1, |b|). */
static double max_rel(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - (double)b[i]) / fmax(1.0, fabs((double)b[i]));
        m = d > m ? d : m;
    }
    return m;
}

#define NSEQ 4
static const size_t lens[NSEQ] = {5, 17, 1, 33};
enum { TMAX = 33, H = 2, DK = 32, E = H * DK };

/* Every sequence of a packed call: the bits of the call on that sequence alone. */
static void test_flash_packed(void **state)
{
    (void)state;
    attn_rng_seed(&rng, 7);
    size_t off[NSEQ + 1] = {0};
    for (size_t b = 0; b < NSEQ; b++) off[b + 1] = off[b] + lens[b];
    const size_t R = off[NSEQ], n = R * E;
    float *q = filled(n), *k = filled(n), *v = filled(n), *dout = filled(n);
    float *out = calloc(n, sizeof(float)), *lse = calloc(NSEQ * H * TMAX, sizeof(float));
    float *dq = calloc(n, sizeof(float)), *dk = calloc(n, sizeof(float)), *dv = calloc(n, sizeof(float));
    assert_non_null(out), assert_non_null(lse), assert_non_null(dq), assert_non_null(dk), assert_non_null(dv);
    attn_flash_desc d = attn_flash_desc_make(NSEQ, H, TMAX, TMAX, DK, DK);
    d.q_rs = d.k_rs = d.v_rs = d.o_rs = E;
    d.q_hs = d.k_hs = d.v_hs = d.o_hs = DK;
    d.seq_off = off;
    assert_int_equal(attn_flash_forward(out, lse, q, k, v, &d), ATTN_OK);
    assert_int_equal(attn_flash_backward(dq, dk, dv, dout, q, k, v, out, lse, &d), ATTN_OK);
    for (size_t b = 0; b < NSEQ; b++) {
        const size_t r0 = off[b], m = lens[b] * E;
        attn_flash_desc one = attn_flash_desc_make(1, H, lens[b], lens[b], DK, DK);
        one.q_rs = one.k_rs = one.v_rs = one.o_rs = E;
        one.q_hs = one.k_hs = one.v_hs = one.o_hs = DK;
        float *o1 = calloc(m, sizeof(float)), *l1 = calloc(H * lens[b], sizeof(float));
        float *g[3] = {calloc(m, sizeof(float)), calloc(m, sizeof(float)), calloc(m, sizeof(float))};
        assert_non_null(o1), assert_non_null(l1), assert_non_null(g[0]), assert_non_null(g[1]), assert_non_null(g[2]);
        assert_int_equal(attn_flash_forward(o1, l1, q + r0 * E, k + r0 * E, v + r0 * E, &one), ATTN_OK);
        assert_int_equal(attn_flash_backward(g[0], g[1], g[2], dout + r0 * E, q + r0 * E, k + r0 * E,
                                             v + r0 * E, o1, l1, &one), ATTN_OK);
        assert_memory_equal(o1, out + r0 * E, m * sizeof(float));
        for (size_t h = 0; h < H; h++)
            assert_memory_equal(l1 + h * lens[b], lse + (b * H + h) * TMAX, lens[b] * sizeof(float));
        assert_memory_equal(g[0], dq + r0 * E, m * sizeof(float));
        assert_memory_equal(g[1], dk + r0 * E, m * sizeof(float));
        assert_memory_equal(g[2], dv + r0 * E, m * sizeof(float));
        free(o1), free(l1), free(g[0]), free(g[1]), free(g[2]);
    }
    /* refused: causal, a key mask, an empty or too long sequence, bf16 inputs */
    attn_flash_desc bad = d;
    bad.causal = ATTN_CAUSAL_TOP_LEFT;
    assert_int_equal(attn_flash_forward(out, lse, q, k, v, &bad), ATTN_E_INVALID);
    bad = d, bad.key_mask = q, bad.key_mask_bs = TMAX;
    assert_int_equal(attn_flash_forward(out, lse, q, k, v, &bad), ATTN_E_INVALID);
    size_t empty[NSEQ + 1] = {0, 5, 5, 6, 39};
    bad = d, bad.seq_off = empty;
    assert_int_equal(attn_flash_forward(out, lse, q, k, v, &bad), ATTN_E_INVALID);
    assert_non_null(strstr(attn_last_error(), "packed sequence 1"));
    size_t longer[NSEQ + 1] = {0, 5, 40, 41, 42};
    bad = d, bad.seq_off = longer;
    assert_int_equal(attn_flash_backward(dq, dk, dv, dout, q, k, v, out, lse, &bad), ATTN_E_INVALID);
    uint16_t h16[4] = {0};
    assert_int_equal(attn_flash_forward_bf16(out, lse, h16, h16, h16, &d), ATTN_E_INVALID);
    free(q), free(k), free(v), free(dout), free(out), free(lse), free(dq), free(dk), free(dv);
}

/* The MHA layer on packed rows against the padded batch with its key
 * padding mask: outputs, input and parameter gradients on the real rows. */
static void test_mha_packed(void **state)
{
    (void)state;
    attn_rng_seed(&rng, 11);
    attn_mha_config cfg = attn_mha_default_config(E, H);
    attn_mha *m = NULL;
    assert_int_equal(attn_mha_create(&m, &cfg), ATTN_OK);
    assert_int_equal(attn_mha_init(m, 5), ATTN_OK);
    size_t np, ng;
    float *params = attn_mha_params(m, &np);
    for (size_t i = 0; i < np; i++) params[i] += 0.1f * frand(); /* biases nonzero */
    size_t off[NSEQ + 1] = {0};
    for (size_t b = 0; b < NSEQ; b++) off[b + 1] = off[b] + lens[b];
    const size_t R = off[NSEQ], NP = NSEQ * TMAX;
    float *xp = calloc(NP * E, sizeof(float)), *dop = calloc(NP * E, sizeof(float));
    float *kpm = calloc(NP, sizeof(float));
    float *x = filled(R * E), *dout = filled(R * E);
    assert_non_null(xp), assert_non_null(dop), assert_non_null(kpm);
    for (size_t b = 0; b < NSEQ; b++) {
        memcpy(xp + b * TMAX * E, x + off[b] * E, lens[b] * E * sizeof(float));
        memcpy(dop + b * TMAX * E, dout + off[b] * E, lens[b] * E * sizeof(float));
        for (size_t t = lens[b]; t < TMAX; t++) kpm[b * TMAX + t] = 1.0f;
    }
    attn_mha_cache *cache = NULL;
    assert_int_equal(attn_mha_cache_create(&cache), ATTN_OK);
    /* padded */
    attn_mha_inputs in;
    memset(&in, 0, sizeof in);
    in.batch = NSEQ, in.tgt_len = in.src_len = TMAX;
    in.query = in.key = in.value = xp;
    in.key_padding_mask = kpm, in.key_padding_kind = ATTN_MASK_BOOL;
    float *outp = calloc(NP * E, sizeof(float)), *dxp = calloc(NP * E, sizeof(float));
    assert_non_null(outp), assert_non_null(dxp);
    attn_mha_zero_grad(m);
    assert_int_equal(attn_mha_forward(m, outp, NULL, 0, &in, cache, NULL), ATTN_OK);
    assert_int_equal(attn_mha_backward(m, dxp, dxp, dxp, dop, &in, cache), ATTN_OK);
    float *g_pad = malloc(np * sizeof(float));
    assert_non_null(g_pad);
    const float *g = attn_mha_grads(m, &ng);
    assert_int_equal(ng, np);
    memcpy(g_pad, g, ng * sizeof(float));
    /* packed */
    in.query = in.key = in.value = x;
    in.key_padding_mask = NULL, in.seq_offsets = off;
    float *out = calloc(R * E, sizeof(float)), *dx = calloc(R * E, sizeof(float));
    assert_non_null(out), assert_non_null(dx);
    attn_mha_zero_grad(m);
    assert_int_equal(attn_mha_forward(m, out, NULL, 0, &in, cache, NULL), ATTN_OK);
    assert_int_equal(attn_mha_backward(m, dx, dx, dx, dout, &in, cache), ATTN_OK);
    for (size_t b = 0; b < NSEQ; b++) {
        assert_true(max_rel(out + off[b] * E, outp + b * TMAX * E, lens[b] * E) < 1e-6);
        assert_true(max_rel(dx + off[b] * E, dxp + b * TMAX * E, lens[b] * E) < 1e-5);
    }
    assert_true(max_rel(attn_mha_grads(m, &ng), g_pad, np) < 1e-5);
    float big = 0.0f;
    for (size_t i = 0; i < R * E; i++) big = fmaxf(big, fabsf(dx[i]));
    assert_true(big > 1e-3f); /* a gradient to compare */
    /* refused: a mask beside the offsets, weights, query != key, a bad offset */
    in.key_padding_mask = kpm;
    assert_int_equal(attn_mha_forward(m, out, NULL, 0, &in, cache, NULL), ATTN_E_INVALID);
    in.key_padding_mask = NULL;
    float *w = calloc(NSEQ * TMAX * TMAX, sizeof(float));
    assert_non_null(w);
    assert_int_equal(attn_mha_forward(m, out, w, 1, &in, cache, NULL), ATTN_E_INVALID);
    in.key = xp;
    assert_int_equal(attn_mha_forward(m, out, NULL, 0, &in, cache, NULL), ATTN_E_INVALID);
    in.key = x;
    size_t bad[NSEQ + 1] = {0, 5, 4, 5, 38};
    in.seq_offsets = bad;
    assert_int_equal(attn_mha_forward(m, out, NULL, 0, &in, cache, NULL), ATTN_E_INVALID);
    assert_non_null(strstr(attn_last_error(), "packed sequence 1"));
    free(w), free(out), free(dx), free(outp), free(dxp), free(g_pad), free(xp), free(dop), free(kpm);
    free(x), free(dout);
    attn_mha_cache_free(cache);
    attn_mha_free(m);
}

/* Dropout's packed flags are the padded tensor's on the real rows. */
static void test_dropout_packed(void **state)
{
    (void)state;
    attn_rng_seed(&rng, 3);
    enum { C = 24 };
    size_t off[NSEQ + 1] = {0};
    for (size_t b = 0; b < NSEQ; b++) off[b + 1] = off[b] + lens[b];
    const size_t R = off[NSEQ], NP = NSEQ * TMAX;
    float *xp = filled(NP * C), *x = malloc(R * C * sizeof(float));
    float *yp = malloc(NP * C * sizeof(float)), *y = malloc(R * C * sizeof(float));
    uint8_t *mp = malloc(NP * C), *mk = malloc(R * C);
    assert_non_null(x), assert_non_null(yp), assert_non_null(y), assert_non_null(mp), assert_non_null(mk);
    for (size_t b = 0; b < NSEQ; b++) memcpy(x + off[b] * C, xp + b * TMAX * C, lens[b] * C * sizeof(float));
    const uint64_t key = attn_dropout_key_at(attn_dropout_key(1, 2, 3), 1000);
    assert_int_equal(attn_dropout_forward_mask(yp, mp, xp, NP * C, 0.3f, key), ATTN_OK);
    assert_int_equal(attn_dropout_forward_mask_packed(y, mk, x, off, NSEQ, TMAX, C, 0.3f, key), ATTN_OK);
    size_t dropped = 0;
    for (size_t b = 0; b < NSEQ; b++) {
        assert_memory_equal(mk + off[b] * C, mp + b * TMAX * C, lens[b] * C);
        assert_memory_equal(y + off[b] * C, yp + b * TMAX * C, lens[b] * C * sizeof(float));
    }
    for (size_t i = 0; i < R * C; i++) dropped += !mk[i];
    assert_true(dropped > R * C / 5 && dropped < R * C * 2 / 5);
    size_t bad[NSEQ + 1] = {0, 5, 50, 51, 52};
    assert_int_equal(attn_dropout_forward_mask_packed(y, mk, x, bad, NSEQ, TMAX, C, 0.3f, key), ATTN_E_INVALID);
    free(xp), free(x), free(yp), free(y), free(mp), free(mk);
}

/* A batch in two parts on two encoders (the trainer's step_parts): the
 * second's weights copied from the first, its gradients added into the
 * first's: the loss and gradients of the whole batch on one, to rounding,
 * and the embedding rows of both parts counted as touched. */
static void test_encoder_parts(void **state)
{
    (void)state;
    enum { B = 5, T = 10, V = 50, K = 4, C = 32 };
    const size_t L[B] = {10, 2, 6, 1, 8};
    attn_encoder_config c = {V, 16, 2, 2, C, K, 1, ATTN_POOL_MEAN};
    attn_encoder *e = NULL, *e1 = NULL;
    assert_int_equal(attn_encoder_create(&e, &c, B), ATTN_OK);
    assert_int_equal(attn_encoder_create(&e1, &c, B), ATTN_OK);
    assert_int_equal(attn_encoder_init(e, 4), ATTN_OK);
    assert_int_equal(attn_encoder_init(e1, 99), ATTN_OK); /* other weights until copied */
    uint32_t ids[B * T], y[B] = {3, 0, 1, 2, 1};
    attn_rng_seed(&rng, 21);
    for (size_t i = 0; i < B * T; i++) ids[i] = (uint32_t)((frand() + 1.0f) * 0.5f * (V - 4)) + 3;
    const size_t np = attn_encoder_num_params(e), nt = attn_encoder_param_count(e);
    float *whole = malloc(np * sizeof(float));
    assert_non_null(whole);
    double loss = 0.0, l0 = 0.0, l1 = 0.0;
    const uint64_t key = attn_dropout_key(2, 7, 0);
    /* the whole batch */
    attn_encoder_zero_grad(e);
    assert_int_equal(attn_encoder_set_dropout(e, 0.1f, key), ATTN_OK);
    assert_int_equal(attn_encoder_forward(e, ids, L, y, B, T, &loss, NULL), ATTN_OK);
    assert_int_equal(attn_encoder_backward(e, 1.0f), ATTN_OK);
    size_t n_rows = 0, n2 = 0;
    uint32_t rows[B * T];
    const uint32_t *r1 = attn_encoder_grad_rows(e, &n_rows);
    assert_true(n_rows > 0 && n_rows <= B * T);
    memcpy(rows, r1, n_rows * sizeof *rows);
    const attn_param_ref *p = attn_encoder_params(e);
    size_t at = 0;
    for (size_t i = 0; i < nt; i++, at += p[i - 1].numel) memcpy(whole + at, p[i].grad, p[i].numel * sizeof(float));
    /* examples [0, 2) on e, [2, 5) on e1 */
    attn_encoder_zero_grad(e), attn_encoder_zero_grad(e1);
    nn_encoder_copy_weights(e1, e, ids + 2 * T, 3 * T);
    assert_int_equal(attn_encoder_set_dropout(e1, 0.1f, key), ATTN_OK);
    assert_int_equal(attn_encoder_set_dropout_row(e1, 2), ATTN_OK);
    assert_int_equal(attn_encoder_forward(e, ids, L, y, 2, T, &l0, NULL), ATTN_OK);
    assert_int_equal(attn_encoder_backward(e, 2.0f / B), ATTN_OK);
    assert_int_equal(attn_encoder_forward(e1, ids + 2 * T, L + 2, y + 2, 3, T, &l1, NULL), ATTN_OK);
    assert_int_equal(attn_encoder_backward(e1, 3.0f / B), ATTN_OK);
    nn_encoder_add_grads(e, e1);
    assert_true(fabs(l0 * 2 / B + l1 * 3 / B - loss) < 1e-6 * loss);
    const uint32_t *r2 = attn_encoder_grad_rows(e, &n2);
    assert_int_equal(n2, n_rows);
    assert_memory_equal(r2, rows, n_rows * sizeof *rows);
    at = 0;
    double big = 0.0;
    for (size_t i = 0; i < nt; i++) {
        assert_true(max_rel(p[i].grad, whole + at, p[i].numel) < 1e-5);
        for (size_t j = 0; j < p[i].numel; j++) big = fmax(big, fabs(p[i].grad[j]));
        at += p[i].numel;
    }
    assert_true(big > 1e-3); /* gradients to compare */
    free(whole);
    attn_encoder_free(e), attn_encoder_free(e1);
}

/* The encoder's untraced forward packs its rows, a traced one pads them:
 * the same loss, logits and (after a backward each) gradients, dropout on. */
static void test_encoder_packed(void **state)
{
    (void)state;
    enum { B = 5, T = 12, V = 40, K = 3 };
    const size_t L[B] = {12, 3, 7, 1, 9};
    attn_encoder_config c = {V, 16, 2, 2, 32, K, 1, ATTN_POOL_MEAN};
    attn_encoder *e = NULL;
    assert_int_equal(attn_encoder_create(&e, &c, B), ATTN_OK);
    assert_int_equal(attn_encoder_init(e, 9), ATTN_OK);
    uint32_t ids[B * T], y[B] = {0, 2, 1, 1, 0};
    attn_rng_seed(&rng, 5);
    for (size_t i = 0; i < B * T; i++) ids[i] = (uint32_t)((frand() + 1.0f) * 0.5f * (V - 4)) + 3;
    size_t np = attn_encoder_num_params(e);
    float *g[2], logits[2][B * K];
    double loss[2];
    g[0] = malloc(np * sizeof(float)), g[1] = malloc(np * sizeof(float));
    assert_non_null(g[0]), assert_non_null(g[1]);
    for (int traced = 0; traced < 2; traced++) {
        attn_trace *tr = NULL;
        assert_int_equal(attn_trace_create(&tr), ATTN_OK);
        attn_op_ctx ctx = {tr, NULL};
        attn_encoder_zero_grad(e);
        assert_int_equal(attn_encoder_set_dropout(e, 0.2f, attn_dropout_key(1, 1, 0)), ATTN_OK);
        assert_int_equal(attn_encoder_set_dropout_row(e, 3), ATTN_OK);
        assert_int_equal(attn_encoder_forward(e, ids, L, y, B, T, &loss[traced], traced ? &ctx : NULL), ATTN_OK);
        memcpy(logits[traced], attn_encoder_logits(e), sizeof logits[traced]);
        assert_int_equal(attn_encoder_backward(e, 1.0f), ATTN_OK);
        const attn_param_ref *p = attn_encoder_params(e);
        size_t at = 0;
        for (size_t i = 0; i < attn_encoder_param_count(e); i++) {
            memcpy(g[traced] + at, p[i].grad, p[i].numel * sizeof(float));
            at += p[i].numel;
        }
        assert_int_equal(at, np);
        attn_trace_free(tr);
    }
    assert_true(fabs(loss[0] - loss[1]) < 1e-6 * fabs(loss[1]));
    assert_true(max_rel(logits[0], logits[1], B * K) < 1e-5);
    assert_true(max_rel(g[0], g[1], np) < 1e-4);
    double norm = 0.0;
    for (size_t i = 0; i < np; i++) norm += (double)g[0][i] * g[0][i];
    assert_true(norm > 1e-6); /* gradients to compare */
    free(g[0]), free(g[1]);
    attn_encoder_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_flash_packed), cmocka_unit_test(test_mha_packed),
                                       cmocka_unit_test(test_dropout_packed),
                                       cmocka_unit_test(test_encoder_packed), cmocka_unit_test(test_encoder_parts)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
