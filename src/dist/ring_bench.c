/* ring_bench.c - `attn bench ring`: the ring forward (and backward) timed
 * across ranks and checked on rank 0 against the single-process fused
 * kernels. */
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

/* Agreement of every rank on a status (a failure anywhere fails all). */
static attn_status agree(attn_status st, MPI_Comm comm)
{
    int mine = (int)st, worst = 0;
    if (MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, comm) != MPI_SUCCESS)
        return attn_error(ATTN_E_IO, "bench ring: MPI_Allreduce failed");
    if (worst && !mine) return attn_error((attn_status)worst, "bench ring: another rank failed");
    return st;
}

/* The single-process fused kernels on the whole sequence (rank 0): the
 * reference out, and with a backward d_q, d_k, d_v for d_out (tensor 4). */
typedef struct ring_ref {
    float *q, *k, *v, *out, *lse, *d_out, *d_q, *d_k, *d_v; /* (bh, N, w); lse (bh, N) */
} ring_ref;

static void ref_free(ring_ref *r)
{
    free(r->q), free(r->k), free(r->v), free(r->out), free(r->lse);
    free(r->d_out), free(r->d_q), free(r->d_k), free(r->d_v);
}

static attn_status ref_make(ring_ref *r, const attn_ring_desc *d, int backward)
{
    memset(r, 0, sizeof *r);
    const size_t bh = d->heads, w = d->d_k, all[2] = {0, 0}, whole[2] = {d->n, 0};
    const size_t bytes = bh * d->n * w * sizeof(float);
    float **bufs[] = {&r->q, &r->k, &r->v, &r->out, &r->d_out, &r->d_q, &r->d_k, &r->d_v};
    const size_t nbufs = backward ? 8 : 4;
    for (size_t i = 0; i < nbufs; i++)
        if (!(*bufs[i] = calloc(1, bytes))) return attn_error(ATTN_E_NOMEM, "bench ring: reference buffers");
    if (!(r->lse = malloc(bh * d->n * sizeof *r->lse)))
        return attn_error(ATTN_E_NOMEM, "bench ring: reference buffers");
    fill(r->q, 1, bh, all, whole, w), fill(r->k, 2, bh, all, whole, w), fill(r->v, 3, bh, all, whole, w);
    attn_flash_desc f = attn_flash_desc_make(1, d->heads, d->n, d->n, w, w);
    f.causal = d->causal ? ATTN_CAUSAL_TOP_LEFT : ATTN_CAUSAL_NONE;
    attn_status st = attn_flash_forward(r->out, r->lse, r->q, r->k, r->v, &f);
    if (!st && backward) {
        fill(r->d_out, 4, bh, all, whole, w);
        st = attn_flash_backward(r->d_q, r->d_k, r->d_v, r->d_out, r->q, r->k, r->v, r->out, r->lse, &f);
    }
    return st;
}

/* Rank 0: the largest difference between every rank's rows of mine[i]
 * (bh, n_local, w) and ref[i] (bh, N, w), for i < count, received into got
 * (room for the most rows a rank holds); the others send theirs. */
static attn_status gather_diff(const attn_ring_desc *d, float *const *mine, float *const *ref, int count,
                               float *got, MPI_Comm comm, int rank, int K, double *diff)
{
    const size_t bh = d->heads, w = d->d_k;
    size_t nl = 0, s[2], l[2];
    attn_status st = attn_ring_rows(d, K, rank, &nl, s, l);
    if (rank != 0) {
        for (int t = 0; t < count && !st; t++)
            if (MPI_Send(mine[t], (int)(bh * nl * w), MPI_FLOAT, 0, 7 + t, comm) != MPI_SUCCESS)
                st = attn_error(ATTN_E_IO, "bench ring: sending rows to rank 0 failed");
        return st;
    }
    *diff = 0.0;
    for (int r = 0; r < K && !st; r++) {
        if ((st = attn_ring_rows(d, K, r, &nl, s, l))) break;
        for (int t = 0; t < count && !st; t++) {
            if (r == 0) memcpy(got, mine[t], bh * nl * w * sizeof *got);
            else if (MPI_Recv(got, (int)(bh * nl * w), MPI_FLOAT, r, 7 + t, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS)
                st = attn_error(ATTN_E_IO, "bench ring: receiving rank %d's rows failed", r);
            for (size_t h = 0; !st && h < bh; h++) {
                size_t i = 0;
                for (int run = 0; run < 2; run++)
                    for (size_t j = 0; j < l[run]; j++, i++)
                        for (size_t c = 0; c < w; c++) {
                            double e = fabs((double)got[(h * nl + i) * w + c] -
                                            (double)ref[t][(h * d->n + s[run] + j) * w + c]);
                            *diff = e > *diff ? e : *diff;
                        }
            }
        }
    }
    return st;
}

/* Rank 0: the largest differences of out (local[0]) and, with a backward,
 * of d_q, d_k, d_v (local[1..3]) from the fused kernels, into b; the
 * others send their rows. */
static attn_status check_against_fused(attn_bench_ring *b, const attn_ring_desc *d, float *const local[4],
                                       MPI_Comm comm, int rank, int K)
{
    ring_ref r;
    memset(&r, 0, sizeof r);
    float *got = NULL;
    attn_status st = ATTN_OK;
    if (rank == 0) {
        size_t most = 0, nl = 0, s[2], l[2];
        for (int i = 0; i < K && !st; i++)
            if (!(st = attn_ring_rows(d, K, i, &nl, s, l))) most = nl > most ? nl : most;
        if (!st) st = ref_make(&r, d, b->backward);
        if (!st && !(got = malloc(d->heads * most * d->d_k * sizeof *got)))
            st = attn_error(ATTN_E_NOMEM, "bench ring: reference buffers");
    }
    /* a failure on rank 0 is agreed on before any rank sends its rows */
    if (!(st = agree(st, comm))) {
        float *const ref_out[1] = {r.out}, *const ref_grads[3] = {r.d_q, r.d_k, r.d_v};
        st = gather_diff(d, local, ref_out, 1, got, comm, rank, K, &b->max_abs_diff);
        if (!st && b->backward)
            st = gather_diff(d, local + 1, ref_grads, 3, got, comm, rank, K, &b->max_abs_diff_backward);
    }
    ref_free(&r);
    free(got);
    return st;
}

#define BENCH_REPS 5

/* The median over BENCH_REPS timed calls (one more first, to warm up) of
 * the slowest rank's ms, and the largest share of a rank's own time spent
 * waiting for the ring. One of the
 * ring's calls on this rank's buffers: the forward (local[0] = out) or the
 * backward (local[1..3] = d_q, d_k, d_v, zeroed before each call: they
 * accumulate). */
typedef struct ring_bufs {
    float *q, *k, *v, *out, *lse, *d_out, *d_q, *d_k, *d_v;
    size_t elems;
} ring_bufs;

static attn_status time_pass(ring_bufs *x, const attn_ring_desc *d, int backward, MPI_Comm comm, double *ms,
                             double *wait_share, attn_ring_stats *rs)
{
    double t[BENCH_REPS], wait = 0.0, own = 0.0;
    attn_status st = ATTN_OK;
    for (int rep = -1; rep < BENCH_REPS && !st; rep++) {
        if (backward) {
            memset(x->d_q, 0, x->elems * sizeof *x->d_q), memset(x->d_k, 0, x->elems * sizeof *x->d_k);
            memset(x->d_v, 0, x->elems * sizeof *x->d_v);
        }
        MPI_Barrier(comm);
        const double t0 = MPI_Wtime();
        attn_status got = backward ? attn_ring_attention_backward(x->d_q, x->d_k, x->d_v, x->d_out, x->q, x->k,
                                                                  x->v, x->out, x->lse, d, comm, rs)
                                   : attn_ring_attention_forward(x->out, x->lse, x->q, x->k, x->v, d, comm, rs);
        st = agree(got, comm);
        double dt = MPI_Wtime() - t0, slowest = 0.0;
        if (!st && MPI_Allreduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, comm) != MPI_SUCCESS)
            st = attn_error(ATTN_E_IO, "bench ring: MPI_Allreduce failed");
        if (rep >= 0) t[rep] = 1e3 * slowest, wait += rs->wait_s, own += dt;
    }
    if (st) return st;
    qsort(t, BENCH_REPS, sizeof *t, cmp_double);
    *ms = t[BENCH_REPS / 2];
    double mine = own > 0.0 ? wait / own : 0.0;
    if (MPI_Allreduce(&mine, wait_share, 1, MPI_DOUBLE, MPI_MAX, comm) != MPI_SUCCESS)
        return attn_error(ATTN_E_IO, "bench ring: MPI_Allreduce failed");
    return ATTN_OK;
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
    ring_bufs x;
    memset(&x, 0, sizeof x);
    x.elems = b->heads * nl * b->d;
    float **bufs[] = {&x.q, &x.k, &x.v, &x.out, &x.d_out, &x.d_q, &x.d_k, &x.d_v};
    for (size_t i = 0; i < (b->backward ? 8u : 4u) && !st; i++)
        if (!(*bufs[i] = malloc(x.elems * sizeof(float)))) st = attn_error(ATTN_E_NOMEM, "bench ring: input buffers");
    if (!st && !(x.lse = malloc(b->heads * nl * sizeof *x.lse)))
        st = attn_error(ATTN_E_NOMEM, "bench ring: input buffers");
    if (!st) {
        fill(x.q, 1, b->heads, s, l, b->d), fill(x.k, 2, b->heads, s, l, b->d), fill(x.v, 3, b->heads, s, l, b->d);
        if (b->backward) fill(x.d_out, 4, b->heads, s, l, b->d);
    }
    attn_ring_stats fs, bs;
    memset(&fs, 0, sizeof fs), memset(&bs, 0, sizeof bs);
    double wait = 0.0, wait_b = 0.0;
    if (!st) st = time_pass(&x, &d, 0, comm, &b->ms, &wait, &fs);
    b->ms_backward = NAN, b->gflops_backward_per_rank = NAN, b->wait_share_backward = NAN;
    if (!st && b->backward) st = time_pass(&x, &d, 1, comm, &b->ms_backward, &wait_b, &bs);
    b->max_abs_diff = NAN, b->max_abs_diff_backward = NAN;
    float *const local[4] = {x.out, x.d_q, x.d_k, x.d_v};
    if (!st && b->check) st = agree(check_against_fused(b, &d, local, comm, rank, K), comm);
    if (!st) {
        double diffs[2] = {b->max_abs_diff, b->max_abs_diff_backward};
        MPI_Bcast(diffs, 2, MPI_DOUBLE, 0, comm);
        b->max_abs_diff = diffs[0], b->max_abs_diff_backward = diffs[1];
        b->ranks = K, b->reps = BENCH_REPS;
        /* FlashAttention-2's count: the forward's two GEMMs 4·N²·d per head
         * (causal half), the backward 2.5 times that */
        const double flops = 4.0 * (double)b->n * (double)b->n * (double)b->d * (double)b->heads *
                             (b->causal ? 0.5 : 1.0);
        b->gflops_per_rank = flops / K / (b->ms * 1e6);
        b->wait_share = wait;
        if (b->backward) {
            b->gflops_backward_per_rank = 2.5 * flops / K / (b->ms_backward * 1e6);
            b->wait_share_backward = wait_b;
        }
        attn_flash_desc f = attn_flash_desc_make(1, b->heads, nl, nl, b->d, b->d); /* bounds each call */
        b->bytes_sent_per_rank = fs.bytes_sent;
        b->extra_bytes_per_rank = fs.extra_bytes + attn_flash_forward_workspace(&f);
        b->bytes_sent_backward_per_rank = bs.bytes_sent;
        b->extra_bytes_backward_per_rank = b->backward ? bs.extra_bytes + attn_flash_backward_workspace(&f) : 0;
    }
    free(x.q), free(x.k), free(x.v), free(x.out), free(x.lse), free(x.d_out), free(x.d_q), free(x.d_k), free(x.d_v);
    return st;
}
