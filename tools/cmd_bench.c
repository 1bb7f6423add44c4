/* cmd_bench.c - `attn bench attention|matmul`: parse, call attn/bench.h, print. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/bench.h"
#include "cli.h"
#include "cmd_bench.h"
#include "cmd_tokenize.h"

static const char usage[] =
    "usage: attn bench attention [--json] [--n N] [--d D] [--heads H] [--threads T]\n"
    "                            [--no-ref] [--causal yes|no|both] [--pass fwd|fwdbwd|both]\n"
    "                            [--dtype fp32|bf16] [--peak-seconds S] [--peak-runs R]\n"
    "       attn bench matmul [--json] [--threads T]\n"
    "       mpirun -np K attn bench ring --n N [...]   (attn bench ring --help)\n"
    "       attn bench tokenize --data FILE [--gpt2 DIR] (see attn bench tokenize --help)\n"
    "       attn bench generate [--config gpt2|tiny] [...] (see attn bench generate --help)\n"
    "\n"
    "attention: the fused kernels on (1, H, N, D) inputs, N in 128 512 1024 2048\n"
    "4096 8192 (or --n), D = 64, H = 12, causal and not, forward and forward +\n"
    "backward. First the machine's peaks, measured on all threads in runs of\n"
    "--peak-seconds after a warm-up run (min / median / max of --peak-runs): fp32\n"
    "(independent FMA chains) and, where the CPU has AVX-512 BF16, bf16\n"
    "(independent vdpbf16ps chains). Then per shape: ms (median), GFLOP/s counted\n"
    "as FlashAttention-2 does (forward 4*N^2*D per head, causal half, forward +\n"
    "backward 3.5x the forward: its backward does five GEMMs to the forward's two,\n"
    "the recomputed scores included), the fraction of the median peak of the\n"
    "dtype the kernels ran in, the speed-up over the reference kernel measured in\n"
    "the same run (on fewer heads and query rows for large N, scaled: the\n"
    "'reference run' column says how much ran), with --dtype bf16 the speed-up\n"
    "over the fp32 fused kernels in the same run, and the bytes the fused kernels\n"
    "allocate. --dtype bf16 falls back to fp32 (and says so) where unavailable.\n"
    "matmul: the built-in GEMM, CBLAS and the reference on square and attention-\n"
    "shaped products.\n"
    "\n"
    "options:\n"
    "  --json         one JSON object instead of a table\n"
    "  --n N          only this sequence length\n"
    "  --d D          head width (default 64)\n"
    "  --heads H      heads (default 12)\n"
    "  --threads T    threads (default: OpenMP's)\n"
    "  --no-ref       do not time the reference\n"
    "  --causal WHICH yes, no or both (default both)\n"
    "  --pass WHICH   fwd, fwdbwd or both (default both)\n"
    "  --dtype T      fp32 or bf16: the products of the fused kernels (default fp32)\n"
    "  --peak-seconds S  length of one peak run (default 1)\n"
    "  --peak-runs R  peak runs (default 5)\n"
    "  -h, --help     show this help\n";

enum {
    OPT_JSON = 1, OPT_N, OPT_D, OPT_HEADS, OPT_THREADS, OPT_NOREF, OPT_CAUSAL, OPT_PASS,
    OPT_DTYPE, OPT_PEAK_S, OPT_PEAK_RUNS
};

/* What `attn bench attention` runs beyond the shapes. */
typedef struct attn_opts {
    int bf16;
    double peak_seconds;
    int peak_runs;
} attn_opts;

static const char flop_count[] =
    "FlashAttention-2: forward 4*N^2*d per head, causal half, forward+backward 3.5x forward";

static void print_peak_json(const char *name, const attn_bench_peak *p)
{
    if (!p->available) printf("\"%s\": null", name);
    else
        printf("\"%s\": {\"min\": %.1f, \"median\": %.1f, \"max\": %.1f}", name, p->min, p->median,
               p->max);
}

/* The fp32 and (where available) bf16 peaks; fills both. */
static attn_status measure_peaks(const attn_opts *o, attn_bench_peak *p32, attn_bench_peak *p16)
{
    memset(p32, 0, sizeof *p32), memset(p16, 0, sizeof *p16);
    p32->seconds = p16->seconds = o->peak_seconds;
    p32->runs = p16->runs = o->peak_runs;
    p16->bf16 = 1;
    attn_status st = attn_bench_peak_measure(p32);
    if (!st) st = attn_bench_peak_measure(p16);
    return st;
}

static int pick(const char *arg, const char *a, const char *b, int *mask)
{
    if (strcmp(arg, a) == 0) *mask = 1;
    else if (strcmp(arg, b) == 0) *mask = 2;
    else if (strcmp(arg, "both") == 0) *mask = 3;
    else return -1;
    return 0;
}

static int bench_attention(int json, int n_only, int d, int heads, int no_ref, int causal_mask,
                           int pass_mask, const attn_opts *o)
{
    static const size_t ns[] = {128, 512, 1024, 2048, 4096, 8192};
    attn_bench_peak p32, p16;
    attn_status pst = measure_peaks(o, &p32, &p16);
    if (pst) return cli_fail("bench", pst);
    const int bf16 = o->bf16 && attn_flash_bf16_available();
    const double peak = bf16 ? p16.median : p32.median;
    const char *simd = attn_simd_name(attn_simd_level());
    const int threads = attn_threads();
    if (json) {
        printf("{\"threads\": %d, \"simd\": \"%s\", \"dtype\": \"%s\", \"kernel_dtype\": \"%s\", "
               "\"flop_count\": \"%s\", \"peak_runs\": %d, \"peak_seconds\": %.2f, "
               "\"peak_gflops\": %.1f, ",
               threads, simd, o->bf16 ? "bf16" : "fp32", bf16 ? "bf16" : "fp32", flop_count,
               p32.runs, p32.seconds, peak);
        print_peak_json("peak_fp32", &p32);
        printf(", ");
        print_peak_json("peak_bf16", &p16);
        printf(", \"results\": [");
    } else {
        printf("attn bench attention: %d thread%s, SIMD %s, dtype %s%s\n", threads,
               threads == 1 ? "" : "s", simd, bf16 ? "bf16" : "fp32",
               o->bf16 && !bf16 ? " (bf16 unavailable here: the fp32 kernels)" : "");
        printf("measured peak, %d runs of %.2f s, GFLOP/s min / median / max: fp32 FMA %.1f / "
               "%.1f / %.1f",
               p32.runs, p32.seconds, p32.min, p32.median, p32.max);
        if (p16.available)
            printf(", bf16 dot %.1f / %.1f / %.1f", p16.min, p16.median, p16.max);
        printf("\nFLOPs counted as %s; peak = fraction of the median %s peak\n", flop_count,
               bf16 ? "bf16" : "fp32");
        printf("%6s %4s %5s %6s %7s %10s %8s %6s %9s %7s %9s  %s\n", "N", "d", "heads", "causal",
               "pass", "ms", "GFLOP/s", "peak", "speed-up", "vs fp32", "extra MB",
               "reference run");
    }
    int first = 1;
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
        size_t n = n_only ? (size_t)n_only : ns[i];
        for (int pass = 0; pass < 2; pass++) {
            if (!(pass_mask & (1 << pass))) continue;
            for (int causal = 0; causal < 2; causal++) {
                if (!(causal_mask & (causal ? 1 : 2))) continue;
                attn_bench_attn b;
                memset(&b, 0, sizeof b);
                b.n = n, b.d = (size_t)d, b.heads = (size_t)heads, b.causal = causal;
                b.backward = pass, b.no_ref = no_ref, b.bf16 = bf16;
                attn_status st = attn_bench_attention(&b);
                if (st) {
                    if (json) printf("]}\n");
                    return cli_fail("bench", st);
                }
                const double gf = b.flops / (b.ms * 1e-3) * 1e-9;
                const double speedup = b.ref_ms > 0 ? b.ref_ms / b.ms : 0;
                const double vs32 = b.f32_ms > 0 ? b.f32_ms / b.ms : 0;
                if (json) {
                    printf("%s\n  {\"n\": %zu, \"d\": %d, \"heads\": %d, \"causal\": %s, \"pass\": "
                           "\"%s\", \"ms\": %.3f, \"gflops\": %.2f, \"fraction_of_peak\": %.4f, "
                           "\"speedup_vs_reference\": ",
                           first ? "" : ",", n, d, heads, causal ? "true" : "false",
                           pass ? "fwdbwd" : "fwd", b.ms, gf, gf / peak);
                    if (speedup > 0) printf("%.2f", speedup);
                    else printf("null");
                    printf(", \"extra_bytes\": %zu", b.extra_bytes);
                    if (vs32 > 0) printf(", \"fp32_ms\": %.3f, \"speedup_vs_fp32\": %.3f", b.f32_ms, vs32);
                    if (b.ref_ms > 0)
                        printf(", \"reference_ms\": %.1f, \"reference_heads\": %zu, "
                               "\"reference_rows\": %zu",
                               b.ref_ms, b.ref_heads, b.ref_rows);
                    printf("}");
                } else {
                    char note[96] = "-", sp[16] = "-", sp32[16] = "-";
                    if (vs32 > 0) snprintf(sp32, sizeof sp32, "%.2fx", vs32);
                    if (b.ref_ms > 0) {
                        snprintf(sp, sizeof sp, "%.1fx", speedup);
                        if (b.ref_heads == b.heads && b.ref_rows == b.n)
                            snprintf(note, sizeof note, "all, %d rep%s", b.ref_reps,
                                     b.ref_reps == 1 ? "" : "s");
                        else
                            snprintf(note, sizeof note, "%zu head%s x %zu rows, scaled", b.ref_heads,
                                     b.ref_heads == 1 ? "" : "s", b.ref_rows);
                    }
                    printf("%6zu %4d %5d %6s %7s %10.2f %8.1f %5.0f%% %9s %7s %9.2f  %s\n", n, d,
                           heads, causal ? "yes" : "no", pass ? "fwd+bwd" : "fwd", b.ms, gf,
                           100.0 * gf / peak, sp, sp32, (double)b.extra_bytes / 1048576.0, note);
                }
                fflush(stdout);
                first = 0;
            }
        }
        if (n_only) break;
    }
    if (json) printf("\n]}\n");
    return cli_finish_stdout("bench");
}

static int bench_matmul(int json)
{
    static const size_t shapes[][4] = {{256, 256, 256, 0},   {512, 512, 512, 0},
                                       {1024, 1024, 1024, 0}, {2048, 2048, 2048, 0},
                                       {4096, 64, 4096, 1},   {4096, 4096, 64, 0},
                                       {4096, 768, 768, 1}};
    const int threads = attn_threads();
    if (json)
        printf("{\"threads\": %d, \"simd\": \"%s\", \"cblas\": %s, \"results\": [", threads,
               attn_simd_name(attn_simd_level()), attn_have_cblas() ? "true" : "false");
    else {
        printf("attn bench matmul: %d thread%s, SIMD %s, CBLAS %s\n", threads,
               threads == 1 ? "" : "s", attn_simd_name(attn_simd_level()),
               attn_have_cblas() ? "yes" : "no");
        printf("%5s %5s %5s %3s %12s %9s %12s %9s %12s %9s\n", "M", "K", "N", "bT", "built-in ms",
               "GFLOP/s", "CBLAS ms", "GFLOP/s", "ref ms", "GFLOP/s");
    }
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        attn_bench_gemm b;
        memset(&b, 0, sizeof b);
        b.m = shapes[i][0], b.k = shapes[i][1], b.n = shapes[i][2], b.trans_b = (int)shapes[i][3];
        attn_status st = attn_bench_matmul(&b);
        if (st) return cli_fail("bench", st);
        const double fl = 2.0 * (double)b.m * (double)b.k * (double)b.n * 1e-6; /* per ms → GFLOP/s */
        if (json)
            printf("%s\n  {\"m\": %zu, \"k\": %zu, \"n\": %zu, \"trans_b\": %s, \"builtin_ms\": %.3f, "
                   "\"cblas_ms\": %.3f, \"reference_ms\": %.2f, \"reference_rows\": %zu}",
                   i ? "," : "", b.m, b.k, b.n, b.trans_b ? "true" : "false", b.builtin_ms,
                   b.cblas_ms, b.ref_ms, b.ref_rows);
        else
            printf("%5zu %5zu %5zu %3s %12.3f %9.1f %12.3f %9.1f %12.1f %9.2f\n", b.m, b.k, b.n,
                   b.trans_b ? "yes" : "no", b.builtin_ms, fl / b.builtin_ms, b.cblas_ms,
                   b.cblas_ms > 0 ? fl / b.cblas_ms : 0.0, b.ref_ms, fl / b.ref_ms);
        fflush(stdout);
    }
    if (json) printf("\n]}\n");
    return cli_finish_stdout("bench");
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 2) return cli_usage_error("bench", usage, "which benchmark? attention or matmul");
    const char *what = argv[1];
    if (strcmp(what, "-h") == 0 || strcmp(what, "--help") == 0) {
        fputs(usage, stdout);
        return cli_finish_stdout("bench");
    }
    if (strcmp(what, "ring") == 0) return cmd_bench_ring(argc - 1, argv + 1);
    if (strcmp(what, "tokenize") == 0) return cmd_bench_tokenize(argc - 1, argv + 1);
    if (strcmp(what, "generate") == 0) return cmd_bench_generate(argc - 1, argv + 1);
    if (strcmp(what, "attention") && strcmp(what, "matmul"))
        return cli_usage_error("bench", usage, "unknown benchmark '%s'", what);
    static const struct option opts[] = {
        {"json", no_argument, 0, OPT_JSON},         {"n", required_argument, 0, OPT_N},
        {"d", required_argument, 0, OPT_D},         {"heads", required_argument, 0, OPT_HEADS},
        {"threads", required_argument, 0, OPT_THREADS}, {"no-ref", no_argument, 0, OPT_NOREF},
        {"causal", required_argument, 0, OPT_CAUSAL}, {"pass", required_argument, 0, OPT_PASS},
        {"dtype", required_argument, 0, OPT_DTYPE}, {"peak-seconds", required_argument, 0, OPT_PEAK_S},
        {"peak-runs", required_argument, 0, OPT_PEAK_RUNS},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    int json = 0, n = 0, d = 64, heads = 12, threads = 0, no_ref = 0, causal = 3, pass = 3;
    attn_opts ao = {0, 1.0, 5};
    opterr = 0;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc - 1, argv + 1, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_JSON: json = 1; break;
        case OPT_N:
            if (cli_parse_int(optarg, 1, 1 << 20, &n))
                return cli_usage_error("bench", usage, "--n: expected 1..1048576, got '%s'", optarg);
            break;
        case OPT_D:
            if (cli_parse_int(optarg, 1, 4096, &d))
                return cli_usage_error("bench", usage, "--d: expected 1..4096, got '%s'", optarg);
            break;
        case OPT_HEADS:
            if (cli_parse_int(optarg, 1, 4096, &heads))
                return cli_usage_error("bench", usage, "--heads: expected 1..4096, got '%s'", optarg);
            break;
        case OPT_THREADS:
            if (cli_parse_int(optarg, 1, 1024, &threads))
                return cli_usage_error("bench", usage, "--threads: expected 1..1024, got '%s'", optarg);
            break;
        case OPT_NOREF: no_ref = 1; break;
        case OPT_CAUSAL:
            if (pick(optarg, "yes", "no", &causal))
                return cli_usage_error("bench", usage, "--causal: yes, no or both, got '%s'", optarg);
            break;
        case OPT_PASS:
            if (pick(optarg, "fwd", "fwdbwd", &pass))
                return cli_usage_error("bench", usage, "--pass: fwd, fwdbwd or both, got '%s'", optarg);
            break;
        case OPT_DTYPE:
            if (strcmp(optarg, "fp32") == 0) ao.bf16 = 0;
            else if (strcmp(optarg, "bf16") == 0) ao.bf16 = 1;
            else return cli_usage_error("bench", usage, "--dtype: fp32 or bf16, got '%s'", optarg);
            break;
        case OPT_PEAK_S:
            if (cli_parse_double(optarg, 0.01, 60, &ao.peak_seconds))
                return cli_usage_error("bench", usage, "--peak-seconds: expected 0.01..60, got '%s'",
                                       optarg);
            break;
        case OPT_PEAK_RUNS:
            if (cli_parse_int(optarg, 1, ATTN_BENCH_MAX_RUNS, &ao.peak_runs))
                return cli_usage_error("bench", usage, "--peak-runs: expected 1..64, got '%s'", optarg);
            break;
        case 'h': fputs(usage, stdout); return cli_finish_stdout("bench");
        default: return cli_bad_option("bench", usage, opt, argv + 1);
        }
    }
    if (optind < argc - 1)
        return cli_usage_error("bench", usage, "unexpected argument '%s'", argv[optind + 1]);
    if (threads) attn_set_threads(threads);
    if (strcmp(what, "matmul") == 0) return bench_matmul(json);
    /* --pass: bit 0 forward, bit 1 forward+backward; pick gives 1 = first word. */
    return bench_attention(json, n, d, heads, no_ref, causal, pass, &ao);
}
