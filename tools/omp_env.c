/* omp_env.c - the thread pools' environment for the CLI.
 *
 * libgomp's default lets a thread that waits at a barrier spin for a while
 * before it sleeps. On a machine where another process keeps a core busy,
 * one of attn's threads is often preempted, and every parallel region then
 * waits for it while its partner spins on the other core: measured with the
 * baby GPT (`attn train`, 2 cores, other jobs running: bench/bench_loaded.sh)
 * 3.8-3.9 s a step with the default, 0.82 s with GOMP_SPINCOUNT=10000,
 * 0.29 s with OMP_WAIT_POLICY=PASSIVE and 0.31 s on one thread.
 *
 * OpenBLAS starts a pool of its own threads when it is loaded, though attn
 * tells it to use one thread (OpenMP splits the products): each pool thread
 * allocates a 128 MB buffer when it starts and retries for ever if it cannot,
 * and exit() waits for the pool, so under a tight `ulimit -v` attn printed its
 * out-of-memory message and then spun instead of exiting.
 * OPENBLAS_NUM_THREADS=1 starts no pool.
 *
 * Both libraries read their variables once, when they are loaded (before
 * main), so the CLI sets them and executes itself again; the library itself
 * never changes the process's environment. A user's OMP_WAIT_POLICY,
 * GOMP_SPINCOUNT or OPENBLAS_NUM_THREADS wins, and ATTN_NO_REEXEC=1 keeps the
 * libraries' defaults. */
#define _POSIX_C_SOURCE 200809L
#include "omp_env.h"

#include <stdlib.h>
#include <unistd.h>

void cli_omp_env(char **argv)
{
#ifdef __linux__
    if (getenv("ATTN_NO_REEXEC")) return;
    int set_wait = 0, set_blas = 0;
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT"))
        set_wait = setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0;
    if (!getenv("OPENBLAS_NUM_THREADS")) set_blas = setenv("OPENBLAS_NUM_THREADS", "1", 1) == 0;
    if (!set_wait && !set_blas) return;
    execv("/proc/self/exe", argv); /* returns only on failure */
    if (set_wait) unsetenv("OMP_WAIT_POLICY");
    if (set_blas) unsetenv("OPENBLAS_NUM_THREADS");
#else
    (void)argv;
#endif
}
