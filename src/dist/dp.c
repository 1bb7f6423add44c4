/* dp.c - data-parallel training over MPI: the trainer's hooks
 * (attn_train_dist in attn/train.h) as MPI collectives, and the start-up
 * check that every rank trains the same thing.
 *
 * Gradients are summed after the whole backward (attn_gpt_backward is one
 * call): one MPI_Iallreduce per parameter tensor (a bucket each, the
 * largest first as they come in the parameter order), all posted at once so
 * the MPI library can pipeline them, then one wait. Overlap with the
 * backward itself would need a per-layer hook inside the model. */
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

/* The communicator travels in the hook's user pointer as its Fortran handle
 * (an int in every MPI): no allocation to free. */
static MPI_Comm comm_of(void *user) { return MPI_Comm_f2c((MPI_Fint)(intptr_t)user); }

static attn_status mpi_fail(const char *what, int rc)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len] = '\0';
    return attn_error(ATTN_E_IO, "data parallel: %s failed (another rank may have died): %s", what,
                      len ? msg : "MPI error");
}

#define MAX_BUCKETS 4096

static attn_status sum_grads(void *user, const attn_param_ref *p, size_t n)
{
    MPI_Comm comm = comm_of(user);
    MPI_Request req[MAX_BUCKETS];
    if (n > MAX_BUCKETS) return attn_error(ATTN_E_INVALID, "data parallel: more than %d parameter tensors", MAX_BUCKETS);
    const double t0 = now_s();
    int rc = MPI_SUCCESS;
    size_t posted = 0;
    for (; posted < n && rc == MPI_SUCCESS; posted++) {
        if (p[posted].numel > (size_t)INT32_MAX)
            return attn_error(ATTN_E_INVALID, "data parallel: %s has more than 2^31 elements", p[posted].name);
        rc = MPI_Iallreduce(MPI_IN_PLACE, p[posted].grad, (int)p[posted].numel, MPI_FLOAT, MPI_SUM,
                            comm, &req[posted]);
    }
    if (rc != MPI_SUCCESS) posted--;
    int wrc = MPI_Waitall((int)posted, req, MPI_STATUSES_IGNORE);
    comm_s += now_s() - t0;
    if (rc != MPI_SUCCESS) return mpi_fail("MPI_Iallreduce of the gradients", rc);
    return wrc == MPI_SUCCESS ? ATTN_OK : mpi_fail("MPI_Iallreduce of the gradients", wrc);
}

static attn_status sum(void *user, double *v, size_t n)
{
    const double t0 = now_s();
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_DOUBLE, MPI_SUM, comm_of(user));
    comm_s += now_s() - t0;
    return rc == MPI_SUCCESS ? ATTN_OK : mpi_fail("MPI_Allreduce", rc);
}

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
    const double until = now_s() + timeout_s;
    int done = 0;
    while (!done) {
        if ((rc = MPI_Test(&req, &done, MPI_STATUS_IGNORE)) != MPI_SUCCESS)
            return mpi_fail("the start-up check", rc);
        if (done) break;
        if (now_s() > until) /* the request stays pending; the caller ends the program */
            return attn_error(ATTN_E_IO, "data parallel: not every rank reached the start-up check "
                              "within %g s (a rank failed or is stuck before it)", timeout_s);
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    if (all[0] != mine[0] || all[1] != mine[1])
        return attn_error(ATTN_E_INVALID, "data parallel: the ranks disagree on %s (hash %016llx "
                          "here): start every rank with the same options and the same files",
                          what, (unsigned long long)hash);
    return ATTN_OK;
}

attn_status attn_dist_trainer_attach(attn_trainer *t, MPI_Comm comm, const char *text, size_t len,
                                     double timeout_s)
{
    if (!t || !text) return attn_error(ATTN_E_INVALID, "attn_dist_trainer_attach: NULL");
    const attn_checkpoint *info = attn_trainer_info(t);
    int rank = 0, ranks = 1;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &ranks) != MPI_SUCCESS)
        return attn_error(ATTN_E_INVALID, "data parallel: not an MPI communicator");
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
    if ((st = attn_dist_agree(comm, h, timeout_s, "the configuration or the data"))) return st;
    attn_train_dist d = {rank, ranks, sum_grads, sum, (void *)(intptr_t)MPI_Comm_c2f(comm)};
    return attn_trainer_set_dist(t, &d);
}
