/* cmd_bench.c - `attn bench attention|matmul`: parse, call attn/bench.h, print. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/bench.h"
#include "cli.h"
#include "cmd_bench.h"

static const char usage[] =
    "usage: attn bench attention [--json] [--n N] [--d D] [--heads H] [--threads T]\n"
    "                            [--no-ref] [--causal yes|no|both] [--pass fwd|fwdbwd|both]\n"
    "       attn bench matmul [--json] [--threads T]\n"
    "       mpirun -np K attn bench ring --n N [...]   (attn bench ring --help)\n"
    "\n"
    "attention: the fused kernels on (1, H, N, D) inputs, N in 128 512 1024 2048\n"
    "4096 8192 (or --n), D = 64, H = 12, causal and not, forward and forward +\n"
    "backward. First the machine's fp32 FMA peak (independent FMA chains, all\n"
    "threads); then per shape: ms (median), GFLOP/s (forward 4*N^2*D*H, forward +\n"
    "backward 2.5x that, causal half), fraction of the peak, speed-up over the\n"
    "reference kernel measured in the same run (on fewer heads and query rows for\n"
    "large N, scaled: the 'ref' column says how much ran), and the bytes the fused\n"
    "kernels allocate.\n"
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
    "  -h, --help     show this help\n";

enum { OPT_JSON = 1, OPT_N, OPT_D, OPT_HEADS, OPT_THREADS, OPT_NOREF, OPT_CAUSAL, OPT_PASS };

static int pick(const char *arg, const char *a, const char *b, int *mask)
{
    if (strcmp(arg, a) == 0) *mask = 1;
    else if (strcmp(arg, b) == 0) *mask = 2;
    else if (strcmp(arg, "both") == 0) *mask = 3;
    else return -1;
    return 0;
}

static int bench_attention(int json, int n_only, int d, int heads, int no_ref, int causal_mask,
                           int pass_mask)
{
    static const size_t ns[] = {128, 512, 1024, 2048, 4096, 8192};
    const double peak = attn_bench_fma_peak();
    const char *simd = attn_simd_name(attn_simd_level());
    const int threads = attn_threads();
    if (json)
        printf("{\"threads\": %d, \"simd\": \"%s\", \"peak_gflops\": %.1f, \"results\": [", threads,
               simd, peak);
    else {
        printf("attn bench attention: %d thread%s, SIMD %s, measured fp32 FMA peak %.1f GFLOP/s\n",
               threads, threads == 1 ? "" : "s", simd, peak);
        printf("%6s %4s %5s %6s %7s %10s %8s %6s %9s %9s  %s\n", "N", "d", "heads", "causal",
               "pass", "ms", "GFLOP/s", "peak", "speed-up", "extra MB", "reference run");
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
                b.backward = pass, b.no_ref = no_ref;
                attn_status st = attn_bench_attention(&b);
                if (st) {
                    if (json) printf("]}\n");
                    return cli_fail("bench", st);
                }
                const double gf = b.flops / (b.ms * 1e-3) * 1e-9;
                const double speedup = b.ref_ms > 0 ? b.ref_ms / b.ms : 0;
                if (json) {
                    printf("%s\n  {\"n\": %zu, \"d\": %d, \"heads\": %d, \"causal\": %s, \"pass\": "
                           "\"%s\", \"ms\": %.3f, \"gflops\": %.2f, \"fraction_of_peak\": %.4f, "
                           "\"speedup_vs_reference\": ",
                           first ? "" : ",", n, d, heads, causal ? "true" : "false",
                           pass ? "fwdbwd" : "fwd", b.ms, gf, gf / peak);
                    if (speedup > 0) printf("%.2f", speedup);
                    else printf("null");
                    printf(", \"extra_bytes\": %zu", b.extra_bytes);
                    if (b.ref_ms > 0)
                        printf(", \"reference_ms\": %.1f, \"reference_heads\": %zu, "
                               "\"reference_rows\": %zu",
                               b.ref_ms, b.ref_heads, b.ref_rows);
                    printf("}");
                } else {
                    char note[96] = "-", sp[16] = "-";
                    if (b.ref_ms > 0) {
                        snprintf(sp, sizeof sp, "%.1fx", speedup);
                        if (b.ref_heads == b.heads && b.ref_rows == b.n)
                            snprintf(note, sizeof note, "all, %d rep%s", b.ref_reps,
                                     b.ref_reps == 1 ? "" : "s");
                        else
                            snprintf(note, sizeof note, "%zu head%s x %zu rows, scaled", b.ref_heads,
                                     b.ref_heads == 1 ? "" : "s", b.ref_rows);
                    }
                    printf("%6zu %4d %5d %6s %7s %10.2f %8.1f %5.0f%% %9s %9.2f  %s\n", n, d, heads,
                           causal ? "yes" : "no", pass ? "fwd+bwd" : "fwd", b.ms, gf,
                           100.0 * gf / peak, sp, (double)b.extra_bytes / 1048576.0, note);
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
    if (strcmp(what, "attention") && strcmp(what, "matmul"))
        return cli_usage_error("bench", usage, "unknown benchmark '%s'", what);
    static const struct option opts[] = {
        {"json", no_argument, 0, OPT_JSON},         {"n", required_argument, 0, OPT_N},
        {"d", required_argument, 0, OPT_D},         {"heads", required_argument, 0, OPT_HEADS},
        {"threads", required_argument, 0, OPT_THREADS}, {"no-ref", no_argument, 0, OPT_NOREF},
        {"causal", required_argument, 0, OPT_CAUSAL}, {"pass", required_argument, 0, OPT_PASS},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    int json = 0, n = 0, d = 64, heads = 12, threads = 0, no_ref = 0, causal = 3, pass = 3;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
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
        case 'h': fputs(usage, stdout); return cli_finish_stdout("bench");
        default: return cli_bad_option("bench", usage, opt, argv + 1);
        }
    }
    if (optind < argc - 1)
        return cli_usage_error("bench", usage, "unexpected argument '%s'", argv[optind + 1]);
    if (threads) attn_set_threads(threads);
    if (strcmp(what, "matmul") == 0) return bench_matmul(json);
    /* --pass: bit 0 forward, bit 1 forward+backward; pick gives 1 = first word. */
    return bench_attention(json, n, d, heads, no_ref, causal, pass);
}
