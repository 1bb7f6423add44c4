/* linear.c - y = x · wᵀ + b, the projection of nn.Linear (w is (out, in)). */
#include "attn/ops.h"

#include "op_check.h"

attn_status attn_linear_forward(float *y, const float *x, const float *w, const float *bias,
                                size_t rows, size_t in, size_t out)
{
    attn_status st = attn_matmul_nt_forward(y, x, w, rows, in, out, NULL);
    if (st || !bias) return st;
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < out; j++) y[i * out + j] += bias[j];
    return ATTN_OK;
}

attn_status attn_linear_backward(float *d_x, float *d_w, float *d_bias, const float *d_y,
                                 const float *x, const float *w, size_t rows, size_t in,
                                 size_t out)
{
    attn_status st = attn_matmul_nt_backward(d_x, d_w, d_y, x, w, rows, in, out);
    if (st || !d_bias) return st;
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < out; j++) d_bias[j] += d_y[i * out + j];
    return ATTN_OK;
}
