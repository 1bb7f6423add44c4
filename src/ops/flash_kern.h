/* flash_kern.h - the SIMD kernels behind fused attention and the built-in
 * GEMM (internal). One table per instruction set; flash_simd.c fills them
 * from one template (flash_tmpl.h). */
#ifndef ATTN_FLASH_KERN_H
#define ATTN_FLASH_KERN_H

#include <stddef.h>
#include <stdint.h>

#include "attn/ops.h"

/* Keys per block: the score tiles are (rows, FK_BC). */
#define FK_BC 64
/* Lanes of the online softmax's per-row partial sums (the widest vector). */
#define FK_LANES 16

typedef struct fk_table {
    /* C[r][c] = base + Σ_{t<T} A[r·ars + t·ats] · B[t·ldb + c]   (r < rows, c < ncols)
     * base = 0 (accumulate == 0), C[r][c] (accumulate, rowscale NULL) or
     * rowscale[r]·C[r][c]. ncols is a multiple of 16. */
    void (*gemm)(float *c, size_t ldc, const float *a, size_t ars, size_t ats, const float *b,
                 size_t ldb, size_t rows, size_t ncols, size_t t, const float *rowscale,
                 int accumulate);
    /* Online softmax over a (rows, FK_BC) tile of masked scores in log2
     * units (s·log2e: the forward scales Q and additive masks by it): updates
     * the running max m (log2 units) and the sums l (rows, FK_LANES): lane by
     * lane partial sums, lanes past the vector width left alone, added up by
     * the caller at the end), writes 2^(s − m) in place (the softmax's exp2:
     * flash_simd.c) and the factor alpha[r] = 2^(m_old − m_new) that rescales
     * the output accumulator. */
    void (*softmax_online)(float *s, size_t rows, float *m, float *l, float *alpha);
    /* s = q·kt (q (rows, dk), kt (dk, FK_BC)) then softmax_online on it, the
     * same bits; AVX-512 keeps the scores in registers. pa, pb (or NULL):
     * pf_bytes each that the caller reads next, prefetched along the way. */
    void (*qk_softmax)(float *s, const float *q, size_t dk, const float *kt, size_t rows, float *m,
                       float *l, float *alpha, const void *pa, const void *pb, size_t pf_bytes);
    /* s = exp(s − lse[r]) (0 for a row whose lse is -inf), by the softmax's exp. */
    void (*probs)(float *s, size_t rows, const float *lse);
    /* dp = p ∘ (dp − dd[r]). */
    void (*dsoft)(float *dp, const float *p, size_t rows, const float *dd);
    /* The backward's unmasked pairs, the bits of gemm then probs / dsoft
     * without the tile's round trip: s = q·kt (q (rows, dk) ldq apart, kt
     * (dk, FK_BC)) then probs(s, rows, lse); ds = dout·vt (dout (rows, dv)
     * ldo apart, vt (dv, FK_BC)) then dsoft(ds, p, rows, dd). */
    void (*qk_probs)(float *s, const float *q, size_t ldq, const float *kt, size_t dk,
                     size_t rows, const float *lse);
    void (*dp_dsoft)(float *ds, const float *dout, size_t ldo, const float *vt, size_t dv,
                     size_t rows, const float *p, const float *dd);
    /* row[c] += f·src[c], c < FK_BC (one rounding: f = 1 adds). */
    void (*add_row)(float *row, const float *src, float f);
    /* row[c] = -inf where b[c] == 0, c < FK_BC. */
    void (*bool_row)(float *row, const uint8_t *b);
    /* out[i] = exp(x[i]) for n values through the vector exp, or (softmax)
     * the softmax's (tests of both). */
    void (*exp_n)(float *out, const float *x, size_t n, int softmax);
    /* GELU (tanh form) through the vector exp: y = x·σ(2u), u = k(x + c x³),
     * since 0.5(1 + tanh u) = σ(2u); and its backward d_x += g(x)·d_y. */
    void (*gelu_fwd)(float *y, const float *x, size_t n);
    void (*gelu_bwd)(float *d_x, const float *d_y, const float *x, size_t n);
    /* dst[c·ldd + r] = src[r·lds + c] for r < rows, c < cols (the packing of
     * K and V blocks: AVX-512 by 16 × 16 blocks in registers). */
    void (*transpose)(float *dst, size_t ldd, const float *src, size_t lds, size_t rows,
                      size_t cols);
    /* Brings bytes from p into the cache ahead of use (nothing in C). */
    void (*prefetch)(const void *p, size_t bytes);
    /* out (dv) = softmax(factor · k · q) · v for one query: q (dk), k (s, dk),
     * v (s, dv), p (s) scratch: a decode step's attention over its cache. */
    void (*one_query)(float *out, const float *q, const float *k, const float *v, size_t s,
                      size_t dk, size_t dv, float factor, float *p);
} fk_table;

const fk_table *attn_fk_table(attn_simd level);

#endif
