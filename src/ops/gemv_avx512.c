/* gemv_avx512.c - the AVX-512 matrix-vector kernel of small products, where
 * a token's step in generation spends its time: it streams b (GPT-2 124M:
 * 495 MB a token) and is limited by memory, not arithmetic.
 *
 * It reads its rows as 4 groups spread evenly over them, one row of each
 * group a pass: each group is then one sequential stream (a row follows
 * the last), and memory serves 4 streams far apart a core best (here, on
 * two cores: one stream a core about 55 GB/s, four 65, eight 56). Each row
 * is prefetched PF bytes ahead, which keeps more misses in flight than the
 * hardware prefetcher does. Over the decode weights of GPT-2 on 2 Zen 5
 * cores (bench_gemv-like rounds in one process, memory reading 80 GB/s):
 * 6.7-6.8 ms a token against 7.7-7.9 for 2 rows of 8 groups, 8.9-9.1 for 8
 * rows of each half of a 64-row task (the kernel before those) and 8.0 for
 * two groups. Each output is summed exactly as row_times_bt sums it
 * (gemv_kern.h), so the level changes no bit. */
#include "gemv_kern.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>

#define V5 __attribute__((target("avx512f")))
#define V5_INL static inline V5 __attribute__((always_inline))
#define VG 4     /* groups of rows read side by side, a row of each a pass */
#define PF 1024  /* prefetch distance in bytes, per row */

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

/* c[g·gap] = b[g·gap] · a (k) for rows g < G, gap rows apart */
V5_INL void rows(const int G, float *c, const float *a, const float *b, size_t k, size_t gap)
{
    const size_t kv = k / 16 * 16;
    __m512 acc[VG];
#pragma GCC unroll 4
    for (int r = 0; r < G; r++) acc[r] = _mm512_setzero_ps();
    for (size_t p = 0; p < kv; p += 16) {
        const __m512 av = _mm512_loadu_ps(a + p);
#pragma GCC unroll 4
        for (int r = 0; r < G; r++) {
            const float *br = b + (size_t)r * gap * k + p;
            _mm_prefetch((const char *)br + PF, _MM_HINT_T0);
            acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(_mm512_loadu_ps(br), av));
        }
    }
    if (kv < k) { /* the tail goes to lanes 0.. as in row_times_bt; other lanes untouched */
        const __mmask16 m = (__mmask16)((1u << (k - kv)) - 1u);
        const __m512 av = _mm512_maskz_loadu_ps(m, a + kv);
#pragma GCC unroll 4
        for (int r = 0; r < G; r++)
            acc[r] = _mm512_mask_add_ps(
                acc[r], m, acc[r],
                _mm512_mul_ps(_mm512_maskz_loadu_ps(m, b + (size_t)r * gap * k + kv), av));
    }
#pragma GCC unroll 4
    for (int r = 0; r < G; r++) c[(size_t)r * gap] = tree16(acc[r]);
}

/* The rows in VG groups read side by side (VG streams, far apart), then
 * the last few alone. */
static V5 void gemv_avx512(float *c, const float *a, const float *b, size_t k, size_t n)
{
    const size_t h = n / VG; /* rows in each group */
    for (size_t j = 0; j < h; j++) rows(VG, c + j, a, b + j * k, k, h);
    for (size_t j = VG * h; j < n; j++) rows(1, c + j, a, b + j * k, k, 0);
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
