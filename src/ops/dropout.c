/* dropout.c - inverted dropout with counter-based masks: element i of a
 * tensor is kept when a hash of (key, i) says so, so the mask needs no RNG
 * state and no storage (the backward can recompute it, or read the flags the
 * forward kept: _mask), and a training run that derives the key from (seed,
 * step, site) drops the same elements when it is resumed. */
#include <math.h>
#include <string.h>

#include "attn/ops.h"
#include "attn/ops_nn.h"
#include "omp_util.h"

#define DROPOUT_CHUNK 8192

/* splitmix64's finaliser: a bijection of 64 bits with good avalanche. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t attn_dropout_key(uint64_t seed, uint64_t step, uint64_t site)
{
    return mix64(mix64(mix64(seed ^ 0x9E3779B97F4A7C15ull) + step) + site * 0xD1B54A32D192ED03ull);
}

/* KEEP_BODY hashes key + i·G: element first + i of key is element i of
 * key + first·G (mod 2^64). */
uint64_t attn_dropout_key_at(uint64_t key, size_t first)
{
    return key + (uint64_t)first * 0x9E3779B97F4A7C15ull;
}

/* Elements whose 32-bit hash is below this are dropped (probability p). */
static uint32_t threshold(float p) { return (uint32_t)floor((double)p * 4294967296.0); }

/* The keep flags of elements i0 .. i0+len-1 (1: kept). A loop the compiler
 * vectorises; with AVX-512 DQ (64-bit lane multiplies) 8 hashes at a time.
 * The same bits either way. */
#define KEEP_BODY                                                                   \
    for (size_t j = 0; j < len; j++)                                                \
        k[j] = (uint8_t)((uint32_t)(mix64(key + (uint64_t)(i0 + j) * 0x9E3779B97F4A7C15ull) >> 32) >= thr);

static void keep_flags_c(uint8_t *k, uint64_t key, size_t i0, size_t len, uint32_t thr) { KEEP_BODY }
#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,prefer-vector-width=512")))
static void keep_flags_avx512(uint8_t *k, uint64_t key, size_t i0, size_t len, uint32_t thr)
{
    KEEP_BODY
}
#endif

static void keep_flags(uint8_t *k, uint64_t key, size_t i0, size_t len, uint32_t thr, int avx512)
{
#if defined(__GNUC__) && defined(__x86_64__)
    if (avx512) {
        keep_flags_avx512(k, key, i0, len, thr);
        return;
    }
#endif
    (void)avx512;
    keep_flags_c(k, key, i0, len, thr);
}

/* y = keep ? x·scale : 0 over one chunk, and the backward's d_x = keep ?
 * 0 + d_y·scale : 0 (the bits of adding into a zeroed d_x): loops the
 * compiler vectorises, with AVX-512 masks where the CPU has them (a branch
 * an element was 3 % of a classifier step). The same bits either way. */
#define APPLY_BODY                                                                  \
    for (size_t j = 0; j < len; j++) y[j] = k[j] ? add + x[j] * scale : 0.0f;

static void apply_c(float *y, const float *x, const uint8_t *k, size_t len, float scale, float add)
{
    APPLY_BODY
}
#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,prefer-vector-width=512")))
static void apply_avx512(float *y, const float *x, const uint8_t *k, size_t len, float scale,
                         float add)
{
    APPLY_BODY
}
#endif

/* add: -0 in the forward (x + -0 is x, bit for bit), 0 in the backward. */
static void apply(float *y, const float *x, const uint8_t *k, size_t len, float scale, float add,
                  int avx512)
{
#if defined(__GNUC__) && defined(__x86_64__)
    if (avx512) {
        apply_avx512(y, x, k, len, scale, add);
        return;
    }
#endif
    (void)avx512;
    apply_c(y, x, k, len, scale, add);
}

static attn_status check(const void *a, const void *b, size_t n, float p, const char *what)
{
    if (!a || !b) return attn_error(ATTN_E_INVALID, "%s: NULL buffer", what);
    if (!n) return attn_error(ATTN_E_INVALID, "%s: size must be > 0", what);
    if (!(p >= 0.0f && p < 1.0f)) return attn_error(ATTN_E_INVALID, "%s: p must be in [0, 1), got %g", what, (double)p);
    return ATTN_OK;
}

/* y = keep ? x·scale : 0 over len elements (a chunk at most) hashed as
 * elements h0.. of key's tensor, the flags into k. */
static void drop_chunk(float *y, uint8_t *k, const float *x, size_t len, uint64_t key, size_t h0,
                       uint32_t thr, float scale, int avx512)
{
    keep_flags(k, key, h0, len, thr, avx512);
    apply(y, x, k, len, scale, -0.0f, avx512);
}

/* mask (n) or NULL: the keep flags, written as computed. */
static attn_status dropout_run(float *y, uint8_t *mask, const float *x, size_t n, float p,
                               uint64_t key)
{
    attn_status st = check(y, x, n, p, "dropout");
    if (st) return st;
    if (p == 0.0f) {
        if (y != x)
            for (size_t i = 0; i < n; i++) y[i] = x[i];
        if (mask) memset(mask, 1, n);
        return ATTN_OK;
    }
    const uint32_t thr = threshold(p);
    const float scale = 1.0f / (1.0f - p);
    const int avx512 = attn_simd_level() == ATTN_SIMD_AVX512;
    const size_t chunks = (n + DROPOUT_CHUNK - 1) / DROPOUT_CHUNK;
    ATTN_OMP_FOR_IF(n >= 8 * ATTN_OMP_MIN_WORK)
    for (size_t c = 0; c < chunks; c++) {
        const size_t i0 = c * DROPOUT_CHUNK, len = n - i0 < DROPOUT_CHUNK ? n - i0 : DROPOUT_CHUNK;
        uint8_t own[DROPOUT_CHUNK];
        drop_chunk(y + i0, mask ? mask + i0 : own, x + i0, len, key, i0, thr, scale, avx512);
    }
    return ATTN_OK;
}

attn_status attn_dropout_backward(float *d_x, const float *d_y, size_t n, float p, uint64_t key)
{
    attn_status st = check(d_x, d_y, n, p, "dropout backward");
    if (st) return st;
    const uint32_t thr = threshold(p);
    const float scale = 1.0f / (1.0f - p);
    const int avx512 = attn_simd_level() == ATTN_SIMD_AVX512;
    const size_t chunks = (n + DROPOUT_CHUNK - 1) / DROPOUT_CHUNK;
    ATTN_OMP_FOR_IF(n >= 8 * ATTN_OMP_MIN_WORK)
    for (size_t c = 0; c < chunks; c++) {
        const size_t end = c * DROPOUT_CHUNK + DROPOUT_CHUNK < n ? c * DROPOUT_CHUNK + DROPOUT_CHUNK : n;
        if (p == 0.0f) {
            for (size_t i = c * DROPOUT_CHUNK; i < end; i++) d_x[i] += d_y[i];
            continue;
        }
        const size_t i0 = c * DROPOUT_CHUNK, len = end - i0;
        uint8_t k[DROPOUT_CHUNK];
        keep_flags(k, key, i0, len, thr, avx512);
        for (size_t j = 0; j < len; j++)
            if (k[j]) d_x[i0 + j] += d_y[i0 + j] * scale;
    }
    return ATTN_OK;
}

/* The flags the forward kept instead of the hashes (about 3 % of a
 * classifier step on one thread); written, not added, so the caller needs no
 * zeroing pass: the bits of attn_dropout_backward on a zeroed d_x. */
attn_status attn_dropout_backward_mask(float *d_x, const float *d_y, const uint8_t *mask, size_t n,
                                       float p)
{
    attn_status st = check(d_x, d_y, n, p, "dropout backward");
    if (!st && !mask) st = attn_error(ATTN_E_INVALID, "dropout backward: NULL mask");
    if (st) return st;
    const float scale = 1.0f / (1.0f - p);
    const int avx512 = attn_simd_level() == ATTN_SIMD_AVX512;
    const size_t chunks = (n + DROPOUT_CHUNK - 1) / DROPOUT_CHUNK;
    ATTN_OMP_FOR_IF(n >= 8 * ATTN_OMP_MIN_WORK)
    for (size_t c = 0; c < chunks; c++) {
        const size_t i0 = c * DROPOUT_CHUNK, len = n - i0 < DROPOUT_CHUNK ? n - i0 : DROPOUT_CHUNK;
        apply(d_x + i0, d_y + i0, mask + i0, len, scale, 0.0f, avx512);
    }
    return ATTN_OK;
}

attn_status attn_dropout_forward_mask(float *y, uint8_t *mask, const float *x, size_t n, float p,
                                       uint64_t key)
{
    if (!mask) return attn_error(ATTN_E_INVALID, "dropout: NULL mask");
    return dropout_run(y, mask, x, n, p, key);
}

attn_status attn_dropout_forward(float *y, const float *x, size_t n, float p, uint64_t key,
                                  const attn_op_ctx *ctx)
{
    attn_status st = dropout_run(y, NULL, x, n, p, key);
    if (!st) st = attn_op_record(ctx, "output", y, 1, n, NULL, NULL);
    return st;
}

attn_status attn_dropout_forward_mask_packed(float *y, uint8_t *mask, const float *x,
                                              const size_t *seq_off, size_t N, size_t T, size_t C,
                                              float p, uint64_t key)
{
    if (!mask || !seq_off) return attn_error(ATTN_E_INVALID, "dropout (packed): NULL mask or offsets");
    if (!N || !T || !C) return attn_error(ATTN_E_INVALID, "dropout (packed): sizes must be > 0");
    for (size_t b = 0; b < N; b++)
        if (seq_off[b + 1] < seq_off[b] || seq_off[b + 1] - seq_off[b] > T)
            return attn_error(ATTN_E_INVALID, "dropout (packed): sequence %zu spans rows %zu to %zu, "
                              "expected at most %zu rows", b, seq_off[b], seq_off[b + 1], T);
    const size_t n = seq_off[N] * C;
    attn_status st = check(y, x, n, p, "dropout (packed)");
    if (st) return st;
    if (p == 0.0f) return dropout_run(y, mask, x, n, p, key);
    const uint32_t thr = threshold(p);
    const float scale = 1.0f / (1.0f - p);
    const int avx512 = attn_simd_level() == ATTN_SIMD_AVX512;
    /* a sequence a task: its elements are one run of the padded tensor's */
    ATTN_OMP_FOR_DYNAMIC_IF(n >= 8 * ATTN_OMP_MIN_WORK)
    for (size_t b = 0; b < N; b++) {
        const size_t r0 = seq_off[b] * C, e = seq_off[b + 1] * C, h0 = b * T * C;
        for (size_t i0 = r0; i0 < e; i0 += DROPOUT_CHUNK) {
            const size_t len = e - i0 < DROPOUT_CHUNK ? e - i0 : DROPOUT_CHUNK;
            drop_chunk(y + i0, mask + i0, x + i0, len, key, h0 + (i0 - r0), thr, scale, avx512);
        }
    }
    return ATTN_OK;
}
