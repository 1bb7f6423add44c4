/* flash_simd.c - the kernels of flash_tmpl.h for AVX-512, AVX2+FMA and
 * portable C. The SIMD versions carry target attributes, so no special
 * compiler flags are needed; attn_fk_table picks one by the level in use.
 *
 * exp: Cody-Waite reduction x = n·ln2 + r, |r| <= ln2/2, Cephes' degree-5
 * polynomial for e^r (about 1-2 ulp), then 2^n. Inputs below the float range
 * give exactly 0 (so -inf → 0), NaN stays NaN.
 *
 * exp_sm, the softmax's (x = score − max or score − lse, so x <= 0 up to
 * rounding): 2^t for t = x·log2e, n = round(t), a degree-5 polynomial for
 * 2^(t − n) on [-1/2, 1/2] (relative error 1.6e-7 with its rounding; 1 at
 * t = 0 exactly), then 2^n: ten vector operations where exp takes fifteen,
 * about 3 % of the forward (4 % of its tile loop); AVX-512 takes f = t − floor(t) in
 * [0, 1) by vreduceps instead, with a polynomial for that range (flash_exp.h, relative
 * error 1.44e-7 with its rounding), whose 2^floor(t) vscalefps applies itself: eight
 * operations. log2e and t in floats add
 * |x|·7.3e-8 relative error: at most 4e-8 of the row's largest probability
 * (at x = -1/ln2). Below
 * 2^-126 (AVX2) or 2^-149 (AVX-512, C) the result is 0 (so -inf → 0); NaN
 * stays NaN; defined for x <= 88. exp2_sm: the same on t itself, one
 * multiply fewer: the forward's online softmax, whose scores are in log2
 * units (flash_tmpl_sm.h). */
#include "flash_kern.h"
#include "flash_exp.h"

#include <math.h>
#include <string.h>

#define FK_C1 0.693359375f
#define FK_C2 -2.12194440e-4f
#define FK_P0 1.9875691500E-4f
#define FK_P1 1.3981999507E-3f
#define FK_P2 8.3334519073E-3f
#define FK_P3 4.1665795894E-2f
#define FK_P4 1.6666665459E-1f
#define FK_P5 5.0000001201E-1f
#define FK_GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define FK_GELU_C 0.044715f

/* ---- portable C ---------------------------------------------------------- */
static inline float fks_vexp(float x)
{
    if (!(x >= -104.0f)) return x != x ? x : 0.0f;
    if (x > 88.75f) return INFINITY;
    float n = floorf(x * FK_LOG2E + 0.5f);
    float r = x - n * FK_C1;
    r = r - n * FK_C2;
    float z = r * r;
    float y = ((((FK_P0 * r + FK_P1) * r + FK_P2) * r + FK_P3) * r + FK_P4) * r + FK_P5;
    y = y * z + r + 1.0f;
    return ldexpf(y, (int)n);
}
static inline float fks_vexp2_sm(float t)
{
    if (!(t > -151.0f)) return t != t ? t : 0.0f;
    const float n = rintf(t < 128.0f ? t : 128.0f), f = t - n;
#define FKS_FMA(a, b, c) ((a) * (b) + (c))
#define FKS_SET1(x) (x)
    const float y = FK_EXP2_POLY(FKS_FMA, FKS_SET1, f);
#undef FKS_FMA
#undef FKS_SET1
    return ldexpf(y, (int)n);
}
static inline float fks_vexp_sm(float x) { return fks_vexp2_sm(x * FK_LOG2E); }

#define FK(name) fks_##name
#define FK_ATTR
#define VF float
#define W 1
#define RM 4
#define NVMAX 4
#define VLOAD(p) (*(p))
#define VSTORE(p, v) (*(p) = (v))
#define VSET1(x) (x)
#define VZERO() 0.0f
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VMUL(a, b) ((a) * (b))
#define VADD(a, b) ((a) + (b))
#define VSUB(a, b) ((a) - (b))
#define VDIV(a, b) ((a) / (b))
#define VMAX(a, b) ((a) > (b) ? (a) : (b))
#define HMAX(v) (v)
#define HSUM(v) (v)
#define VBOOL(v, b) (*(b) ? (v) : -INFINITY)
#define VANY_GT(v, x) ((v) > (x))
#define FK_PREFETCH(p) ((void)(p))
#include "flash_tmpl.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define ATTN_FK_X86 1

/* ---- AVX2 + FMA -------------------------------------------------------------- */
#define A2 __attribute__((target("avx2,fma")))
static inline A2 __attribute__((always_inline)) __m256 fk2_vexp(__m256 x)
{
    const __m256 lim = _mm256_set1_ps(-87.3f);
    __m256 xc = _mm256_max_ps(lim, x); /* NaN: x */
    xc = _mm256_min_ps(_mm256_set1_ps(88.3f), xc);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(FK_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(FK_C1), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(FK_C2), r);
    __m256 z = _mm256_mul_ps(r, r);
    __m256 y = _mm256_fmadd_ps(_mm256_set1_ps(FK_P0), r, _mm256_set1_ps(FK_P1));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(FK_P2));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(FK_P3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(FK_P4));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(FK_P5));
    y = _mm256_fmadd_ps(y, z, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(_mm256_cmp_ps(x, lim, _CMP_LT_OQ), y);
}
static inline A2 __attribute__((always_inline)) __m256 fk2_vexp2_sm(__m256 t)
{
    const __m256 lim = _mm256_set1_ps(-126.0f);
    __m256 tc = _mm256_min_ps(_mm256_set1_ps(127.0f), _mm256_max_ps(lim, t)); /* NaN: t */
    const __m256 n = _mm256_round_ps(tc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 f = _mm256_sub_ps(tc, n);
    __m256 y = FK_EXP2_POLY(_mm256_fmadd_ps, _mm256_set1_ps, f);
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(_mm256_cmp_ps(t, lim, _CMP_LT_OQ), y);
}
static inline A2 __attribute__((always_inline)) __m256 fk2_vexp_sm(__m256 x)
{
    return fk2_vexp2_sm(_mm256_mul_ps(x, _mm256_set1_ps(FK_LOG2E)));
}
static inline A2 __attribute__((always_inline)) float fk2_hmax(__m256 v)
{
    __m128 a = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_max_ps(a, _mm_movehl_ps(a, a));
    a = _mm_max_ss(a, _mm_shuffle_ps(a, a, 1));
    return _mm_cvtss_f32(a);
}
static inline A2 __attribute__((always_inline)) float fk2_hsum(__m256 v)
{
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_shuffle_ps(a, a, 1));
    return _mm_cvtss_f32(a);
}
static inline A2 __attribute__((always_inline)) __m256 fk2_bool(__m256 v, const uint8_t *b)
{
    __m256i bi = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)b));
    __m256 zero = _mm256_castsi256_ps(_mm256_cmpeq_epi32(bi, _mm256_setzero_si256()));
    return _mm256_blendv_ps(v, _mm256_set1_ps(-INFINITY), zero);
}

#define FK(name) fk2_##name
#define FK_ATTR A2
#define VF __m256
#define W 8
#define RM 4
#define NVMAX 2
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VSET1(x) _mm256_set1_ps(x)
#define VZERO() _mm256_setzero_ps()
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VSUB(a, b) _mm256_sub_ps(a, b)
#define VDIV(a, b) _mm256_div_ps(a, b)
#define VMAX(a, b) _mm256_max_ps(a, b)
#define HMAX(v) fk2_hmax(v)
#define HSUM(v) fk2_hsum(v)
#define VBOOL(v, b) fk2_bool(v, b)
#define VANY_GT(v, x) (_mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_set1_ps(x), _CMP_GT_OQ)) != 0)
#define FK_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#include "flash_tmpl.h"

/* ---- AVX-512 ------------------------------------------------------------------ */
#include "flash_avx512.h"
static inline A5 __attribute__((always_inline)) __m512 fk5_vexp(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(-110.0f), x); /* NaN: x */
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(FK_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(FK_C1), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(FK_C2), r);
    __m512 z = _mm512_mul_ps(r, r);
    __m512 y = _mm512_fmadd_ps(_mm512_set1_ps(FK_P0), r, _mm512_set1_ps(FK_P1));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(FK_P2));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(FK_P3));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(FK_P4));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(FK_P5));
    y = _mm512_fmadd_ps(y, z, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(y, n); /* 2^-159 and below: 0 */
}
static inline A5 __attribute__((always_inline)) __m512 fk5_bool(__m512 v, const uint8_t *b)
{
    __m512i bi = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)b));
    __mmask16 keep = _mm512_test_epi32_mask(bi, bi);
    return _mm512_mask_blend_ps(keep, _mm512_set1_ps(-INFINITY), v);
}

/* A 16 × 16 block transposed: interleave pairs of rows by 32 bits, then 64,
 * then 128-bit lanes twice. */
static inline A5 __attribute__((always_inline)) void fk5_t16(float *dst, size_t ldd,
                                                             const float *src, size_t lds)
{
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + (size_t)i * lds);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4)
        for (int j = 0; j < 2; j++) {
            r[i + j] = _mm512_castpd_ps(
                _mm512_unpacklo_pd(_mm512_castps_pd(t[i + j]), _mm512_castps_pd(t[i + j + 2])));
            r[i + j + 2] = _mm512_castpd_ps(
                _mm512_unpackhi_pd(_mm512_castps_pd(t[i + j]), _mm512_castps_pd(t[i + j + 2])));
        }
    /* r[4g + k], lane m: rows 4g..4g+3 of column 4m + (0, 2, 1, 3)[k] */
    for (int g = 0; g < 4; g += 2)
        for (int k = 0; k < 4; k++) { /* lanes (0, 2) and (1, 3) of groups g, g + 1 */
            t[4 * g + k] = _mm512_shuffle_f32x4(r[4 * g + k], r[4 * g + 4 + k], 0x88);
            t[4 * g + 4 + k] = _mm512_shuffle_f32x4(r[4 * g + k], r[4 * g + 4 + k], 0xdd);
        }
    for (int k = 0; k < 4; k++) { /* lane m of the four groups: column 4m + c */
        const size_t c = (size_t)(k == 1 ? 2 : k == 2 ? 1 : k);
        _mm512_storeu_ps(dst + c * ldd, _mm512_shuffle_f32x4(t[k], t[8 + k], 0x88));
        _mm512_storeu_ps(dst + (4 + c) * ldd, _mm512_shuffle_f32x4(t[4 + k], t[12 + k], 0x88));
        _mm512_storeu_ps(dst + (8 + c) * ldd, _mm512_shuffle_f32x4(t[k], t[8 + k], 0xdd));
        _mm512_storeu_ps(dst + (12 + c) * ldd, _mm512_shuffle_f32x4(t[4 + k], t[12 + k], 0xdd));
    }
}

#define FK_T16(dst, ldd, src, lds) fk5_t16(dst, ldd, src, lds)
#define VBOOL(v, b) fk5_bool(v, b)
#include "flash_tmpl.h"
#endif

const fk_table *attn_fk_table(attn_simd level)
{
#ifdef ATTN_FK_X86
    if (level == ATTN_SIMD_AVX512) return &fk5_table;
    if (level == ATTN_SIMD_AVX2) return &fk2_table;
#else
    (void)level;
#endif
    return &fks_table;
}
