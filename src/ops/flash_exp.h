/* flash_exp.h - the constants of the softmax's exp (flash_simd.c), shared
 * with the bf16 kernels (internal). */
#ifndef ATTN_FLASH_EXP_H
#define ATTN_FLASH_EXP_H

#define FK_LOG2E 1.44269504088896341f
#define FK_LN2 0.693147180559945309f
/* 2^f ≈ 1 + f·(E1 + f·(E2 + f·(E3 + f·(E4 + f·E5)))), |f| <= 1/2: a minimax
 * fit of the relative error with the constant term 1 */
#define FK_E1 6.931470037e-01f
#define FK_E2 2.402224243e-01f
#define FK_E3 5.550733581e-02f
#define FK_E4 9.671512991e-03f
#define FK_E5 1.326472731e-03f
/* 2^f ≈ 1 + f·(F1 + f·(F2 + f·(F3 + f·(F4 + f·F5)))), 0 <= f < 1 (AVX-512: f = t − floor t,
 * whose floor vscalefps applies itself): a fit of the relative error with the constant term 1,
 * 8.2e-8 exact, 1.44e-7 in floats (Horner by fma) */
#define FK_F1 6.931512952e-01f
#define FK_F2 2.401644439e-01f
#define FK_F3 5.579991639e-02f
#define FK_F4 9.017026983e-03f
#define FK_F5 1.867131563e-03f
#define FK_EXP2_POLY01(fma, set1, f)                                                           \
    fma(fma(fma(fma(fma(set1(FK_F5), f, set1(FK_F4)), f, set1(FK_F3)), f, set1(FK_F2)), f, \
            set1(FK_F1)),                                                                  \
        f, set1(1.0f))
#define FK_EXP2_POLY(fma, set1, f)                                                             \
    fma(fma(fma(fma(fma(set1(FK_E5), f, set1(FK_E4)), f, set1(FK_E3)), f, set1(FK_E2)), f, \
            set1(FK_E1)),                                                                  \
        f, set1(1.0f))

#endif
