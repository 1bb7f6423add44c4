/* test_flash_bf16.c - fused attention with bf16 products (ATTN_FLASH_BF16).
 *
 * At every SIMD level this CPU has: where attn_flash_bf16_available() is 0
 * the bf16 descriptor must give the fp32 kernels' bits; where it is 1 the
 * results must lie within the bound that rounding to bf16 implies (derived
 * in docs/attention.md) and differ from fp32 (the bf16 kernels ran). The
 * bf16 GEMM and conversions are checked against scalar twins. */
#include "test_support.h"
#include "flash_rand.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "../src/ops/flash_bf16.h"
#include "../src/ops/flash_exp.h"
#include "../src/ops/flash_kern.h"

#define U_BF16 (1.0 / 256.0) /* unit roundoff of bf16: 2^-8 */

static float bf16_value(float x)
{
    uint32_t u = (uint32_t)attn_bf16_round(x) << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void test_bf16_round(void **state)
{
    (void)state;
    assert_int_equal(attn_bf16_round(1.0f), 0x3f80);
    assert_int_equal(attn_bf16_round(-2.0f), 0xc000);
    /* 1 + 2^-8 is a tie: to even (1); 1 + 3·2^-8 is a tie: to even (1 + 2^-6) */
    assert_int_equal(attn_bf16_round(1.0f + 1.0f / 256), 0x3f80);
    assert_int_equal(attn_bf16_round(1.0f + 3.0f / 256), 0x3f82);
    assert_int_equal(attn_bf16_round(1.0f + 1.5f / 256), 0x3f81);
    assert_int_equal(attn_bf16_round(INFINITY), 0x7f80);
    assert_true((attn_bf16_round(NAN) & 0x7f80) == 0x7f80 && (attn_bf16_round(NAN) & 0x7f));
    assert_int_equal(attn_bf16_round(3.4e38f), 0x7f80); /* past the last bf16 midpoint: inf */
    assert_int_equal(attn_bf16_round(3.39e38f), 0x7f7f);   /* the largest bf16 */
}

/* The vector conversions and GEMM against their scalar twins. */
static void test_bf16_kernels(void **state)
{
    (void)state;
    const fk_bf16 *B = attn_fk_bf16();
    if (!B) {
        assert_int_equal(attn_flash_bf16_available(), 0);
        skip();
    }
    enum { R = 7, N = 64, T = 10 }; /* T pairs: 20 products a result */
    float *src = alloc_fill(R * N, 3.0f);
    src[5] = 1.0f + 1.0f / 256, src[6] = 1.0f + 3.0f / 256; /* ties */
    uint32_t rows[R * N / 2], pairs[(R + 1) / 2 * N];
    B->cvt_rows(rows, N / 2, src, N, R, N);
    B->cvt_pairs(pairs, N, src, N, R, N);
    for (size_t r = 0; r < R; r++)
        for (size_t c = 0; c < N; c++) {
            uint32_t w = rows[r * N / 2 + c / 2];
            assert_int_equal((w >> (16 * (c & 1))) & 0xffff, attn_bf16_round(src[r * N + c]));
            uint32_t p = pairs[r / 2 * N + c];
            assert_int_equal((p >> (16 * (r & 1))) & 0xffff, attn_bf16_round(src[r * N + c]));
        }
    for (size_t c = 0; c < N; c++) assert_int_equal(pairs[R / 2 * N + c] >> 16, 0); /* odd row */

    /* C = A·B with A (R, 2T) rows, B (2T, N) paired along t; rowscale form. */
    float *a = alloc_fill(R * 2 * T, 2.0f), *bm = alloc_fill(2 * T * N, 2.0f);
    float *c = alloc_fill(R * N, 1.0f), *c0 = malloc(R * N * sizeof(float));
    float rs[R];
    assert_non_null(c0);
    memcpy(c0, c, R * N * sizeof(float));
    for (size_t r = 0; r < R; r++) rs[r] = 0.5f + (float)r;
    uint32_t aw[R * 32], bw[T * N];
    float apad[R * 64];
    memset(apad, 0, sizeof apad);
    for (size_t r = 0; r < R; r++) memcpy(apad + r * 64, a + r * 2 * T, 2 * T * sizeof(float));
    B->cvt_rows(aw, 32, apad, 64, R, 64);
    B->cvt_pairs(bw, N, bm, N, 2 * T, N);
    B->gemm(c, N, aw, 32, bw, N, R, N, T, rs, 1);
    for (size_t r = 0; r < R; r++)
        for (size_t j = 0; j < N; j++) {
            double ref = (double)rs[r] * c0[r * N + j], mag = fabs(ref);
            for (size_t t = 0; t < 2 * T; t++) {
                double pr = (double)bf16_value(a[r * 2 * T + t]) * bf16_value(bm[t * N + j]);
                ref += pr, mag += fabs(pr);
            }
            assert_true(fabs(c[r * N + j] - ref) <= 1e-6 * mag + 1e-7);
        }
    free(src), free(a), free(bm), free(c), free(c0);
}

typedef struct bcase {
    size_t heads, l, s, dk, dv;
    attn_causal causal;
    int masks;
} bcase;

/* The bound of docs/attention.md for the forward: per row i,
 *   δ_i = (2u + u²)·scale·max_j Σ_t |q_it k_jt|   (score error)
 *   |ΔO_ic| <= (e^{2δ_i} − 1 + 2u + u²)·max_j |v_jc|   (+ fp32 slack)
 * and the log-sum-exp moves by at most δ_i. */
static void check_forward(const bcase *c, const attn_flash_desc *d, const float *q, const float *k,
                          const float *v, const float *o32, const float *l32, const float *o16,
                          const float *l16, double *worst_ratio)
{
    const double u = U_BF16, g = 2 * u + u * u;
    for (size_t h = 0; h < c->heads; h++)
        for (size_t i = 0; i < c->l; i++) {
            double dmax = 0;
            for (size_t j = 0; j < c->s; j++) {
                double sum = 0;
                for (size_t t = 0; t < c->dk; t++)
                    sum += fabs((double)q[(h * c->l + i) * c->dk + t] * k[(h * c->s + j) * c->dk + t]);
                if (sum > dmax) dmax = sum;
            }
            const double delta = g * fabs((double)d->scale) * dmax;
            const size_t ri = h * c->l + i;
            if (isinf(l32[ri])) assert_true(isinf(l16[ri]) && o16[ri * c->dv] == 0.0f);
            else assert_true(fabs(l16[ri] - l32[ri]) <= delta + 1e-5 * (1 + fabs(l32[ri])));
            for (size_t col = 0; col < c->dv; col++) {
                double vmax = 0;
                for (size_t j = 0; j < c->s; j++) {
                    double x = fabs(v[(h * c->s + j) * c->dv + col]);
                    if (x > vmax) vmax = x;
                }
                const double bound = (expm1(2 * delta) + g) * vmax + 1e-5 + 1e-4 * fabs(o32[ri * c->dv + col]);
                const double err = fabs((double)o16[ri * c->dv + col] - o32[ri * c->dv + col]);
                if (err > bound)
                    fail_msg("head %zu row %zu col %zu: |bf16 - fp32| = %g > bound %g", h, i, col,
                             err, bound);
                if (err / bound > *worst_ratio) *worst_ratio = err / bound;
            }
        }
}

static void run_bf16_forward(const bcase *c)
{
    const size_t nq = c->heads * c->l, nk = c->heads * c->s;
    float *q = alloc_fill(nq * c->dk, 1.5f), *k = alloc_fill(nk * c->dk, 1.5f);
    float *v = alloc_fill(nk * c->dv, 1.0f);
    float *o32 = calloc(nq * c->dv, sizeof(float)), *o16 = calloc(nq * c->dv, sizeof(float));
    float *l32 = calloc(nq, sizeof(float)), *l16 = calloc(nq, sizeof(float));
    float *km = alloc_fill(c->s, 1.0f);
    assert_true(o32 && o16 && l32 && l16);
    for (size_t j = 0; j < c->s; j++) km[j] = j % 5 == 3 ? -INFINITY : km[j];
    attn_flash_desc d = attn_flash_desc_make(1, c->heads, c->l, c->s, c->dk, c->dv);
    d.causal = c->causal;
    if (c->masks) d.key_mask = km;
    const attn_simd saved = attn_simd_level(), levels[] = {ATTN_SIMD_SCALAR, ATTN_SIMD_AVX2,
                                                          ATTN_SIMD_AVX512};
    for (size_t li = 0; li < 3; li++) {
        if (attn_simd_set(levels[li]) != ATTN_OK) continue;
        d.dtype = ATTN_FLASH_F32;
        assert_int_equal(attn_flash_forward(o32, l32, q, k, v, &d), ATTN_OK);
        d.dtype = ATTN_FLASH_BF16;
        assert_int_equal(attn_flash_forward(o16, l16, q, k, v, &d), ATTN_OK);
        if (!attn_flash_bf16_available()) { /* the fp32 kernels */
            assert_memory_equal(o16, o32, nq * c->dv * sizeof(float));
            assert_memory_equal(l16, l32, nq * sizeof(float));
            continue;
        }
        double worst = 0;
        check_forward(c, &d, q, k, v, o32, l32, o16, l16, &worst);
        assert_true(worst > 0); /* the bf16 kernels ran: not the fp32 bits */
        assert_true(worst < 1.0);
    }
    assert_int_equal(attn_simd_set(saved), ATTN_OK);
    free(q), free(k), free(v), free(o32), free(o16), free(l32), free(l16), free(km);
}

static void test_bf16_forward(void **state)
{
    (void)state;
    static const bcase cases[] = {
        {2, 64, 64, 64, 64, ATTN_CAUSAL_NONE, 0},      {3, 100, 77, 64, 64, ATTN_CAUSAL_NONE, 0},
        {2, 130, 130, 64, 64, ATTN_CAUSAL_TOP_LEFT, 0}, {1, 50, 90, 33, 20, ATTN_CAUSAL_BOTTOM_RIGHT, 0},
        {2, 70, 150, 7, 48, ATTN_CAUSAL_NONE, 1},       {1, 1, 65, 1, 1, ATTN_CAUSAL_NONE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_bf16_forward(&cases[i]);
}

/* The backward's bound (docs/attention.md), from double-precision P, dP, dS
 * of head h: per element, the error each rounding allows, summed. */
typedef struct bwd_bound {
    double *dq, *dk, *dv; /* (L, dk), (S, dk), (S, dv) of one head */
} bwd_bound;

static int allowed(const bcase *c, const float *km, size_t i, size_t j)
{
    if (km && isinf(km[j])) return 0;
    long long off = c->causal == ATTN_CAUSAL_BOTTOM_RIGHT ? (long long)c->s - (long long)c->l : 0;
    return c->causal == ATTN_CAUSAL_NONE || (long long)j <= (long long)i + off;
}

static void backward_bound(const bcase *c, const attn_flash_desc *d, size_t h, const float *q,
                           const float *k, const float *v, const float *g, const float *o,
                           const float *lse, bwd_bound *b)
{
    const double u = U_BF16, gm = 2 * u + u * u, sc = d->scale;
    const size_t L = c->l, S = c->s, dk = c->dk, dv = c->dv;
    const float *qh = q + h * L * dk, *kh = k + h * S * dk, *vh = v + h * S * dv;
    const float *gh = g + h * L * dv, *oh = o + h * L * dv, *lh = lse + h * L;
    memset(b->dq, 0, L * dk * sizeof(double)), memset(b->dk, 0, S * dk * sizeof(double));
    memset(b->dv, 0, S * dv * sizeof(double));
    for (size_t i = 0; i < L; i++) {
        double dd = 0, dmax = 0;
        for (size_t t = 0; t < dv; t++) dd += (double)gh[i * dv + t] * oh[i * dv + t];
        for (size_t j = 0; j < S; j++) {
            double sum = 0;
            for (size_t t = 0; t < dk; t++) sum += fabs((double)qh[i * dk + t] * kh[j * dk + t]);
            if (sum > dmax) dmax = sum;
        }
        const double rho = expm1(gm * fabs(sc) * dmax);
        for (size_t j = 0; j < S; j++) {
            if (!allowed(c, d->key_mask, i, j) || isinf(lh[i])) continue;
            double s = 0, dp = 0, ep = 0;
            for (size_t t = 0; t < dk; t++) s += sc * qh[i * dk + t] * kh[j * dk + t];
            if (d->key_mask) s += d->key_mask[j];
            for (size_t t = 0; t < dv; t++) {
                dp += (double)gh[i * dv + t] * vh[j * dv + t];
                ep += fabs((double)gh[i * dv + t] * vh[j * dv + t]);
            }
            const double pij = exp(s - lh[i]), ds = fabs(pij * (dp - dd));
            const double es = pij * (rho * fabs(dp - dd) + (1 + rho) * gm * ep);
            const double eds = es * (1 + gm) + gm * ds, epv = pij * (rho * (1 + gm) + gm);
            for (size_t t = 0; t < dv; t++) b->dv[j * dv + t] += epv * fabs(gh[i * dv + t]);
            for (size_t t = 0; t < dk; t++) {
                b->dk[j * dk + t] += eds * fabs(sc * qh[i * dk + t]);
                b->dq[i * dk + t] += eds * fabs(sc * kh[j * dk + t]);
            }
        }
    }
}

static void check_grad(const char *what, const float *x16, const float *x32, const double *bound,
                       size_t n, double *worst)
{
    for (size_t e = 0; e < n; e++) {
        const double lim = bound[e] + 1e-4 + 1e-3 * fabs(x32[e]);
        const double err = fabs((double)x16[e] - x32[e]);
        if (err > lim) fail_msg("%s[%zu]: |bf16 - fp32| = %g > bound %g", what, e, err, lim);
        if (err / lim > *worst) *worst = err / lim;
    }
}

static void run_bf16_backward(const bcase *c)
{
    const size_t nq = c->heads * c->l, nk = c->heads * c->s;
    float *q = alloc_fill(nq * c->dk, 1.5f), *k = alloc_fill(nk * c->dk, 1.5f);
    float *v = alloc_fill(nk * c->dv, 1.0f), *g = alloc_fill(nq * c->dv, 1.0f);
    float *km = alloc_fill(c->s, 1.0f), *o = calloc(nq * c->dv, sizeof(float));
    float *lse = calloc(nq, sizeof(float));
    float *g32[3], *g16[3];
    const size_t sz[3] = {nq * c->dk, nk * c->dk, nk * c->dv};
    for (int t = 0; t < 3; t++) g32[t] = calloc(sz[t], sizeof(float)), g16[t] = calloc(sz[t], sizeof(float));
    bwd_bound b = {malloc(c->l * c->dk * sizeof(double)), malloc(c->s * c->dk * sizeof(double)),
                   malloc(c->s * c->dv * sizeof(double))};
    assert_true(o && lse && b.dq && b.dk && b.dv);
    for (size_t j = 0; j < c->s; j++) km[j] = j % 5 == 3 ? -INFINITY : km[j];
    attn_flash_desc d = attn_flash_desc_make(1, c->heads, c->l, c->s, c->dk, c->dv);
    d.causal = c->causal;
    if (c->masks) d.key_mask = km;
    assert_int_equal(attn_flash_forward(o, lse, q, k, v, &d), ATTN_OK);
    const attn_simd saved = attn_simd_level(), levels[] = {ATTN_SIMD_SCALAR, ATTN_SIMD_AVX2,
                                                          ATTN_SIMD_AVX512};
    for (size_t li = 0; li < 3; li++) {
        if (attn_simd_set(levels[li]) != ATTN_OK) continue;
        for (int t = 0; t < 3; t++) memset(g32[t], 0, sz[t] * sizeof(float)), memset(g16[t], 0, sz[t] * sizeof(float));
        d.dtype = ATTN_FLASH_F32;
        assert_int_equal(attn_flash_backward(g32[0], g32[1], g32[2], g, q, k, v, o, lse, &d), ATTN_OK);
        d.dtype = ATTN_FLASH_BF16;
        assert_int_equal(attn_flash_backward(g16[0], g16[1], g16[2], g, q, k, v, o, lse, &d), ATTN_OK);
        if (!attn_flash_bf16_available()) { /* the fp32 kernels */
            for (int t = 0; t < 3; t++) assert_memory_equal(g16[t], g32[t], sz[t] * sizeof(float));
            continue;
        }
        double worst = 0;
        for (size_t h = 0; h < c->heads; h++) {
            backward_bound(c, &d, h, q, k, v, g, o, lse, &b);
            check_grad("dq", g16[0] + h * c->l * c->dk, g32[0] + h * c->l * c->dk, b.dq, c->l * c->dk, &worst);
            check_grad("dk", g16[1] + h * c->s * c->dk, g32[1] + h * c->s * c->dk, b.dk, c->s * c->dk, &worst);
            check_grad("dv", g16[2] + h * c->s * c->dv, g32[2] + h * c->s * c->dv, b.dv, c->s * c->dv, &worst);
        }
        assert_true(worst > 0); /* the bf16 kernels ran */
    }
    assert_int_equal(attn_simd_set(saved), ATTN_OK);
    for (int t = 0; t < 3; t++) free(g32[t]), free(g16[t]);
    free(q), free(k), free(v), free(g), free(km), free(o), free(lse), free(b.dq), free(b.dk), free(b.dv);
}

static void test_bf16_backward(void **state)
{
    (void)state;
    static const bcase cases[] = {
        {4, 64, 64, 64, 64, ATTN_CAUSAL_NONE, 0},        {4, 100, 77, 64, 64, ATTN_CAUSAL_TOP_LEFT, 1},
        {5, 70, 130, 33, 20, ATTN_CAUSAL_BOTTOM_RIGHT, 0}, {4, 9, 65, 7, 48, ATTN_CAUSAL_NONE, 1},
        {2, 80, 80, 64, 64, ATTN_CAUSAL_NONE, 0}, {1, 150, 200, 40, 24, ATTN_CAUSAL_TOP_LEFT, 1},
        /* fewer than four heads: the split mode */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_bf16_backward(&cases[i]);
}

/* The bf16 backward's split mode (fewer than four heads: tasks are key
 * blocks, then query tiles) gives the bits of the per-head mode (one head
 * repeated four times) and the same bits on 1 and 2 threads. */
static void test_bf16_split_bits(void **state)
{
    (void)state;
    if (!attn_flash_bf16_available()) skip();
    const size_t L = 150, S = 130, DK = 40, DV = 24, H4 = 4;
    float *q = alloc_fill(H4 * L * DK, 1.5f), *k = alloc_fill(H4 * S * DK, 1.5f);
    float *v = alloc_fill(H4 * S * DV, 1.0f), *g = alloc_fill(H4 * L * DV, 1.0f);
    float *o = calloc(H4 * L * DV, sizeof(float)), *lse = calloc(H4 * L, sizeof(float));
    float *r4[3], *r1[3], *r2[3];
    const size_t sz[3] = {L * DK, S * DK, S * DV};
    for (int t = 0; t < 3; t++) {
        r4[t] = calloc(H4 * sz[t], sizeof(float)), r1[t] = calloc(sz[t], sizeof(float));
        r2[t] = calloc(sz[t], sizeof(float));
        assert_true(r4[t] && r1[t] && r2[t]);
    }
    assert_true(o && lse);
    for (size_t h = 1; h < H4; h++) { /* every head the first one */
        memcpy(q + h * L * DK, q, L * DK * sizeof(float));
        memcpy(k + h * S * DK, k, S * DK * sizeof(float));
        memcpy(v + h * S * DV, v, S * DV * sizeof(float));
        memcpy(g + h * L * DV, g, L * DV * sizeof(float));
    }
    attn_flash_desc d4 = attn_flash_desc_make(1, H4, L, S, DK, DV), d1;
    d4.causal = ATTN_CAUSAL_BOTTOM_RIGHT;
    assert_int_equal(attn_flash_forward(o, lse, q, k, v, &d4), ATTN_OK);
    d4.dtype = ATTN_FLASH_BF16;
    d1 = d4, d1.heads = 1;
    const int saved = attn_threads();
    attn_set_threads(2);
    assert_int_equal(attn_flash_backward(r4[0], r4[1], r4[2], g, q, k, v, o, lse, &d4), ATTN_OK);
    assert_int_equal(attn_flash_backward(r2[0], r2[1], r2[2], g, q, k, v, o, lse, &d1), ATTN_OK);
    attn_set_threads(1);
    assert_int_equal(attn_flash_backward(r1[0], r1[1], r1[2], g, q, k, v, o, lse, &d1), ATTN_OK);
    attn_set_threads(saved);
    for (int t = 0; t < 3; t++) {
        assert_memory_equal(r1[t], r2[t], sz[t] * sizeof(float));
        for (size_t h = 0; h < H4; h++)
            assert_memory_equal(r4[t] + h * sz[t], r1[t], sz[t] * sizeof(float));
        free(r4[t]), free(r1[t]), free(r2[t]);
    }
    free(q), free(k), free(v), free(g), free(o), free(lse);
}

/* Q, K, V given as bf16 (attn_flash_*_bf16) give the bits of the fp32 entry
 * points with dtype bf16 on the same values as floats, at every level (the
 * bf16 kernels reading them as they pack, or the fp32 kernels on them
 * widened), one head (split backward) and four (per-head), strided rows. */
static void run_bf16_inputs(size_t heads, size_t L, size_t S, size_t DK, size_t DV, size_t pad,
                            attn_causal causal)
{
    attn_flash_desc d = attn_flash_desc_make(1, heads, L, S, DK, DV);
    d.causal = causal;
    d.q_rs = DK + pad, d.q_hs = L * d.q_rs, d.k_rs = DK + pad, d.k_hs = S * d.k_rs;
    d.v_rs = DV + pad, d.v_hs = S * d.v_rs;
    const size_t nq = heads * L * d.q_rs, nk = heads * S * d.k_rs, nv = heads * S * d.v_rs;
    const size_t no = heads * L * DV, sz[3] = {nq, nk, nv};
    float *x[3] = {alloc_fill(nq, 1.5f), alloc_fill(nk, 1.5f), alloc_fill(nv, 1.0f)};
    uint16_t *x16[3];
    float *g = alloc_fill(no, 1.0f), *o1 = calloc(no, sizeof(float)), *o2 = calloc(no, sizeof(float));
    float *l1 = calloc(heads * L, sizeof(float)), *l2 = calloc(heads * L, sizeof(float));
    float *g1[3], *g2[3];
    assert_true(o1 && o2 && l1 && l2);
    for (int t = 0; t < 3; t++) {
        x16[t] = malloc(sz[t] * sizeof(uint16_t));
        g1[t] = calloc(sz[t], sizeof(float)), g2[t] = calloc(sz[t], sizeof(float));
        assert_true(x16[t] && g1[t] && g2[t]);
        for (size_t i = 0; i < sz[t]; i++) { /* x becomes its bf16 value */
            x16[t][i] = attn_bf16_round(x[t][i]);
            const uint32_t u = (uint32_t)x16[t][i] << 16;
            memcpy(&x[t][i], &u, sizeof u);
        }
    }
    d.dtype = ATTN_FLASH_BF16;
    const attn_simd saved = attn_simd_level(), levels[] = {ATTN_SIMD_SCALAR, ATTN_SIMD_AVX2,
                                                          ATTN_SIMD_AVX512};
    for (size_t li = 0; li < 3; li++) {
        if (attn_simd_set(levels[li]) != ATTN_OK) continue;
        assert_int_equal(attn_flash_forward(o1, l1, x[0], x[1], x[2], &d), ATTN_OK);
        assert_int_equal(attn_flash_forward_bf16(o2, l2, x16[0], x16[1], x16[2], &d), ATTN_OK);
        assert_memory_equal(o1, o2, no * sizeof(float));
        assert_memory_equal(l1, l2, heads * L * sizeof(float));
        for (int t = 0; t < 3; t++)
            memset(g1[t], 0, sz[t] * sizeof(float)), memset(g2[t], 0, sz[t] * sizeof(float));
        assert_int_equal(attn_flash_backward(g1[0], g1[1], g1[2], g, x[0], x[1], x[2], o1, l1, &d),
                         ATTN_OK);
        assert_int_equal(attn_flash_backward_bf16(g2[0], g2[1], g2[2], g, x16[0], x16[1], x16[2],
                                                  o1, l1, &d),
                         ATTN_OK);
        for (int t = 0; t < 3; t++) assert_memory_equal(g1[t], g2[t], sz[t] * sizeof(float));
    }
    assert_int_equal(attn_simd_set(saved), ATTN_OK);
    assert_int_equal(attn_flash_forward_bf16(o2, l2, NULL, x16[1], x16[2], &d), ATTN_E_INVALID);
    for (int t = 0; t < 3; t++) free(x[t]), free(x16[t]), free(g1[t]), free(g2[t]);
    free(g), free(o1), free(o2), free(l1), free(l2);
}

static void test_bf16_inputs(void **state)
{
    (void)state;
    run_bf16_inputs(1, 100, 90, 40, 24, 3, ATTN_CAUSAL_TOP_LEFT);
    run_bf16_inputs(4, 70, 70, 64, 64, 0, ATTN_CAUSAL_NONE);
}

static void test_bf16_errors(void **state)
{
    (void)state;
    float x[4] = {0}, o[4], l[1];
    attn_flash_desc d = attn_flash_desc_make(1, 1, 1, 1, 4, 4);
    assert_int_equal(d.dtype, ATTN_FLASH_F32);
    d.dtype = (attn_flash_dtype)5;
    assert_int_equal(attn_flash_forward(o, l, x, x, x, &d), ATTN_E_INVALID);
    assert_non_null(strstr(attn_last_error(), "dtype"));
}

/* qk_softmax (the forward's unmasked key blocks) gives the bits of gemm, ×log2e,
 * the fp32 kernels' softmax_online and cvt_rows: whole and partial groups of
 * rows, a first block (m = -inf) and a later one whose scores raise the max
 * of some rows only. */
static void test_bf16_qk_softmax(void **state)
{
    (void)state;
    const fk_bf16 *B = attn_fk_bf16();
    if (!B) skip();
    const fk_table *K = attn_fk_table(ATTN_SIMD_AVX512);
    enum { R = 64, TP = 20, BCOLS = FK_BC };
    static uint32_t qw[R * TP], kp[TP * BCOLS], p1[R * BCOLS / 2], p2[R * BCOLS / 2];
    static float s1[R * BCOLS], s2[R * BCOLS], m1[R], m2[R], l1[R * FK_LANES], l2[R * FK_LANES];
    static float a1[R], a2[R];
    for (size_t i = 0; i < R * TP; i++) qw[i] = attn_bf16_pair(2.0f * frand(), 2.0f * frand());
    for (size_t i = 0; i < TP * BCOLS; i++) kp[i] = attn_bf16_pair(frand(), frand());
    const size_t rows_list[] = {64, 61, 3};
    for (size_t ri = 0; ri < 3; ri++) {
        const size_t rows = rows_list[ri];
        for (size_t r = 0; r < R; r++) m1[r] = m2[r] = -INFINITY;
        memset(l1, 0, sizeof l1), memset(l2, 0, sizeof l2);
        for (int blk = 0; blk < 2; blk++) {
            B->gemm(s1, BCOLS, qw, TP, kp, BCOLS, rows, BCOLS, TP, NULL, 0);
            for (size_t i = 0; i < rows * BCOLS; i++) s1[i] *= FK_LOG2E; /* log2 units */
            K->softmax_online(s1, rows, m1, l1, a1);
            B->cvt_rows(p1, BCOLS / 2, s1, BCOLS, rows, BCOLS);
            B->qk_softmax(p2, qw, TP, kp, TP, rows, m2, l2, a2, s2);
            assert_memory_equal(p1, p2, rows * BCOLS / 2 * sizeof(uint32_t));
            assert_memory_equal(m1, m2, rows * sizeof(float));
            assert_memory_equal(l1, l2, rows * FK_LANES * sizeof(float));
            assert_memory_equal(a1, a2, rows * sizeof(float));
            for (size_t r = 0; r < R; r += 2) m1[r] = m2[r] = m1[r] - 3.0f;
        }
        for (size_t r = 0; r < rows; r += 2) assert_true(a1[r] < 1.0f && a1[r] > 0.0f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_round),    cmocka_unit_test(test_bf16_kernels),
        cmocka_unit_test(test_bf16_forward),  cmocka_unit_test(test_bf16_backward),
        cmocka_unit_test(test_bf16_errors),   cmocka_unit_test(test_bf16_split_bits),
        cmocka_unit_test(test_bf16_inputs),   cmocka_unit_test(test_bf16_qk_softmax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
