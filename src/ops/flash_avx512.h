/* flash_avx512.h - what the AVX-512 kernels of flash_simd.c and the bf16
 * kernels of flash_bf16.c share (internal, x86-64 with GCC/Clang): the
 * softmax's exp and the template's macros, so that flash_bf16.c instantiates
 * the online softmax's row (flash_tmpl_sm.h) with the same instructions as
 * the fp32 kernels: the same bits. Include after <immintrin.h>. */
#ifndef ATTN_FLASH_AVX512_H
#define ATTN_FLASH_AVX512_H

#include "flash_exp.h"

#define A5 __attribute__((target("avx512f,avx512dq")))

/* 2^t: f = t − floor(t) in [0, 1) by one vreduceps, 2^f by its polynomial
 * (flash_exp.h), and vscalefps applies 2^floor(t) itself: seven operations,
 * eight with fk5_vexp_sm's multiply by log2e, where a clamp, a rounding and
 * a subtraction around a polynomial on [-1/2, 1/2] made ten (the forward
 * 0.5-1.5 % faster). The fp32 forward's online softmax takes it on scores in
 * log2 units (Q scaled by log2e up front: no multiply per exp, the forward
 * 1-1.5 % faster). -inf: f = 0 and 2^-inf = 0; NaN stays NaN; below 2^-149,
 * 0. */
static inline A5 __attribute__((always_inline)) __m512 fk5_vexp2_sm(__m512 t)
{
    const __m512 f = _mm512_reduce_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    return _mm512_scalef_ps(FK_EXP2_POLY01(_mm512_fmadd_ps, _mm512_set1_ps, f), t);
}
/* e^x = 2^(x·log2e) (the backward's probabilities exp(s − lse)) */
static inline A5 __attribute__((always_inline)) __m512 fk5_vexp_sm(__m512 x)
{
    return fk5_vexp2_sm(_mm512_mul_ps(x, _mm512_set1_ps(FK_LOG2E)));
}
#endif

/* The template's parameters (flash_tmpl.h, flash_tmpl_sm.h), redefined on
 * each inclusion (the template undefines them). */
#define FK(name) fk5_##name
#define FK_ATTR A5
#define VF __m512
#define W 16
#define RM 4
#define NVMAX 4
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VSET1(x) _mm512_set1_ps(x)
#define VZERO() _mm512_setzero_ps()
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VSUB(a, b) _mm512_sub_ps(a, b)
#define VDIV(a, b) _mm512_div_ps(a, b)
#define VMAX(a, b) _mm512_max_ps(a, b)
#define HMAX(v) _mm512_reduce_max_ps(v)
#define HSUM(v) _mm512_reduce_add_ps(v)
#define VANY_GT(v, x) (_mm512_cmp_ps_mask(v, _mm512_set1_ps(x), _CMP_GT_OQ) != 0)
#define FK_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)

