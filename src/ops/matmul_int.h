/* matmul_int.h - matmul.c's choice between its loops and the GEMM (internal). */
#ifndef ATTN_MATMUL_INT_H
#define ATTN_MATMUL_INT_H

#include <stddef.h>

/* Whether the matmuls run an (m, k) · (k, n) product through attn_gemm
 * (large enough) rather than their own loops: the linear layers ask too,
 * since their fused bf16 path and their zeroing of d_x must take the same
 * route as the matmuls. */
int attn_matmul_through_gemm(size_t m, size_t k, size_t n);

#endif
