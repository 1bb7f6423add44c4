/* layernorm.c - torch.nn.LayerNorm over the last dimension, forward and backward. */
#include <math.h>
#include <string.h>

#include "attn/ops_nn.h"
#include "omp_util.h"
#include "op_check.h"

static attn_status check(const char *op, const void *y, const void *x, const void *w,
                         size_t rows, size_t dim)
{
    size_t tmp;
    if (!y || !x || !w) return attn_error(ATTN_E_INVALID, "%s: NULL buffer", op);
    if (!rows || !dim)
        return attn_error(ATTN_E_INVALID, "%s: sizes must be > 0, got rows=%zu dim=%zu", op, rows,
                          dim);
    return attn_mul_sizes(op, rows, dim, &tmp);
}

attn_status attn_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                                   const float *w, const float *b, size_t rows, size_t dim,
                                   float eps)
{
    attn_status st = check("layernorm", y, x, w, rows, dim);
    if (st) return st;
    if (!mean != !rstd)
        return attn_error(ATTN_E_INVALID, "layernorm: mean and rstd go together");
    ATTN_OMP_FOR_IF(rows * dim >= ATTN_OMP_MIN_WORK)
    for (size_t i = 0; i < rows; i++) {
        const float *xi = x + i * dim;
        float *yi = y + i * dim;
        float s = 0.0f;
        for (size_t j = 0; j < dim; j++) s += xi[j];
        const float m = s / (float)dim;
        float v = 0.0f;
        for (size_t j = 0; j < dim; j++) {
            const float d = xi[j] - m;
            v += d * d;
        }
        const float r = 1.0f / sqrtf(v / (float)dim + eps);
        for (size_t j = 0; j < dim; j++) {
            const float n = (xi[j] - m) * r;
            yi[j] = n * w[j] + (b ? b[j] : 0.0f);
        }
        if (mean) mean[i] = m, rstd[i] = r;
    }
    return ATTN_OK;
}

attn_status attn_layernorm_ref(float *y, const float *x, const float *w, const float *b,
                               size_t rows, size_t dim, float eps)
{
    attn_status st = check("layernorm_ref", y, x, w, rows, dim);
    if (st) return st;
    for (size_t i = 0; i < rows; i++) {
        const float *xi = x + i * dim;
        double m = 0.0, v = 0.0;
        for (size_t j = 0; j < dim; j++) m += xi[j];
        m /= (double)dim;
        for (size_t j = 0; j < dim; j++) v += (xi[j] - m) * (xi[j] - m);
        const double r = 1.0 / sqrt(v / (double)dim + eps);
        for (size_t j = 0; j < dim; j++)
            y[i * dim + j] = (float)((xi[j] - m) * r * w[j] + (b ? b[j] : 0.0));
    }
    return ATTN_OK;
}

/* With x̂ = (x - mean)·rstd and g = d_y ∘ w:
 *   d_x = rstd · (g − mean(g) − x̂ · mean(g ∘ x̂)). */
attn_status attn_layernorm_backward(float *d_x, float *d_w, float *d_b, const float *d_y,
                                    const float *x, const float *w, const float *mean,
                                    const float *rstd, size_t rows, size_t dim)
{
    attn_status st = check("layernorm_backward", d_x, x, w, rows, dim);
    if (st) return st;
    if (!d_y || !mean || !rstd) return attn_error(ATTN_E_INVALID, "layernorm_backward: NULL buffer");
    ATTN_OMP_FOR_IF(rows * dim >= ATTN_OMP_MIN_WORK)
    for (size_t i = 0; i < rows; i++) {
        const float *xi = x + i * dim, *dyi = d_y + i * dim;
        float *dxi = d_x + i * dim;
        const float m = mean[i], r = rstd[i];
        float sg = 0.0f, sgx = 0.0f;
        for (size_t j = 0; j < dim; j++) {
            const float g = dyi[j] * w[j];
            sg += g;
            sgx += g * (xi[j] - m) * r;
        }
        sg /= (float)dim, sgx /= (float)dim;
        for (size_t j = 0; j < dim; j++) {
            const float xh = (xi[j] - m) * r;
            dxi[j] += r * (dyi[j] * w[j] - sg - xh * sgx);
        }
    }
    /* Parameter gradients: columns in parallel, rows in order. */
    if (d_w || d_b) {
        ATTN_OMP_FOR_IF(rows * dim >= ATTN_OMP_MIN_WORK)
        for (size_t j = 0; j < dim; j++) {
            float sw = 0.0f, sb = 0.0f;
            for (size_t i = 0; i < rows; i++) {
                const float dy = d_y[i * dim + j];
                sw += dy * (x[i * dim + j] - mean[i]) * rstd[i];
                sb += dy;
            }
            if (d_w) d_w[j] += sw;
            if (d_b) d_b[j] += sb;
        }
    }
    return ATTN_OK;
}
