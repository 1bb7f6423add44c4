/* omp_env.c - passive OpenMP waiting for the CLI.
 *
 * libgomp's default lets a thread that waits at a barrier spin for a while
 * before it sleeps. On a machine where another process keeps a core busy,
 * one of attn's threads is often preempted, and every parallel region then
 * waits for it while its partner spins on the other core: measured with the
 * baby GPT (`attn train`, 2 cores, other jobs running: bench/bench_loaded.sh)
 * 3.8-3.9 s a step with the default, 0.82 s with GOMP_SPINCOUNT=10000,
 * 0.29 s with OMP_WAIT_POLICY=PASSIVE and 0.31 s on one thread. libgomp reads
 * the policy once, when it is loaded (before main), so the CLI sets it and
 * executes itself again; the library itself never changes the process's
 * environment. A user's OMP_WAIT_POLICY or GOMP_SPINCOUNT wins, and
 * ATTN_NO_REEXEC=1 keeps libgomp's default. */
#define _POSIX_C_SOURCE 200809L
#include "omp_env.h"

#include <stdlib.h>
#include <unistd.h>

void cli_omp_env(char **argv)
{
#ifdef __linux__
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") || getenv("ATTN_NO_REEXEC")) return;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
    execv("/proc/self/exe", argv); /* returns only on failure */
    unsetenv("OMP_WAIT_POLICY");
#else
    (void)argv;
#endif
}
