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

/* Large products go through CBLAS when the library has one, else through the
 * built-in blocked SIMD kernel (gemm.c); small ones through the loops below. */
#define GEMM_LARGE (64.0 * 64.0 * 64.0)

static int large(size_t m, size_t k, size_t n)
{
    return (double)m * (double)k * (double)n >= GEMM_LARGE && m >= 16 && n >= 16;
}

static attn_status gemm_large(float *c, const float *a, const float *b, size_t m, size_t k,
                              size_t n, int trans_b)
{
    if (attn_have_cblas()) return attn_gemm_cblas(c, a, b, m, k, n, trans_b);
    return attn_gemm_builtin(c, a, b, m, k, n, trans_b);
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
        for (size_t j = 0; j < n; j++) {
            const float *bj = b + j * k;
            /* Four partial sums let the compiler keep several FMAs in flight. */
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            size_t p = 0;
            for (; p + 4 <= k; p += 4) {
                s0 += ai[p] * bj[p];
                s1 += ai[p + 1] * bj[p + 1];
                s2 += ai[p + 2] * bj[p + 2];
                s3 += ai[p + 3] * bj[p + 3];
            }
            for (; p < k; p++) s0 += ai[p] * bj[p];
            c[i * n + j] = (s0 + s1) + (s2 + s3);
        }
    }
    return ATTN_OK;
}

attn_status attn_matmul_backward(float *d_a, float *d_b, const float *d_c, const float *a,
                                 const float *b, size_t m, size_t k, size_t n)
{
    attn_status st = attn_check_matmul("matmul_backward", d_c, a, b, m, k, n);
    if (st) return st;
    if (d_a) /* d_a (M,K) += d_c (M,N) · bᵀ: row i of d_c dotted with row p of b */
        for (size_t i = 0; i < m; i++)
            for (size_t p = 0; p < k; p++) {
                const float *dci = d_c + i * n, *bp = b + p * n;
                float acc = 0.0f;
                for (size_t j = 0; j < n; j++) acc += dci[j] * bp[j];
                d_a[i * k + p] += acc;
            }
    if (d_b) /* d_b (K,N) += aᵀ (K,M) · d_c (M,N): rank-1 updates, contiguous rows */
        for (size_t i = 0; i < m; i++)
            for (size_t p = 0; p < k; p++) {
                const float aip = a[i * k + p];
                const float *dci = d_c + i * n;
                float *dbp = d_b + p * n;
                for (size_t j = 0; j < n; j++) dbp[j] += aip * dci[j];
            }
    return ATTN_OK;
}

attn_status attn_matmul_nt_backward(float *d_a, float *d_b, const float *d_c, const float *a,
                                    const float *b, size_t m, size_t k, size_t n)
{
    attn_status st = attn_check_matmul("matmul_nt_backward", d_c, a, b, m, k, n);
    if (st) return st;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            const float g = d_c[i * n + j];
            if (d_a) { /* d_a (M,K) += d_c · b (N,K) */
                float *dai = d_a + i * k;
                const float *bj = b + j * k;
                for (size_t p = 0; p < k; p++) dai[p] += g * bj[p];
            }
            if (d_b) { /* d_b (N,K) += d_cᵀ · a (M,K) */
                float *dbj = d_b + j * k;
                const float *ai = a + i * k;
                for (size_t p = 0; p < k; p++) dbj[p] += g * ai[p];
            }
        }
    return ATTN_OK;
}
