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

/* Σ x[j] and Σ (x[j] − m)² in LANES interleaved partial sums, added up in a
 * fixed order: the compiler vectorises them (a plain running sum it may not
 * reorder), and the result depends on dim alone. */
#define LANES 16
/* Columns per block of the parameter gradients. */
#define LN_COLS 64

static float sum_lanes(const float *x, size_t n)
{
    float acc[LANES] = {0};
    size_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (size_t l = 0; l < LANES; l++) acc[l] += x[j + l];
    for (size_t l = 0; j < n; j++, l++) acc[l] += x[j];
    for (size_t w = LANES / 2; w > 0; w /= 2)
        for (size_t l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

static float sq_dev_lanes(const float *x, float m, size_t n)
{
    float acc[LANES] = {0};
    size_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (size_t l = 0; l < LANES; l++) {
            const float d = x[j + l] - m;
            acc[l] += d * d;
        }
    for (size_t l = 0; j < n; j++, l++) {
        const float d = x[j] - m;
        acc[l] += d * d;
    }
    for (size_t w = LANES / 2; w > 0; w /= 2)
        for (size_t l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

/* One row: y (dim) = LayerNorm(x (dim)); its mean and 1/σ into *m, *r. */
static void ln_row(float *yi, float *m_out, float *r_out, const float *xi, const float *w,
                   const float *b, size_t dim, float eps)
{
    const float m = sum_lanes(xi, dim) / (float)dim;
    const float v = sq_dev_lanes(xi, m, dim);
    const float r = 1.0f / sqrtf(v / (float)dim + eps);
    if (b)
        for (size_t j = 0; j < dim; j++) yi[j] = (xi[j] - m) * r * w[j] + b[j];
    else
        for (size_t j = 0; j < dim; j++) yi[j] = (xi[j] - m) * r * w[j];
    *m_out = m, *r_out = r;
}

static attn_status layernorm_run(float *y, float *mean, float *rstd, const float *x,
                                 const float *w, const float *b, size_t rows, size_t dim,
                                 float eps)
{
    attn_status st = check("layernorm", y, x, w, rows, dim);
    if (st) return st;
    if (!mean != !rstd)
        return attn_error(ATTN_E_INVALID, "layernorm: mean and rstd go together");
    float m, r;
    /* Small inputs (a generated token's row) skip the parallel region: even
     * with a false if clause it costs libgomp a futex call, more than the row. */
    if (rows * dim < 2 * ATTN_OMP_MIN_WORK) {
        for (size_t i = 0; i < rows; i++) {
            ln_row(y + i * dim, &m, &r, x + i * dim, w, b, dim, eps);
            if (mean) mean[i] = m, rstd[i] = r;
        }
        return ATTN_OK;
    }
    ATTN_OMP_FOR_IF(1)
    for (size_t i = 0; i < rows; i++) {
        float mi, ri;
        ln_row(y + i * dim, &mi, &ri, x + i * dim, w, b, dim, eps);
        if (mean) mean[i] = mi, rstd[i] = ri;
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
    ATTN_OMP_FOR_IF(rows * dim >= 2 * ATTN_OMP_MIN_WORK)
    for (size_t i = 0; i < rows; i++) {
        const float *xi = x + i * dim, *dyi = d_y + i * dim;
        float *dxi = d_x + i * dim;
        const float m = mean[i], r = rstd[i];
        float ag[LANES] = {0}, agx[LANES] = {0};
        size_t j = 0;
        for (; j + LANES <= dim; j += LANES)
            for (size_t l = 0; l < LANES; l++) {
                const float g = dyi[j + l] * w[j + l];
                ag[l] += g;
                agx[l] += g * (xi[j + l] - m) * r;
            }
        for (size_t l = 0; j < dim; j++, l++) {
            const float g = dyi[j] * w[j];
            ag[l] += g;
            agx[l] += g * (xi[j] - m) * r;
        }
        for (size_t wd = LANES / 2; wd > 0; wd /= 2)
            for (size_t l = 0; l < wd; l++) ag[l] += ag[l + wd], agx[l] += agx[l + wd];
        const float sg = ag[0] / (float)dim, sgx = agx[0] / (float)dim;
        for (j = 0; j < dim; j++) {
            const float xh = (xi[j] - m) * r;
            dxi[j] += r * (dyi[j] * w[j] - sg - xh * sgx);
        }
    }
    /* Parameter gradients: blocks of columns in parallel, rows in order within
     * each column (vectorised across the block's columns). */
    if (d_w || d_b) {
        const size_t nblk = (dim + LN_COLS - 1) / LN_COLS;
        ATTN_OMP_FOR_IF(rows * dim >= 2 * ATTN_OMP_MIN_WORK)
        for (size_t blk = 0; blk < nblk; blk++) {
            const size_t j0 = blk * LN_COLS, cols = dim - j0 < LN_COLS ? dim - j0 : LN_COLS;
            float sw[LN_COLS] = {0}, sb[LN_COLS] = {0};
            for (size_t i = 0; i < rows; i++) {
                const float *dyi = d_y + i * dim + j0, *xi = x + i * dim + j0;
                const float m = mean[i], r = rstd[i];
                for (size_t j = 0; j < cols; j++) {
                    sw[j] += dyi[j] * ((xi[j] - m) * r);
                    sb[j] += dyi[j];
                }
            }
            for (size_t j = 0; j < cols; j++) {
                if (d_w) d_w[j0 + j] += sw[j];
                if (d_b) d_b[j0 + j] += sb[j];
            }
        }
    }
    return ATTN_OK;
}

attn_status attn_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                                   const float *w, const float *b, size_t rows, size_t dim,
                                   float eps, const attn_op_ctx *ctx)
{
    attn_status st = layernorm_run(y, mean, rstd, x, w, b, rows, dim, eps);
    if (!st) st = attn_op_record(ctx, "output", y, rows, dim, "token", "dim");
    if (!st && mean) st = attn_op_record(ctx, "mean", mean, rows, 1, "token", NULL);
    if (!st && rstd) st = attn_op_record(ctx, "rstd", rstd, rows, 1, "token", NULL);
    return st;
}
