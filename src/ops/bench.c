/* bench.c - the measurements of `attn bench` (attn/bench.h). */
#include "attn/bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/ops.h"

#ifdef ATTN_HAVE_OPENMP
#include <omp.h>
#endif

double attn_bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double attn_bench_median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* ---- FMA peak ----------------------------------------------------------------- */

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define P8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define P12(X) P8(X) X(8) X(9) X(10) X(11)
#define P16(X) P12(X) X(12) X(13) X(14) X(15)
/* 16 independent chains of OP(a, x, y) on 512-bit registers, kept in
 * registers by the empty asm statements. */
#define PEAK16(STEP_)                                                                           \
    P16(DECL)                                                                                \
    for (long it = 0; it < iters; it++) {                                                    \
        P16(STEP_)                                                                           \
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5),   \
                         "+v"(a6), "+v"(a7));                                                \
        __asm__ volatile("" : "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11), "+v"(a12), "+v"(a13), \
                         "+v"(a14), "+v"(a15));                                              \
    }                                                                                        \
    __m512 s = _mm512_setzero_ps();                                                          \
    P16(SUM)                                                                                 \
    return _mm512_reduce_add_ps(s);
#define DECL(i) __m512 a##i = _mm512_set1_ps((float)(i));
#define SUM(i) s = _mm512_add_ps(s, a##i);
#define STEP(i) a##i = _mm512_fmadd_ps(a##i, x, y);
__attribute__((target("avx512f"))) static float peak_avx512(long iters)
{
    const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    PEAK16(STEP)
}
#undef STEP
/* bf16 dot products: each vdpbf16ps adds 16 lanes × 2 products (64 flops). */
#define STEP(i) a##i = _mm512_dpbf16_ps(a##i, x, y);
__attribute__((target("avx512f,avx512bf16"))) static float peak_bf16(long iters)
{
    const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80); /* (1, 1) */
    const __m512bh y = (__m512bh)_mm512_set1_epi32(0x33d633d6); /* (1e-7, 1e-7) */
    PEAK16(STEP)
}
#undef STEP
#undef DECL
#undef SUM
__attribute__((target("avx2,fma"))) static float peak_avx2(long iters)
{
    const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
#define DECL(i) __m256 a##i = _mm256_set1_ps((float)(i));
#define STEP(i) a##i = _mm256_fmadd_ps(a##i, x, y);
#define SUM(i) s = _mm256_add_ps(s, a##i);
    P12(DECL)
    for (long it = 0; it < iters; it++) {
        P12(STEP)
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5),
                         "+x"(a6), "+x"(a7), "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11));
    }
    __m256 s = _mm256_setzero_ps();
    P12(SUM)
#undef DECL
#undef STEP
#undef SUM
    float out[8], t = 0;
    _mm256_storeu_ps(out, s);
    for (int i = 0; i < 8; i++) t += out[i];
    return t;
}
#endif

static float peak_scalar(long iters)
{
    float a[8];
    for (int i = 0; i < 8; i++) a[i] = (float)i;
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 8; i++) a[i] = a[i] * 0.999999f + 1e-7f;
    return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}


/* Flops of one call per thread; bf16: the dot-product loop (the caller
 * checked attn_flash_bf16_available). */
static double peak_run(attn_simd lv, int bf16, long iters, volatile float *sink)
{
#if defined(__GNUC__) && defined(__x86_64__)
    if (bf16) {
        *sink += peak_bf16(iters);
        return 64.0 * 16 * (double)iters;
    }
    if (lv == ATTN_SIMD_AVX512) {
        *sink += peak_avx512(iters);
        return 2.0 * 16 * 16 * (double)iters;
    }
    if (lv == ATTN_SIMD_AVX2) {
        *sink += peak_avx2(iters);
        return 2.0 * 12 * 8 * (double)iters;
    }
#else
    (void)lv, (void)bf16;
#endif
    *sink += peak_scalar(iters);
    return 2.0 * 8 * (double)iters;
}

/* GFLOP/s of one timed run of iters loop iterations on every thread. */
static double peak_once(attn_simd lv, int bf16, long iters, double *seconds)
{
    double total = 0;
    double t0 = attn_bench_now();
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel reduction(+ : total)
#endif
    {
        volatile float sink = 0;
        total += peak_run(lv, bf16, iters, &sink);
    }
    *seconds = attn_bench_now() - t0;
    return total / *seconds * 1e-9;
}

/* A short calibration run sizes the loop to the wanted seconds; one run of
 * that length warms up (clocks, threads) before the timed ones. */
attn_status attn_bench_peak_measure(attn_bench_peak *p)
{
    if (!p) return attn_error(ATTN_E_INVALID, "bench peak: NULL argument");
    const double secs = p->seconds > 0 ? p->seconds : 1.0;
    const int runs = p->runs > 0 ? (p->runs < ATTN_BENCH_MAX_RUNS ? p->runs : ATTN_BENCH_MAX_RUNS)
                                 : 5;
    p->min = p->median = p->max = 0;
    p->available = !p->bf16 || attn_flash_bf16_available();
    if (!p->available) return ATTN_OK;
    const attn_simd lv = attn_simd_level();
    long iters = 1L << 16;
    double dt = 0;
    for (;;) { /* calibration: until a run takes 20 ms */
        peak_once(lv, p->bf16, iters, &dt);
        if (dt > 0.02 || iters > (1L << 40)) break;
        iters *= 4;
    }
    iters = (long)((double)iters * secs / dt) + 1;
    peak_once(lv, p->bf16, iters, &dt);
    double g[ATTN_BENCH_MAX_RUNS];
    for (int r = 0; r < runs; r++) g[r] = peak_once(lv, p->bf16, iters, &dt);
    p->runs = runs;
    p->seconds = secs;
    p->median = attn_bench_median(g, runs); /* sorts */
    p->min = g[0], p->max = g[runs - 1];
    return ATTN_OK;
}

double attn_bench_fma_peak(void)
{
    attn_bench_peak p;
    memset(&p, 0, sizeof p);
    p.seconds = 0.25, p.runs = 3;
    return attn_bench_peak_measure(&p) ? 0 : p.median;
}

/* ---- attention ------------------------------------------------------------------ */

static void fill(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((double)(s >> 40) / (double)(1ULL << 24) - 0.5);
    }
}

/* Median ms of the fused kernels: a warm-up, then runs until ~1.5 s or 15
 * runs (at least 3). */
static double time_fused(const attn_bench_attn *b, const attn_flash_desc *desc, const float *q,
                         const float *k, const float *v, float *o, float *lse, const float *g,
                         float *dq, float *dk, float *dv, int *reps_out, attn_status *st)
{
    const size_t nd = b->heads * b->n * b->d;
    double t[15];
    int reps = 0;
    double spent = 0;
    for (int r = -1; r < 15; r++) {
        double t0 = attn_bench_now();
        *st = attn_flash_forward(o, lse, q, k, v, desc);
        if (!*st && b->backward) {
            memset(dq, 0, nd * sizeof(float)), memset(dk, 0, nd * sizeof(float));
            memset(dv, 0, nd * sizeof(float));
            *st = attn_flash_backward(dq, dk, dv, g, q, k, v, o, lse, desc);
        }
        if (*st) return 0;
        double dt = attn_bench_now() - t0;
        if (r < 0) continue;
        t[reps++] = dt;
        spent += dt;
        if (reps >= 3 && spent > 1.5) break;
    }
    *reps_out = reps;
    return attn_bench_median(t, reps) * 1e3;
}

attn_status attn_bench_attention(attn_bench_attn *b)
{
    if (!b || !b->n || !b->d || !b->heads)
        return attn_error(ATTN_E_INVALID, "bench attention: sizes must be > 0");
    const size_t n = b->n, d = b->d, H = b->heads, nd = H * n * d;
    attn_flash_desc desc = attn_flash_desc_make(1, H, n, n, d, d);
    desc.dtype = b->bf16 ? ATTN_FLASH_BF16 : ATTN_FLASH_F32;
    desc.causal = b->causal ? ATTN_CAUSAL_TOP_LEFT : ATTN_CAUSAL_NONE;
    float *q = malloc(nd * sizeof(float)), *k = malloc(nd * sizeof(float));
    float *v = malloc(nd * sizeof(float)), *o = malloc(nd * sizeof(float));
    float *lse = malloc(H * n * sizeof(float)), *g = malloc(nd * sizeof(float));
    float *dq = NULL, *dk = NULL, *dv = NULL;
    if (b->backward) {
        dq = malloc(nd * sizeof(float)), dk = malloc(nd * sizeof(float));
        dv = malloc(nd * sizeof(float));
    }
    attn_status st = ATTN_OK;
    if (!q || !k || !v || !o || !lse || !g || (b->backward && (!dq || !dk || !dv))) {
        st = attn_error(ATTN_E_NOMEM, "bench attention: cannot allocate inputs");
        goto done;
    }
    fill(q, nd, 1), fill(k, nd, 2), fill(v, nd, 3), fill(g, nd, 4);

    /* FlashAttention-2's count: two GEMMs of 2·N²·d, the backward 2.5× the
     * forward (five GEMMs, its recomputed scores included). */
    b->flops = 4.0 * (double)n * (double)n * (double)d * (double)H *
               (b->backward ? 3.5 : 1.0) * (b->causal ? 0.5 : 1.0);
    b->extra_bytes = attn_flash_forward_workspace(&desc);
    if (b->backward) {
        size_t bw = attn_flash_backward_workspace(&desc);
        if (bw > b->extra_bytes) b->extra_bytes = bw;
    }

    b->ms = time_fused(b, &desc, q, k, v, o, lse, g, dq, dk, dv, &b->reps, &st);
    if (st) goto done;
    b->f32_ms = 0;
    if (b->bf16 && attn_flash_bf16_available()) { /* the fp32 kernels in the same run */
        attn_flash_desc d32 = desc;
        d32.dtype = ATTN_FLASH_F32;
        int reps32;
        b->f32_ms = time_fused(b, &d32, q, k, v, o, lse, g, dq, dk, dv, &reps32, &st);
        if (st) goto done;
    }

    /* Reference, one head at a time: on fewer heads (and for long sequences
     * on fewer query rows: its cost is linear in them), scaled up. */
    b->ref_ms = 0, b->ref_heads = 0, b->ref_rows = 0, b->ref_reps = 0;
    if (!b->no_ref) {
        double cost = (double)n * (double)n * (double)d; /* per head */
        size_t rh = H, rows = n;
        int rreps = 3;
        if (cost * (double)H > 2e8) rreps = 1;
        while (rh > 1 && cost * (double)rh > 4e8) rh /= 2;
        if (n > 2048) rows = 2048;
        float *w = malloc(rows * n * sizeof(float));
        float *rq = NULL, *rk = NULL, *rv = NULL;
        if (b->backward) {
            rq = calloc(rows * d, sizeof(float)), rk = calloc(n * d, sizeof(float));
            rv = calloc(n * d, sizeof(float));
        }
        if (!w || (b->backward && (!rq || !rk || !rv))) {
            free(w), free(rq), free(rk), free(rv);
            st = attn_error(ATTN_E_NOMEM, "bench attention: cannot allocate the reference");
            goto done;
        }
        attn_sdpa_params p = attn_sdpa_defaults();
        double rt[3];
        for (int r = 0; r < rreps && !st; r++) {
            double t0 = attn_bench_now();
            for (size_t h = 0; h < rh && !st; h++) {
                /* Causal: the last `rows` queries (they see the most keys). */
                size_t q0 = n - rows;
                p.causal = b->causal ? ATTN_CAUSAL_BOTTOM_RIGHT : ATTN_CAUSAL_NONE;
                const float *qh = q + h * n * d + q0 * d, *kh = k + h * n * d, *vh = v + h * n * d;
                st = attn_sdpa_ref(o, w, qh, kh, vh, rows, n, d, d, &p, NULL);
                if (!st && b->backward)
                    st = attn_sdpa_backward(rq, rk, rv, g + h * n * d, qh, kh, vh, w, rows, n, d, d,
                                            &p);
            }
            rt[r] = attn_bench_now() - t0;
        }
        free(w), free(rq), free(rk), free(rv);
        if (st) goto done;
        b->ref_ms = attn_bench_median(rt, rreps) * 1e3 * ((double)H / (double)rh) * ((double)n / (double)rows);
        b->ref_heads = rh, b->ref_rows = rows, b->ref_reps = rreps;
    }

done:
    free(q), free(k), free(v), free(o), free(lse), free(g), free(dq), free(dk), free(dv);
    return st;
}

/* ---- GEMM ------------------------------------------------------------------------- */

static double time_gemm(int which, float *c, const float *a, const float *bm, size_t m, size_t k,
                        size_t n, int trans_b, attn_status *st)
{
    double t[7];
    int reps = 0;
    double spent = 0;
    for (int r = -1; r < 7; r++) {
        double t0 = attn_bench_now();
        if (which == 0) *st = attn_gemm_builtin(c, a, bm, m, k, n, trans_b);
        else if (which == 1) *st = attn_gemm_cblas(c, a, bm, m, k, n, trans_b);
        else *st = trans_b ? attn_matmul_nt_ref(c, a, bm, m, k, n) : attn_matmul_ref(c, a, bm, m, k, n);
        if (*st) return 0;
        double dt = attn_bench_now() - t0;
        if (r < 0) continue;
        t[reps++] = dt;
        spent += dt;
        if (reps >= 3 && spent > 1.0) break;
    }
    return attn_bench_median(t, reps) * 1e3;
}

attn_status attn_bench_matmul(attn_bench_gemm *b)
{
    if (!b || !b->m || !b->k || !b->n) return attn_error(ATTN_E_INVALID, "bench matmul: sizes");
    float *a = malloc(b->m * b->k * sizeof(float)), *bm = malloc(b->k * b->n * sizeof(float));
    float *c = malloc(b->m * b->n * sizeof(float));
    attn_status st = ATTN_OK;
    if (!a || !bm || !c) {
        st = attn_error(ATTN_E_NOMEM, "bench matmul: cannot allocate");
        goto done;
    }
    fill(a, b->m * b->k, 5), fill(bm, b->k * b->n, 6);
    b->builtin_ms = time_gemm(0, c, a, bm, b->m, b->k, b->n, b->trans_b, &st);
    if (st) goto done;
    b->cblas_ms = 0;
    if (attn_have_cblas()) {
        b->cblas_ms = time_gemm(1, c, a, bm, b->m, b->k, b->n, b->trans_b, &st);
        if (st) goto done;
    }
    double cost = (double)b->k * (double)b->n;
    size_t rows = b->m;
    while (rows > 16 && cost * (double)rows > 1e8) rows /= 2;
    b->ref_rows = rows;
    b->ref_ms = time_gemm(2, c, a, bm, rows, b->k, b->n, b->trans_b, &st) * (double)b->m / (double)rows;
done:
    free(a), free(bm), free(c);
    return st;
}

/* ---- memory bandwidth --------------------------------------------------------------- */

/* Σ x over `streams` equal parts of n floats read side by side, 8
 * interleaved sums each (vector loads, no dependency chain on one register),
 * each stream prefetched 256 bytes ahead. One sequential stream a core does
 * not reach what memory can do: on 2 Zen 5 cores 23-30 GB/s with one stream a
 * thread against 41-53 with four and the prefetch (38-49 without), and the
 * matrix-vector kernel reads four streams a core too (gemv_avx512.c); so
 * the probe tries 1, 2, 4 and 8 and keeps the fastest. */
#define BW_MAX_STREAMS 8
#define BW_LANES 8 /* sums a stream: 8 streams' fit the 16 vector registers of SSE2 */
#define BW_AHEAD 64 /* floats: the prefetch distance */
#if defined(__GNUC__)
#define BW_PREFETCH(p) __builtin_prefetch(p)
#define BW_INLINE static inline __attribute__((always_inline))
#else
#define BW_PREFETCH(p) ((void)(p))
#define BW_INLINE static inline
#endif

/* inlined with a constant `streams`, so that the sums stay in registers */
BW_INLINE float stream_sum_n(const float *x, size_t n, const size_t streams)
{
    float acc[BW_MAX_STREAMS][BW_LANES] = {{0}};
    const size_t len = n / streams / (2 * BW_LANES) * (2 * BW_LANES);
    for (size_t i = 0; i < len; i += 2 * BW_LANES) /* a 64-byte line a stream */
        for (size_t s = 0; s < streams; s++) {
            const float *line = x + s * len + i;
            BW_PREFETCH(line + BW_AHEAD);
            for (size_t l = 0; l < BW_LANES; l++) acc[s][l] += line[l] + line[BW_LANES + l];
        }
    float sum = 0.0f;
    for (size_t i = streams * len; i < n; i++) sum += x[i];
    for (size_t s = 0; s < streams; s++)
        for (size_t l = 0; l < BW_LANES; l++) sum += acc[s][l];
    return sum;
}

static float stream_sum(const float *x, size_t n, size_t streams)
{
    switch (streams) {
    case 1: return stream_sum_n(x, n, 1);
    case 2: return stream_sum_n(x, n, 2);
    case 4: return stream_sum_n(x, n, 4);
    default: return stream_sum_n(x, n, 8);
    }
}

struct attn_bench_bw {
    float *x;
    size_t n;
};

attn_status attn_bench_bw_create(attn_bench_bw **out, size_t bytes)
{
    if (!out || bytes < 4096)
        return attn_error(ATTN_E_INVALID, "read bandwidth: need a buffer of >= 4096 bytes");
    *out = NULL;
    attn_bench_bw *p = calloc(1, sizeof *p);
    /* on huge pages, as a model's weights are (attn_alloc_aligned) */
    if (p) p->x = attn_alloc_aligned(bytes, 1);
    if (!p || !p->x) {
        free(p);
        return attn_error(ATTN_E_NOMEM, "read bandwidth: cannot allocate %zu bytes", bytes);
    }
    p->n = bytes / sizeof(float);
    const int threads = attn_threads();
    float *x = p->x;
    const size_t n = p->n;
    /* Each thread first touches the slice it reads, so its pages are near it. */
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
    for (int t = 0; t < threads; t++) {
        const size_t a = n * (size_t)t / (size_t)threads, b = n * (size_t)(t + 1) / (size_t)threads;
        for (size_t i = a; i < b; i++) x[i] = (float)(i & 7);
    }
    *out = p;
    return ATTN_OK;
}

void attn_bench_bw_free(attn_bench_bw *p)
{
    if (!p) return;
    free(p->x);
    free(p);
}

/* Seconds of one read of the whole buffer, `streams` streams a thread. */
static double bw_read_once(const attn_bench_bw *p, size_t streams, volatile float *sink)
{
    const int threads = attn_threads();
    const float *x = p->x;
    const size_t n = p->n;
    float part[256] = {0};
    const double t0 = attn_bench_now();
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
    for (int t = 0; t < threads; t++) {
        const size_t a = n * (size_t)t / (size_t)threads;
        const size_t b = n * (size_t)(t + 1) / (size_t)threads;
        part[t & 255] = stream_sum(x + a, b - a, streams);
    }
    const double dt = attn_bench_now() - t0;
    for (int t = 0; t < threads && t < 256; t++) *sink += part[t];
    return dt;
}

attn_status attn_bench_bw_measure(const attn_bench_bw *p, int runs, double *gb_s)
{
    if (!p || !gb_s || runs < 1 || runs > ATTN_BENCH_MAX_RUNS)
        return attn_error(ATTN_E_INVALID, "read bandwidth: need a probe and 1..%d runs",
                          ATTN_BENCH_MAX_RUNS);
    volatile float sink = 0.0f;
    (void)bw_read_once(p, 4, &sink); /* warm-up */
    double best = INFINITY; /* the fastest read, as STREAM reports: what memory can do */
    for (int r = 0; r < runs; r++)
        for (size_t s = 1; s <= BW_MAX_STREAMS; s *= 2) {
            const double dt = bw_read_once(p, s, &sink);
            best = dt < best ? dt : best;
        }
    *gb_s = (double)(p->n * sizeof(float)) / best / 1e9;
    return ATTN_OK;
}

attn_status attn_bench_read_bandwidth(size_t bytes, int runs, double *gb_s)
{
    if (!gb_s || bytes < 4096 || runs < 1 || runs > ATTN_BENCH_MAX_RUNS)
        return attn_error(ATTN_E_INVALID, "read bandwidth: need >= 4096 bytes and 1..%d runs",
                          ATTN_BENCH_MAX_RUNS);
    attn_bench_bw *p = NULL;
    attn_status st = attn_bench_bw_create(&p, bytes);
    if (!st) st = attn_bench_bw_measure(p, runs, gb_s);
    attn_bench_bw_free(p);
    return st;
}
