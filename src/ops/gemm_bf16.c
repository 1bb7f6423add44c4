/* gemm_bf16.c - ATTN_GEMM_BF16: c (M, N) = [c +] op(a) · op(b) with the
 * products' inputs rounded to bf16 (to nearest even) and every sum in fp32,
 * as mixed-precision training multiplies (fp32 master weights, bf16 products).
 *
 * With AVX-512 BF16 (attn_fk_bf16() non-NULL: the CPU has it and the SIMD
 * level in use is avx512): b is converted once per call into pairs along k
 * (flash_bf16.h's layout: one uint32 holds the bf16 values of k = 2p and
 * 2p + 1, the even one low; an odd k's last partner is 0), and a's rows block
 * by block by the thread that multiplies them; then a 6 × 64
 * micro-kernel (24 accumulators, 4 vectors of b and 6 broadcast pairs of a
 * per pair of k: 24 vdpbf16ps for 2 × 384 multiply-adds) runs over fixed row
 * blocks as the fp32 kernel does. vdpbf16ps adds the two products of a pair
 * to the accumulator with its own rounding and flushes denormals, so its sums
 * differ from an FMA chain's in the last bits.
 * Elsewhere gemm.c runs the built-in fp32 GEMM on copies of a and b rounded
 * to bf16 (each product of two bf16 values is exact in fp32, so these are the
 * same products; the sums are an FMA chain's). Either way the result depends
 * on the shape only, never on the threads. */
#include <stdlib.h>
#include <string.h>

#include "attn/ops.h"
#include "flash_bf16.h"
#include "flash_kern.h"
#include "gemm_bf16.h"

#ifdef ATTN_HAVE_OPENMP
#include <omp.h>
#endif

static size_t up16(size_t x) { return (x + 15) & ~(size_t)15; }

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define GB __attribute__((target("avx512f,avx512bw,avx512bf16")))
#define GB_INL static inline GB __attribute__((always_inline))
#define BR 6  /* rows per tile */
#define BNV 4 /* vectors of 16 columns per tile */

/* Row r (k floats) of x into kp words of pairs at dst (an odd k's last
 * partner 0). */
static GB void cvt_row(uint32_t *dst, const float *x, size_t k)
{
    for (size_t c = 0; c < k; c += 32) {
        const size_t left = k - c;
        const __mmask16 lo = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
        const __mmask16 hi = left >= 32 ? 0xffff : left > 16 ? (__mmask16)((1u << (left - 16)) - 1) : 0;
        const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, x + c + 16),
                                               _mm512_maskz_loadu_ps(lo, x + c));
        const size_t words = (left + 1) / 2 < 16 ? (left + 1) / 2 : 16;
        _mm512_mask_storeu_epi32(dst + c / 2, (__mmask16)((1u << words) - 1), (__m512i)h);
    }
}

/* 16 values of rows 2p (lo) and 2p + 1 (hi) rounded to bf16 and stored as
 * 16 words of pairs at dst (the words of ms), the even row's value low:
 * cvtne2ps gives hi's 16 in the high half, the permutation interleaves. */
GB_INL void store_pairs(uint32_t *dst, __m512 lo, __m512 hi, __mmask16 ms)
{
    const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                           23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    _mm512_mask_storeu_epi32(dst, ms, _mm512_permutexvar_epi16(order, (__m512i)_mm512_cvtne2ps_pbh(hi, lo)));
}

/* Rows 2p and 2p + 1 of x (n floats each, ldx apart; row 2p + 1 missing when
 * last) into the n words of pairs at dst, then zeros up to np words. */
static GB void cvt_pair_row(uint32_t *dst, const float *x0, const float *x1, size_t n, size_t np)
{
    for (size_t c = 0; c < np; c += 16) {
        const size_t left = c < n ? n - c : 0;
        const __mmask16 mk = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
        const __m512 hi = x1 ? _mm512_maskz_loadu_ps(mk, x1 + c) : _mm512_setzero_ps();
        /* only the np words of this pair row: past them lies the next row,
         * which another thread may have written */
        const __mmask16 ms = np - c >= 16 ? 0xffff : (__mmask16)((1u << (np - c)) - 1);
        store_pairs(dst + c, _mm512_maskz_loadu_ps(mk, x0 + c), hi, ms);
    }
}

/* c (R, NV·16, the last vector's columns by mask) [+]= pairs of a · pairs of
 * b over tp pairs: a's pair (r, p) at a[r·ars + p·aps], b's pair row p at
 * b + p·ldb; then + bias (NV·16, from the tile's first column) if not NULL,
 * added to the finished sum as a separate pass would. */
GB_INL void tile(const int R, const int NV, float *c, size_t ldc, const uint32_t *a, size_t ars,
                 size_t aps, const uint32_t *b, size_t ldb, size_t tp, __mmask16 last, int accumulate,
                 const float *bias)
{
    __m512 acc[BR][BNV];
#pragma GCC unroll 8
    for (int r = 0; r < BR; r++)
#pragma GCC unroll 8
        for (int v = 0; v < BNV; v++)
            if (r < R && v < NV)
                acc[r][v] = accumulate ? _mm512_maskz_loadu_ps(v == NV - 1 ? last : 0xffff,
                                                               c + r * ldc + v * 16)
                                       : _mm512_setzero_ps();
    for (size_t p = 0; p < tp; p++) {
        __m512bh bv[BNV];
        const uint32_t *bp = b + p * ldb, *ap = a + p * aps;
#pragma GCC unroll 8
        for (int v = 0; v < BNV; v++)
            if (v < NV) bv[v] = (__m512bh)_mm512_loadu_si512((const void *)(bp + v * 16));
#pragma GCC unroll 8
        for (int r = 0; r < BR; r++) {
            if (r >= R) continue;
            const __m512bh av = (__m512bh)_mm512_set1_epi32((int)ap[r * ars]);
#pragma GCC unroll 8
            for (int v = 0; v < BNV; v++)
                if (v < NV) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
        }
    }
    if (bias) {
        __m512 bv[BNV];
#pragma GCC unroll 8
        for (int v = 0; v < BNV; v++)
            if (v < NV) bv[v] = _mm512_maskz_loadu_ps(v == NV - 1 ? last : 0xffff, bias + v * 16);
#pragma GCC unroll 8
        for (int r = 0; r < BR; r++)
#pragma GCC unroll 8
            for (int v = 0; v < BNV; v++)
                if (r < R && v < NV) acc[r][v] = _mm512_add_ps(acc[r][v], bv[v]);
    }
#pragma GCC unroll 8
    for (int r = 0; r < BR; r++)
#pragma GCC unroll 8
        for (int v = 0; v < BNV; v++)
            if (r < R && v < NV)
                _mm512_mask_storeu_ps(c + r * ldc + v * 16, v == NV - 1 ? last : 0xffff, acc[r][v]);
}

#define GB_CASE(R, NV)                                                                         \
    case (R) * 8 + (NV):                                                                       \
        tile(R, NV, c + r0 * ldc + c0, ldc, a + r0 * ars, ars, aps, b + c0, ldb, tp, last, acc,  \
             bias ? bias + c0 : NULL);                                                          \
        break;

/* Rows [0, rows) of c (n columns) against every column tile: the b tile
 * (tp pairs × 64 columns) is reused by the block's row tiles. */
static GB void block_bf16(float *c, size_t ldc, const uint32_t *a, size_t ars, size_t aps,
                          const uint32_t *b, size_t ldb, size_t rows, size_t n, size_t tp, int acc,
                          const float *bias)
{
    for (size_t c0 = 0; c0 < n; c0 += BNV * 16) {
        const size_t left = n - c0, nv = (left + 15) / 16 < BNV ? (left + 15) / 16 : BNV;
        const size_t tail = left - (nv - 1) * 16;
        const __mmask16 last = tail >= 16 ? 0xffff : (__mmask16)((1u << tail) - 1);
        for (size_t r0 = 0; r0 < rows; r0 += BR) {
            const int rr = (int)(rows - r0 < BR ? rows - r0 : BR);
            switch (rr * 8 + (int)nv) {
                GB_CASE(1, 1) GB_CASE(2, 1) GB_CASE(3, 1) GB_CASE(4, 1) GB_CASE(5, 1) GB_CASE(6, 1)
                GB_CASE(1, 2) GB_CASE(2, 2) GB_CASE(3, 2) GB_CASE(4, 2) GB_CASE(5, 2) GB_CASE(6, 2)
                GB_CASE(1, 3) GB_CASE(2, 3) GB_CASE(3, 3) GB_CASE(4, 3) GB_CASE(5, 3) GB_CASE(6, 3)
                GB_CASE(1, 4) GB_CASE(2, 4) GB_CASE(3, 4) GB_CASE(4, 4) GB_CASE(5, 4) GB_CASE(6, 4)
            default: break;
            }
        }
    }
}
#undef GB_CASE

/* Rows per block (threads take whole blocks): by the shape only. */
static size_t row_block(size_t m) { return m >= 512 ? 48 : m >= 128 ? 24 : 12; }

/* Multiply-adds below which one thread does the whole product. */
#define BF16_PAR_WORK ((double)(1 << 20))

/* b's converted pair rows (ldb = np words apart), for a transposed b its rows
 * converted first (bt), and each thread's converted rows of a (at). */
typedef struct bf16_job {
    const float *a, *b;
    size_t m, k, n, kp, np;
    int ta, tb;
    uint32_t *bp, *bt, *at;
} bf16_job;

/* Conversion of b by the team (every thread calls it): its pair rows, or its
 * rows then their transpose. */
static GB void convert_b(const bf16_job *j, const fk_table *K)
{
    const size_t k = j->k, n = j->n, kp = j->kp, np = j->np;
    if (!j->tb) {
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
        for (size_t p = 0; p < kp; p++)
            cvt_pair_row(j->bp + p * np, j->b + 2 * p * n, 2 * p + 1 < k ? j->b + (2 * p + 1) * n : NULL,
                         n, np);
        return;
    }
    /* b (n, k): its rows as pairs (n, kp), then transposed word by word into
     * (kp, np) by the flash kernels' 16 × 16 blocks (moves, no arithmetic:
     * the bits stay), the columns past n zeroed */
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
    for (size_t r = 0; r < n; r++) cvt_row(j->bt + r * kp, j->b + r * k, k);
    const size_t nb = (kp + 15) / 16;
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
    for (size_t q = 0; q < nb; q++) {
        const size_t p0 = q * 16, pw = kp - p0 < 16 ? kp - p0 : 16;
        K->transpose((float *)(void *)(j->bp + p0 * np), np, (const float *)(const void *)(j->bt + p0),
                     kp, n, pw);
        for (size_t p = p0; p < p0 + pw; p++) memset(j->bp + p * np + n, 0, (np - n) * sizeof(uint32_t));
    }
}

/* Rows [r0, r0 + rows) of op(a) converted into dst by the thread that then
 * multiplies them (they stay in its cache; no pass over all of a, no
 * barrier): rows of pairs kp words apart (*ars = kp, *aps = 1), or for a
 * transposed a pair rows of `rows` words (*ars = 1, *aps = rows). With a
 * transposed a, sums (m) if not NULL: sums[r] += Σ_k op(a)[r][k] of the fp32
 * values, k in order, as a loop over a's stored rows would add them. */
static GB void convert_a_rows(const bf16_job *j, uint32_t *dst, size_t r0, size_t rows, size_t *ars,
                              size_t *aps, float *sums)
{
    const size_t m = j->m, k = j->k, kp = j->kp;
    if (!j->ta) {
        for (size_t r = 0; r < rows; r++) cvt_row(dst + r * kp, j->a + (r0 + r) * k, k);
        *ars = kp, *aps = 1;
        return;
    }
    *ars = 1, *aps = rows;
    if (!sums) {
        for (size_t p = 0; p < kp; p++)
            cvt_pair_row(dst + p * rows, j->a + 2 * p * m + r0,
                         2 * p + 1 < k ? j->a + (2 * p + 1) * m + r0 : NULL, rows, rows);
        return;
    }
    /* 16 rows of op(a) at a time, their sums in a register across every pair */
    for (size_t c = 0; c < rows; c += 16) {
        const size_t left = rows - c;
        const __mmask16 mk = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
        __m512 acc = _mm512_maskz_loadu_ps(mk, sums + r0 + c);
        for (size_t p = 0; p < kp; p++) {
            const __m512 lo = _mm512_maskz_loadu_ps(mk, j->a + 2 * p * m + r0 + c);
            const __m512 hi = 2 * p + 1 < k ? _mm512_maskz_loadu_ps(mk, j->a + (2 * p + 1) * m + r0 + c)
                                            : _mm512_setzero_ps();
            acc = _mm512_add_ps(acc, lo);
            if (2 * p + 1 < k) acc = _mm512_add_ps(acc, hi);
            store_pairs(dst + p * rows + c, lo, hi, mk);
        }
        _mm512_mask_storeu_ps(sums + r0 + c, mk, acc);
    }
}

static attn_status gemm_bf16_avx512(float *c, const float *a, const float *b, size_t m, size_t k,
                                    size_t n, int ta, int tb, int acc, const float *bias, float *a_sums)
{
    const size_t mb = row_block(m), nmb = (m + mb - 1) / mb;
    const int par = nmb > 1 && (double)m * (double)k * (double)n >= BF16_PAR_WORK;
    size_t nthr = 1;
#ifdef ATTN_HAVE_OPENMP
    if (par) nthr = (size_t)omp_get_max_threads();
#endif
    bf16_job j = {a, b, m, k, n, (k + 1) / 2, up16(n), ta, tb, NULL, NULL, NULL};
    const size_t b_words = j.kp * j.np, t_words = tb ? n * j.kp : 0;
    const size_t a_stride = (mb * j.kp + 15) & ~(size_t)15, a_words = a_stride * nthr; /* a thread's */
    uint32_t *buf = aligned_alloc(64, ((a_words + b_words + t_words + 47) & ~(size_t)15) * sizeof *buf);
    if (!buf) return attn_error(ATTN_E_NOMEM, "gemm (bf16): cannot allocate the converted operands");
    j.at = buf, j.bp = buf + a_words;
    j.bt = j.bp + ((b_words + 15) & ~(size_t)15);
    const fk_table *K = attn_fk_table(ATTN_SIMD_AVX512);
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel if (par) num_threads((int)nthr)
#endif
    {
        size_t me = 0;
#ifdef ATTN_HAVE_OPENMP
        me = (size_t)omp_get_thread_num();
#endif
        uint32_t *mine = j.at + me * a_stride;
        convert_b(&j, K);
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (size_t blk = 0; blk < nmb; blk++) {
            const size_t r0 = blk * mb, rows = m - r0 < mb ? m - r0 : mb;
            size_t ars, aps;
            convert_a_rows(&j, mine, r0, rows, &ars, &aps, a_sums);
            block_bf16(c + r0 * n, n, mine, ars, aps, j.bp, j.np, rows, n, j.kp, acc, bias);
        }
    }
    free(buf);
    return ATTN_OK;
}
#define GEMM_BF16_X86 1
#endif

attn_status attn_gemm_bf16_run(float *c, const float *a, const float *b, size_t m, size_t k,
                               size_t n, int ta, int tb, int acc)
{
    return attn_gemm_bf16_fused(c, a, b, m, k, n, ta, tb, acc, NULL, NULL);
}

attn_status attn_gemm_bf16_fused(float *c, const float *a, const float *b, size_t m, size_t k,
                                 size_t n, int ta, int tb, int acc, const float *bias, float *a_sums)
{
    if (a_sums && !ta) return attn_error(ATTN_E_INVALID, "gemm (bf16): a's sums need a transposed a");
#ifdef GEMM_BF16_X86
    if (attn_fk_bf16()) return gemm_bf16_avx512(c, a, b, m, k, n, ta, tb, acc, bias, a_sums);
#else
    (void)c, (void)a, (void)b, (void)m, (void)k, (void)n, (void)ta, (void)tb, (void)acc, (void)bias,
        (void)a_sums;
#endif
    return attn_error(ATTN_E_NOTFOUND, "gemm (bf16): no AVX-512 BF16 here");
}
