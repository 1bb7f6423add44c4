/* gemm_bf16.h - ATTN_GEMM_BF16's AVX-512 BF16 kernel (internal; gemm_bf16.c). */
#ifndef ATTN_GEMM_BF16_H
#define ATTN_GEMM_BF16_H

#include <stddef.h>

#include "attn/status.h"

/* c (m, n) = [c +] op(a) · op(b) (attn_gemm's arguments, checked) with bf16
 * products and fp32 sums; ATTN_E_NOTFOUND where attn_fk_bf16() is NULL. */
attn_status attn_gemm_bf16_run(float *c, const float *a, const float *b, size_t m, size_t k,
                               size_t n, int ta, int tb, int acc);

/* attn_gemm_bf16_run with two epilogues that save the linear layers a pass
 * each: bias (n) if not NULL is added to every row of c after its sum (the
 * bits of a separate c += bias); a_sums (m) if not NULL, with ta only, gets
 * a_sums[r] += Σ_k op(a)[r][k] of the fp32 values, k in order (the bits of
 * a loop over a's stored rows): a linear layer's bias gradient from the
 * d_y its weight gradient reads anyway. */
attn_status attn_gemm_bf16_fused(float *c, const float *a, const float *b, size_t m, size_t k,
                                 size_t n, int ta, int tb, int acc, const float *bias, float *a_sums);

#endif
