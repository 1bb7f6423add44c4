/* omp_env.h - the CLI's thread pools: OpenMP's waiting, OpenBLAS's pool (see
 * omp_env.c). */
#ifndef ATTN_TOOLS_OMP_ENV_H
#define ATTN_TOOLS_OMP_ENV_H

/* Re-executes the program with OPENBLAS_NUM_THREADS=1 unless the user set
 * it, and with OMP_WAIT_POLICY=PASSIVE (or, for train, generate, classify
 * and bench on a machine idle at start, a short spin: GOMP_SPINCOUNT=10000;
 * on a busy one, OMP_NUM_THREADS = the free cores) unless the user set
 * OMP_WAIT_POLICY or GOMP_SPINCOUNT (nothing with ATTN_NO_REEXEC); returns
 * only when it sets nothing (or an exec fails, which changes nothing). */
void cli_omp_env(char **argv);

#endif
