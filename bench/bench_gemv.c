/* bench_gemv.c - a GPT-2 124M decode step's matrix-vector products (12 ×
 * {2304, 768, 3072, 768} rows and the 50257-row head, 495 MB of weights)
 * through attn_matmul_nt_forward, at the scalar level (row_times_bt) and at
 * the best level (gemv_avx512.c with AVX-512), interleaved in this process:
 * ms per token (best of 5 × 5 tokens), GB/s and the ratio of each round.
 * Usage: bench_gemv [ROUNDS] (default 3). Noisy on a shared machine: run it
 * under /work/wt/bin/measure or alone. */
#include <stdio.h>
#include <stdlib.h>

#include "attn/attn.h"
#include "attn/bench.h"

#define OPS 5
static const size_t ROWS[OPS] = {2304, 768, 3072, 768, 50257}, COLS[OPS] = {768, 768, 768, 3072, 768};

/* ms for one token's products, best of 5 × 5 tokens */
static double token_ms(float *const *w, const float *a, float *c)
{
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        const double t0 = attn_bench_now();
        for (int tok = 0; tok < 5; tok++)
            for (size_t l = 0; l < 13; l++)
                for (size_t o = 0; o < (l < 12 ? 4u : 1u); o++) {
                    const size_t op = l < 12 ? o : 4;
                    if (attn_matmul_nt_forward(c, a, w[l * 4 + o], 1, COLS[op], ROWS[op], NULL)) exit(1);
                }
        const double dt = (attn_bench_now() - t0) / 5 * 1e3;
        if (dt < best) best = dt;
    }
    return best;
}

int main(int argc, char **argv)
{
    const int rounds = argc > 1 ? atoi(argv[1]) : 3;
    float *w[52] = {0}, *a = malloc(3072 * sizeof(float)), *c = malloc(50257 * sizeof(float));
    double bytes = 0;
    if (!a || !c) return 1;
    for (size_t i = 0; i < 3072; i++) a[i] = (float)(i % 7) * 1e-3f;
    for (size_t l = 0; l < 13; l++)
        for (size_t o = 0; o < (l < 12 ? 4u : 1u); o++) {
            const size_t op = l < 12 ? o : 4, n = ROWS[op] * COLS[op];
            /* on huge pages, as the model's arena (one block of 500 MB) is */
            if (!(w[l * 4 + o] = attn_alloc_aligned(n * sizeof(float), 1))) return 1;
            for (size_t i = 0; i < n; i++) w[l * 4 + o][i] = (float)(i % 5) * 1e-3f;
            bytes += (double)n * sizeof(float);
        }
    const attn_simd best = attn_simd_best();
    printf("%d threads, %.1f MB a token; scalar = row_times_bt, %s = the level's kernel\n",
           attn_threads(), bytes / 1e6, attn_simd_name(best));
    for (int r = 0; r < rounds; r++) {
        attn_simd_set(ATTN_SIMD_SCALAR);
        const double ts = token_ms(w, a, c);
        attn_simd_set(best);
        const double tb = token_ms(w, a, c);
        printf("round %d: scalar %.2f ms (%.1f GB/s), %s %.2f ms (%.1f GB/s): %.2fx\n", r + 1, ts,
               bytes / ts / 1e6, attn_simd_name(best), tb, bytes / tb / 1e6, ts / tb);
    }
    for (size_t i = 0; i < 52; i++) free(w[i]);
    free(a), free(c);
    return 0;
}
