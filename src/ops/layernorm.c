/* layernorm.c - torch.nn.LayerNorm over the last dimension, forward and backward. */
#include <math.h>
#include <string.h>

#include "attn/ops_nn.h"
#include "ln_kern.h"
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

/* One row of the forward; with x2, s = x + x2 first (s: the row of the sum,
 * written, then normalised from cache). */
static inline void fwd_row(const ln_kern *K, size_t i, float *y, float *mean, float *rstd,
                           float *s, const float *x, const float *x2, const float *w,
                           const float *b, size_t dim, float eps)
{
    const float *xi = x + i * dim;
    if (x2) {
        float *si = s + i * dim;
        const float *x2i = x2 + i * dim;
        for (size_t j = 0; j < dim; j++) si[j] = xi[j] + x2i[j];
        xi = si;
    }
    float m, r;
    K->fwd_row(y + i * dim, &m, &r, xi, w, b, dim, eps);
    if (mean) mean[i] = m, rstd[i] = r;
}

static attn_status layernorm_run(float *y, float *mean, float *rstd, float *s, const float *x,
                                 const float *x2, const float *w, const float *b, size_t rows,
                                 size_t dim, float eps)
{
    attn_status st = check("layernorm", y, x, w, rows, dim);
    if (st) return st;
    if (!mean != !rstd)
        return attn_error(ATTN_E_INVALID, "layernorm: mean and rstd go together");
    if (x2 && !s) return attn_error(ATTN_E_INVALID, "add_layernorm: NULL buffer");
    const ln_kern *K = attn_ln_kern(attn_simd_level());
    /* Small inputs (a generated token's row) skip the parallel region: even
     * with a false if clause it costs libgomp a futex call, more than the row. */
    if (rows * dim < 2 * ATTN_OMP_MIN_WORK) {
        for (size_t i = 0; i < rows; i++) fwd_row(K, i, y, mean, rstd, s, x, x2, w, b, dim, eps);
        return ATTN_OK;
    }
    ATTN_OMP_FOR_IF(1)
    for (size_t i = 0; i < rows; i++) fwd_row(K, i, y, mean, rstd, s, x, x2, w, b, dim, eps);
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
    const ln_kern *K = attn_ln_kern(attn_simd_level());
    /* Rows of d_x, then blocks of columns of the parameter gradients (rows in
     * order within each column): one region, no barrier between the two (they
     * write apart and only read what both read). */
    const size_t nblk = d_w || d_b ? (dim + LN_COLS - 1) / LN_COLS : 0;
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel if (rows * dim >= 2 * ATTN_OMP_MIN_WORK)
#endif
    {
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(static) nowait
#endif
        for (size_t i = 0; i < rows; i++)
            K->bwd_row(d_x + i * dim, d_y + i * dim, x + i * dim, w, mean[i], rstd[i], dim);
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
        for (size_t blk = 0; blk < nblk; blk++) {
            const size_t j0 = blk * LN_COLS, cols = dim - j0 < LN_COLS ? dim - j0 : LN_COLS;
            float sw[LN_COLS] = {0}, sb[LN_COLS] = {0};
            K->param_cols(sw, sb, d_y + j0, x + j0, mean, rstd, rows, dim, cols);
            for (size_t j = 0; j < cols; j++) {
                if (d_w) d_w[j0 + j] += sw[j];
                if (d_b) d_b[j0 + j] += sb[j];
            }
        }
    }
    return ATTN_OK;
}

static attn_status record(const attn_op_ctx *ctx, const float *y, const float *mean,
                          const float *rstd, size_t rows, size_t dim)
{
    attn_status st = attn_op_record(ctx, "output", y, rows, dim, "token", "dim");
    if (!st && mean) st = attn_op_record(ctx, "mean", mean, rows, 1, "token", NULL);
    if (!st && rstd) st = attn_op_record(ctx, "rstd", rstd, rows, 1, "token", NULL);
    return st;
}

attn_status attn_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                                   const float *w, const float *b, size_t rows, size_t dim,
                                   float eps, const attn_op_ctx *ctx)
{
    attn_status st = layernorm_run(y, mean, rstd, NULL, x, NULL, w, b, rows, dim, eps);
    return st ? st : record(ctx, y, mean, rstd, rows, dim);
}

attn_status attn_add_layernorm_forward(float *s, float *y, float *mean, float *rstd,
                                       const float *x1, const float *x2, const float *w,
                                       const float *b, size_t rows, size_t dim, float eps,
                                       const attn_op_ctx *ctx)
{
    if (!x2) return attn_error(ATTN_E_INVALID, "add_layernorm: NULL buffer");
    attn_status st = layernorm_run(y, mean, rstd, s, x1, x2, w, b, rows, dim, eps);
    return st ? st : record(ctx, y, mean, rstd, rows, dim);
}
