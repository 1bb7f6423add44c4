/* omp_env.h - the CLI's OpenMP waiting policy (see omp_env.c). */
#ifndef ATTN_TOOLS_OMP_ENV_H
#define ATTN_TOOLS_OMP_ENV_H

/* Re-executes the program with OMP_WAIT_POLICY=PASSIVE unless the user set
 * OMP_WAIT_POLICY or GOMP_SPINCOUNT (or ATTN_NO_REEXEC); returns only when it
 * does not (or the exec fails, which changes nothing). */
void cli_omp_env(char **argv);

#endif
