/* attn/bench.h - measurements behind `attn bench` (the CLI only prints them).
 *
 * Timings are medians of several runs in this process; the machines are
 * shared and noisy, so compare the ratios measured in one run. */
#ifndef ATTN_BENCH_H
#define ATTN_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include "attn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Peak arithmetic rate of this machine in GFLOP/s, from independent chains
 * of fp32 FMAs at the SIMD level in use (2 flops a lane), or of bf16 dot
 * products (vdpbf16ps: 4 flops a lane), on attn_threads() threads. Each run
 * lasts `seconds` (the loop is sized by a calibration run, and one run of
 * that length warms up first), so that clock ramps and neighbours average
 * out; min, median and max are over `runs` runs. */
#define ATTN_BENCH_MAX_RUNS 64
typedef struct attn_bench_peak {
    /* in */
    double seconds; /* per run (0: 1.0) */
    int runs;       /* (0: 5, at most ATTN_BENCH_MAX_RUNS) */
    int bf16;       /* the bf16 dot-product peak instead of the fp32 FMA one */
    /* out */
    int available; /* 0: bf16 asked for and attn_flash_bf16_available() is 0 */
    double min, median, max;
} attn_bench_peak;

attn_status attn_bench_peak_measure(attn_bench_peak *p);

/* The fp32 FMA peak's median over three 0.25 s runs (a quick figure). */
double attn_bench_fma_peak(void);

/* Fused attention on (1, heads, n, d) inputs, against the reference kernel
 * (attn_sdpa_ref, and attn_sdpa_backward for the backward) in the same run. */
typedef struct attn_bench_attn {
    /* in */
    size_t n, d, heads;
    int causal;   /* top-left */
    int backward; /* 0: forward only; 1: forward + backward */
    int no_ref;   /* skip the reference */
    int bf16;     /* products in bf16 (attn_flash_desc.dtype; fp32 where unavailable) */
    /* out */
    int reps;           /* runs of the fused kernel (ms is their median) */
    double ms;          /* fused kernel, median */
    double f32_ms;      /* bf16 asked for and available: the fp32 kernels, median; else 0 */
    double flops;       /* FlashAttention-2's count: 4·n²·d·heads, × 3.5 with the
                         * backward, ÷ 2 causal */
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

/* Monotonic seconds, and the median of t (n > 0; sorts t): the timing
 * helpers of every bench. */
double attn_bench_now(void);
double attn_bench_median(double *t, int n);

/* Read bandwidth of memory in GB/s (1e9 bytes): the fastest of `runs`
 * rounds of streaming reads of a `bytes` buffer (size it well beyond the
 * caches; on huge pages, as a model's weights) split among attn_threads()
 * threads, each round reading it with 1, 2, 4 and 8 streams a thread, after
 * one warm-up read (the fastest, as STREAM reports: on a shared machine
 * slower runs measure the neighbours). A probe keeps its buffer, so that it
 * can measure again between other work (attn_bench_generate does, after each
 * repetition); attn_bench_read_bandwidth makes one, measures and frees it. */
typedef struct attn_bench_bw attn_bench_bw;
attn_status attn_bench_bw_create(attn_bench_bw **out, size_t bytes);
attn_status attn_bench_bw_measure(const attn_bench_bw *p, int runs, double *gb_s);
void attn_bench_bw_free(attn_bench_bw *p);
attn_status attn_bench_read_bandwidth(size_t bytes, int runs, double *gb_s);

/* Generation speed of a GPT (attn/gpt.h) with the KV cache: the prefill of a
 * `prompt`-token prompt into an empty cache, then `decode` one-token steps
 * (teacher-forced: the ids are attn_bench_generate_id(i) for position i, so
 * another implementation can replay the same work), `reps` times. */
struct attn_gpt;
typedef struct attn_bench_gen {
    /* in */
    size_t prompt, decode;
    int reps; /* at most ATTN_BENCH_MAX_RUNS */
    attn_bench_bw *bw;   /* optional: measured after each repetition's decode (3 rounds) */
    /* out */
    double prefill_s, decode_s; /* medians: one prefill; all `decode` steps */
    double prefill_runs[ATTN_BENCH_MAX_RUNS], decode_runs[ATTN_BENCH_MAX_RUNS]; /* each run's */
    double bw_runs[ATTN_BENCH_MAX_RUNS]; /* GB/s after each run's decode (with `bw`) */
    double prefill_flops;       /* multiply-adds × 2 of one prefill (last logits only) */
    size_t weight_bytes;        /* parameter bytes one decode step reads (the tied head once) */
    size_t kv_bytes;            /* cache bytes the middle decode step reads */
    float logits_head[8];       /* the prefill's first logits (to compare implementations) */
    size_t argmax_prefill;      /* the prefill's most likely next id */
} attn_bench_gen;

uint32_t attn_bench_generate_id(size_t i, size_t vocab);
attn_status attn_bench_generate(struct attn_gpt *g, attn_bench_gen *b);

#ifdef __cplusplus
}
#endif
#endif
