/* flash_bf16.c - the AVX-512 BF16 kernels of flash_bf16.h and their
 * dispatch. Only x86-64 with GCC/Clang target attributes has them; elsewhere
 * attn_fk_bf16() is NULL and ATTN_FLASH_BF16 runs the fp32 kernels. */
#include "flash_bf16.h"

#include <string.h>

#include "attn/ops.h"

uint16_t attn_bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <math.h>
#include <immintrin.h>

#include "flash_avx512.h"
#include "flash_kern.h"
#include "flash_tmpl_sm.h" /* fk5_sm_row: the fp32 kernels' online softmax row */
#define ATTN_BF16_X86 1
#define AB __attribute__((target("avx512f,avx512dq,avx512bw,avx512bf16")))
#define AB_INL static inline AB __attribute__((always_inline))

/* The register-blocked micro-kernel: R rows × NV vectors of 16 floats. */
AB_INL void fkb_micro(const int R, const int NV, float *C, size_t ldc, const uint32_t *A,
                      size_t ars, const uint32_t *B, size_t ldb, size_t tp, const float *rowscale,
                      int accumulate)
{
    __m512 acc[RM][NVMAX];
#pragma GCC unroll 8
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 8
        for (int v = 0; v < NVMAX; v++) {
            if (r >= R || v >= NV) continue;
            if (!accumulate) acc[r][v] = _mm512_setzero_ps();
            else if (rowscale)
                acc[r][v] = _mm512_mul_ps(_mm512_set1_ps(rowscale[r]),
                                          _mm512_loadu_ps(C + r * ldc + v * 16));
            else acc[r][v] = _mm512_loadu_ps(C + r * ldc + v * 16);
        }
    for (size_t p = 0; p < tp; p++) {
        __m512bh b[NVMAX];
        const uint32_t *bp = B + p * ldb;
#pragma GCC unroll 8
        for (int v = 0; v < NVMAX; v++)
            if (v < NV) b[v] = (__m512bh)_mm512_loadu_si512((const void *)(bp + v * 16));
#pragma GCC unroll 8
        for (int r = 0; r < RM; r++) {
            if (r >= R) continue;
            const __m512bh av = (__m512bh)_mm512_set1_epi32((int)A[r * ars + p]);
#pragma GCC unroll 8
            for (int v = 0; v < NVMAX; v++)
                if (v < NV) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, b[v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 8
        for (int v = 0; v < NVMAX; v++)
            if (r < R && v < NV) _mm512_storeu_ps(C + r * ldc + v * 16, acc[r][v]);
}

#define FKB_CASE(R, NV)                                                                    \
    case (R) * 8 + (NV):                                                                   \
        fkb_micro(R, NV, c + r0 * ldc + c0, ldc, a + r0 * ars, ars, b + c0, ldb, tp,       \
                  rowscale ? rowscale + r0 : NULL, accumulate);                            \
        break;

static AB void fkb_gemm(float *c, size_t ldc, const uint32_t *a, size_t ars, const uint32_t *b,
                        size_t ldb, size_t rows, size_t ncols, size_t tp, const float *rowscale,
                        int accumulate)
{
    for (size_t r0 = 0; r0 < rows; r0 += RM) {
        const int rr = (int)(rows - r0 < RM ? rows - r0 : RM);
        for (size_t c0 = 0; c0 < ncols; c0 += (size_t)NVMAX * 16) {
            const size_t left = (ncols - c0) / 16;
            const int nv = (int)(left < NVMAX ? left : NVMAX);
            switch (rr * 8 + nv) {
                FKB_CASE(1, 1) FKB_CASE(2, 1) FKB_CASE(3, 1) FKB_CASE(4, 1)
                FKB_CASE(1, 2) FKB_CASE(2, 2) FKB_CASE(3, 2) FKB_CASE(4, 2)
                FKB_CASE(1, 3) FKB_CASE(2, 3) FKB_CASE(3, 3) FKB_CASE(4, 3)
                FKB_CASE(1, 4) FKB_CASE(2, 4) FKB_CASE(3, 4) FKB_CASE(4, 4)
            default: break;
            }
        }
    }
}
#undef FKB_CASE

static AB void fkb_cvt_rows(uint32_t *dst, size_t ldd, const float *src, size_t lds, size_t rows,
                            size_t n)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < n; c += 32) {
            const float *s = src + r * lds + c;
            __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + 16), _mm512_loadu_ps(s));
            _mm512_storeu_si512((void *)(dst + r * ldd + c / 2), (__m512i)h);
        }
}

/* Word c of the result: (row0[c], row1[c]); the conversion gives row0's 16
 * values then row1's, the permutation interleaves them. */
static AB void fkb_cvt_pairs(uint32_t *dst, size_t ldd, const float *src, size_t lds, size_t rows,
                             size_t n)
{
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                         8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (size_t r = 0; r < rows; r += 2) {
        const float *s0 = src + r * lds, *s1 = r + 1 < rows ? s0 + lds : NULL;
        for (size_t c = 0; c < n; c += 16) {
            const __m512 hi = s1 ? _mm512_loadu_ps(s1 + c) : _mm512_setzero_ps();
            __m512i h = (__m512i)_mm512_cvtne2ps_pbh(hi, _mm512_loadu_ps(s0 + c));
            h = _mm512_permutexvar_epi16(idx, h);
            _mm512_storeu_si512((void *)(dst + (r / 2) * ldd + c), h);
        }
    }
}

/* One row's scores x (BC / 16 vectors) times log2e through the online
 * softmax (the fp32 kernels' row, on log2 units), its probabilities rounded
 * into pw (BC / 2 words). Q stays scale·Q in bf16, as the backward rounds
 * it, so that the two compute the same scores. */
AB_INL void fkb_sm_row(const __m512 *x, uint32_t *pw, float *m, float *l, float *alpha)
{
    float p[FK_BC] __attribute__((aligned(64)));
    __m512 xs[FK_BC / 16];
    for (int c = 0; c < FK_BC / 16; c++) xs[c] = _mm512_mul_ps(x[c], _mm512_set1_ps(FK_LOG2E));
    fk5_sm_row(xs, p, m, l, alpha);
    for (int c = 0; c < FK_BC; c += 32) {
        const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_load_ps(p + c + 16), _mm512_load_ps(p + c));
        _mm512_storeu_si512((void *)(pw + c / 2), (__m512i)h);
    }
}

/* S = Qw·Kp (rows, BC; tp pairs) RM rows at a time in registers, the online
 * softmax there and P rounded into pw (rows, BC / 2 words): the bits of
 * gemm, softmax_online then cvt_rows, without the score tile's round trip
 * through memory. The rows past a multiple of RM go through s (BC floats a
 * row). */
static AB void fkb_qk_softmax(uint32_t *pw, const uint32_t *qw, size_t ars, const uint32_t *kp,
                              size_t tp, size_t rows, float *m, float *l, float *alpha, float *s)
{
    size_t r0 = 0;
    for (; r0 + RM <= rows; r0 += RM) {
        __m512 acc[RM][NVMAX];
        for (int r = 0; r < RM; r++)
            for (int v = 0; v < NVMAX; v++) acc[r][v] = _mm512_setzero_ps();
        const uint32_t *a = qw + r0 * ars;
        for (size_t p = 0; p < tp; p++) {
            __m512bh b[NVMAX];
            for (int v = 0; v < NVMAX; v++)
                b[v] = (__m512bh)_mm512_loadu_si512((const void *)(kp + p * FK_BC + v * 16));
            for (int r = 0; r < RM; r++) {
                const __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r * ars + p]);
                for (int v = 0; v < NVMAX; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, b[v]);
            }
        }
        for (int r = 0; r < RM; r++)
            fkb_sm_row(acc[r], pw + (r0 + r) * (FK_BC / 2), m + r0 + r, l + (r0 + r) * FK_LANES,
                       alpha + r0 + r);
    }
    if (r0 == rows) return;
    fkb_gemm(s, FK_BC, qw + r0 * ars, ars, kp, FK_BC, rows - r0, FK_BC, tp, NULL, 0);
    for (size_t r = r0; r < rows; r++) {
        __m512 x[NVMAX];
        for (int v = 0; v < NVMAX; v++) x[v] = _mm512_loadu_ps(s + (r - r0) * FK_BC + v * 16);
        fkb_sm_row(x, pw + r * (FK_BC / 2), m + r, l + r * FK_LANES, alpha + r);
    }
}

static const fk_bf16 fkb_table = {fkb_gemm, fkb_cvt_rows, fkb_cvt_pairs, fkb_qk_softmax};
#endif

int attn_flash_bf16_available(void)
{
#ifdef ATTN_BF16_X86
    return attn_simd_level() == ATTN_SIMD_AVX512 && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

const fk_bf16 *attn_fk_bf16(void)
{
#ifdef ATTN_BF16_X86
    if (attn_flash_bf16_available()) return &fkb_table;
#endif
    return NULL;
}
