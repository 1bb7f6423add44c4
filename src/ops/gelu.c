/* gelu.c - GELU with the tanh approximation of GPT-2, forward and backward. */
#include <math.h>

#include "attn/ops_nn.h"
#include "omp_util.h"

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_C 0.044715f

attn_status attn_gelu_forward(float *y, const float *x, size_t n)
{
    if (!y || !x) return attn_error(ATTN_E_INVALID, "gelu: NULL buffer");
    if (!n) return attn_error(ATTN_E_INVALID, "gelu: size must be > 0");
    ATTN_OMP_FOR_IF(n >= 4 * ATTN_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        const float v = x[i];
        y[i] = 0.5f * v * (1.0f + tanhf(GELU_K * (v + GELU_C * v * v * v)));
    }
    return ATTN_OK;
}

attn_status attn_gelu_ref(float *y, const float *x, size_t n)
{
    if (!y || !x) return attn_error(ATTN_E_INVALID, "gelu_ref: NULL buffer");
    if (!n) return attn_error(ATTN_E_INVALID, "gelu_ref: size must be > 0");
    const double k = sqrt(2.0 / 3.14159265358979323846);
    for (size_t i = 0; i < n; i++) {
        const double v = x[i];
        y[i] = (float)(0.5 * v * (1.0 + tanh(k * (v + 0.044715 * v * v * v))));
    }
    return ATTN_OK;
}

/* d/dx = 0.5 (1 + t) + 0.5 x (1 − t²) k (1 + 3c x²),  t = tanh(k (x + c x³)) */
attn_status attn_gelu_backward(float *d_x, const float *d_y, const float *x, size_t n)
{
    if (!d_x || !d_y || !x) return attn_error(ATTN_E_INVALID, "gelu_backward: NULL buffer");
    if (!n) return attn_error(ATTN_E_INVALID, "gelu_backward: size must be > 0");
    ATTN_OMP_FOR_IF(n >= 4 * ATTN_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        const float v = x[i];
        const float t = tanhf(GELU_K * (v + GELU_C * v * v * v));
        const float g = 0.5f * (1.0f + t) +
                        0.5f * v * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * v * v);
        d_x[i] += g * d_y[i];
    }
    return ATTN_OK;
}
