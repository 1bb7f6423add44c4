/* test_ring.c - ring attention (attn/dist.h) against the single-process
 * fused kernels: run by ctest under mpiexec with 1, 2 and 4 ranks. Every
 * rank builds the whole inputs from one seed, keeps its rows, runs the ring
 * forward and backward, and compares with attn_flash_forward / _backward on
 * the whole sequence. The largest differences are reduced over the ranks
 * before any assertion, so all ranks pass or fail together (no rank is left
 * waiting in a collective). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/dist.h"
#include "attn/ops.h"
#include "attn/rng.h"
#include "test_support.h"

typedef struct ring_case {
    size_t n, batch, heads, dk, dv;
    int causal;
    attn_ring_layout layout;
    float scale;
} ring_case;

/* Rows [start, start + len) of the runs of x (bh, n, w) into y (bh, n_local, w). */
static void take_rows(float *y, const float *x, size_t bh, size_t n, size_t w, const size_t start[2],
                      const size_t len[2])
{
    const size_t nl = len[0] + len[1];
    for (size_t h = 0; h < bh; h++) {
        size_t i = 0;
        for (int r = 0; r < 2; r++)
            for (size_t j = 0; j < len[r]; j++, i++)
                memcpy(y + (h * nl + i) * w, x + (h * n + start[r] + j) * w, w * sizeof *y);
    }
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        m = e > m || isnan(e) ? e : m;
    }
    return m;
}

static float *rand_buf(attn_rng *r, size_t n)
{
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    attn_rng_fill_uniform(r, x, n, -1.0f, 1.0f);
    return x;
}

/* Largest forward and backward differences of one case on this rank. */
static void run_case(const ring_case *c, double diff[2])
{
    int K = 1, rank = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &K);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const size_t bh = c->batch * c->heads, n = c->n;
    attn_rng r;
    attn_rng_seed(&r, 42 + n);
    float *q = rand_buf(&r, bh * n * c->dk), *k = rand_buf(&r, bh * n * c->dk);
    float *v = rand_buf(&r, bh * n * c->dv), *dout = rand_buf(&r, bh * n * c->dv);
    float *out = calloc(bh * n * c->dv, sizeof *out), *lse = calloc(bh * n, sizeof *lse);
    float *dq = calloc(bh * n * c->dk, sizeof *dq), *dk = calloc(bh * n * c->dk, sizeof *dk);
    float *dv = calloc(bh * n * c->dv, sizeof *dv);
    assert_true(out && lse && dq && dk && dv);
    attn_flash_desc f = attn_flash_desc_make(c->batch, c->heads, n, n, c->dk, c->dv);
    f.causal = c->causal ? ATTN_CAUSAL_TOP_LEFT : ATTN_CAUSAL_NONE;
    if (c->scale != 0.0f) f.scale = c->scale;
    assert_int_equal(attn_flash_forward(out, lse, q, k, v, &f), ATTN_OK);
    assert_int_equal(attn_flash_backward(dq, dk, dv, dout, q, k, v, out, lse, &f), ATTN_OK);

    attn_ring_desc d = {c->batch, c->heads, n, c->dk, c->dv, c->scale, c->causal, c->layout};
    size_t nl = 0, s[2], l[2];
    assert_int_equal(attn_ring_rows(&d, K, rank, &nl, s, l), ATTN_OK);
    float *lq = malloc(bh * nl * c->dk * sizeof *lq), *lk = malloc(bh * nl * c->dk * sizeof *lk);
    float *lv = malloc(bh * nl * c->dv * sizeof *lv), *ldo = malloc(bh * nl * c->dv * sizeof *ldo);
    float *lout = malloc(bh * nl * c->dv * sizeof *lout), *llse = malloc(bh * nl * sizeof *llse);
    float *want = malloc(bh * nl * (c->dk + c->dv) * sizeof *want);
    float *gq = calloc(bh * nl * c->dk, sizeof *gq), *gk = calloc(bh * nl * c->dk, sizeof *gk);
    float *gv = calloc(bh * nl * c->dv, sizeof *gv);
    assert_true(lq && lk && lv && ldo && lout && llse && want && gq && gk && gv);
    take_rows(lq, q, bh, n, c->dk, s, l), take_rows(lk, k, bh, n, c->dk, s, l);
    take_rows(lv, v, bh, n, c->dv, s, l), take_rows(ldo, dout, bh, n, c->dv, s, l);
    attn_ring_stats rs;
    assert_int_equal(attn_ring_attention_forward(lout, llse, lq, lk, lv, &d, MPI_COMM_WORLD, &rs), ATTN_OK);
    assert_int_equal(attn_ring_attention_backward(gq, gk, gv, ldo, lq, lk, lv, lout, llse, &d,
                                                  MPI_COMM_WORLD, &rs), ATTN_OK);
    take_rows(want, out, bh, n, c->dv, s, l);
    diff[0] = max_diff(lout, want, bh * nl * c->dv);
    take_rows(want, lse, bh, n, 1, s, l);
    double e = max_diff(llse, want, bh * nl);
    diff[0] = e > diff[0] ? e : diff[0];
    take_rows(want, dq, bh, n, c->dk, s, l);
    diff[1] = max_diff(gq, want, bh * nl * c->dk);
    take_rows(want, dk, bh, n, c->dk, s, l);
    e = max_diff(gk, want, bh * nl * c->dk), diff[1] = e > diff[1] ? e : diff[1];
    take_rows(want, dv, bh, n, c->dv, s, l);
    e = max_diff(gv, want, bh * nl * c->dv), diff[1] = e > diff[1] ? e : diff[1];
    free(q), free(k), free(v), free(dout), free(out), free(lse), free(dq), free(dk), free(dv);
    free(lq), free(lk), free(lv), free(ldo), free(lout), free(llse), free(want), free(gq), free(gk), free(gv);
}

static void test_ring_matches_fused(void **state)
{
    (void)state;
    static const ring_case cases[] = {
        {67, 2, 3, 16, 24, 0, ATTN_RING_CONTIGUOUS, 0.0f}, /* 67 rows: not divisible by 2 or 4 */
        {67, 2, 3, 16, 24, 1, ATTN_RING_CONTIGUOUS, 0.0f},
        {67, 2, 3, 16, 24, 1, ATTN_RING_ZIGZAG, 0.0f},
        {67, 2, 3, 16, 24, 0, ATTN_RING_ZIGZAG, 0.3f},
        {200, 1, 1, 64, 64, 1, ATTN_RING_ZIGZAG, 0.0f},   /* one head: the kernel's split mode */
        {200, 1, 2, 64, 64, 0, ATTN_RING_CONTIGUOUS, 0.0f},
    };
    int rank = 0, K = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &K);
    double worst[2] = {0, 0};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double mine[2] = {0, 0}, all[2] = {0, 0};
        run_case(&cases[i], mine);
        assert_int_equal(MPI_Allreduce(mine, all, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD), MPI_SUCCESS);
        if (rank == 0)
            printf("K=%d n=%zu causal=%d layout=%d: forward %.3g, backward %.3g\n", K, cases[i].n,
                   cases[i].causal, (int)cases[i].layout, all[0], all[1]);
        for (int j = 0; j < 2; j++) worst[j] = all[j] > worst[j] ? all[j] : worst[j];
    }
    assert_true(worst[0] <= 1e-5);
    assert_true(worst[1] <= 1e-4);
}

/* Too few rows for the pieces: every rank says so, nobody hangs. */
static void test_ring_rejects_short_sequence(void **state)
{
    (void)state;
    int K = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &K);
    attn_ring_desc d = {1, 1, (size_t)(2 * K - 1), 8, 8, 0.0f, 1, ATTN_RING_ZIGZAG};
    float buf[64] = {0};
    assert_int_equal(attn_ring_attention_forward(buf, NULL, buf, buf, buf, &d, MPI_COMM_WORLD, NULL),
                     ATTN_E_INVALID);
    assert_non_null(strstr(attn_last_error(), "zigzag"));
    size_t nl, s[2], l[2];
    d.layout = ATTN_RING_CONTIGUOUS, d.n = (size_t)K;
    assert_int_equal(attn_ring_rows(&d, K, K - 1, &nl, s, l), ATTN_OK);
    assert_int_equal(nl, 1);
    assert_int_equal(s[0], (size_t)K - 1);
}

int main(void)
{
    MPI_Init(NULL, NULL);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_matches_fused),
        cmocka_unit_test(test_ring_rejects_short_sequence),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    MPI_Finalize();
    return failed;
}
