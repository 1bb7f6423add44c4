/* softmax.c - numerically safe row softmax. */
#include "attn/ops.h"

#include <math.h>

#include "op_check.h"

static attn_status check(const float *y, const float *x, size_t rows, size_t cols)
{
    size_t tmp;
    if (!y || !x) return attn_error(ATTN_E_INVALID, "softmax: NULL buffer");
    if (!rows || !cols)
        return attn_error(ATTN_E_INVALID, "softmax: sizes must be > 0, got rows=%zu cols=%zu",
                          rows, cols);
    return attn_mul_sizes("softmax", rows, cols, &tmp);
}

/* The row maximum, -inf for an all -inf row; NaN if the row holds a NaN (so
 * that it propagates instead of being silently skipped by comparisons). */
static float row_max(const float *x, size_t cols)
{
    float m = -INFINITY;
    for (size_t j = 0; j < cols; j++) {
        if (isnan(x[j])) return NAN;
        if (x[j] > m) m = x[j];
    }
    return m;
}

attn_status attn_softmax_ref(float *y, const float *x, size_t rows, size_t cols)
{
    attn_status st = check(y, x, rows, cols);
    if (st) return st;
    for (size_t i = 0; i < rows; i++) {
        const float *xi = x + i * cols;
        float *yi = y + i * cols;
        float m = row_max(xi, cols);
        if (m == -INFINITY) { /* nothing to attend to: zeros, not 0/0 */
            for (size_t j = 0; j < cols; j++) yi[j] = 0.0f;
            continue;
        }
        double sum = 0.0;
        for (size_t j = 0; j < cols; j++) sum += exp((double)xi[j] - (double)m);
        for (size_t j = 0; j < cols; j++) yi[j] = (float)(exp((double)xi[j] - (double)m) / sum);
    }
    return ATTN_OK;
}

attn_status attn_softmax_forward(float *y, const float *x, size_t rows, size_t cols,
                                 const attn_op_ctx *ctx)
{
    if (ctx && ctx->trace) return attn_softmax_ref(y, x, rows, cols);
    attn_status st = check(y, x, rows, cols);
    if (st) return st;
    for (size_t i = 0; i < rows; i++) {
        const float *xi = x + i * cols;
        float *yi = y + i * cols;
        float m = row_max(xi, cols);
        if (m == -INFINITY) {
            for (size_t j = 0; j < cols; j++) yi[j] = 0.0f;
            continue;
        }
        /* The max term contributes exp(0) = 1, so sum >= 1: no division by 0. */
        float sum = 0.0f;
        for (size_t j = 0; j < cols; j++) {
            yi[j] = expf(xi[j] - m);
            sum += yi[j];
        }
        const float inv = 1.0f / sum;
        for (size_t j = 0; j < cols; j++) yi[j] *= inv;
    }
    return ATTN_OK;
}

attn_status attn_softmax_backward(float *d_x, const float *d_y, const float *y, size_t rows,
                                  size_t cols)
{
    attn_status st = check(d_x, y, rows, cols);
    if (st) return st;
    if (!d_y) return attn_error(ATTN_E_INVALID, "softmax_backward: NULL buffer");
    for (size_t i = 0; i < rows; i++) {
        const float *yi = y + i * cols, *dyi = d_y + i * cols;
        float *dxi = d_x + i * cols;
        double dot = 0.0;
        for (size_t j = 0; j < cols; j++) dot += (double)dyi[j] * (double)yi[j];
        for (size_t j = 0; j < cols; j++) dxi[j] += yi[j] * (float)((double)dyi[j] - dot);
    }
    return ATTN_OK;
}
