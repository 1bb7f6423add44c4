/* gemm_kern.h - the built-in GEMM's own micro-kernels (internal). */
#ifndef ATTN_GEMM_KERN_H
#define ATTN_GEMM_KERN_H

#include <stddef.h>

#include "attn/ops.h"

/* c (rows, ncols) [+]= a (rows, t) · b (t, ncols), ncols a multiple of 16:
 * a's element (r, p) at a[r·ars + p·ats], b's row p at b + p·ldb, c's rows
 * ldc apart. Each element of c is c (or 0) followed by one FMA per p in
 * order, as the flash kernels' shared gemm computes it. */
typedef void (*attn_gemm_tile_fn)(float *c, size_t ldc, const float *a, size_t ars, size_t ats,
                                  const float *b, size_t ldb, size_t rows, size_t ncols, size_t t,
                                  int accumulate);

/* The kernel for this SIMD level, or NULL where the shared one (fk table) serves. */
attn_gemm_tile_fn attn_gemm_tile_kernel(attn_simd level);

#endif
