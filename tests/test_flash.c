/* test_flash.c - the fused attention kernels against the reference.
 *
 * Every case runs the reference once (attn_sdpa_ref, attn_sdpa_backward from
 * its weights, head by head), then the fused forward and backward at every
 * SIMD level this CPU has (attn_simd_set), with 2 threads and with 1: within
 * atol 1e-5 / rtol 1e-4 (outputs) and 1e-4 / 1e-3 (gradients) of the
 * reference, and the same bits for 1 and 2 threads. */
#include "test_support.h"
#include "flash_rand.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "../src/ops/flash_kern.h"

typedef enum { M_NONE = 0, M_BOOL = 1, M_ADD = 2, M_KEY = 4, M_HEADMASK = 8 } mask_bits;

typedef struct fcase {
    const char *name;
    size_t batch, heads, l, s, dk, dv;
    attn_causal causal;
    int masks;          /* mask_bits */
    int interleaved;    /* (B, L, H, d) layout instead of (B, H, L, d) */
    float qk_mag, v_mag; /* magnitude of q, k and of v, d_out */
    float scale;        /* 0: 1/sqrt(d_k) */
    int full_masked_row; /* masks leave one row with no key */
} fcase;

/* Index of row i of head (b, h) for a tensor of rows `rows` and width d. */
static size_t at(const fcase *c, size_t b, size_t h, size_t i, size_t rows, size_t d)
{
    return c->interleaved ? ((b * rows + i) * c->heads + h) * d : ((b * c->heads + h) * rows + i) * d;
}

static attn_flash_desc desc_of(const fcase *c)
{
    attn_flash_desc d = attn_flash_desc_make(c->batch, c->heads, c->l, c->s, c->dk, c->dv);
    if (c->interleaved) {
        d.q_rs = c->heads * c->dk, d.q_hs = c->dk, d.q_bs = c->l * c->heads * c->dk;
        d.k_rs = c->heads * c->dk, d.k_hs = c->dk, d.k_bs = c->s * c->heads * c->dk;
        d.v_rs = c->heads * c->dv, d.v_hs = c->dv, d.v_bs = c->s * c->heads * c->dv;
        d.o_rs = c->heads * c->dv, d.o_hs = c->dv, d.o_bs = c->l * c->heads * c->dv;
    }
    if (c->scale != 0.0f) d.scale = c->scale;
    d.causal = c->causal;
    return d;
}

static void gather(float *dst, const float *src, const fcase *c, size_t b, size_t h, size_t rows,
                   size_t d)
{
    for (size_t i = 0; i < rows; i++) memcpy(dst + i * d, src + at(c, b, h, i, rows, d), d * sizeof(float));
}

typedef struct fresult {
    float *out, *lse, *dq, *dk, *dv;
} fresult;

static void fresult_alloc(fresult *r, const fcase *c)
{
    size_t nh = c->batch * c->heads;
    r->out = calloc(nh * c->l * c->dv, sizeof(float));
    r->lse = calloc(nh * c->l, sizeof(float));
    r->dq = calloc(nh * c->l * c->dk, sizeof(float));
    r->dk = calloc(nh * c->s * c->dk, sizeof(float));
    r->dv = calloc(nh * c->s * c->dv, sizeof(float));
    assert_true(r->out && r->lse && r->dq && r->dk && r->dv);
}

static void fresult_free(fresult *r)
{
    free(r->out), free(r->lse), free(r->dq), free(r->dk), free(r->dv);
}

static void run_fused(fresult *r, const fcase *c, const attn_flash_desc *d, const float *q,
                      const float *k, const float *v, const float *dout)
{
    size_t nh = c->batch * c->heads;
    memset(r->dq, 0, nh * c->l * c->dk * sizeof(float));
    memset(r->dk, 0, nh * c->s * c->dk * sizeof(float));
    memset(r->dv, 0, nh * c->s * c->dv * sizeof(float));
    assert_int_equal(attn_flash_forward(r->out, r->lse, q, k, v, d), ATTN_OK);
    assert_int_equal(attn_flash_backward(r->dq, r->dk, r->dv, dout, q, k, v, r->out, r->lse, d),
                     ATTN_OK);
}

static void run_case(const fcase *c)
{
    rng_state = 0x9e3779b97f4a7c15ULL ^ (c->l * 131 + c->s * 7 + c->dk * 3 + c->dv);
    const size_t nh = c->batch * c->heads, L = c->l, S = c->s;
    float *q = alloc_fill(nh * L * c->dk, c->qk_mag), *k = alloc_fill(nh * S * c->dk, c->qk_mag);
    float *v = alloc_fill(nh * S * c->dv, c->v_mag), *dout = alloc_fill(nh * L * c->dv, c->v_mag);
    attn_flash_desc d = desc_of(c);

    /* Masks. */
    uint8_t *bm = NULL;
    float *am = NULL, *km = NULL;
    size_t nmask = (c->masks & M_HEADMASK) ? nh : 1;
    if (c->masks & M_BOOL) {
        bm = malloc(L * S);
        for (size_t i = 0; i < L * S; i++) bm[i] = frand() > -0.6f; /* 80 % allowed */
        if (c->full_masked_row) memset(bm + (L / 2) * S, 0, S);
        d.bool_mask = bm;
    }
    if (c->masks & M_ADD) {
        am = malloc(nmask * L * S * sizeof(float));
        for (size_t i = 0; i < nmask * L * S; i++) {
            float x = frand();
            am[i] = x > 0.7f ? -INFINITY : x;
        }
        if (c->full_masked_row)
            for (size_t h = 0; h < nmask; h++)
                for (size_t j = 0; j < S; j++) am[(h * L + L / 3) * S + j] = -INFINITY;
        d.add_mask = am;
        if (c->masks & M_HEADMASK) d.add_mask_hs = L * S, d.add_mask_bs = c->heads * L * S;
    }
    if (c->masks & M_KEY) {
        km = malloc(c->batch * S * sizeof(float));
        for (size_t i = 0; i < c->batch * S; i++) km[i] = frand() > 0.5f ? -INFINITY : 0.0f;
        km[0] = 0.0f;
        d.key_mask = km, d.key_mask_bs = S;
    }

    /* Reference, head by head. */
    fresult ref;
    fresult_alloc(&ref, c);
    float *qh = malloc(L * c->dk * sizeof(float)), *kh = malloc(S * c->dk * sizeof(float));
    float *vh = malloc(S * c->dv * sizeof(float)), *oh = malloc(L * c->dv * sizeof(float));
    float *gh = malloc(L * c->dv * sizeof(float)), *w = malloc(L * S * sizeof(float));
    float *dqh = malloc(L * c->dk * sizeof(float)), *dkh = malloc(S * c->dk * sizeof(float));
    float *dvh = malloc(S * c->dv * sizeof(float)), *mask = malloc(L * S * sizeof(float));
    assert_true(qh && kh && vh && oh && gh && w && dqh && dkh && dvh && mask);
    for (size_t b = 0; b < c->batch; b++)
        for (size_t h = 0; h < c->heads; h++) {
            gather(qh, q, c, b, h, L, c->dk);
            gather(kh, k, c, b, h, S, c->dk);
            gather(vh, v, c, b, h, S, c->dv);
            gather(gh, dout, c, b, h, L, c->dv);
            attn_sdpa_params p = attn_sdpa_defaults();
            p.scale_mode = ATTN_SCALE_CUSTOM, p.scale = d.scale;
            p.causal = c->causal;
            p.bool_mask = bm;
            if (am || km) {
                const float *amh = am ? am + (c->masks & M_HEADMASK ? (b * c->heads + h) * L * S : 0) : NULL;
                for (size_t i = 0; i < L; i++)
                    for (size_t j = 0; j < S; j++)
                        mask[i * S + j] = (amh ? amh[i * S + j] : 0.0f) + (km ? km[b * S + j] : 0.0f);
                p.add_mask = mask;
            }
            assert_int_equal(attn_sdpa_ref(oh, w, qh, kh, vh, L, S, c->dk, c->dv, &p, NULL), ATTN_OK);
            memset(dqh, 0, L * c->dk * sizeof(float));
            memset(dkh, 0, S * c->dk * sizeof(float));
            memset(dvh, 0, S * c->dv * sizeof(float));
            assert_int_equal(attn_sdpa_backward(dqh, dkh, dvh, gh, qh, kh, vh, w, L, S, c->dk,
                                                c->dv, &p),
                             ATTN_OK);
            for (size_t i = 0; i < L; i++) {
                memcpy(ref.out + at(c, b, h, i, L, c->dv), oh + i * c->dv, c->dv * sizeof(float));
                memcpy(ref.dq + at(c, b, h, i, L, c->dk), dqh + i * c->dk, c->dk * sizeof(float));
            }
            for (size_t j = 0; j < S; j++) {
                memcpy(ref.dk + at(c, b, h, j, S, c->dk), dkh + j * c->dk, c->dk * sizeof(float));
                memcpy(ref.dv + at(c, b, h, j, S, c->dv), dvh + j * c->dv, c->dv * sizeof(float));
            }
        }

    const attn_simd saved = attn_simd_level();
    const int saved_threads = attn_threads();
    fresult two, one;
    fresult_alloc(&two, c);
    fresult_alloc(&one, c);
    char what[160];
    for (int lv = ATTN_SIMD_SCALAR; lv <= ATTN_SIMD_AVX512; lv++) {
        if (attn_simd_set((attn_simd)lv) != ATTN_OK) continue; /* the CPU lacks it */
        const char *ln = attn_simd_name((attn_simd)lv);
        attn_set_threads(2);
        run_fused(&two, c, &d, q, k, v, dout);
        snprintf(what, sizeof what, "%s [%s] out", c->name, ln);
        assert_close_f32(two.out, ref.out, nh * L * c->dv, 1e-5, 1e-4, what);
        snprintf(what, sizeof what, "%s [%s] d_q", c->name, ln);
        assert_close_f32(two.dq, ref.dq, nh * L * c->dk, 1e-4, 1e-3, what);
        snprintf(what, sizeof what, "%s [%s] d_k", c->name, ln);
        assert_close_f32(two.dk, ref.dk, nh * S * c->dk, 1e-4, 1e-3, what);
        snprintf(what, sizeof what, "%s [%s] d_v", c->name, ln);
        assert_close_f32(two.dv, ref.dv, nh * S * c->dv, 1e-4, 1e-3, what);
        attn_set_threads(1);
        run_fused(&one, c, &d, q, k, v, dout);
        if (memcmp(one.out, two.out, nh * L * c->dv * sizeof(float)) ||
            memcmp(one.lse, two.lse, nh * L * sizeof(float)) ||
            memcmp(one.dq, two.dq, nh * L * c->dk * sizeof(float)) ||
            memcmp(one.dk, two.dk, nh * S * c->dk * sizeof(float)) ||
            memcmp(one.dv, two.dv, nh * S * c->dv * sizeof(float)))
            fail_msg("%s [%s]: 1 and 2 threads differ", c->name, ln);
    }
    attn_simd_set(saved);
    attn_set_threads(saved_threads);

    fresult_free(&ref), fresult_free(&two), fresult_free(&one);
    free(qh), free(kh), free(vh), free(oh), free(gh), free(w), free(dqh), free(dkh), free(dvh);
    free(mask), free(bm), free(am), free(km), free(q), free(k), free(v), free(dout);
}

#define CASE(...) ((fcase){__VA_ARGS__})

static void test_small_shapes(void **state)
{
    (void)state;
    run_case(&CASE(.name = "1x1 d1", .batch = 1, .heads = 1, .l = 1, .s = 1, .dk = 1, .dv = 1,
                   .qk_mag = 1, .v_mag = 1));
    run_case(&CASE(.name = "7x7 d3 causal", .batch = 1, .heads = 1, .l = 7, .s = 7, .dk = 3,
                   .dv = 3, .causal = ATTN_CAUSAL_TOP_LEFT, .qk_mag = 1, .v_mag = 1));
    run_case(&CASE(.name = "1x129 d65/80", .batch = 1, .heads = 1, .l = 1, .s = 129, .dk = 65,
                   .dv = 80, .qk_mag = 1, .v_mag = 1));
    run_case(&CASE(.name = "129x1 d80/65", .batch = 1, .heads = 1, .l = 129, .s = 1, .dk = 80,
                   .dv = 65, .qk_mag = 1, .v_mag = 1));
}

static void test_causal_alignments(void **state)
{
    (void)state;
    const attn_causal cs[] = {ATTN_CAUSAL_TOP_LEFT, ATTN_CAUSAL_BOTTOM_RIGHT};
    for (int i = 0; i < 2; i++) {
        /* L < S, L > S (bottom-right: the first rows see nothing), L = S. */
        run_case(&CASE(.name = "7x129 d65/80 causal", .batch = 1, .heads = 1, .l = 7, .s = 129,
                       .dk = 65, .dv = 80, .causal = cs[i], .qk_mag = 1, .v_mag = 1));
        run_case(&CASE(.name = "200x129 d16/3 causal", .batch = 1, .heads = 1, .l = 200,
                       .s = 129, .dk = 16, .dv = 3, .causal = cs[i], .qk_mag = 1, .v_mag = 1));
        run_case(&CASE(.name = "130x130 d64 causal 2 heads", .batch = 1, .heads = 2, .l = 130,
                       .s = 130, .dk = 64, .dv = 64, .causal = cs[i], .qk_mag = 1, .v_mag = 1));
    }
}

static void test_masks(void **state)
{
    (void)state;
    run_case(&CASE(.name = "bool 129x200 d128", .batch = 1, .heads = 1, .l = 129, .s = 200,
                   .dk = 128, .dv = 128, .masks = M_BOOL, .full_masked_row = 1, .qk_mag = 1,
                   .v_mag = 1));
    run_case(&CASE(.name = "additive 100x129 d32/48 causal", .batch = 1, .heads = 1, .l = 100,
                   .s = 129, .dk = 32, .dv = 48, .masks = M_ADD,
                   .causal = ATTN_CAUSAL_BOTTOM_RIGHT, .full_masked_row = 1, .qk_mag = 1,
                   .v_mag = 1));
    /* Many heads (the per-head backward), interleaved as in the MHA layer,
     * per-head additive masks, key padding and a boolean mask together. */
    run_case(&CASE(.name = "2x3 heads, all masks", .batch = 2, .heads = 3, .l = 70, .s = 129,
                   .dk = 24, .dv = 40, .masks = M_BOOL | M_ADD | M_KEY | M_HEADMASK,
                   .interleaved = 1, .full_masked_row = 1, .qk_mag = 1, .v_mag = 1,
                   .scale = 0.3f));
    run_case(&CASE(.name = "2x2 heads, key padding, causal", .batch = 2, .heads = 2, .l = 65,
                   .s = 65, .dk = 16, .dv = 16, .masks = M_KEY, .causal = ATTN_CAUSAL_TOP_LEFT,
                   .qk_mag = 1, .v_mag = 1));
}

/* Shapes the short-sequence kernels take (at most 64 keys, d_k and d_v
 * multiples of 16 up to 128, key padding only; flash_short.c): the C twin at
 * the scalar and AVX2 levels, the AVX-512 one at avx512, each against the
 * reference and the same bits on 1 and 2 threads (run_case). */
static void test_short(void **state)
{
    (void)state;
    /* the classifier's: interleaved heads, key padding */
    run_case(&CASE(.name = "short 5x4 heads 19x19 d32 key padding", .batch = 5, .heads = 4,
                   .l = 19, .s = 19, .dk = 32, .dv = 32, .masks = M_KEY, .interleaved = 1,
                   .qk_mag = 1, .v_mag = 1));
    /* the limits: 64 keys, d 128, more queries than keys */
    run_case(&CASE(.name = "short 70x64 d128", .batch = 2, .heads = 1, .l = 70, .s = 64,
                   .dk = 128, .dv = 128, .masks = M_KEY, .qk_mag = 1, .v_mag = 1));
    /* one key: most batches have it masked, so rows with no key (lse -inf,
     * output 0, no gradient) */
    run_case(&CASE(.name = "short 6 batches 5x1 d16/48", .batch = 6, .heads = 2, .l = 5, .s = 1,
                   .dk = 16, .dv = 48, .masks = M_KEY, .qk_mag = 1, .v_mag = 1, .scale = 0.7f));
    run_case(&CASE(.name = "short 1x33 d64 large", .batch = 1, .heads = 3, .l = 1, .s = 33,
                   .dk = 64, .dv = 16, .qk_mag = 30, .v_mag = 10));
}

static void test_large_values(void **state)
{
    (void)state;
    run_case(&CASE(.name = "magnitude 1e3", .batch = 1, .heads = 1, .l = 65, .s = 77, .dk = 16,
                   .dv = 16, .qk_mag = 1e3f, .v_mag = 1e3f));
}

static void test_long(void **state)
{
    (void)state;
    run_case(&CASE(.name = "1000x1000 d64 causal", .batch = 1, .heads = 1, .l = 1000, .s = 1000,
                   .dk = 64, .dv = 64, .causal = ATTN_CAUSAL_TOP_LEFT, .qk_mag = 1, .v_mag = 1));
    run_case(&CASE(.name = "1000x129 d80 4 heads", .batch = 1, .heads = 4, .l = 1000, .s = 129,
                   .dk = 80, .dv = 80, .qk_mag = 1, .v_mag = 1));
}

/* The vector exp: a few ulp over the softmax's range; -inf → 0; NaN → NaN.
 * The softmax's exp (x <= 0): relative error 1.6e-7 from its polynomial and
 * |x|·7.3e-8 from log2e and x·log2e in floats (bounded here by 2.5e-7 +
 * 8e-8·|x|: the portable C level rounds each step of the polynomial),
 * exactly 1 at 0. */
static void test_exp(void **state)
{
    (void)state;
    enum { N = 20000 };
    static float x[N + 3], y[N + 3];
    for (int i = 0; i < N; i++) x[i] = -87.0f * (float)i / (float)N + (i % 7) * 1e-3f;
    x[N] = -INFINITY, x[N + 1] = NAN, x[N + 2] = 0.0f;
    for (int lv = ATTN_SIMD_SCALAR; lv <= ATTN_SIMD_AVX512; lv++) {
        if (lv > (int)attn_simd_best()) continue;
        for (int sm = 0; sm < 2; sm++) {
            attn_fk_table((attn_simd)lv)->exp_n(y, x, N + 3, sm);
            double worst = 0, worst_rel = 0;
            for (int i = 0; i < N; i++) {
                double e = exp((double)x[i]);
                double ulp = (double)nextafterf((float)e, INFINITY) - (double)(float)e;
                double err = fabs((double)y[i] - e) / ulp;
                if (err > worst) worst = err;
                double rel = fabs((double)y[i] - e) / e / (2.5e-7 + 8e-8 * fabs((double)x[i]));
                if (rel > worst_rel) worst_rel = rel;
            }
            if (!sm && worst > 3.0)
                fail_msg("exp [%s]: %.2f ulp", attn_simd_name((attn_simd)lv), worst);
            if (sm && worst_rel > 1.0)
                fail_msg("softmax exp [%s]: %.2f of the error bound", attn_simd_name((attn_simd)lv),
                         worst_rel);
            assert_true(y[N] == 0.0f);
            assert_true(isnan(y[N + 1]));
            assert_true(y[N + 2] == 1.0f);
        }
    }
}

/* The packing's transpose at every level: whole 16 × 16 blocks (AVX-512 in
 * registers), partial ones and strides wider than the rows. */
static void test_transpose(void **state)
{
    (void)state;
    enum { LDS = 75, LDD = 70 };
    static float src[64 * LDS], dst[LDS * LDD];
    for (size_t i = 0; i < sizeof src / sizeof *src; i++) src[i] = (float)i;
    const size_t shapes[][2] = {{64, 64}, {16, 16}, {37, 53}, {20, 70}, {1, 3}};
    for (int lv = ATTN_SIMD_SCALAR; lv <= ATTN_SIMD_AVX512; lv++) {
        if (lv > (int)attn_simd_best()) continue;
        for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
            const size_t rows = shapes[i][0], cols = shapes[i][1];
            for (size_t j = 0; j < sizeof dst / sizeof *dst; j++) dst[j] = -1.0f;
            attn_fk_table((attn_simd)lv)->transpose(dst, LDD, src, LDS, rows, cols);
            for (size_t c = 0; c < cols; c++)
                for (size_t r = 0; r < LDD; r++) {
                    const float want = r < rows ? src[r * LDS + c] : -1.0f;
                    if (dst[c * LDD + r] != want)
                        fail_msg("transpose [%s] %zux%zu: (%zu, %zu) is %g, not %g",
                                 attn_simd_name((attn_simd)lv), rows, cols, c, r,
                                 (double)dst[c * LDD + r], (double)want);
                }
        }
    }
}

/* qk_softmax gives the bits of gemm then softmax_online (the forward takes
 * the first where no mask applies, the second elsewhere), at every level,
 * for whole and partial row groups, a first block (m = -inf) and a later
 * one whose scores raise the max of some rows only, with and without
 * prefetching. */
static void test_qk_softmax(void **state)
{
    (void)state;
    enum { R = 64, DK = 40, BCOLS = FK_BC };
    static float q[R * DK], kt[DK * BCOLS], s1[R * BCOLS], s2[R * BCOLS];
    static float m1[R], m2[R], l1[R * FK_LANES], l2[R * FK_LANES], a1[R], a2[R];
    for (size_t i = 0; i < R * DK; i++) q[i] = 2.0f * frand();
    for (size_t i = 0; i < DK * BCOLS; i++) kt[i] = 2.0f * frand();
    const size_t rows_list[] = {64, 61, 3};
    for (int lv = ATTN_SIMD_SCALAR; lv <= ATTN_SIMD_AVX512; lv++) {
        if (lv > (int)attn_simd_best()) continue;
        const fk_table *K = attn_fk_table((attn_simd)lv);
        for (size_t ri = 0; ri < 3; ri++) {
            const size_t rows = rows_list[ri];
            for (size_t r = 0; r < R; r++) m1[r] = m2[r] = -INFINITY;
            memset(l1, 0, sizeof l1), memset(l2, 0, sizeof l2);
            for (int blk = 0; blk < 2; blk++) {
                K->gemm(s1, BCOLS, q, DK, 1, kt, BCOLS, rows, BCOLS, DK, NULL, 0);
                K->softmax_online(s1, rows, m1, l1, a1);
                K->qk_softmax(s2, q, DK, kt, rows, m2, l2, a2, blk ? kt : NULL, q,
                              blk ? sizeof kt : 0);
                assert_memory_equal(s1, s2, rows * BCOLS * sizeof(float));
                assert_memory_equal(m1, m2, rows * sizeof(float));
                assert_memory_equal(l1, l2, rows * FK_LANES * sizeof(float));
                assert_memory_equal(a1, a2, rows * sizeof(float));
                /* the next block: the max of every other row rises */
                for (size_t r = 0; r < R; r += 2) m1[r] = m2[r] = m1[r] - 3.0f;
                for (size_t r = 0; r < rows; r++)
                    if (blk == 0) assert_true(a1[r] == 0.0f); /* from m = -inf */
            }
            for (size_t r = 0; r < rows; r += 2) assert_true(a1[r] < 1.0f && a1[r] > 0.0f);
        }
    }
}

/* The backward's fused pair kernels give the bits of gemm then probs /
 * dsoft at every level: whole and partial row groups, rows ld apart wider
 * than they are, a row whose lse is -inf (all zero). */
static void test_pair_kernels(void **state)
{
    (void)state;
    enum { R = 64, DK = 40, LD = 48, BCOLS = FK_BC };
    static float q[R * LD], kt[DK * BCOLS], lse[R], dd[R];
    static float p1[R * BCOLS], p2[R * BCOLS], d1[R * BCOLS], d2[R * BCOLS];
    for (size_t i = 0; i < R * LD; i++) q[i] = 2.0f * frand();
    for (size_t i = 0; i < DK * BCOLS; i++) kt[i] = 2.0f * frand();
    for (size_t r = 0; r < R; r++) lse[r] = 3.0f + frand(), dd[r] = frand();
    lse[5] = -INFINITY;
    const size_t rows_list[] = {64, 61, 3};
    for (int lv = ATTN_SIMD_SCALAR; lv <= ATTN_SIMD_AVX512; lv++) {
        if (lv > (int)attn_simd_best()) continue;
        const fk_table *K = attn_fk_table((attn_simd)lv);
        for (size_t ri = 0; ri < 3; ri++) {
            const size_t rows = rows_list[ri], n = rows * BCOLS * sizeof(float);
            K->gemm(p1, BCOLS, q, LD, 1, kt, BCOLS, rows, BCOLS, DK, NULL, 0);
            K->probs(p1, rows, lse);
            K->qk_probs(p2, q, LD, kt, DK, rows, lse);
            assert_memory_equal(p1, p2, n);
            K->gemm(d1, BCOLS, q, LD, 1, kt, BCOLS, rows, BCOLS, DK, NULL, 0);
            K->dsoft(d1, p1, rows, dd);
            K->dp_dsoft(d2, q, LD, kt, DK, rows, p1, dd);
            assert_memory_equal(d1, d2, n);
            if (rows > 5)
                for (size_t c = 0; c < BCOLS; c++) assert_true(p2[5 * BCOLS + c] == 0.0f);
            assert_true(p2[0] > 0.0f && p2[0] < 1.0f);
        }
    }
}

/* The built-in blocked GEMM against the double-accumulating reference. */
static void test_gemm_builtin(void **state)
{
    (void)state;
    static const size_t shapes[][3] = {{1, 1, 1}, {5, 3, 17}, {70, 300, 45}, {129, 513, 600}};
    const attn_simd saved = attn_simd_level();
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const size_t m = shapes[i][0], k = shapes[i][1], n = shapes[i][2];
        float *a = alloc_fill(m * k, 1), *b = alloc_fill(k * n, 1);
        float *c = malloc(m * n * sizeof(float)), *r = malloc(m * n * sizeof(float));
        assert_true(c && r);
        for (int lv = ATTN_SIMD_SCALAR; lv <= ATTN_SIMD_AVX512; lv++) {
            if (attn_simd_set((attn_simd)lv) != ATTN_OK) continue;
            for (int tb = 0; tb < 2; tb++) {
                assert_int_equal(tb ? attn_matmul_nt_ref(r, a, b, m, k, n)
                                    : attn_matmul_ref(r, a, b, m, k, n),
                                 ATTN_OK);
                assert_int_equal(attn_gemm_builtin(c, a, b, m, k, n, tb), ATTN_OK);
                assert_close_f32(c, r, m * n, 1e-4, 1e-4, tb ? "gemm_builtin nt" : "gemm_builtin");
                if (attn_have_cblas()) {
                    assert_int_equal(attn_gemm_cblas(c, a, b, m, k, n, tb), ATTN_OK);
                    assert_close_f32(c, r, m * n, 1e-4, 1e-4, "gemm_cblas");
                }
            }
        }
        free(a), free(b), free(c), free(r);
    }
    attn_simd_set(saved);
}

/* c (M,N) [+]= op(a) · op(b) in double: op(a) = a (M,K) or aᵀ (a: K,M), op(b) = b
 * (K,N) or bᵀ (b: N,K). */
static void gemm_d(float *c, const float *a, const float *b, size_t m, size_t k, size_t n,
                   int ta, int tb, int acc)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = acc ? (double)c[i * n + j] : 0.0;
            for (size_t p = 0; p < k; p++)
                s += (double)(ta ? a[p * m + i] : a[i * k + p]) *
                     (double)(tb ? b[j * k + p] : b[p * n + j]);
            c[i * n + j] = (float)s;
        }
}

/* attn_gemm: every transposition, overwrite and accumulate, every kernel and
 * SIMD level, odd shapes (partial row blocks, partial 16-column groups, K
 * across several panels); 1 and 2 threads give the same bits. */
static void test_gemm_general(void **state)
{
    (void)state;
    static const size_t shapes[][3] = {{1, 1, 1}, {17, 5, 33}, {70, 300, 45}, {129, 513, 600},
                                       {65, 768, 128}, {768, 65, 128}};
    const attn_simd saved = attn_simd_level();
    const int threads = attn_threads();
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const size_t m = shapes[i][0], k = shapes[i][1], n = shapes[i][2];
        float *a = alloc_fill(m * k, 1), *b = alloc_fill(k * n, 1), *c0 = alloc_fill(m * n, 1);
        float *c = malloc(m * n * sizeof(float)), *r = malloc(m * n * sizeof(float));
        float *c1 = malloc(m * n * sizeof(float));
        assert_true(c && r && c1);
        for (int f = 0; f < 8; f++) {
            const int ta = f & 1, tb = (f >> 1) & 1, acc = (f >> 2) & 1;
            memcpy(r, c0, m * n * sizeof(float));
            gemm_d(r, a, b, m, k, n, ta, tb, acc);
            for (int lv = ATTN_SIMD_SCALAR; lv <= ATTN_SIMD_AVX512; lv++) {
                if (attn_simd_set((attn_simd)lv) != ATTN_OK) continue;
                for (int kind = ATTN_GEMM_AUTO; kind <= ATTN_GEMM_CBLAS; kind++) {
                    if (kind == ATTN_GEMM_CBLAS && !attn_have_cblas()) continue;
                    attn_set_threads(1);
                    memcpy(c1, c0, m * n * sizeof(float));
                    assert_int_equal(attn_gemm(c1, a, b, m, k, n, ta, tb, acc, kind), ATTN_OK);
                    attn_set_threads(2);
                    memcpy(c, c0, m * n * sizeof(float));
                    assert_int_equal(attn_gemm(c, a, b, m, k, n, ta, tb, acc, kind), ATTN_OK);
                    attn_set_threads(threads);
                    assert_close_f32(c, r, m * n, 2e-4, 1e-4, "attn_gemm");
                    if (kind != ATTN_GEMM_CBLAS) /* a CBLAS may split K by its own rules */
                        assert_memory_equal(c, c1, m * n * sizeof(float));
                }
            }
        }
        free(a), free(b), free(c0), free(c), free(r), free(c1);
    }
    attn_simd_set(saved);
    float x = 0;
    assert_int_equal(attn_gemm(&x, &x, &x, 1, 1, 1, 0, 0, 0, (attn_gemm_kernel)7), ATTN_E_INVALID);
    assert_int_equal(attn_gemm(NULL, &x, &x, 1, 1, 1, 0, 0, 0, ATTN_GEMM_AUTO), ATTN_E_INVALID);
}

/* The backward of matmul and linear above the GEMM threshold (and below it)
 * against the double products they stand for, on odd shapes; gradients
 * accumulate into what is there. */
static void test_matmul_backward_gemm(void **state)
{
    (void)state;
    static const size_t shapes[][3] = {{3, 4, 5}, {70, 129, 33}, {768, 128, 65}, {97, 200, 300}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const size_t m = shapes[i][0], k = shapes[i][1], n = shapes[i][2];
        float *a = alloc_fill(m * k, 1), *b = alloc_fill(k * n, 1), *dc = alloc_fill(m * n, 1);
        float *da = alloc_fill(m * k, 1), *db = alloc_fill(k * n, 1);
        float *ra = malloc(m * k * sizeof(float)), *rb = malloc(k * n * sizeof(float));
        assert_true(ra && rb);
        /* c = a · b (b: K,N): d_a += d_c · bᵀ, d_b += aᵀ · d_c */
        memcpy(ra, da, m * k * sizeof(float));
        memcpy(rb, db, k * n * sizeof(float));
        gemm_d(ra, dc, b, m, n, k, 0, 1, 1);
        gemm_d(rb, a, dc, k, m, n, 1, 0, 1);
        assert_int_equal(attn_matmul_backward(da, db, dc, a, b, m, k, n), ATTN_OK);
        assert_close_f32(da, ra, m * k, 2e-4, 1e-4, "matmul_backward d_a");
        assert_close_f32(db, rb, k * n, 2e-4, 1e-4, "matmul_backward d_b");
        /* c = a · bᵀ (b: N,K): d_a += d_c · b, d_b += d_cᵀ · a; and linear (bias). */
        memcpy(ra, da, m * k * sizeof(float));
        memcpy(rb, db, k * n * sizeof(float));
        gemm_d(ra, dc, b, m, n, k, 0, 0, 1);
        gemm_d(rb, dc, a, n, m, k, 1, 0, 1);
        float *dbias = calloc(n, sizeof(float));
        assert_non_null(dbias);
        assert_int_equal(attn_linear_backward(da, db, dbias, dc, a, b, m, k, n), ATTN_OK);
        assert_close_f32(da, ra, m * k, 2e-4, 1e-4, "linear_backward d_x");
        assert_close_f32(db, rb, k * n, 2e-4, 1e-4, "linear_backward d_w");
        for (size_t j = 0; j < n; j++) {
            double s = 0;
            for (size_t r = 0; r < m; r++) s += dc[r * n + j];
            assert_float_equal(dbias[j], s, 1e-3);
        }
        /* One gradient alone. */
        memcpy(ra, da, m * k * sizeof(float));
        gemm_d(ra, dc, b, m, n, k, 0, 0, 1);
        assert_int_equal(attn_matmul_nt_backward(da, NULL, dc, a, b, m, k, n), ATTN_OK);
        assert_close_f32(da, ra, m * k, 2e-4, 1e-4, "matmul_nt_backward d_a alone");
        free(a), free(b), free(dc), free(da), free(db), free(ra), free(rb), free(dbias);
    }
}

static void test_simd_control(void **state)
{
    (void)state;
    attn_simd saved = attn_simd_level();
    assert_int_equal(attn_simd_set(ATTN_SIMD_SCALAR), ATTN_OK);
    assert_int_equal(attn_simd_level(), ATTN_SIMD_SCALAR);
    assert_int_equal(attn_simd_set((attn_simd)7), ATTN_E_INVALID);
    assert_int_equal(attn_simd_set(saved), ATTN_OK);
    assert_string_equal(attn_simd_name(ATTN_SIMD_AVX512), "avx512");
}

static void test_errors(void **state)
{
    (void)state;
    float x[4] = {0};
    attn_flash_desc d = attn_flash_desc_make(1, 1, 0, 1, 1, 1);
    assert_int_equal(attn_flash_forward(x, NULL, x, x, x, &d), ATTN_E_INVALID);
    d = attn_flash_desc_make(1, 1, 1, 1, 1, 1);
    assert_int_equal(attn_flash_forward(NULL, NULL, x, x, x, &d), ATTN_E_INVALID);
    d.causal = (attn_causal)9;
    assert_int_equal(attn_flash_forward(x, NULL, x, x, x, &d), ATTN_E_INVALID);
    d = attn_flash_desc_make(1, 1, (size_t)1 << 41, 1, 1, 1);
    assert_int_not_equal(attn_flash_forward(x, NULL, x, x, x, &d), ATTN_OK);
    d = attn_flash_desc_make(1, 1, 1, 1, 1, 1);
    assert_int_equal(attn_flash_backward(x, x, x, x, x, x, x, x, NULL, &d), ATTN_E_INVALID);
    assert_true(attn_flash_forward_workspace(&d) > 0);
}

/* The backward's two decompositions (one task per head with four or more
 * heads; (chunk, head) tasks into partial dQ sums with fewer) add the same
 * products in the same order: four heads at once give the bits of each head
 * alone, on one thread and on two. S = 1100: 18 key blocks in two chunks
 * (balanced by pairs when causal), the last group of key blocks partial.
 * Without d_q the split mode runs key blocks alone: the same d_k, d_v. */
static void test_backward_modes(void **state)
{
    (void)state;
    const size_t H = 4, L = 130;
    /* K and dO read in place; both packed (d_k, d_v not multiples of 16) */
    const size_t dks[] = {64, 24, 64, 64}, dvs[] = {64, 40, 64, 40}, ss[] = {129, 129, 1100, 1100};
    const attn_causal cs[] = {ATTN_CAUSAL_BOTTOM_RIGHT, ATTN_CAUSAL_BOTTOM_RIGHT,
                              ATTN_CAUSAL_BOTTOM_RIGHT, ATTN_CAUSAL_NONE};
    const int saved = attn_threads();
    for (int i = 0; i < 8; i++) {
        const size_t dk = dks[i % 4], dv = dvs[i % 4], S = ss[i % 4];
        attn_set_threads(i < 4 ? 1 : 2);
        rng_state = 0x5eed + dk + S;
        float *q = alloc_fill(H * L * dk, 1), *k = alloc_fill(H * S * dk, 1);
        float *v = alloc_fill(H * S * dv, 1), *g = alloc_fill(H * L * dv, 1);
        float *o = calloc(H * L * dv, sizeof(float)), *lse = calloc(H * L, sizeof(float));
        float *dq = calloc(H * L * dk, sizeof(float)), *dkk = calloc(H * S * dk, sizeof(float));
        float *dv_ = calloc(H * S * dv, sizeof(float));
        float *dq1 = calloc(L * dk, sizeof(float)), *dk1 = calloc(S * dk, sizeof(float));
        float *dv1 = calloc(S * dv, sizeof(float));
        assert_true(o && lse && dq && dkk && dv_ && dq1 && dk1 && dv1);
        attn_flash_desc d = attn_flash_desc_make(1, H, L, S, dk, dv);
        d.causal = cs[i % 4];
        assert_int_equal(attn_flash_forward(o, lse, q, k, v, &d), ATTN_OK);
        assert_int_equal(attn_flash_backward(dq, dkk, dv_, g, q, k, v, o, lse, &d), ATTN_OK);
        attn_flash_desc d1 = attn_flash_desc_make(1, 1, L, S, dk, dv);
        d1.causal = d.causal;
        for (size_t h = 0; h < H; h++) {
            memset(dq1, 0, L * dk * sizeof(float)), memset(dk1, 0, S * dk * sizeof(float));
            memset(dv1, 0, S * dv * sizeof(float));
            assert_int_equal(attn_flash_backward(dq1, dk1, dv1, g + h * L * dv, q + h * L * dk,
                                                 k + h * S * dk, v + h * S * dv, o + h * L * dv,
                                                 lse + h * L, &d1),
                             ATTN_OK);
            if (memcmp(dq1, dq + h * L * dk, L * dk * sizeof(float)) ||
                memcmp(dk1, dkk + h * S * dk, S * dk * sizeof(float)) ||
                memcmp(dv1, dv_ + h * S * dv, S * dv * sizeof(float)))
                fail_msg("d_k %zu S %zu head %zu, %d thread(s): per-head and split backward "
                         "differ", dk, S, h, i < 4 ? 1 : 2);
            memset(dk1, 0, S * dk * sizeof(float)), memset(dv1, 0, S * dv * sizeof(float));
            assert_int_equal(attn_flash_backward(NULL, dk1, dv1, g + h * L * dv, q + h * L * dk,
                                                 k + h * S * dk, v + h * S * dv, o + h * L * dv,
                                                 lse + h * L, &d1),
                             ATTN_OK);
            if (memcmp(dk1, dkk + h * S * dk, S * dk * sizeof(float)) ||
                memcmp(dv1, dv_ + h * S * dv, S * dv * sizeof(float)))
                fail_msg("d_k %zu S %zu head %zu: split backward without d_q differs", dk, S, h);
        }
        free(q), free(k), free(v), free(g), free(o), free(lse), free(dq), free(dkk), free(dv_);
        free(dq1), free(dk1), free(dv1);
    }
    attn_set_threads(saved);
}

/* O(N) memory: one long head stays far below the N×N score matrix (4 GB at
 * N = 32768); the bound is 32 MB (workspace sizes only, nothing runs). */
static void test_workspace_bound(void **state)
{
    (void)state;
    const int saved = attn_threads();
    attn_set_threads(2);
    attn_flash_desc d = attn_flash_desc_make(1, 1, 32768, 32768, 64, 64);
    assert_true(attn_flash_forward_workspace(&d) < ((size_t)32 << 20));
    assert_true(attn_flash_backward_workspace(&d) < ((size_t)32 << 20));
    d.dtype = ATTN_FLASH_BF16; /* its split mode packs more of the head: 28 MB */
    assert_true(attn_flash_backward_workspace(&d) < ((size_t)32 << 20));
    attn_set_threads(saved);
}

/* Attention over all keys equals the merge of attention over two disjoint
 * key ranges (what ring attention does between ranks): one head, L = 5
 * queries, keys [0, 3) and [3, 7); the running result starts empty (lse
 * -inf) so the first merge copies. */
static void test_merge_partials(void **state)
{
    (void)state;
    enum { L = 5, S = 7, S1 = 3, D = 4 };
    float q[L * D], k[S * D], v[S * D];
    for (size_t i = 0; i < L * D; i++) q[i] = sinf(0.7f * (float)i + 0.3f);
    for (size_t i = 0; i < S * D; i++) k[i] = cosf(1.3f * (float)i), v[i] = sinf(0.9f * (float)i - 1.f);
    attn_sdpa_params p = attn_sdpa_defaults();
    float full[L * D], lse_full[L], part[L * D], lse_part[L], out[L * D], lse[L];
    assert_int_equal(attn_sdpa_flash_forward(full, lse_full, q, k, v, L, S, D, D, &p), ATTN_OK);
    for (size_t i = 0; i < L; i++) lse[i] = -INFINITY;
    memset(out, 0, sizeof out);
    assert_int_equal(attn_sdpa_flash_forward(part, lse_part, q, k, v, L, S1, D, D, &p), ATTN_OK);
    attn_attention_merge(out, lse, part, lse_part, 1, L, 0, L, D);
    assert_memory_equal(out, part, sizeof part);
    assert_int_equal(attn_sdpa_flash_forward(part, lse_part, q, k + S1 * D, v + S1 * D, L, S - S1,
                                             D, D, &p), ATTN_OK);
    attn_attention_merge(out, lse, part, lse_part, 1, L, 0, L, D);
    for (size_t i = 0; i < L * D; i++) assert_float_equal(out[i], full[i], 1e-6);
    for (size_t i = 0; i < L; i++) assert_float_equal(lse[i], lse_full[i], 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simd_control), cmocka_unit_test(test_exp),
        cmocka_unit_test(test_errors),       cmocka_unit_test(test_small_shapes),
        cmocka_unit_test(test_causal_alignments), cmocka_unit_test(test_masks),
        cmocka_unit_test(test_large_values), cmocka_unit_test(test_long),
        cmocka_unit_test(test_gemm_builtin), cmocka_unit_test(test_gemm_general),
        cmocka_unit_test(test_matmul_backward_gemm), cmocka_unit_test(test_backward_modes),
        cmocka_unit_test(test_workspace_bound), cmocka_unit_test(test_merge_partials),
        cmocka_unit_test(test_qk_softmax), cmocka_unit_test(test_pair_kernels),
        cmocka_unit_test(test_transpose), cmocka_unit_test(test_short),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
