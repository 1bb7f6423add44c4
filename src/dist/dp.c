/* dp.c - data-parallel training over MPI: the trainers' hooks
 * (attn_train_dist in attn/train.h) as MPI collectives, and the start-up
 * check that every rank trains the same thing.
 *
 * Gradients are summed with one MPI_Iallreduce per parameter tensor (a
 * bucket each), posted as soon as the backward is past it (grads_ready,
 * from the model's per-layer hook: ln_f, then each block from the last),
 * so the sums of the later layers run while the earlier layers' backward
 * computes; sum_grads posts the rest (the embeddings) and waits for all. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/dist.h"

static double comm_s; /* seconds in the collectives of this process */

double attn_dist_comm_seconds(void) { return comm_s; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One trainer's state: its communicator and the gradient sums in flight
 * (posted early by grads_ready, completed by sum_grads). */
#define MAX_BUCKETS 4096
typedef struct dp_state {
    MPI_Comm comm;
    double timeout_s; /* the longest wait for the other ranks */
    size_t n_posted;
    MPI_Request req[MAX_BUCKETS];
    const float *grad[MAX_BUCKETS]; /* what each request sums */
} dp_state;

static attn_status mpi_fail(const char *what, int rc)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len] = '\0';
    return attn_error(ATTN_E_IO, "data parallel: %s failed (another rank may have died): %s", what,
                      len ? msg : "MPI error");
}

/* Waits for n requests, at most s->timeout_s: a rank that died is
 * usually noticed by mpirun, which ends the job; one that is stuck (or a
 * launcher that does not notice) would leave the others waiting forever.
 * Polls, sleeping between tests after the first millisecond, which also
 * leaves the CPU to a rank that shares it (a blocking wait spins). */
static int poll_all(int n, MPI_Request *req, double timeout_s, int *rc)
{
    const double t0 = now_s();
    for (;;) {
        int done = 0;
        if ((*rc = MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE)) != MPI_SUCCESS || done) return 1;
        const double waited = now_s() - t0;
        if (waited > timeout_s) return 0; /* the requests stay pending; the caller ends the program */
        if (waited > 1e-3) {
            struct timespec pause = {0, 50000};
            nanosleep(&pause, NULL);
        }
    }
}

static attn_status wait_all(dp_state *s, int n, MPI_Request *req, const char *what)
{
    int rc = MPI_SUCCESS;
    if (!poll_all(n, req, s->timeout_s, &rc))
        return attn_error(ATTN_E_IO, "data parallel: no answer from the other ranks for %g s in %s "
                          "(a rank died or is stuck; ATTN_DIST_TIMEOUT sets the limit)", s->timeout_s, what);
    return rc == MPI_SUCCESS ? ATTN_OK : mpi_fail(what, rc);
}

/* Posts the sums of p[0..n) not yet posted, in the order given: every rank
 * calls in the same order, as MPI's collectives need. */
static attn_status post(dp_state *s, const attn_param_ref *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int seen = 0;
        for (size_t j = 0; j < s->n_posted && !seen; j++) seen = s->grad[j] == p[i].grad;
        if (seen) continue;
        if (s->n_posted == MAX_BUCKETS)
            return attn_error(ATTN_E_INVALID, "data parallel: more than %d parameter tensors", MAX_BUCKETS);
        if (p[i].numel > (size_t)INT32_MAX)
            return attn_error(ATTN_E_INVALID, "data parallel: %s has more than 2^31 elements", p[i].name);
        int rc = MPI_Iallreduce(MPI_IN_PLACE, p[i].grad, (int)p[i].numel, MPI_FLOAT, MPI_SUM, s->comm,
                                &s->req[s->n_posted]);
        if (rc != MPI_SUCCESS) return mpi_fail("MPI_Iallreduce of the gradients", rc);
        s->grad[s->n_posted++] = p[i].grad;
    }
    return ATTN_OK;
}

/* The backward is past these: start their sums, and let the ones in flight
 * progress (Open MPI's non-blocking collectives advance inside MPI calls). */
static attn_status grads_ready(void *user, const attn_param_ref *p, size_t n)
{
    dp_state *s = user;
    const double t0 = now_s();
    attn_status st = post(s, p, n);
    int flag = 0;
    if (!st && s->n_posted) {
        int rc = MPI_Testall((int)s->n_posted, s->req, &flag, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) st = mpi_fail("MPI_Iallreduce of the gradients", rc);
    }
    comm_s += now_s() - t0;
    return st;
}

static attn_status sum_grads(void *user, const attn_param_ref *p, size_t n)
{
    dp_state *s = user;
    const double t0 = now_s();
    attn_status st = post(s, p, n);
    /* what was posted is waited for, even after an error: the buffers are the caller's */
    attn_status wst = wait_all(s, (int)s->n_posted, s->req, "the sum of the gradients");
    s->n_posted = 0;
    comm_s += now_s() - t0;
    return st ? st : wst;
}

static attn_status sum(void *user, double *v, size_t n)
{
    dp_state *s = user;
    const double t0 = now_s();
    MPI_Request req;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, v, (int)n, MPI_DOUBLE, MPI_SUM, s->comm, &req);
    attn_status st = rc == MPI_SUCCESS ? wait_all(s, 1, &req, "a sum of losses or flags") : mpi_fail("MPI_Iallreduce", rc);
    comm_s += now_s() - t0;
    return st;
}

static void release(void *user) { free(user); }

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001B3ull;
    return h;
}

attn_status attn_dist_agree(MPI_Comm comm, uint64_t hash, double timeout_s, const char *what)
{
    /* all equal iff max(h) == h and max(~h) == ~h on every rank */
    uint64_t mine[2] = {hash, ~hash}, all[2] = {0, 0};
    MPI_Request req;
    int rc = MPI_Iallreduce(mine, all, 2, MPI_UINT64_T, MPI_MAX, comm, &req);
    if (rc != MPI_SUCCESS) return mpi_fail("the start-up check", rc);
    if (!poll_all(1, &req, timeout_s, &rc))
        return attn_error(ATTN_E_IO, "data parallel: not every rank reached the start-up check "
                          "within %g s (a rank failed or is stuck before it)", timeout_s);
    if (rc != MPI_SUCCESS) return mpi_fail("the start-up check", rc);
    if (all[0] != mine[0] || all[1] != mine[1])
        return attn_error(ATTN_E_INVALID, "data parallel: the ranks disagree on %s (hash %016llx "
                          "here): start every rank with the same options and the same files",
                          what, (unsigned long long)hash);
    return ATTN_OK;
}

/* The hooks over comm, once every rank agrees on hash. */
static attn_status make_dist(MPI_Comm comm, uint64_t hash, double timeout_s, attn_train_dist *d)
{
    int rank = 0, ranks = 1;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &ranks) != MPI_SUCCESS)
        return attn_error(ATTN_E_INVALID, "data parallel: not an MPI communicator");
    attn_status st = attn_dist_agree(comm, hash, timeout_s, "the configuration or the data");
    if (st) return st;
    dp_state *s = calloc(1, sizeof *s);
    if (!s) return attn_error(ATTN_E_NOMEM, "data parallel: out of memory");
    s->comm = comm, s->timeout_s = timeout_s;
    *d = (attn_train_dist){rank, ranks, sum_grads, sum, s, grads_ready, release};
    return ATTN_OK;
}

attn_status attn_dist_trainer_attach(attn_trainer *t, MPI_Comm comm, const char *text, size_t len,
                                     double timeout_s)
{
    if (!t || !text) return attn_error(ATTN_E_INVALID, "attn_dist_trainer_attach: NULL");
    const attn_checkpoint *info = attn_trainer_info(t);
    char *json = NULL;
    attn_status st = attn_train_config_to_json(&info->train, &json);
    if (st) return st;
    const attn_gpt_config *m = &info->model;
    const uint64_t sizes[7] = {m->vocab_size, m->context, m->layers, m->heads, m->width,
                               (uint64_t)m->bias, info->step};
    uint64_t h = fnv(0xCBF29CE484222325ull, json, strlen(json));
    h = fnv(h, sizes, sizeof sizes);
    h = fnv(h, text, len);
    free(json);
    attn_train_dist d;
    if ((st = make_dist(comm, h, timeout_s, &d))) return st;
    if ((st = attn_trainer_set_dist(t, &d))) release(d.user);
    return st;
}

attn_status attn_dist_cls_trainer_attach(attn_cls_trainer *t, MPI_Comm comm, double timeout_s)
{
    if (!t) return attn_error(ATTN_E_INVALID, "attn_dist_cls_trainer_attach: NULL");
    attn_train_dist d;
    attn_status st = make_dist(comm, attn_cls_trainer_fingerprint(t), timeout_s, &d);
    if (st) return st;
    if ((st = attn_cls_trainer_set_dist(t, &d))) release(d.user);
    return st;
}
