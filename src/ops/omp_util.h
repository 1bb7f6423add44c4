/* omp_util.h - OpenMP loops that vanish cleanly without OpenMP (internal). */
#ifndef ATTN_OMP_UTIL_H
#define ATTN_OMP_UTIL_H

#include <stddef.h>
#include <string.h>

#define ATTN_PRAGMA(x) _Pragma(#x)
#ifdef ATTN_HAVE_OPENMP
/* A static schedule: every row goes to a fixed thread and is computed the same
 * way whatever the thread count, so results never depend on it. */
#define ATTN_OMP_FOR_IF(cond) ATTN_PRAGMA(omp parallel for schedule(static) if (cond))
/* Fixed tasks handed out as threads come free: for loops whose every task is
 * computed the same way whoever runs it, so that a thread woken late (or
 * preempted) does not hold the others up and the results still do not
 * depend on the threads. */
#define ATTN_OMP_FOR_DYNAMIC_IF(cond) ATTN_PRAGMA(omp parallel for schedule(dynamic) if (cond))
#else
#define ATTN_OMP_FOR_IF(cond)
#define ATTN_OMP_FOR_DYNAMIC_IF(cond)
#endif

/* Work (elements touched) below which threads cost more than they give. */
#define ATTN_OMP_MIN_WORK 16384

/* x (n) = 0, in 64 KiB pieces on the threads when there are several: a
 * layer's gradient buffer zeroed by one thread keeps the others waiting. */
static inline void attn_zero_floats(float *x, size_t n)
{
    const size_t piece = 16384, np = (n + piece - 1) / piece;
    ATTN_OMP_FOR_IF(np > 1)
    for (size_t i = 0; i < np; i++) {
        const size_t len = n - i * piece < piece ? n - i * piece : piece;
        memset(x + i * piece, 0, len * sizeof(float));
    }
}

#endif
