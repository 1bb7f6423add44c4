/* gemv_avx512.c - the AVX-512 matrix-vector kernel of small products, where
 * a token's step in generation spends its time: it streams b (GPT-2 124M:
 * 495 MB a token) and is limited by memory, not arithmetic.
 *
 * Against row_times_bt's 4 rows a pass in portable C, it runs 16 rows a pass
 * (16 independent sums in flight, one load of a per 16 rows), 8 from each
 * half of its rows (two streams far apart, as memory serves best: one
 * stream a core reads 23-30 GB/s here, four 41-57), and prefetches each row
 * PF bytes ahead, which keeps more misses in flight than the hardware
 * prefetcher does. Over the decode weights of GPT-2 on 2 Zen 5 cores,
 * through the library (bench/bench_gemv.c; docs/performance.md): 1.23-1.25x
 * row_times_bt's speed, against 1.08-1.17x for 16 contiguous rows and
 * 1.08-1.14x for 8 in the same runs. Each output is summed exactly as
 * row_times_bt sums it (gemv_kern.h), so the level changes no bit. */
#include "gemv_kern.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>

#define V5 __attribute__((target("avx512f")))
#define V5_INL static inline V5 __attribute__((always_inline))
#define VR 16   /* rows a pass (16 sums and a's vector: 17 of the 32 registers) */
#define PF 256  /* prefetch distance in bytes, per row */

/* lane l + lane l + 8, then + 4, + 2, + 1: row_times_bt's tree */
V5_INL float tree16(__m512 v)
{
    const __m256 lo = _mm512_castps512_ps256(v);
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    const __m256 h = _mm256_add_ps(lo, hi);
    const __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    const __m128 o = _mm_add_ps(q, _mm_movehl_ps(q, q));
    return _mm_cvtss_f32(_mm_add_ss(o, _mm_shuffle_ps(o, o, 1)));
}

/* c (R) = b (R, k) · a (k) over two groups of R/2 rows, the second `gap`
 * rows after the first (gap = R/2: R contiguous rows) */
V5_INL void rows(const int R, float *c, const float *a, const float *b, size_t k, size_t gap)
{
    const size_t kv = k / 16 * 16;
    const float *br[VR];
    float *cr[VR];
    __m512 acc[VR];
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
        const size_t row = r < (R + 1) / 2 ? (size_t)r : gap + (size_t)(r - (R + 1) / 2);
        br[r] = b + row * k, cr[r] = c + row, acc[r] = _mm512_setzero_ps();
    }
    for (size_t p = 0; p < kv; p += 16) {
        const __m512 av = _mm512_loadu_ps(a + p);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            _mm_prefetch((const char *)(br[r] + p) + PF, _MM_HINT_T0);
            acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(_mm512_loadu_ps(br[r] + p), av));
        }
    }
    if (kv < k) { /* the tail goes to lanes 0.. as in row_times_bt; other lanes untouched */
        const __mmask16 m = (__mmask16)((1u << (k - kv)) - 1u);
        const __m512 av = _mm512_maskz_loadu_ps(m, a + kv);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++)
            acc[r] = _mm512_mask_add_ps(acc[r], m, acc[r],
                                        _mm512_mul_ps(_mm512_maskz_loadu_ps(m, br[r] + kv), av));
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) *cr[r] = tree16(acc[r]);
}

/* The rows in two halves read side by side (two streams a pass, far apart),
 * then the rest 8 and 1 at a time. */
static V5 void gemv_avx512(float *c, const float *a, const float *b, size_t k, size_t n)
{
    const size_t h = n / VR * (VR / 2); /* rows in each half, a multiple of VR / 2 */
    for (size_t j = 0; j < h; j += VR / 2) rows(VR, c + j, a, b + j * k, k, h);
    size_t j = 2 * h;
    for (; j + VR / 2 <= n; j += VR / 2) rows(VR / 2, c + j, a, b + j * k, k, VR / 4);
    for (; j < n; j++) rows(1, c + j, a, b + j * k, k, 0);
}
#endif

attn_gemv_fn attn_gemv_kernel(attn_simd level)
{
#if defined(__GNUC__) && defined(__x86_64__)
    if (level == ATTN_SIMD_AVX512) return gemv_avx512;
#else
    (void)level;
#endif
    return NULL;
}
