/* ring.c - ring (sequence-parallel) attention over MPI.
 *
 * Each rank keeps its queries; the K, V blocks travel r → r+1. At step t a
 * rank holds the block of rank (r − t) mod K and, before computing on it,
 * posts the send of that block and the receive of the next one, so the
 * transfer runs beside the fused kernel (attn_flash_forward). Every
 * (query run, key run) pair of the two pieces is one kernel call: wholly in
 * the past → no mask, the same run → top-left causal, wholly in the future
 * → skipped. Its output and log-sum-exp merge into the running result:
 *   lse = log(e^lse_a + e^lse_b),  out = e^(lse_a−lse)·out_a + e^(lse_b−lse)·out_b.
 *
 * The backward needs no partials: attn_flash_backward given the final out
 * and lse recomputes P = exp(S − lse) for the block, which is already the
 * probability over the whole sequence, and D = rowsum(dO ∘ O) is the global
 * one. So each pair adds its exact share to dQ (kept) and to dK, dV. Each
 * step computes its share of the block's dK | dV from zero while the sum
 * of the earlier ranks' shares arrives (non-blocking), adds it, and sends
 * the sum on without waiting: it travels during the next step's compute,
 * and after K steps reaches the block's owner. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/dist.h"
#include "attn/ops.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static size_t piece_len(size_t n, size_t pieces, size_t i) { return n / pieces + (i < n % pieces); }
static size_t piece_start(size_t n, size_t pieces, size_t i)
{
    return i * (n / pieces) + (i < n % pieces ? i : n % pieces);
}

attn_status attn_ring_rows(const attn_ring_desc *d, int ranks, int rank, size_t *n_local,
                           size_t start[2], size_t len[2])
{
    if (!d || !n_local || !start || !len || ranks < 1 || rank < 0 || rank >= ranks)
        return attn_error(ATTN_E_INVALID, "attn_ring_rows: bad argument");
    const size_t K = (size_t)ranks, r = (size_t)rank;
    if (d->layout == ATTN_RING_ZIGZAG) {
        if (d->n < 2 * K)
            return attn_error(ATTN_E_INVALID, "ring attention: a sequence of %zu rows cannot be cut "
                              "into 2 x %zu zigzag chunks (at least one row each)", d->n, K);
        start[0] = piece_start(d->n, 2 * K, r), len[0] = piece_len(d->n, 2 * K, r);
        start[1] = piece_start(d->n, 2 * K, 2 * K - 1 - r), len[1] = piece_len(d->n, 2 * K, 2 * K - 1 - r);
    } else if (d->layout == ATTN_RING_CONTIGUOUS) {
        if (d->n < K)
            return attn_error(ATTN_E_INVALID, "ring attention: a sequence of %zu rows cannot be cut "
                              "into %zu blocks (at least one row each)", d->n, K);
        start[0] = piece_start(d->n, K, r), len[0] = piece_len(d->n, K, r);
        start[1] = 0, len[1] = 0;
    } else {
        return attn_error(ATTN_E_INVALID, "ring attention: unknown layout %d", (int)d->layout);
    }
    *n_local = len[0] + len[1];
    return ATTN_OK;
}

/* One rank's piece: its runs, global and local. */
typedef struct piece {
    size_t n, start[2], len[2], local[2];
    int runs;
} piece;

static attn_status piece_of(piece *p, const attn_ring_desc *d, int ranks, int rank)
{
    attn_status st = attn_ring_rows(d, ranks, rank, &p->n, p->start, p->len);
    p->local[0] = 0, p->local[1] = p->len[0];
    p->runs = p->len[1] ? 2 : 1;
    return st;
}

enum { PAIR_SKIP, PAIR_FULL, PAIR_DIAG };

/* How query run [qs, qs+ql) sees key run [ks, ks+kl). */
static int pair_kind(const attn_ring_desc *d, size_t qs, size_t ql, size_t ks, size_t kl)
{
    if (!d->causal || ks + kl <= qs) return PAIR_FULL;
    if (ks == qs && kl == ql) return PAIR_DIAG;
    return PAIR_SKIP; /* runs of one partition never overlap partly: ks >= qs + ql */
}

/* Everything a call holds. */
typedef struct ring {
    const attn_ring_desc *d;
    MPI_Comm comm;
    int K, rank, next, prev;
    piece me;
    size_t cap;        /* rows of the largest piece */
    size_t bh;         /* batch · heads */
    float *kv[2];      /* ring blocks: K (bh, rows, d_k) | V (bh, rows, d_v) [| dK | dV] */
    float *gb[2];      /* backward: a block's dK | dV travelling the ring */
    float *part;       /* forward: partial out (bh, cap, d_v) */
    float *lsep;       /* forward: partial lse (bh, cap); backward: lse of a run */
    size_t block_floats; /* of a K|V block at cap rows */
    attn_ring_stats st;
} ring;

static attn_status mpi_fail(const char *what, int rc)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len] = '\0';
    return attn_error(ATTN_E_IO, "ring attention: %s failed: %s", what, len ? msg : "MPI error");
}

static attn_status ring_open(ring *g, const attn_ring_desc *d, MPI_Comm comm, int grads)
{
    memset(g, 0, sizeof *g);
    g->d = d, g->comm = comm;
    if (!d->batch || !d->heads || !d->d_k || !d->d_v)
        return attn_error(ATTN_E_INVALID, "ring attention: sizes must be > 0");
    int rc = MPI_Comm_size(comm, &g->K);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(comm, &g->rank);
    if (rc != MPI_SUCCESS) return mpi_fail("MPI_Comm_size/rank", rc);
    g->next = (g->rank + 1) % g->K, g->prev = (g->rank + g->K - 1) % g->K;
    attn_status st = piece_of(&g->me, d, g->K, g->rank);
    if (st) return st;
    for (int r = 0; r < g->K; r++) { /* the longest piece sizes the ring buffers */
        piece p;
        if ((st = piece_of(&p, d, g->K, r))) return st;
        g->cap = p.n > g->cap ? p.n : g->cap;
    }
    g->bh = d->batch * d->heads;
    g->block_floats = g->bh * g->cap * (d->d_k + d->d_v);
    const size_t floats = g->block_floats * (grads ? 2 : 1);
    if (floats > (size_t)INT32_MAX)
        return attn_error(ATTN_E_INVALID, "ring attention: a block of %zu floats is more than one MPI "
                          "message carries (2^31 - 1): use more ranks", floats);
    const size_t part = grads ? 0 : g->bh * g->cap * d->d_v;
    g->kv[0] = malloc(floats * sizeof(float));
    g->kv[1] = malloc(floats * sizeof(float));
    g->part = part ? malloc(part * sizeof(float)) : NULL;
    g->lsep = malloc(g->bh * g->cap * sizeof(float));
    const size_t gfloats = grads ? g->block_floats : 0;
    for (int i = 0; i < 2 && gfloats; i++) g->gb[i] = malloc(gfloats * sizeof(float));
    if (!g->kv[0] || !g->kv[1] || (part && !g->part) || !g->lsep || (gfloats && (!g->gb[0] || !g->gb[1])))
        return attn_error(ATTN_E_NOMEM, "ring attention: cannot allocate the ring buffers");
    g->st.extra_bytes = (2 * floats + 2 * gfloats + part + g->bh * g->cap) * sizeof(float);
    return ATTN_OK;
}

static void ring_close(ring *g, attn_ring_stats *stats)
{
    free(g->kv[0]), free(g->kv[1]), free(g->part), free(g->lsep), free(g->gb[0]), free(g->gb[1]);
    if (stats) *stats = g->st;
}

/* Copies (bh, rows, w) rows from src into a ring block part. */
static void pack(float *dst, const float *src, size_t bh, size_t rows, size_t w)
{
    memcpy(dst, src, bh * rows * w * sizeof(float));
}

/* The kernel description of query run qi of this rank against key run ki of
 * piece p held in block b (rows of p, K then V). */
static attn_flash_desc pair_desc(const ring *g, size_t ql, size_t kl, size_t src_rows)
{
    const attn_ring_desc *d = g->d;
    const size_t n = g->me.n;
    attn_flash_desc f = attn_flash_desc_make(d->batch, d->heads, ql, kl, d->d_k, d->d_v);
    f.q_rs = d->d_k, f.q_hs = n * d->d_k, f.q_bs = d->heads * n * d->d_k;
    f.k_rs = d->d_k, f.k_hs = src_rows * d->d_k, f.k_bs = d->heads * src_rows * d->d_k;
    f.v_rs = d->d_v, f.v_hs = src_rows * d->d_v, f.v_bs = d->heads * src_rows * d->d_v;
    f.o_rs = d->d_v, f.o_hs = n * d->d_v, f.o_bs = d->heads * n * d->d_v;
    if (d->scale != 0.0f) f.scale = d->scale;
    return f;
}

/* Query run qi of this rank against key run ki of piece src: 0 when
 * skipped, else 1 with the kernel's description and the runs' local rows. */
static int pair_at(const ring *g, const piece *src, int qi, int ki, attn_flash_desc *f, size_t *qo,
                   size_t *ko)
{
    const size_t ql = g->me.len[qi], kl = src->len[ki];
    const int kind = pair_kind(g->d, g->me.start[qi], ql, src->start[ki], kl);
    if (kind == PAIR_SKIP) return 0;
    *f = pair_desc(g, ql, kl, src->n);
    f->causal = kind == PAIR_DIAG ? ATTN_CAUSAL_TOP_LEFT : ATTN_CAUSAL_NONE;
    *qo = g->me.local[qi], *ko = src->local[ki];
    return 1;
}

/* Posts the transfer of block `cur` (piece of rank src) to next and the
 * receive of the following one from prev. */
static attn_status post_ring(ring *g, MPI_Request req[2], const float *cur, float *nxt,
                             size_t send_floats, size_t recv_floats, int tag)
{
    int rc = MPI_Irecv(nxt, (int)recv_floats, MPI_FLOAT, g->prev, tag, g->comm, &req[0]);
    if (rc == MPI_SUCCESS) rc = MPI_Isend(cur, (int)send_floats, MPI_FLOAT, g->next, tag, g->comm, &req[1]);
    if (rc != MPI_SUCCESS) return mpi_fail("posting a ring transfer", rc);
    g->st.bytes_sent += send_floats * sizeof(float);
    return ATTN_OK;
}

static attn_status wait_ring(ring *g, MPI_Request req[2])
{
    const double t0 = now_s();
    int rc = MPI_Waitall(2, req, MPI_STATUSES_IGNORE);
    g->st.wait_s += now_s() - t0;
    return rc == MPI_SUCCESS ? ATTN_OK : mpi_fail("a ring transfer", rc);
}

static attn_status check_args(const void *a, const void *b, const void *c, const void *e,
                              const attn_ring_desc *d)
{
    if (!a || !b || !c || !e || !d) return attn_error(ATTN_E_INVALID, "ring attention: NULL argument");
    return ATTN_OK;
}

/* The forward's kernel calls for the block of piece src held in blk. */
static attn_status forward_block(ring *g, float *out, float *lse, const float *q, const float *blk,
                                 const piece *src)
{
    const attn_ring_desc *d = g->d;
    const float *kb = blk, *vb = blk + g->bh * src->n * d->d_k;
    for (int qi = 0; qi < g->me.runs; qi++)
        for (int ki = 0; ki < src->runs; ki++) {
            attn_flash_desc f;
            size_t qo, ko;
            if (!pair_at(g, src, qi, ki, &f, &qo, &ko)) continue;
            f.o_rs = d->d_v, f.o_hs = f.l * d->d_v, f.o_bs = d->heads * f.l * d->d_v; /* partial */
            attn_status st = attn_flash_forward(g->part, g->lsep, q + qo * d->d_k, kb + ko * d->d_k,
                                                vb + ko * d->d_v, &f);
            if (st) return st;
            attn_attention_merge(out, lse, g->part, g->lsep, g->bh, g->me.n, qo, f.l, d->d_v);
        }
    return ATTN_OK;
}

attn_status attn_ring_attention_forward(float *out, float *lse, const float *q, const float *k,
                                        const float *v, const attn_ring_desc *d, MPI_Comm comm,
                                        attn_ring_stats *stats)
{
    attn_status st = check_args(out, q, k, v, d);
    if (st) return st;
    ring g;
    st = ring_open(&g, d, comm, 0);
    float *lse_run = NULL;
    if (!st && !lse && !(lse_run = malloc(g.bh * g.me.n * sizeof *lse_run)))
        st = attn_error(ATTN_E_NOMEM, "ring attention: cannot allocate the log-sum-exp");
    float *L = lse ? lse : lse_run;
    if (!st) {
        const size_t n = g.me.n;
        for (size_t i = 0; i < g.bh * n; i++) L[i] = -INFINITY;
        memset(out, 0, g.bh * n * d->d_v * sizeof *out);
        pack(g.kv[0], k, g.bh, n, d->d_k);
        pack(g.kv[0] + g.bh * n * d->d_k, v, g.bh, n, d->d_v);
    }
    for (int t = 0; !st && t < g.K; t++) {
        piece src, nsrc;
        const int s = (g.rank - t + g.K) % g.K, ns = (s + g.K - 1) % g.K;
        MPI_Request req[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
        st = piece_of(&src, d, g.K, s);
        if (!st) st = piece_of(&nsrc, d, g.K, ns);
        if (!st && t + 1 < g.K)
            st = post_ring(&g, req, g.kv[t & 1], g.kv[(t + 1) & 1], g.bh * src.n * (d->d_k + d->d_v),
                           g.bh * nsrc.n * (d->d_k + d->d_v), 1);
        if (!st) st = forward_block(&g, out, L, q, g.kv[t & 1], &src);
        attn_status ws = t + 1 < g.K ? wait_ring(&g, req) : ATTN_OK; /* never leave a request behind */
        if (!st) st = ws;
    }
    free(lse_run);
    ring_close(&g, stats);
    return st;
}

/* The backward's kernel calls for the block of piece src in blk (K | V | dK | dV). */
static attn_status backward_block(ring *g, float *d_q, float *const lse_runs[2], const float *d_out,
                                  const float *q, const float *out, float *blk, const piece *src)
{
    const attn_ring_desc *d = g->d;
    const size_t kf = g->bh * src->n * d->d_k, vf = g->bh * src->n * d->d_v;
    const float *kb = blk, *vb = blk + kf;
    float *dkb = blk + kf + vf, *dvb = blk + 2 * kf + vf;
    for (int qi = 0; qi < g->me.runs; qi++)
        for (int ki = 0; ki < src->runs; ki++) {
            attn_flash_desc f;
            size_t qo, ko;
            if (!pair_at(g, src, qi, ki, &f, &qo, &ko)) continue;
            attn_status st = attn_flash_backward(
                d_q + qo * d->d_k, dkb + ko * d->d_k, dvb + ko * d->d_v, d_out + qo * d->d_v,
                q + qo * d->d_k, kb + ko * d->d_k, vb + ko * d->d_v, out + qo * d->d_v,
                lse_runs[qi], &f);
            if (st) return st;
        }
    return ATTN_OK;
}

/* lse (bh, n) → one contiguous (bh, len) copy per run, as the kernel reads it. */
static attn_status split_lse(ring *g, const float *lse, float *runs[2])
{
    runs[0] = runs[1] = NULL;
    for (int r = 0; r < g->me.runs; r++) {
        const size_t len = g->me.len[r];
        if (!(runs[r] = malloc(g->bh * len * sizeof(float))))
            return attn_error(ATTN_E_NOMEM, "ring attention: cannot allocate the log-sum-exp");
        for (size_t h = 0; h < g->bh; h++)
            memcpy(runs[r] + h * len, lse + h * g->me.n + g->me.local[r], len * sizeof(float));
    }
    g->st.extra_bytes += g->bh * g->me.n * sizeof(float);
    return ATTN_OK;
}

static attn_status wait_one(ring *g, MPI_Request *req, const char *what)
{
    const double t0 = now_s();
    int rc = MPI_Wait(req, MPI_STATUS_IGNORE);
    g->st.wait_s += now_s() - t0;
    return rc == MPI_SUCCESS ? ATTN_OK : mpi_fail(what, rc);
}

/* After step t computed acc, this rank's share of the block's dK | dV
 * (gsz floats): adds the shares of the ranks before it, which arrived
 * into gb[t & 1] during the step, and sends the sum on to next without
 * waiting, so it travels during step t + 1's compute; posts the receive
 * of the next block's (nsrc) sum. After the last step that receive is
 * this rank's own block's, complete. */
static attn_status grads_on(ring *g, int t, const float *acc, size_t gsz, const piece *nsrc,
                            MPI_Request *gin, MPI_Request *gout)
{
    const size_t w = g->d->d_k + g->d->d_v;
    float *sum = g->gb[t & 1];
    attn_status st = ATTN_OK;
    if (t == 0) memcpy(sum, acc, gsz * sizeof(float));
    else if (!(st = wait_one(g, gin, "receiving gradients")))
        for (size_t i = 0; i < gsz; i++) sum[i] += acc[i];
    /* the send of step t - 1 leaves the buffer the next receive fills */
    if (!st) st = wait_one(g, gout, "passing gradients on");
    if (st) return st;
    int rc = MPI_Irecv(g->gb[(t + 1) & 1], (int)(g->bh * nsrc->n * w), MPI_FLOAT, g->prev, 2, g->comm, gin);
    if (rc == MPI_SUCCESS) rc = MPI_Isend(sum, (int)gsz, MPI_FLOAT, g->next, 2, g->comm, gout);
    if (rc != MPI_SUCCESS) return mpi_fail("passing gradients on", rc);
    g->st.bytes_sent += gsz * sizeof(float);
    return ATTN_OK;
}

attn_status attn_ring_attention_backward(float *d_q, float *d_k, float *d_v, const float *d_out,
                                         const float *q, const float *k, const float *v,
                                         const float *out, const float *lse,
                                         const attn_ring_desc *d, MPI_Comm comm,
                                         attn_ring_stats *stats)
{
    attn_status st = check_args(d_q, d_k, d_v, d_out, d);
    if (!st) st = check_args(q, k, v, out, d);
    if (!st) st = check_args(lse, lse, lse, lse, d);
    if (st) return st;
    ring g;
    float *lse_runs[2] = {NULL, NULL};
    st = ring_open(&g, d, comm, 1);
    if (!st) st = split_lse(&g, lse, lse_runs);
    const size_t n = g.me.n, kf = g.bh * n * d->d_k, vf = g.bh * n * d->d_v;
    if (!st) {
        /* K | V of this rank's block */
        pack(g.kv[0], k, g.bh, n, d->d_k);
        pack(g.kv[0] + kf, v, g.bh, n, d->d_v);
    }
    MPI_Request gin = MPI_REQUEST_NULL, gout = MPI_REQUEST_NULL;
    const size_t w = d->d_k + d->d_v;
    float *own = g.kv[0] + kf + vf; /* K = 1: the only step's share */
    for (int t = 0; !st && t < g.K; t++) {
        piece src, nsrc;
        const int s = (g.rank - t + g.K) % g.K, ns = (s + g.K - 1) % g.K;
        float *cur = g.kv[t & 1], *nxt = g.kv[(t + 1) & 1];
        MPI_Request req[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
        st = piece_of(&src, d, g.K, s);
        if (!st) st = piece_of(&nsrc, d, g.K, ns);
        /* K, V of the next step travel while this step computes; into a
         * block laid out for the next piece (K | V | dK | dV at its size) */
        if (!st && t + 1 < g.K) st = post_ring(&g, req, cur, nxt, g.bh * src.n * w, g.bh * nsrc.n * w, 1);
        /* this step's share of the block's dK | dV, from zero */
        float *acc = cur + g.bh * src.n * w;
        if (!st) memset(acc, 0, g.bh * src.n * w * sizeof(float));
        if (!st) st = backward_block(&g, d_q, lse_runs, d_out, q, out, cur, &src);
        attn_status ws = t + 1 < g.K ? wait_ring(&g, req) : ATTN_OK;
        if (!st) st = ws;
        if (!st && g.K > 1) st = grads_on(&g, t, acc, g.bh * src.n * w, &nsrc, &gin, &gout);
    }
    if (!st && g.K > 1) { /* this rank's own block, back from the whole ring */
        st = wait_one(&g, &gin, "receiving gradients");
        if (!st) st = wait_one(&g, &gout, "passing gradients on");
        own = g.gb[g.K & 1];
    }
    if (!st) {
        for (size_t i = 0; i < kf; i++) d_k[i] += own[i];
        for (size_t i = 0; i < vf; i++) d_v[i] += own[kf + i];
    }
    free(lse_runs[0]), free(lse_runs[1]);
    ring_close(&g, stats);
    return st;
}
