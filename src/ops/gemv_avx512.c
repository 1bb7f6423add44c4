/* gemv_avx512.c - the AVX-512 matrix-vector kernel of small products, where
 * a token's step in generation spends its time: it streams b (GPT-2 124M:
 * 495 MB a token) and is limited by memory, not arithmetic.
 *
 * Against row_times_bt's 4 rows a pass in portable C, it runs 16 rows a pass
 * (16 independent sums in flight, one load of a per 16 rows): 2 rows from
 * each of 8 groups spread evenly over its rows, so that memory serves 8
 * streams far apart, as it serves best (here one stream a core reads about
 * 55 GB/s on two cores, four far apart 65). Each row is prefetched PF bytes
 * ahead, which keeps more misses in flight than the hardware prefetcher
 * does. Over the decode weights of GPT-2 on 2 Zen 5 cores (in one process,
 * three rounds): 8.7-9.0 ms a token against 9.2-9.4 for 8 rows from each
 * half of a 64-row task, the kernel before. Each output is summed exactly as
 * row_times_bt sums it (gemv_kern.h), so the level changes no bit. */
#include "gemv_kern.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>

#define V5 __attribute__((target("avx512f")))
#define V5_INL static inline V5 __attribute__((always_inline))
#define VG 8    /* groups of rows read side by side */
#define VR 2    /* rows of each group a pass: 16 sums and a's vector, 17 of the 32 registers */
#define PF 512  /* prefetch distance in bytes, per row */

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

/* c (G·R) = b · a (k) for G groups of R rows, group g's first row g·gap
 * rows after b's (gap = R: G·R contiguous rows) */
V5_INL void rows(const int G, const int R, float *c, const float *a, const float *b, size_t k,
                 size_t gap)
{
    const size_t kv = k / 16 * 16;
    const float *br[VG * VR];
    float *cr[VG * VR];
    __m512 acc[VG * VR];
#pragma GCC unroll 16
    for (int r = 0; r < G * R; r++) {
        const size_t row = (size_t)(r / R) * gap + (size_t)(r % R);
        br[r] = b + row * k, cr[r] = c + row, acc[r] = _mm512_setzero_ps();
    }
    for (size_t p = 0; p < kv; p += 16) {
        const __m512 av = _mm512_loadu_ps(a + p);
#pragma GCC unroll 16
        for (int r = 0; r < G * R; r++) {
            _mm_prefetch((const char *)(br[r] + p) + PF, _MM_HINT_T0);
            acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(_mm512_loadu_ps(br[r] + p), av));
        }
    }
    if (kv < k) { /* the tail goes to lanes 0.. as in row_times_bt; other lanes untouched */
        const __mmask16 m = (__mmask16)((1u << (k - kv)) - 1u);
        const __m512 av = _mm512_maskz_loadu_ps(m, a + kv);
#pragma GCC unroll 16
        for (int r = 0; r < G * R; r++)
            acc[r] = _mm512_mask_add_ps(acc[r], m, acc[r],
                                        _mm512_mul_ps(_mm512_maskz_loadu_ps(m, br[r] + kv), av));
    }
#pragma GCC unroll 16
    for (int r = 0; r < G * R; r++) *cr[r] = tree16(acc[r]);
}

/* The rows in VG groups read side by side (VG streams a pass, far apart),
 * then the rest 16, 8 and 1 at a time. */
static V5 void gemv_avx512(float *c, const float *a, const float *b, size_t k, size_t n)
{
    const size_t h = n / (VG * VR) * VR; /* rows in each group, a multiple of VR */
    for (size_t j = 0; j < h; j += VR) rows(VG, VR, c + j, a, b + j * k, k, h);
    size_t j = VG * h;
    for (; j + 8 <= n; j += 8) rows(1, 8, c + j, a, b + j * k, k, 8);
    for (; j < n; j++) rows(1, 1, c + j, a, b + j * k, k, 1);
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
