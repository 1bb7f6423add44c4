/* gemm_bf16.h - ATTN_GEMM_BF16's AVX-512 BF16 kernel (internal; gemm_bf16.c). */
#ifndef ATTN_GEMM_BF16_H
#define ATTN_GEMM_BF16_H

#include <stddef.h>

#include "attn/status.h"

/* c (m, n) = [c +] op(a) · op(b) (attn_gemm's arguments, checked) with bf16
 * products and fp32 sums; ATTN_E_NOTFOUND where attn_fk_bf16() is NULL. */
attn_status attn_gemm_bf16_run(float *c, const float *a, const float *b, size_t m, size_t k,
                               size_t n, int ta, int tb, int acc);

#endif
