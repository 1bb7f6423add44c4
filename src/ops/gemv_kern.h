/* gemv_kern.h - the matrix-vector kernels of small products (internal). */
#ifndef ATTN_GEMV_KERN_H
#define ATTN_GEMV_KERN_H

#include <stddef.h>

#include "attn/cpu.h"

/* c (n) = b (n, k) · a (k): each output the sum of a[p]·b[j][p] in 16
 * interleaved partial sums (p mod 16, products rounded before they are
 * added: no FMA), then added pairwise (lane l + lane l + 8, + 4, + 2, + 1),
 * as matmul.c's row_times_bt sums them: the same bits on every level. */
typedef void (*attn_gemv_fn)(float *c, const float *a, const float *b, size_t k, size_t n);

/* The kernel for this SIMD level, or NULL where row_times_bt serves. */
attn_gemv_fn attn_gemv_kernel(attn_simd level);

#endif
