/* cli_dist.c - `mpirun -np K attn train`: MPI start, agreement, the
 * trainer's data-parallel hooks (attn/dist.h), rank 0 alone printing, and
 * a watchdog over the start: Open MPI's MPI_Init waits for every rank, so a
 * rank that never starts would hold the others there forever, before the
 * library's own timed start-up check. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_dist.h"

#ifdef ATTN_HAVE_MPI
#include "attn/dist.h"

static int dist_on;

/* Seconds the other ranks get to reach the first collective
 * (ATTN_DIST_TIMEOUT overrides). */
static double start_timeout(void)
{
    const char *s = getenv("ATTN_DIST_TIMEOUT");
    double v = s ? atof(s) : 0.0;
    return v > 0 ? v : 60.0;
}

/* MPI_Init, errors as statuses, rank 0 alone on stdout. */
static attn_status dist_start(int *rank)
{
    int ready = 0;
    MPI_Initialized(&ready);
    if (!ready && MPI_Init(NULL, NULL) != MPI_SUCCESS) return attn_error(ATTN_E_IO, "MPI_Init failed");
    dist_on = 1;
    /* errors come back as statuses: a dead rank ends the others with a message */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    if (*rank != 0 && !freopen("/dev/null", "w", stdout))
        return attn_error(ATTN_E_IO, "rank %d: cannot silence stdout", *rank);
    return ATTN_OK;
}

static pthread_mutex_t wd_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cv = PTHREAD_COND_INITIALIZER;
static int wd_done;
static pthread_t wd_thread;

/* Ends the program when the start (MPI_Init and the start-up check) has
 * not finished in time. */
static void *watchdog(void *arg)
{
    const double limit = *(const double *)arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)limit;
    until.tv_nsec += (long)((limit - (double)(time_t)limit) * 1e9);
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&wd_mu);
    int rc = 0;
    while (!wd_done && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&wd_cv, &wd_mu, &until);
    const int fire = !wd_done;
    pthread_mutex_unlock(&wd_mu);
    if (fire) {
        fprintf(stderr, "attn train: data parallel: not every rank started within %g s (a rank failed or "
                        "is stuck before the start-up check; ATTN_DIST_TIMEOUT sets the limit)\n", limit);
        _exit(2);
    }
    return NULL;
}

/* MPI start and the start-up check under the watchdog; attach runs the check. */
static attn_status begin(int *rank, attn_trainer *t, const char *text, size_t len, attn_cls_trainer *ct)
{
    *rank = 0;
    if (!attn_dist_launched()) return ATTN_OK;
    static double limit;
    limit = start_timeout();
    const int watched = pthread_create(&wd_thread, NULL, watchdog, &limit) == 0;
    attn_status st = dist_start(rank);
    if (!st) st = ct ? attn_dist_cls_trainer_attach(ct, MPI_COMM_WORLD, limit)
                     : attn_dist_trainer_attach(t, MPI_COMM_WORLD, text, len, limit);
    if (watched) {
        pthread_mutex_lock(&wd_mu);
        wd_done = 1;
        pthread_cond_signal(&wd_cv);
        pthread_mutex_unlock(&wd_mu);
        pthread_join(wd_thread, NULL);
    }
    return st;
}

attn_status cli_dist_train_begin(attn_trainer *t, const char *text, size_t len, int *rank)
{
    return begin(rank, t, text, len, NULL);
}

attn_status cli_dist_cls_begin(attn_cls_trainer *t, int *rank) { return begin(rank, NULL, NULL, 0, t); }

void cli_dist_end(double run_s)
{
    if (!dist_on) return;
    int rank = 0, ranks = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    double c = attn_dist_comm_seconds();
    if (rank == 0 && run_s > 0)
        printf("data parallel: %d ranks, %.2f s of %.2f s in gradient and loss sums (%.1f%%)\n", ranks,
               c, run_s, 100.0 * c / run_s);
    fflush(stdout);
    MPI_Finalize();
    dist_on = 0;
}
#else
static attn_status no_mpi(int *rank)
{
    *rank = 0;
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK"))
        return attn_error(ATTN_E_INVALID, "started by mpirun, but this attn was built without MPI "
                          "(see 'attn --version'): every rank would train alone");
    return ATTN_OK;
}

attn_status cli_dist_train_begin(attn_trainer *t, const char *text, size_t len, int *rank)
{
    (void)t, (void)text, (void)len;
    return no_mpi(rank);
}

attn_status cli_dist_cls_begin(attn_cls_trainer *t, int *rank)
{
    (void)t;
    return no_mpi(rank);
}

void cli_dist_end(double run_s) { (void)run_s; }
#endif
