/* matmul.c - c = a·b and c = a·bᵀ, reference and default kernels. */
#include "attn/ops.h"

#include <string.h>

#include "gemv_kern.h"
#include "matmul_int.h"
#include "omp_util.h"
#include "op_check.h"

/* Reference: the textbook dot product per output, accumulated in double so
 * that it is the more accurate of the two and can judge the other. */
attn_status attn_matmul_ref(float *c, const float *a, const float *b, size_t m, size_t k,
                            size_t n)
{
    attn_status st = attn_check_matmul("matmul", c, a, b, m, k, n);
    if (st) return st;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double acc = 0.0;
            for (size_t p = 0; p < k; p++) acc += (double)a[i * k + p] * (double)b[p * n + j];
            c[i * n + j] = (float)acc;
        }
    return ATTN_OK;
}

attn_status attn_matmul_nt_ref(float *c, const float *a, const float *b, size_t m, size_t k,
                               size_t n)
{
    attn_status st = attn_check_matmul("matmul_nt", c, a, b, m, k, n);
    if (st) return st;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double acc = 0.0;
            for (size_t p = 0; p < k; p++) acc += (double)a[i * k + p] * (double)b[j * k + p];
            c[i * n + j] = (float)acc;
        }
    return ATTN_OK;
}

/* Large products go through attn_gemm (the built-in blocked SIMD kernel or
 * CBLAS, threaded over fixed row blocks); small ones through the loops below. */
#define GEMM_LARGE (64.0 * 64.0 * 64.0)

int attn_matmul_through_gemm(size_t m, size_t k, size_t n)
{
    return (double)m * (double)k * (double)n >= GEMM_LARGE && m >= 16 && n >= 16;
}

static attn_status gemm_large(float *c, const float *a, const float *b, size_t m, size_t k,
                              size_t n, int trans_b)
{
    return attn_gemm(c, a, b, m, k, n, 0, trans_b, 0, ATTN_GEMM_AUTO);
}

/* Small products, e.g. a token's step in generation with a KV cache, where
 * streaming b from memory is the whole cost: each output is Σ a[p]·b[p] in 16
 * interleaved partial sums added up in a fixed pairwise order (the compiler
 * turns them into vector multiply-adds; one running sum it may not reorder),
 * four outputs at a time so that each a[p] loaded serves four rows of b.
 * Compiled for AVX-512 and AVX2 too, picked at load time where the compiler
 * can (the rest of the library is built for the baseline ISA): every lane
 * does the same operations in the same order on each, so the floats do not
 * depend on which one runs, nor on the output's position in its group of four. */
#define LANES 16
#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define ROW_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef ROW_CLONES
#define ROW_CLONES
#endif

/* c (n) = b (n, k) · a (k) */
ROW_CLONES
static void row_times_bt(float *c, const float *a, const float *b, size_t k, size_t n)
{
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const float *b0 = b + j * k, *b1 = b0 + k, *b2 = b1 + k, *b3 = b2 + k;
        float a0[LANES] = {0}, a1[LANES] = {0}, a2[LANES] = {0}, a3[LANES] = {0};
        size_t p = 0;
        for (; p + LANES <= k; p += LANES)
            for (size_t l = 0; l < LANES; l++) {
                const float ap = a[p + l];
                a0[l] += b0[p + l] * ap, a1[l] += b1[p + l] * ap;
                a2[l] += b2[p + l] * ap, a3[l] += b3[p + l] * ap;
            }
        for (size_t l = 0; p < k; p++, l++) {
            a0[l] += b0[p] * a[p], a1[l] += b1[p] * a[p];
            a2[l] += b2[p] * a[p], a3[l] += b3[p] * a[p];
        }
        /* The same pairwise tree per output, the four side by side so that
         * each level is one vector operation. */
        float r[2 * LANES], q[LANES], o[8];
        for (size_t l = 0; l < 8; l++) {
            r[l] = a0[l] + a0[l + 8], r[8 + l] = a1[l] + a1[l + 8];
            r[16 + l] = a2[l] + a2[l + 8], r[24 + l] = a3[l] + a3[l + 8];
        }
        for (size_t i = 0; i < 4; i++)
            for (size_t l = 0; l < 4; l++) q[4 * i + l] = r[8 * i + l] + r[8 * i + l + 4];
        for (size_t i = 0; i < 4; i++)
            for (size_t l = 0; l < 2; l++) o[2 * i + l] = q[4 * i + l] + q[4 * i + l + 2];
        for (size_t i = 0; i < 4; i++) c[j + i] = o[2 * i] + o[2 * i + 1];
    }
    for (; j < n; j++) {
        const float *bj = b + j * k;
        float acc[LANES] = {0};
        size_t p = 0;
        for (; p + LANES <= k; p += LANES)
            for (size_t l = 0; l < LANES; l++) acc[l] += a[p + l] * bj[p + l];
        for (size_t l = 0; p < k; p++, l++) acc[l] += a[p] * bj[p];
        for (size_t w = LANES / 2; w > 0; w /= 2)
            for (size_t l = 0; l < w; l++) acc[l] += acc[l + w];
        c[j] = acc[0];
    }
}

/* Tasks a thread of a threaded small product: b's rows are cut into this
 * many equal ranges per thread (the kernel reads each range in several
 * groups far apart, gemv_avx512.c), handed out as threads come free, so
 * that a thread that wakes late (OMP_WAIT_POLICY=PASSIVE, as the CLI sets it
 * on a busy machine) takes fewer; a token's step runs dozens of these
 * regions. Two a thread ran as fast as one (a static split) or four, and
 * faster than the 64-row tasks of before, whose neighbouring rows memory
 * served as one stream. */
#define SMALL_TASKS_PER_THREAD 2
/* Multiply-adds from which a small product runs on the threads: b then spans
 * megabytes, beyond the caches, and streaming it from memory on every core
 * is what makes a token's step fast (a parallel region costs microseconds). */
#define SMALL_PAR_WORK ((size_t)1 << 19)

/* c (m, n) = a (m, k) · bᵀ with b (n, k), row by row; b's rows are split
 * among the threads when the product is big enough, each output computed
 * by the level's kernel (gemv_avx512.c) or row_times_bt, which sum it the
 * same way (gemv_kern.h), so neither the threads nor the level change a bit. */
static void small_nt(float *c, const float *a, const float *b, size_t m, size_t k, size_t n)
{
    const int par = m * k * n >= SMALL_PAR_WORK;
    size_t tasks = par ? (size_t)attn_threads() * SMALL_TASKS_PER_THREAD : 1;
    if (tasks > n / 16) tasks = n / 16 ? n / 16 : 1; /* at least 16 rows a task */
    attn_gemv_fn kern = attn_gemv_kernel(attn_simd_level());
    if (!kern) kern = row_times_bt;
    ATTN_OMP_FOR_DYNAMIC_IF(tasks > 1)
    for (size_t t = 0; t < tasks; t++) {
        const size_t j0 = n * t / tasks, j1 = n * (t + 1) / tasks;
        for (size_t i = 0; i < m; i++) kern(c + i * n + j0, a + i * k, b + j0 * k, k, j1 - j0);
    }
}

/* Small products: row-times-matrix in i-p-j order, so the inner loop streams
 * rows of b and c contiguously and the compiler vectorises it. */
attn_status attn_matmul_forward(float *c, const float *a, const float *b, size_t m, size_t k,
                                size_t n, const attn_op_ctx *ctx)
{
    if (ctx && ctx->trace) return attn_matmul_ref(c, a, b, m, k, n);
    attn_status st = attn_check_matmul("matmul", c, a, b, m, k, n);
    if (st) return st;
    if (attn_matmul_through_gemm(m, k, n)) return gemm_large(c, a, b, m, k, n, 0);
    for (size_t i = 0; i < m; i++) {
        float *ci = c + i * n;
        memset(ci, 0, n * sizeof(float));
        for (size_t p = 0; p < k; p++) {
            const float aip = a[i * k + p];
            const float *bp = b + p * n;
            for (size_t j = 0; j < n; j++) ci[j] += aip * bp[j];
        }
    }
    return ATTN_OK;
}

attn_status attn_matmul_nt_forward(float *c, const float *a, const float *b, size_t m,
                                   size_t k, size_t n, const attn_op_ctx *ctx)
{
    if (ctx && ctx->trace) return attn_matmul_nt_ref(c, a, b, m, k, n);
    attn_status st = attn_check_matmul("matmul_nt", c, a, b, m, k, n);
    if (st) return st;
    if (attn_matmul_through_gemm(m, k, n)) return gemm_large(c, a, b, m, k, n, 1);
    small_nt(c, a, b, m, k, n);
    return ATTN_OK;
}

attn_status attn_matmul_backward(float *d_a, float *d_b, const float *d_c, const float *a,
                                 const float *b, size_t m, size_t k, size_t n)
{
    attn_status st = attn_check_matmul("matmul_backward", d_c, a, b, m, k, n);
    if (st) return st;
    /* d_a (M,K) += d_c (M,N) · bᵀ */
    if (d_a && attn_matmul_through_gemm(m, n, k)) {
        if ((st = attn_gemm(d_a, d_c, b, m, n, k, 0, 1, 1, ATTN_GEMM_AUTO))) return st;
    } else if (d_a) { /* row i of d_c dotted with row p of b */
        for (size_t i = 0; i < m; i++)
            for (size_t p = 0; p < k; p++) {
                const float *dci = d_c + i * n, *bp = b + p * n;
                float acc = 0.0f;
                for (size_t j = 0; j < n; j++) acc += dci[j] * bp[j];
                d_a[i * k + p] += acc;
            }
    }
    /* d_b (K,N) += aᵀ (K,M) · d_c (M,N) */
    if (d_b && attn_matmul_through_gemm(k, m, n)) {
        if ((st = attn_gemm(d_b, a, d_c, k, m, n, 1, 0, 1, ATTN_GEMM_AUTO))) return st;
    } else if (d_b) { /* rank-1 updates, contiguous rows */
        for (size_t i = 0; i < m; i++)
            for (size_t p = 0; p < k; p++) {
                const float aip = a[i * k + p];
                const float *dci = d_c + i * n;
                float *dbp = d_b + p * n;
                for (size_t j = 0; j < n; j++) dbp[j] += aip * dci[j];
            }
    }
    return ATTN_OK;
}

attn_status attn_matmul_nt_backward(float *d_a, float *d_b, const float *d_c, const float *a,
                                    const float *b, size_t m, size_t k, size_t n)
{
    attn_status st = attn_check_matmul("matmul_nt_backward", d_c, a, b, m, k, n);
    if (st) return st;
    /* d_a (M,K) += d_c (M,N) · b (N,K) */
    if (d_a && attn_matmul_through_gemm(m, n, k)) {
        if ((st = attn_gemm(d_a, d_c, b, m, n, k, 0, 0, 1, ATTN_GEMM_AUTO))) return st;
    } else if (d_a) {
        for (size_t i = 0; i < m; i++) {
            float *dai = d_a + i * k;
            for (size_t j = 0; j < n; j++) {
                const float g = d_c[i * n + j];
                const float *bj = b + j * k;
                for (size_t p = 0; p < k; p++) dai[p] += g * bj[p];
            }
        }
    }
    /* d_b (N,K) += d_cᵀ (N,M) · a (M,K) */
    if (d_b && attn_matmul_through_gemm(n, m, k)) {
        if ((st = attn_gemm(d_b, d_c, a, n, m, k, 1, 0, 1, ATTN_GEMM_AUTO))) return st;
    } else if (d_b) {
        for (size_t i = 0; i < m; i++) {
            const float *ai = a + i * k;
            for (size_t j = 0; j < n; j++) {
                const float g = d_c[i * n + j];
                float *dbj = d_b + j * k;
                for (size_t p = 0; p < k; p++) dbj[p] += g * ai[p];
            }
        }
    }
    return ATTN_OK;
}
