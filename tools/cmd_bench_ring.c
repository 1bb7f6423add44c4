/* cmd_bench_ring.c - `mpirun -np K attn bench ring`: parse, call
 * attn_bench_ring_run (attn/dist.h), print on rank 0. */
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_bench.h"

#ifdef ATTN_HAVE_MPI
#include "attn/dist.h"
#endif

static const char usage[] =
    "usage: mpirun -np K attn bench ring --n N [--d D] [--heads H] [--causal]\n"
    "                                    [--layout contiguous|zigzag] [--pass fwd|both]\n"
    "                                    [--no-check] [--threads T] [--json]\n"
    "\n"
    "Ring (sequence-parallel) attention over the K ranks on (1, H, N, D) inputs:\n"
    "each rank holds N/K query rows and its K, V blocks travel around the ring.\n"
    "Reports for the forward, then the backward alone: ms (median of 5, slowest\n"
    "rank), GFLOP/s per rank (FlashAttention-2's count: forward 4*N^2*D*H / K,\n"
    "causal half, backward 2.5x the forward), bytes sent per rank, the extra\n"
    "memory per rank (ring buffers, partials, kernel workspace), the share of\n"
    "the time spent waiting for the ring, and the largest difference from the\n"
    "single-process fused kernels on the same inputs (out; d_q, d_k, d_v),\n"
    "computed on rank 0 while N*H*D <= 2^26.\n"
    "\n"
    "options:\n"
    "  --n N          sequence length (required)\n"
    "  --d D          head width (default 64)\n"
    "  --heads H      heads (default 1)\n"
    "  --causal       top-left causal mask (blocks in the future are skipped)\n"
    "  --layout L     contiguous (K blocks) or zigzag (2K chunks, rank r holds\n"
    "                 r and 2K-1-r: balanced when causal); default zigzag when\n"
    "                 causal, else contiguous\n"
    "  --pass WHICH   fwd (the forward alone) or both (default: the forward, then\n"
    "                 the backward)\n"
    "  --no-check     skip the single-process comparison\n"
    "  --threads T    threads per rank (default: OpenMP's; 1 per rank is usual)\n"
    "  --json         one JSON object instead of a line\n"
    "  -h, --help     show this help\n";

#ifndef ATTN_HAVE_MPI
int cmd_bench_ring(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return cli_finish_stdout("bench ring");
        }
    cli_error("bench ring", "this attn was built without MPI (see 'attn --version')");
    return CLI_BAD_INPUT;
}
#else

enum { OPT_JSON = 1, OPT_N, OPT_D, OPT_HEADS, OPT_CAUSAL, OPT_LAYOUT, OPT_NOCHECK, OPT_THREADS, OPT_PASS };

/* Usage errors come from every rank alike: rank 0 says it. */
static int quiet_rank(void)
{
    const char *r = getenv("OMPI_COMM_WORLD_RANK");
    if (!r) r = getenv("PMI_RANK");
    return r && strcmp(r, "0") != 0;
}

static int parse(int argc, char **argv, attn_bench_ring *b, int *json, int *threads, int *help)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, OPT_JSON},       {"n", required_argument, 0, OPT_N},
        {"d", required_argument, 0, OPT_D},       {"heads", required_argument, 0, OPT_HEADS},
        {"causal", no_argument, 0, OPT_CAUSAL},   {"layout", required_argument, 0, OPT_LAYOUT},
        {"no-check", no_argument, 0, OPT_NOCHECK}, {"threads", required_argument, 0, OPT_THREADS},
        {"pass", required_argument, 0, OPT_PASS}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int n = 0, d = 64, heads = 1, layout = -1, opt;
    const char *cmd = "bench ring";
    optind = 1;
    opterr = !quiet_rank();
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_JSON: *json = 1; break;
        case OPT_N:
            if (cli_parse_int(optarg, 1, 1 << 30, &n))
                return cli_usage_error(cmd, usage, "--n: expected 1..2^30, got '%s'", optarg);
            break;
        case OPT_D:
            if (cli_parse_int(optarg, 1, 4096, &d))
                return cli_usage_error(cmd, usage, "--d: expected 1..4096, got '%s'", optarg);
            break;
        case OPT_HEADS:
            if (cli_parse_int(optarg, 1, 4096, &heads))
                return cli_usage_error(cmd, usage, "--heads: expected 1..4096, got '%s'", optarg);
            break;
        case OPT_CAUSAL: b->causal = 1; break;
        case OPT_LAYOUT:
            if (strcmp(optarg, "contiguous") == 0) layout = ATTN_RING_CONTIGUOUS;
            else if (strcmp(optarg, "zigzag") == 0) layout = ATTN_RING_ZIGZAG;
            else return cli_usage_error(cmd, usage, "--layout: contiguous or zigzag, got '%s'", optarg);
            break;
        case OPT_NOCHECK: b->check = 0; break;
        case OPT_PASS:
            if (strcmp(optarg, "fwd") == 0) b->backward = 0;
            else if (strcmp(optarg, "both") == 0) b->backward = 1;
            else return cli_usage_error(cmd, usage, "--pass: fwd or both, got '%s'", optarg);
            break;
        case OPT_THREADS:
            if (cli_parse_int(optarg, 1, 1024, threads))
                return cli_usage_error(cmd, usage, "--threads: expected 1..1024, got '%s'", optarg);
            break;
        case 'h': *help = 1; return 0;
        default: return cli_bad_option(cmd, usage, opt, argv);
        }
    }
    if (optind < argc) return cli_usage_error(cmd, usage, "unexpected argument '%s'", argv[optind]);
    if (!n) return cli_usage_error(cmd, usage, "--n is required");
    b->n = (size_t)n, b->d = (size_t)d, b->heads = (size_t)heads;
    b->layout = layout >= 0 ? (attn_ring_layout)layout : b->causal ? ATTN_RING_ZIGZAG : ATTN_RING_CONTIGUOUS;
    return 0;
}

/* v as %.Nf or %.3g (g), or null when NAN (not run, not checked). */
static const char *num(char *buf, size_t n, double v, int g)
{
    if (isnan(v)) snprintf(buf, n, "null");
    else if (g) snprintf(buf, n, "%.3g", v);
    else snprintf(buf, n, "%.3f", v);
    return buf;
}

static void print_json(const attn_bench_ring *b, const char *layout)
{
    char diff[32], ms_b[32], gf_b[32], wait_b[32], diff_b[32];
    printf("{\"ranks\": %d, \"n\": %zu, \"d\": %zu, \"heads\": %zu, \"causal\": %s, "
           "\"layout\": \"%s\", \"threads_per_rank\": %d, \"ms\": %.3f, \"gflops_per_rank\": %.2f, "
           "\"bytes_sent_per_rank\": %zu, \"extra_bytes_per_rank\": %zu, \"wait_share\": %.3f, "
           "\"max_abs_diff\": %s, \"ms_backward\": %s, \"gflops_backward_per_rank\": %s, "
           "\"bytes_sent_backward_per_rank\": %zu, \"extra_bytes_backward_per_rank\": %zu, "
           "\"wait_share_backward\": %s, \"max_abs_diff_backward\": %s}\n",
           b->ranks, b->n, b->d, b->heads, b->causal ? "true" : "false", layout, attn_threads(), b->ms,
           b->gflops_per_rank, b->bytes_sent_per_rank, b->extra_bytes_per_rank, b->wait_share,
           num(diff, sizeof diff, b->max_abs_diff, 1), num(ms_b, sizeof ms_b, b->ms_backward, 0),
           num(gf_b, sizeof gf_b, b->gflops_backward_per_rank, 0), b->bytes_sent_backward_per_rank,
           b->extra_bytes_backward_per_rank, num(wait_b, sizeof wait_b, b->wait_share_backward, 0),
           num(diff_b, sizeof diff_b, b->max_abs_diff_backward, 1));
}

static void print(const attn_bench_ring *b, int json)
{
    const char *layout = b->layout == ATTN_RING_ZIGZAG ? "zigzag" : "contiguous";
    if (json) {
        print_json(b, layout);
        return;
    }
    char diff[32];
    printf("attn bench ring: %d rank%s x %d thread%s, N %zu, d %zu, heads %zu, %s, %s\n"
           "  forward:  %.2f ms, %.1f GFLOP/s per rank, %.2f MB sent per rank, %.2f MB extra per rank,\n"
           "            %.0f%% of the time waiting for the ring, max |ring - fused| %s\n",
           b->ranks, b->ranks == 1 ? "" : "s", attn_threads(), attn_threads() == 1 ? "" : "s", b->n, b->d,
           b->heads, b->causal ? "causal" : "not causal", layout, b->ms, b->gflops_per_rank,
           (double)b->bytes_sent_per_rank / 1e6, (double)b->extra_bytes_per_rank / 1e6, 100.0 * b->wait_share,
           num(diff, sizeof diff, b->max_abs_diff, 1));
    if (b->backward)
        printf("  backward: %.2f ms, %.1f GFLOP/s per rank, %.2f MB sent per rank, %.2f MB extra per rank,\n"
               "            %.0f%% of the time waiting for the ring, max |ring - fused| of the gradients %s\n",
               b->ms_backward, b->gflops_backward_per_rank, (double)b->bytes_sent_backward_per_rank / 1e6,
               (double)b->extra_bytes_backward_per_rank / 1e6, 100.0 * b->wait_share_backward,
               num(diff, sizeof diff, b->max_abs_diff_backward, 1));
}

/* parse, with rank 0 alone saying what is wrong (every rank parses) */
static int parse_on_rank(int argc, char **argv, attn_bench_ring *b, int *json, int *threads, int *help)
{
    if (!quiet_rank()) return parse(argc, argv, b, json, threads, help);
    fflush(stderr);
    const int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, STDERR_FILENO), close(null);
    const int rc = parse(argc, argv, b, json, threads, help);
    fflush(stderr);
    if (saved >= 0) dup2(saved, STDERR_FILENO), close(saved);
    return rc;
}

int cmd_bench_ring(int argc, char **argv)
{
    attn_bench_ring b;
    memset(&b, 0, sizeof b);
    b.check = 1, b.backward = 1;
    int json = 0, threads = 0, help = 0;
    int rc = parse_on_rank(argc, argv, &b, &json, &threads, &help);
    if (help) {
        fputs(usage, stdout);
        return cli_finish_stdout("bench ring");
    }
    if (rc) return rc;
    if (threads) attn_set_threads(threads);
    b.check = b.check && b.n * b.heads * b.d <= ((size_t)1 << 26);
    if (MPI_Init(NULL, NULL) != MPI_SUCCESS) {
        cli_error("bench ring", "MPI_Init failed");
        return CLI_FAIL;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    attn_status st = attn_bench_ring_run(&b, MPI_COMM_WORLD);
    int out = CLI_OK;
    if (st) out = rank == 0 ? cli_fail("bench ring", st) : (st == ATTN_E_NOMEM ? CLI_FAIL : CLI_BAD_INPUT);
    else if (rank == 0) {
        print(&b, json);
        out = cli_finish_stdout("bench ring");
    }
    MPI_Finalize();
    return out;
}
#endif
