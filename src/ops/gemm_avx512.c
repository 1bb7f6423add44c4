/* gemm_avx512.c - the built-in GEMM's AVX-512 micro-kernel: 6 rows × 64
 * columns of c in 24 registers, against 4 × 4 in the flash kernels' shared
 * one (flash_tmpl.h), whose tiles the flash backward is tuned for. Per step of
 * k it loads 4 vectors of b and broadcasts 6 elements of a for 24 FMAs, so
 * the GEMMs of the training step (k, n of 128 to 768) run at about 0.9 of one
 * core's FMA peak instead of 0.7-0.8.
 *
 * Every element of c is the same chain as in the shared kernel (c or 0, then
 * one FMA per t in order), so the two give the same bits: the tile shape is
 * only a question of speed. */
#include "gemm_kern.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>

#define G5 __attribute__((target("avx512f")))
#define G5_INL static inline G5 __attribute__((always_inline))
#define GR 6  /* rows per tile */
#define GNV 4 /* vectors of 16 columns per tile */

/* c (R, NV·16) [+]= a (R, T) · b (T, NV·16): a's element (r, t) at
 * a[r·ars + t·ats], b's row t at b + t·ldb. */
G5_INL void tile(const int R, const int NV, float *c, size_t ldc, const float *a, size_t ars,
                 size_t ats, const float *b, size_t ldb, size_t T, int accumulate)
{
    __m512 acc[GR][GNV];
#pragma GCC unroll 8
    for (int r = 0; r < GR; r++)
#pragma GCC unroll 8
        for (int v = 0; v < GNV; v++)
            if (r < R && v < NV)
                acc[r][v] = accumulate ? _mm512_loadu_ps(c + r * ldc + v * 16) : _mm512_setzero_ps();
    for (size_t t = 0; t < T; t++) {
        __m512 bv[GNV];
        const float *bt = b + t * ldb, *at = a + t * ats;
#pragma GCC unroll 8
        for (int v = 0; v < GNV; v++)
            if (v < NV) bv[v] = _mm512_loadu_ps(bt + v * 16);
#pragma GCC unroll 8
        for (int r = 0; r < GR; r++) {
            if (r >= R) continue;
            const __m512 av = _mm512_set1_ps(at[r * ars]);
#pragma GCC unroll 8
            for (int v = 0; v < GNV; v++)
                if (v < NV) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < GR; r++)
#pragma GCC unroll 8
        for (int v = 0; v < GNV; v++)
            if (r < R && v < NV) _mm512_storeu_ps(c + r * ldc + v * 16, acc[r][v]);
}

#define G5_CASE(R, NV)                                                                   \
    case (R) * 8 + (NV):                                                                 \
        tile(R, NV, c + r0 * ldc + c0, ldc, a + r0 * ars, ars, ats, b + c0, ldb, t, accumulate); \
        break;

static G5 void gemm_avx512(float *c, size_t ldc, const float *a, size_t ars, size_t ats,
                           const float *b, size_t ldb, size_t rows, size_t ncols, size_t t,
                           int accumulate)
{
    for (size_t r0 = 0; r0 < rows; r0 += GR) {
        const int rr = (int)(rows - r0 < GR ? rows - r0 : GR);
        for (size_t c0 = 0; c0 < ncols; c0 += GNV * 16) {
            const size_t left = (ncols - c0) / 16;
            const int nv = (int)(left < GNV ? left : GNV);
            switch (rr * 8 + nv) {
                G5_CASE(1, 1) G5_CASE(2, 1) G5_CASE(3, 1) G5_CASE(4, 1) G5_CASE(5, 1) G5_CASE(6, 1)
                G5_CASE(1, 2) G5_CASE(2, 2) G5_CASE(3, 2) G5_CASE(4, 2) G5_CASE(5, 2) G5_CASE(6, 2)
                G5_CASE(1, 3) G5_CASE(2, 3) G5_CASE(3, 3) G5_CASE(4, 3) G5_CASE(5, 3) G5_CASE(6, 3)
                G5_CASE(1, 4) G5_CASE(2, 4) G5_CASE(3, 4) G5_CASE(4, 4) G5_CASE(5, 4) G5_CASE(6, 4)
            default: break;
            }
        }
    }
}
#undef G5_CASE
#endif

attn_gemm_tile_fn attn_gemm_tile_kernel(attn_simd level)
{
#if defined(__GNUC__) && defined(__x86_64__)
    if (level == ATTN_SIMD_AVX512) return gemm_avx512;
#else
    (void)level;
#endif
    return NULL;
}
