/* bench_ops.c - the default kernels against their reference twins, timed in
 * the same process (these machines are noisy: read the ratios, not the ms).
 * The fused attention kernels and `attn bench attention` come with the
 * fast-attention work; this is the baseline they will be measured against. */
#define _POSIX_C_SOURCE 200809L
#include <attn/attn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Median of `reps` timings of one call. */
typedef attn_status (*sdpa_fn)(float *, float *, const float *, const float *, const float *,
                                size_t, size_t, size_t, size_t, const attn_sdpa_params *,
                                const attn_op_ctx *);

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double time_sdpa(sdpa_fn fn, float *out, const float *q, size_t n, size_t d, int reps)
{
    double t[16];
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (fn(out, NULL, q, q, q, n, n, d, d, NULL, NULL) != ATTN_OK) {
            fprintf(stderr, "bench: %s\n", attn_last_error());
            exit(1);
        }
        t[r] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    return t[reps / 2];
}

int main(void)
{
    printf("attn %s: single-head attention, default kernels vs reference, 1 thread\n",
           attn_version());
    printf("%6s %4s %12s %12s %10s %9s\n", "N", "d", "ref ms", "default ms", "GFLOP/s", "speed-up");
    static const size_t ns[] = {128, 256, 512, 1024};
    const size_t d = 64;
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
        size_t n = ns[i];
        float *q = malloc(n * d * sizeof(float)), *out = malloc(n * d * sizeof(float));
        if (!q || !out) return 1;
        for (size_t j = 0; j < n * d; j++) q[j] = (float)((j * 2654435761u) % 1000) / 1000.0f - 0.5f;
        int reps = n >= 1024 ? 3 : 7;
        double tr = time_sdpa(attn_sdpa_ref, out, q, n, d, reps);
        double tf = time_sdpa(attn_sdpa_forward, out, q, n, d, reps);
        double flops = 4.0 * (double)n * (double)n * (double)d;
        printf("%6zu %4zu %12.3f %12.3f %10.2f %8.2fx\n", n, d, tr * 1e3, tf * 1e3,
               flops / tf * 1e-9, tr / tf);
        free(q);
        free(out);
    }
    return 0;
}
