/* matmul.c - c = a·b and c = a·bᵀ, reference and default kernels. */
#include "attn/ops.h"

#include <string.h>

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

static int large(size_t m, size_t k, size_t n)
{
    return (double)m * (double)k * (double)n >= GEMM_LARGE && m >= 16 && n >= 16;
}

static attn_status gemm_large(float *c, const float *a, const float *b, size_t m, size_t k,
                              size_t n, int trans_b)
{
    return attn_gemm(c, a, b, m, k, n, 0, trans_b, 0, ATTN_GEMM_AUTO);
}

/* Σ a[p]·b[p] in 16 interleaved partial sums added up in a fixed order: the
 * compiler turns them into vector multiply-adds (one running sum it may not
 * reorder). This is the whole cost of a one-row product, e.g. a token's step
 * in generation with a KV cache. */
#define LANES 16
static float dot_lanes(const float *a, const float *b, size_t k)
{
    float acc[LANES] = {0};
    size_t p = 0;
    for (; p + LANES <= k; p += LANES)
        for (size_t l = 0; l < LANES; l++) acc[l] += a[p + l] * b[p + l];
    for (size_t l = 0; p < k; p++, l++) acc[l] += a[p] * b[p];
    for (size_t w = LANES / 2; w > 0; w /= 2)
        for (size_t l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

/* Small products: row-times-matrix in i-p-j order, so the inner loop streams
 * rows of b and c contiguously and the compiler vectorises it. */
attn_status attn_matmul_forward(float *c, const float *a, const float *b, size_t m, size_t k,
                                size_t n, const attn_op_ctx *ctx)
{
    if (ctx && ctx->trace) return attn_matmul_ref(c, a, b, m, k, n);
    attn_status st = attn_check_matmul("matmul", c, a, b, m, k, n);
    if (st) return st;
    if (large(m, k, n)) return gemm_large(c, a, b, m, k, n, 0);
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
    if (large(m, k, n)) return gemm_large(c, a, b, m, k, n, 1);
    for (size_t i = 0; i < m; i++) {
        const float *ai = a + i * k;
        for (size_t j = 0; j < n; j++) c[i * n + j] = dot_lanes(ai, b + j * k, k);
    }
    return ATTN_OK;
}

attn_status attn_matmul_backward(float *d_a, float *d_b, const float *d_c, const float *a,
                                 const float *b, size_t m, size_t k, size_t n)
{
    attn_status st = attn_check_matmul("matmul_backward", d_c, a, b, m, k, n);
    if (st) return st;
    /* d_a (M,K) += d_c (M,N) · bᵀ */
    if (d_a && large(m, n, k)) {
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
    if (d_b && large(k, m, n)) {
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
    if (d_a && large(m, n, k)) {
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
    if (d_b && large(n, m, k)) {
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
