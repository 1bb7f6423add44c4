/* ln_kern.c - the layer norm's row kernels (ln_kern.h): plain C, and on
 * AVX-512 and AVX2 lanes the same operations in the same order as the C
 * kernels: the LN_LANES partial sums are one AVX-512 register or two AVX2
 * ones, stored and finished (tail, tree) as the C code does, and no product
 * is contracted into an FMA, so every level gives the C kernels' bits. Target
 * attributes: no special compiler flags. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif
#include "ln_kern.h"

#include <math.h>

/* ---- C ------------------------------------------------------------------ */

/* Σ x[j] and Σ (x[j] − m)² in LN_LANES interleaved partial sums, added up
 * in a fixed order (ln_kern.h): the result depends on dim alone, and the
 * SIMD kernels below give the same bits. */
static float ln_tree(float *acc)
{
    for (size_t w = LN_LANES / 2; w > 0; w /= 2)
        for (size_t l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

static float sum_lanes(const float *x, size_t n)
{
    float acc[LN_LANES] = {0};
    size_t j = 0;
    for (; j + LN_LANES <= n; j += LN_LANES)
        for (size_t l = 0; l < LN_LANES; l++) acc[l] += x[j + l];
    for (size_t l = 0; j < n; j++, l++) acc[l] += x[j];
    return ln_tree(acc);
}

static float sq_dev_lanes(const float *x, float m, size_t n)
{
    float acc[LN_LANES] = {0};
    size_t j = 0;
    for (; j + LN_LANES <= n; j += LN_LANES)
        for (size_t l = 0; l < LN_LANES; l++) {
            const float d = x[j + l] - m;
            acc[l] += d * d;
        }
    for (size_t l = 0; j < n; j++, l++) {
        const float d = x[j] - m;
        acc[l] += d * d;
    }
    return ln_tree(acc);
}

static void ln_row(float *yi, float *m_out, float *r_out, const float *xi, const float *w,
                   const float *b, size_t dim, float eps)
{
    const float m = sum_lanes(xi, dim) / (float)dim;
    const float v = sq_dev_lanes(xi, m, dim);
    const float r = 1.0f / sqrtf(v / (float)dim + eps);
    if (b)
        for (size_t j = 0; j < dim; j++) yi[j] = (xi[j] - m) * r * w[j] + b[j];
    else
        for (size_t j = 0; j < dim; j++) yi[j] = (xi[j] - m) * r * w[j];
    *m_out = m, *r_out = r;
}

static void ln_bwd_row(float *dxi, const float *dyi, const float *xi, const float *w, float m,
                       float r, size_t dim)
{
    float ag[LN_LANES] = {0}, agx[LN_LANES] = {0};
    size_t j = 0;
    for (; j + LN_LANES <= dim; j += LN_LANES)
        for (size_t l = 0; l < LN_LANES; l++) {
            const float g = dyi[j + l] * w[j + l];
            ag[l] += g;
            agx[l] += g * (xi[j + l] - m) * r;
        }
    for (size_t l = 0; j < dim; j++, l++) {
        const float g = dyi[j] * w[j];
        ag[l] += g;
        agx[l] += g * (xi[j] - m) * r;
    }
    const float sg = ln_tree(ag) / (float)dim, sgx = ln_tree(agx) / (float)dim;
    for (j = 0; j < dim; j++) {
        const float xh = (xi[j] - m) * r;
        dxi[j] += r * (dyi[j] * w[j] - sg - xh * sgx);
    }
}

static void ln_param_cols(float *sw, float *sb, const float *d_y, const float *x,
                          const float *mean, const float *rstd, size_t rows, size_t ld,
                          size_t cols)
{
    for (size_t i = 0; i < rows; i++) {
        const float *dyi = d_y + i * ld, *xi = x + i * ld;
        const float m = mean[i], r = rstd[i];
        for (size_t j = 0; j < cols; j++) {
            sw[j] += dyi[j] * ((xi[j] - m) * r);
            sb[j] += dyi[j];
        }
    }
}

static const ln_kern ln_kern_c = {ln_row, ln_bwd_row, ln_param_cols};

/* ---- AVX-512 and AVX2 ----------------------------------------------------- */

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>

/* The scalar tail of a row sum: elements j.. go to lanes 0, 1, ... */
static inline void tail_sum(float *acc, const float *x, size_t j, size_t n)
{
    for (size_t l = 0; j < n; j++, l++) acc[l] += x[j];
}

static inline void tail_sq_dev(float *acc, const float *x, float m, size_t j, size_t n)
{
    for (size_t l = 0; j < n; j++, l++) {
        const float d = x[j] - m;
        acc[l] += d * d;
    }
}

static inline void tail_bwd(float *ag, float *agx, const float *dy, const float *x,
                            const float *w, float m, float r, size_t j, size_t n)
{
    for (size_t l = 0; j < n; j++, l++) {
        const float g = dy[j] * w[j];
        ag[l] += g;
        agx[l] += g * (x[j] - m) * r;
    }
}

/* A vector type V with prefix P (_mm512 / _mm256), L lanes; the C kernels'
 * loops with LN_LANES / L registers per partial sum. */
#define LN_KERNELS(SUF, ATTR, V, P, L)                                                         \
    ATTR static void fwd_row_##SUF(float *y, float *m_out, float *r_out, const float *x,       \
                                   const float *w, const float *b, size_t dim, float eps)     \
    {                                                                                          \
        enum { NV = LN_LANES / L };                                                            \
        float acc[LN_LANES];                                                                   \
        V s[NV];                                                                               \
        size_t j = 0;                                                                          \
        for (int q = 0; q < NV; q++) s[q] = P##_setzero_ps();                                  \
        for (; j + LN_LANES <= dim; j += LN_LANES)                                             \
            for (int q = 0; q < NV; q++) s[q] = P##_add_ps(s[q], P##_loadu_ps(x + j + q * L)); \
        for (int q = 0; q < NV; q++) P##_storeu_ps(acc + q * L, s[q]);                         \
        tail_sum(acc, x, j, dim);                                                              \
        const float m = ln_tree(acc) / (float)dim;                                        \
        const V vm = P##_set1_ps(m);                                                           \
        for (int q = 0; q < NV; q++) s[q] = P##_setzero_ps();                                  \
        for (j = 0; j + LN_LANES <= dim; j += LN_LANES)                                        \
            for (int q = 0; q < NV; q++) {                                                     \
                const V d = P##_sub_ps(P##_loadu_ps(x + j + q * L), vm);                       \
                s[q] = P##_add_ps(s[q], P##_mul_ps(d, d));                                     \
            }                                                                                  \
        for (int q = 0; q < NV; q++) P##_storeu_ps(acc + q * L, s[q]);                         \
        tail_sq_dev(acc, x, m, j, dim);                                                        \
        const float v = ln_tree(acc);                                                     \
        const float r = 1.0f / sqrtf(v / (float)dim + eps);                                    \
        const V vr = P##_set1_ps(r);                                                           \
        for (j = 0; j + L <= dim; j += L) {                                                    \
            V t = P##_mul_ps(P##_mul_ps(P##_sub_ps(P##_loadu_ps(x + j), vm), vr),              \
                             P##_loadu_ps(w + j));                                             \
            if (b) t = P##_add_ps(t, P##_loadu_ps(b + j));                                     \
            P##_storeu_ps(y + j, t);                                                           \
        }                                                                                      \
        for (; j < dim; j++) y[j] = b ? (x[j] - m) * r * w[j] + b[j] : (x[j] - m) * r * w[j];  \
        *m_out = m, *r_out = r;                                                                \
    }                                                                                          \
    ATTR static void bwd_row_##SUF(float *dx, const float *dy, const float *x, const float *w, \
                                   float m, float r, size_t dim)                               \
    {                                                                                          \
        enum { NV = LN_LANES / L };                                                            \
        float ag[LN_LANES], agx[LN_LANES];                                                     \
        V sg[NV], sgx[NV];                                                                     \
        const V vm = P##_set1_ps(m), vr = P##_set1_ps(r);                                      \
        size_t j = 0;                                                                          \
        for (int q = 0; q < NV; q++) sg[q] = sgx[q] = P##_setzero_ps();                        \
        for (; j + LN_LANES <= dim; j += LN_LANES)                                             \
            for (int q = 0; q < NV; q++) {                                                     \
                const size_t o = j + q * L;                                                    \
                const V g = P##_mul_ps(P##_loadu_ps(dy + o), P##_loadu_ps(w + o));             \
                sg[q] = P##_add_ps(sg[q], g);                                                  \
                const V gx = P##_mul_ps(g, P##_sub_ps(P##_loadu_ps(x + o), vm));               \
                sgx[q] = P##_add_ps(sgx[q], P##_mul_ps(gx, vr));                               \
            }                                                                                  \
        for (int q = 0; q < NV; q++)                                                           \
            P##_storeu_ps(ag + q * L, sg[q]), P##_storeu_ps(agx + q * L, sgx[q]);              \
        tail_bwd(ag, agx, dy, x, w, m, r, j, dim);                                             \
        const float mg = ln_tree(ag) / (float)dim, mgx = ln_tree(agx) / (float)dim;  \
        const V vg = P##_set1_ps(mg), vgx = P##_set1_ps(mgx);                                  \
        for (j = 0; j + L <= dim; j += L) {                                                    \
            const V xh = P##_mul_ps(P##_sub_ps(P##_loadu_ps(x + j), vm), vr);                  \
            V t = P##_sub_ps(P##_mul_ps(P##_loadu_ps(dy + j), P##_loadu_ps(w + j)), vg);       \
            t = P##_mul_ps(vr, P##_sub_ps(t, P##_mul_ps(xh, vgx)));                            \
            P##_storeu_ps(dx + j, P##_add_ps(P##_loadu_ps(dx + j), t));                        \
        }                                                                                      \
        for (; j < dim; j++) {                                                                 \
            const float xh = (x[j] - m) * r;                                                   \
            dx[j] += r * (dy[j] * w[j] - mg - xh * mgx);                                       \
        }                                                                                      \
    }                                                                                          \
    ATTR static void param_cols_##SUF(float *sw, float *sb, const float *d_y, const float *x,  \
                                      const float *mean, const float *rstd, size_t rows,       \
                                      size_t ld, size_t cols)                                  \
    {                                                                                          \
        enum { NV = LN_COLS / L };                                                             \
        const size_t nv = cols / L, done = nv * L;                                             \
        V aw[NV], ab[NV];                                                                      \
        for (size_t q = 0; q < nv; q++) aw[q] = P##_loadu_ps(sw + q * L), ab[q] = P##_loadu_ps(sb + q * L); \
        for (size_t i = 0; i < rows; i++) {                                                    \
            const float *dyi = d_y + i * ld, *xi = x + i * ld;                                 \
            const V vm = P##_set1_ps(mean[i]), vr = P##_set1_ps(rstd[i]);                      \
            for (size_t q = 0; q < nv; q++) {                                                  \
                const V d = P##_loadu_ps(dyi + q * L);                                         \
                const V xh = P##_mul_ps(P##_sub_ps(P##_loadu_ps(xi + q * L), vm), vr);         \
                aw[q] = P##_add_ps(aw[q], P##_mul_ps(d, xh));                                  \
                ab[q] = P##_add_ps(ab[q], d);                                                  \
            }                                                                                  \
        }                                                                                      \
        for (size_t q = 0; q < nv; q++) P##_storeu_ps(sw + q * L, aw[q]), P##_storeu_ps(sb + q * L, ab[q]); \
        if (done < cols)                                                                       \
            ln_kern_c.param_cols(sw + done, sb + done, d_y + done, x + done, mean, rstd, \
                                      rows, ld, cols - done);                                  \
    }                                                                                          \
    static const ln_kern ln_kern_##SUF = {fwd_row_##SUF, bwd_row_##SUF, param_cols_##SUF};

LN_KERNELS(avx512, __attribute__((target("avx512f"))), __m512, _mm512, 16)
LN_KERNELS(avx2, __attribute__((target("avx2"))), __m256, _mm256, 8)
#define LN_HAVE_SIMD 1
#endif

const ln_kern *attn_ln_kern(attn_simd level)
{
#ifdef LN_HAVE_SIMD
    if (level >= ATTN_SIMD_AVX512) return &ln_kern_avx512;
    if (level >= ATTN_SIMD_AVX2) return &ln_kern_avx2;
#else
    (void)level;
#endif
    return &ln_kern_c;
}
