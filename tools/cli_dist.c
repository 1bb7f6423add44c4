/* cli_dist.c - `mpirun -np K attn train`: MPI start, agreement, the
 * trainer's data-parallel hooks (attn/dist.h), rank 0 alone printing. */
#include <stdio.h>
#include <stdlib.h>

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

attn_status cli_dist_train_begin(attn_trainer *t, const char *text, size_t len, int *rank)
{
    *rank = 0;
    if (!attn_dist_launched()) return ATTN_OK;
    int ready = 0;
    MPI_Initialized(&ready);
    if (!ready && MPI_Init(NULL, NULL) != MPI_SUCCESS) return attn_error(ATTN_E_IO, "MPI_Init failed");
    dist_on = 1;
    /* errors come back as statuses: a dead rank ends the others with a message */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    if (*rank != 0 && !freopen("/dev/null", "w", stdout))
        return attn_error(ATTN_E_IO, "rank %d: cannot silence stdout", *rank);
    return attn_dist_trainer_attach(t, MPI_COMM_WORLD, text, len, start_timeout());
}

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
attn_status cli_dist_train_begin(attn_trainer *t, const char *text, size_t len, int *rank)
{
    (void)t, (void)text, (void)len;
    *rank = 0;
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK"))
        return attn_error(ATTN_E_INVALID, "started by mpirun, but this attn was built without MPI "
                          "(see 'attn --version'): every rank would train alone");
    return ATTN_OK;
}

void cli_dist_end(double run_s) { (void)run_s; }
#endif
