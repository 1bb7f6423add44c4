/* ring_bench.c - `attn bench ring`: the ring forward timed across ranks and
 * checked on rank 0 against the single-process fused kernel. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/dist.h"
#include "attn/ops.h"

int attn_dist_launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
                                       "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

/* A value in [-1, 1) for element (tensor, bh, global row, column): a hash,
 * so each rank makes exactly its rows and the inputs do not depend on K. */
static float input_value(uint64_t tensor, uint64_t bh, uint64_t row, uint64_t col)
{
    uint64_t z = tensor * 0x9E3779B97F4A7C15ull ^ bh * 0xBF58476D1CE4E5B9ull ^
                 row * 0x94D049BB133111EBull ^ (col + 1) * 0xD6E8FEB86659FD93ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((double)(z >> 40) / (double)(1ull << 23) - 1.0);
}

/* x: (bh, rows, w) with the rows of runs [start, start + len). */
static void fill(float *x, uint64_t tensor, size_t bh, const size_t start[2], const size_t len[2],
                 size_t w)
{
    const size_t rows = len[0] + len[1];
    for (size_t h = 0; h < bh; h++) {
        size_t i = 0;
        for (int r = 0; r < 2; r++)
            for (size_t j = 0; j < len[r]; j++, i++)
                for (size_t c = 0; c < w; c++)
                    x[(h * rows + i) * w + c] = input_value(tensor, h, start[r] + j, c);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Rank 0: the largest difference between every rank's out and the fused
 * kernel on the whole sequence; the others send their rows. */
static attn_status check_against_fused(attn_bench_ring *b, const attn_ring_desc *d,
                                       const float *out, size_t n_local, MPI_Comm comm, int rank,
                                       int K)
{
    const size_t bh = d->heads, w = d->d_k;
    if (rank != 0) {
        int rc = MPI_Send(out, (int)(bh * n_local * w), MPI_FLOAT, 0, 7, comm);
        return rc == MPI_SUCCESS ? ATTN_OK : attn_error(ATTN_E_IO, "bench ring: sending rows to rank 0 failed");
    }
    const size_t all[2] = {0, 0}, whole[2] = {d->n, 0};
    size_t n_max = 0, s[2], l[2];
    attn_status st = attn_ring_rows(d, K, 0, &n_max, s, l);
    float *q = malloc(bh * d->n * w * sizeof *q), *k = malloc(bh * d->n * w * sizeof *k);
    float *v = malloc(bh * d->n * w * sizeof *v), *ref = malloc(bh * d->n * w * sizeof *ref);
    float *got = malloc(bh * n_max * w * sizeof *got);
    if (!st && (!q || !k || !v || !ref || !got)) st = attn_error(ATTN_E_NOMEM, "bench ring: reference buffers");
    if (!st) {
        fill(q, 1, bh, all, whole, w), fill(k, 2, bh, all, whole, w), fill(v, 3, bh, all, whole, w);
        attn_flash_desc f = attn_flash_desc_make(1, d->heads, d->n, d->n, w, w);
        f.causal = d->causal ? ATTN_CAUSAL_TOP_LEFT : ATTN_CAUSAL_NONE;
        st = attn_flash_forward(ref, NULL, q, k, v, &f);
    }
    double diff = 0.0;
    for (int r = 0; r < K && !st; r++) {
        size_t nl = 0;
        if ((st = attn_ring_rows(d, K, r, &nl, s, l))) break;
        if (r == 0) memcpy(got, out, bh * nl * w * sizeof *got);
        else if (MPI_Recv(got, (int)(bh * nl * w), MPI_FLOAT, r, 7, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            st = attn_error(ATTN_E_IO, "bench ring: receiving rank %d's rows failed", r);
        for (size_t h = 0; !st && h < bh; h++) {
            size_t i = 0;
            for (int run = 0; run < 2; run++)
                for (size_t j = 0; j < l[run]; j++, i++)
                    for (size_t c = 0; c < w; c++) {
                        double e = fabs((double)got[(h * nl + i) * w + c] -
                                        (double)ref[(h * d->n + s[run] + j) * w + c]);
                        diff = e > diff ? e : diff;
                    }
        }
    }
    b->max_abs_diff = diff;
    free(q), free(k), free(v), free(ref), free(got);
    return st;
}

#define BENCH_REPS 5

/* Agreement of every rank on a status (a failure anywhere fails all). */
static attn_status agree(attn_status st, MPI_Comm comm)
{
    int mine = (int)st, worst = 0;
    if (MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, comm) != MPI_SUCCESS)
        return attn_error(ATTN_E_IO, "bench ring: MPI_Allreduce failed");
    if (worst && !mine) return attn_error((attn_status)worst, "bench ring: another rank failed");
    return st;
}

attn_status attn_bench_ring_run(attn_bench_ring *b, MPI_Comm comm)
{
    if (!b) return attn_error(ATTN_E_INVALID, "attn_bench_ring_run: NULL");
    int K = 1, rank = 0;
    if (MPI_Comm_size(comm, &K) != MPI_SUCCESS || MPI_Comm_rank(comm, &rank) != MPI_SUCCESS)
        return attn_error(ATTN_E_IO, "bench ring: not an MPI communicator");
    attn_ring_desc d = {1, b->heads, b->n, b->d, b->d, 0.0f, b->causal, b->layout};
    size_t nl = 0, s[2], l[2];
    attn_status st = attn_ring_rows(&d, K, rank, &nl, s, l);
    if (st) return st;
    const size_t elems = b->heads * nl * b->d;
    float *q = malloc(elems * sizeof *q), *k = malloc(elems * sizeof *k);
    float *v = malloc(elems * sizeof *v), *out = malloc(elems * sizeof *out);
    float *lse = malloc(b->heads * nl * sizeof *lse);
    if (!q || !k || !v || !out || !lse) st = attn_error(ATTN_E_NOMEM, "bench ring: input buffers");
    if (!st) fill(q, 1, b->heads, s, l, b->d), fill(k, 2, b->heads, s, l, b->d), fill(v, 3, b->heads, s, l, b->d);
    double ms[BENCH_REPS], wait = 0.0;
    attn_ring_stats rs;
    memset(&rs, 0, sizeof rs);
    for (int rep = -1; rep < BENCH_REPS && !st; rep++) { /* rep -1 warms up */
        MPI_Barrier(comm);
        const double t0 = MPI_Wtime();
        st = agree(attn_ring_attention_forward(out, lse, q, k, v, &d, comm, &rs), comm);
        double dt = MPI_Wtime() - t0, slowest = 0.0;
        if (!st && MPI_Allreduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, comm) != MPI_SUCCESS)
            st = attn_error(ATTN_E_IO, "bench ring: MPI_Allreduce failed");
        if (rep >= 0) ms[rep] = 1e3 * slowest, wait = rs.wait_s > wait ? rs.wait_s : wait;
    }
    b->max_abs_diff = NAN;
    if (!st && b->check) st = agree(check_against_fused(b, &d, out, nl, comm, rank, K), comm);
    if (!st) {
        double share = 1e3 * wait / BENCH_REPS, worst = 0.0, diff = b->max_abs_diff;
        MPI_Allreduce(&share, &worst, 1, MPI_DOUBLE, MPI_MAX, comm);
        MPI_Bcast(&diff, 1, MPI_DOUBLE, 0, comm);
        qsort(ms, BENCH_REPS, sizeof *ms, cmp_double);
        b->ranks = K, b->reps = BENCH_REPS;
        b->ms = ms[BENCH_REPS / 2];
        const double flops = 4.0 * (double)b->n * (double)b->n * (double)b->d * (double)b->heads *
                             (b->causal ? 0.5 : 1.0);
        b->gflops_per_rank = flops / K / (b->ms * 1e6);
        b->bytes_sent_per_rank = rs.bytes_sent;
        attn_flash_desc f = attn_flash_desc_make(1, b->heads, nl, nl, b->d, b->d); /* bounds each call */
        b->extra_bytes_per_rank = rs.extra_bytes + attn_flash_forward_workspace(&f);
        b->max_abs_diff = diff;
        b->wait_share = worst / b->ms;
    }
    free(q), free(k), free(v), free(out), free(lse);
    return st;
}
