/* attn/dist.h - beyond one machine, over MPI: ring (sequence-parallel)
 * attention and data-parallel training. See docs/distributed.md.
 *
 * Only present when the library was built with MPI (attn_mpi_version() is
 * not NULL); it includes <mpi.h>. Every function here is collective over the
 * communicator it is given: all ranks call it with the same sizes. The
 * library never calls MPI_Init or MPI_Abort: the program does.
 */
#ifndef ATTN_DIST_H
#define ATTN_DIST_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include "attn/classify.h"
#include "attn/status.h"
#include "attn/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- ring attention ------------------------------------------------------------
 *
 * The sequence of n rows is cut into pieces, one or two per rank; rank r
 * keeps its queries and the K, V blocks travel around the ring r → r+1
 * (non-blocking, posted before the fused kernel runs on the block in hand),
 * partial outputs merge through their log-sum-exp. Memory per rank is
 * O(n/K · d). Layouts (K ranks):
 *   CONTIGUOUS  rank r holds block r of K contiguous blocks (the first
 *               n mod K blocks one row longer). Causal: rank r computes
 *               r + ½ blocks of work, so the last rank sets the pace.
 *   ZIGZAG      the sequence is cut into 2K chunks; rank r holds chunks r
 *               and 2K−1−r, in that order. Causal: every rank computes
 *               the same work at every step (2 chunk² off the diagonal),
 *               so no rank waits for another. The default for causal.
 * Blocks wholly in a query's future are skipped (not computed); the ring
 * still passes them on. */
typedef enum attn_ring_layout {
    ATTN_RING_CONTIGUOUS = 0,
    ATTN_RING_ZIGZAG = 1
} attn_ring_layout;

typedef struct attn_ring_desc {
    size_t batch, heads;
    size_t n;        /* the whole sequence */
    size_t d_k, d_v;
    float scale;     /* factor on q·kᵀ; 0 means 1/sqrt(d_k) */
    int causal;      /* top-left: position i sees positions j <= i */
    attn_ring_layout layout;
} attn_ring_desc;

/* The rows rank `rank` of `ranks` holds: n_local in all, as up to two runs
 * of global positions [start[i], start[i] + len[i]) (len[1] = 0 for one).
 * Local row 0 is start[0]; the second run follows the first. Every piece
 * needs at least one row: n >= K (contiguous) or n >= 2K (zigzag). */
attn_status attn_ring_rows(const attn_ring_desc *d, int ranks, int rank, size_t *n_local,
                           size_t start[2], size_t len[2]);

/* What a call moved and held. */
typedef struct attn_ring_stats {
    size_t bytes_sent;   /* by this rank */
    size_t extra_bytes;  /* buffers beyond the arguments: ring blocks, partials, kernel workspace */
    double wait_s;       /* time spent waiting for the ring (not hidden behind compute) */
} attn_ring_stats;

/* out = softmax(q·kᵀ·scale (+ causal)) · v for this rank's rows.
 *   out: (batch, heads, n_local, d_v)   lse: (batch, heads, n_local) or NULL
 *   q: (batch, heads, n_local, d_k)  k: (batch, heads, n_local, d_k)
 *   v: (batch, heads, n_local, d_v)     stats may be NULL
 * lse (each row's log-sum-exp over the whole sequence) is what the backward
 * needs. Rows of one rank are in the order of attn_ring_rows. */
attn_status attn_ring_attention_forward(float *out, float *lse, const float *q, const float *k,
                                        const float *v, const attn_ring_desc *d, MPI_Comm comm,
                                        attn_ring_stats *stats);

/* Gradients from the forward's out and lse; they accumulate (+=), as
 * attn_flash_backward's. K, V and their partial gradients travel the ring; a
 * block's gradient returns to its owner after the last step. Deterministic
 * for a fixed number of ranks. Shapes as the forward's; d_out as out. */
attn_status attn_ring_attention_backward(float *d_q, float *d_k, float *d_v, const float *d_out,
                                         const float *q, const float *k, const float *v,
                                         const float *out, const float *lse,
                                         const attn_ring_desc *d, MPI_Comm comm,
                                         attn_ring_stats *stats);

/* `attn bench ring`: random inputs (the same whatever K; each rank makes only
 * its rows), the ring forward and, with backward, the ring backward timed
 * (median of reps, slowest rank), and on rank 0, when n·heads·d fits
 * (check != 0), the largest differences from the single-process fused
 * kernels on the same inputs. Results on every rank; the backward's are
 * NAN (0 for sizes) without backward. GFLOP/s count as FlashAttention-2:
 * 4·N²·d·heads for the forward (causal half), 2.5 times that for the
 * backward, divided among the K ranks. */
typedef struct attn_bench_ring {
    /* in */
    size_t n, d, heads;
    int causal;
    attn_ring_layout layout;
    int check;
    int backward; /* time the backward too */
    /* out: the forward */
    int ranks, reps;
    double ms, gflops_per_rank;
    size_t bytes_sent_per_rank, extra_bytes_per_rank;
    double max_abs_diff; /* of out; NAN when not checked */
    double wait_share;   /* a rank's time waiting for the ring / its time, largest */
    /* out: the backward */
    double ms_backward, gflops_backward_per_rank;
    size_t bytes_sent_backward_per_rank, extra_bytes_backward_per_rank;
    double max_abs_diff_backward; /* of d_q, d_k, d_v; NAN when not checked */
    double wait_share_backward;
} attn_bench_ring;

attn_status attn_bench_ring_run(attn_bench_ring *b, MPI_Comm comm);

/* ---- data-parallel training ---------------------------------------------------------
 *
 * Every rank holds the whole model and draws the whole global batch (--batch)
 * with the same sampler; rank r of K computes on rows [r·B/K, (r+1)·B/K),
 * the gradients are summed (MPI_Iallreduce, one bucket per parameter tensor,
 * each posted as soon as the backward is past its layer) before clipping
 * and AdamW, which then run identically everywhere. Losses
 * and evaluation are split and summed the same way; rank 0 alone writes
 * checkpoints. Equal to one process on the same global batch up to the
 * order of float sums (see docs/distributed.md). */

/* Joins trainer t (made alike on every rank, on `text`) to comm: checks
 * first that every rank has the same configuration, step and data (a hash;
 * ATTN_E_INVALID naming the mismatch), waiting at most timeout_s seconds for
 * the others (ATTN_E_IO: a rank died or is stuck: end the program). */
attn_status attn_dist_trainer_attach(attn_trainer *t, MPI_Comm comm, const char *text, size_t len,
                                     double timeout_s);

/* The same for the classifier trainer (attn/classify.h), on its
 * configuration, step and tokenized data. */
attn_status attn_dist_cls_trainer_attach(attn_cls_trainer *t, MPI_Comm comm, double timeout_s);

/* The start-up check alone: every rank's hash equal, within timeout_s. */
attn_status attn_dist_agree(MPI_Comm comm, uint64_t hash, double timeout_s, const char *what);

/* Seconds this process spent in the trainers' collectives so far. */
double attn_dist_comm_seconds(void);

/* ---- launch ----------------------------------------------------------------------- */

/* Nonzero when this process was started by mpirun / mpiexec (Open MPI's,
 * MPICH's or a PMI launcher's environment), so a program should MPI_Init. */
int attn_dist_launched(void);

#ifdef __cplusplus
}
#endif
#endif
