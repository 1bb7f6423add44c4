/* attn/bench.h - measurements behind `attn bench` (the CLI only prints them).
 *
 * Timings are medians of several runs in this process; the machines are
 * shared and noisy, so compare the ratios measured in one run. */
#ifndef ATTN_BENCH_H
#define ATTN_BENCH_H

#include <stddef.h>
#include "attn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* fp32 FMA peak of this machine in GFLOP/s: independent FMA chains at the
 * SIMD level in use, on attn_threads() threads. */
double attn_bench_fma_peak(void);

/* Fused attention on (1, heads, n, d) inputs, against the reference kernel
 * (attn_sdpa_ref, and attn_sdpa_backward for the backward) in the same run. */
typedef struct attn_bench_attn {
    /* in */
    size_t n, d, heads;
    int causal;   /* top-left */
    int backward; /* 0: forward only; 1: forward + backward */
    int no_ref;   /* skip the reference */
    /* out */
    int reps;           /* runs of the fused kernel (ms is their median) */
    double ms;          /* fused kernel, median */
    double flops;       /* counted: 4·n²·d·heads, × 2.5 with backward, ÷ 2 causal */
    double ref_ms;      /* reference, for the whole problem (scaled when partial); 0 if skipped */
    size_t ref_heads;   /* heads the reference actually ran */
    size_t ref_rows;    /* query rows the reference actually ran (per head) */
    int ref_reps;
    size_t extra_bytes; /* bytes the fused kernels allocate */
} attn_bench_attn;

attn_status attn_bench_attention(attn_bench_attn *b);

/* GEMM c = a·b (m, k, n), trans_b: b is (n, k). Median ms of the built-in
 * kernel, CBLAS (0 when absent) and the double-accumulating reference (on
 * ref_rows of the m rows, scaled to all of them). */
typedef struct attn_bench_gemm {
    size_t m, k, n;
    int trans_b;
    double builtin_ms, cblas_ms, ref_ms;
    size_t ref_rows;
} attn_bench_gemm;

attn_status attn_bench_matmul(attn_bench_gemm *b);

#ifdef __cplusplus
}
#endif
#endif
