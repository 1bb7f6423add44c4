/* ln_kern.h - the layer norm's row kernels, one table per instruction set
 * (internal; ln_kern.c). All give the same bits: the sums are LN_LANES interleaved partial sums added up
 * by the same tree, and every product and sum is rounded on its own (no FMA
 * contraction), so the training's losses do not depend on the level. */
#ifndef ATTN_LN_KERN_H
#define ATTN_LN_KERN_H

#include <stddef.h>

#include "attn/cpu.h"

/* Lanes of the row sums; the tree adds lane l + w into lane l for
 * w = 8, 4, 2, 1. Elements past the last full group of LN_LANES go to lanes
 * 0, 1, ... in order. */
#define LN_LANES 16
/* Columns per block of the parameter gradients. */
#define LN_COLS 64

typedef struct ln_kern {
    /* One row: y (dim) = (x − m)·r·w (+ b); m = mean, r = 1/sqrt(var + eps)
     * into *m_out, *r_out. b may be NULL. */
    void (*fwd_row)(float *y, float *m_out, float *r_out, const float *x, const float *w,
                    const float *b, size_t dim, float eps);
    /* One row of d_x += r·(g − mean(g) − x̂·mean(g∘x̂)), g = d_y∘w, x̂ = (x − m)·r. */
    void (*bwd_row)(float *d_x, const float *d_y, const float *x, const float *w, float m,
                    float r, size_t dim);
    /* sw[j] += Σ_i d_y[i][j]·x̂[i][j] and sb[j] += Σ_i d_y[i][j], rows in order,
     * for the cols (<= LN_COLS) columns at d_y, x (rows ld apart). */
    void (*param_cols)(float *sw, float *sb, const float *d_y, const float *x, const float *mean,
                       const float *rstd, size_t rows, size_t ld, size_t cols);
} ln_kern;

const ln_kern *attn_ln_kern(attn_simd level);

#endif
