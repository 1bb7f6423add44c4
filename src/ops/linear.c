/* linear.c - y = x · wᵀ + b, the projection of nn.Linear (w is (out, in)). */
#include "attn/ops.h"

#include <string.h>

#include "flash_bf16.h"
#include "gemm_bf16.h"
#include "matmul_int.h"
#include "omp_util.h"
#include "op_check.h"

/* y (rows, out) += bias (out) on every row: on the threads when large (each
 * element one add, so the bits do not depend on them). */
static void add_bias(float *restrict y, const float *restrict bias, size_t rows, size_t out)
{
    ATTN_OMP_FOR_IF(rows * out >= ATTN_OMP_MIN_WORK && rows > 1)
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < out; j++) y[i * out + j] += bias[j];
}

/* Columns of d_bias per task: one cache line of each row of d_y. */
#define BIAS_COLS 16

/* d_bias (out) += the sum over rows of d_y (rows, out): each column summed in
 * row order by one task (slabs of BIAS_COLS columns), so the bits are those
 * of the serial loop whatever the threads. */
static void sum_bias(float *d_bias, const float *d_y, size_t rows, size_t out)
{
    const size_t slabs = (out + BIAS_COLS - 1) / BIAS_COLS;
    ATTN_OMP_FOR_IF(rows * out >= ATTN_OMP_MIN_WORK && slabs > 1)
    for (size_t s = 0; s < slabs; s++) {
        const size_t j0 = s * BIAS_COLS, w = out - j0 < BIAS_COLS ? out - j0 : BIAS_COLS;
        /* the slab's sums in registers: d_bias may alias nothing the compiler
         * can prove, so summing into it directly was a store per add */
        float acc[BIAS_COLS];
        for (size_t j = 0; j < w; j++) acc[j] = d_bias[j0 + j];
        if (w == BIAS_COLS)
            for (size_t i = 0; i < rows; i++)
                for (size_t j = 0; j < BIAS_COLS; j++) acc[j] += d_y[i * out + j0 + j];
        else
            for (size_t i = 0; i < rows; i++)
                for (size_t j = 0; j < w; j++) acc[j] += d_y[i * out + j0 + j];
        for (size_t j = 0; j < w; j++) d_bias[j0 + j] = acc[j];
    }
}

/* Whether a product of this shape runs in the AVX-512 BF16 GEMM (bf16
 * precision, a CPU that has it, large enough), whose epilogues add the bias
 * and sum its gradient in the passes it makes anyway, with the same bits as
 * add_bias and sum_bias. */
static int fused_bf16(size_t m, size_t k, size_t n)
{
    return attn_gemm_precision() == ATTN_PRECISION_BF16 && attn_fk_bf16() &&
           attn_matmul_through_gemm(m, k, n);
}

attn_status attn_linear_forward(float *y, const float *x, const float *w, const float *bias,
                                size_t rows, size_t in, size_t out)
{
    if (bias && fused_bf16(rows, in, out)) {
        attn_status st = attn_check_matmul("matmul_nt", y, x, w, rows, in, out);
        /* y (rows, out) = x (rows, in) · w (out, in)ᵀ + bias */
        return st ? st : attn_gemm_bf16_fused(y, x, w, rows, in, out, 0, 1, 0, bias, NULL);
    }
    attn_status st = attn_matmul_nt_forward(y, x, w, rows, in, out, NULL);
    if (st || !bias) return st;
    add_bias(y, bias, rows, out);
    return ATTN_OK;
}

attn_status attn_linear_backward(float *d_x, float *d_w, float *d_bias, const float *d_y,
                                 const float *x, const float *w, size_t rows, size_t in,
                                 size_t out)
{
    if (d_w && d_bias && fused_bf16(out, rows, in)) {
        attn_status st = attn_check_matmul("matmul_nt_backward", d_y, x, w, rows, in, out);
        if (!st && d_x) st = attn_matmul_nt_backward(d_x, NULL, d_y, x, w, rows, in, out);
        /* d_w (out, in) += d_yᵀ (out, rows) · x (rows, in); d_bias += d_y's column sums */
        return st ? st : attn_gemm_bf16_fused(d_w, d_y, x, out, rows, in, 1, 0, 1, NULL, d_bias);
    }
    attn_status st = attn_matmul_nt_backward(d_x, d_w, d_y, x, w, rows, in, out);
    if (st || !d_bias) return st;
    sum_bias(d_bias, d_y, rows, out);
    return ATTN_OK;
}

attn_status attn_linear_backward_set(float *d_x, float *d_w, float *d_bias, const float *d_y,
                                     const float *x, const float *w, size_t rows, size_t in,
                                     size_t out)
{
    if (!d_x) return attn_linear_backward(NULL, d_w, d_bias, d_y, x, w, rows, in, out);
    attn_status st = attn_check_matmul("linear_backward_set", d_y, x, w, rows, in, out);
    if (st) return st;
    /* below the GEMM's size attn_matmul_nt_backward's loops add to d_x */
    if (!attn_matmul_through_gemm(rows, out, in)) {
        memset(d_x, 0, rows * in * sizeof(float));
        return attn_linear_backward(d_x, d_w, d_bias, d_y, x, w, rows, in, out);
    }
    /* d_x (rows, in) = d_y (rows, out) · w (out, in) */
    st = attn_gemm(d_x, d_y, w, rows, out, in, 0, 0, 0, ATTN_GEMM_AUTO);
    return st ? st : attn_linear_backward(NULL, d_w, d_bias, d_y, x, w, rows, in, out);
}
