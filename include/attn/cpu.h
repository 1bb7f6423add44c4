/* attn/cpu.h - CPU features and threads (core floor): the SIMD level the
 * fast kernels use and the thread count. */
#ifndef ATTN_CPU_H
#define ATTN_CPU_H

#include "attn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- threads and SIMD ---------------------------------------------------- */

/* The instruction set the fast kernels use. Chosen once from the CPU's
 * features (the best it has); the environment variable ATTN_SIMD
 * (avx512 | avx2 | scalar) lowers it, and attn_simd_set changes it (tests). */
typedef enum attn_simd {
    ATTN_SIMD_SCALAR = 0, /* portable C */
    ATTN_SIMD_AVX2 = 1,   /* AVX2 + FMA, 8 lanes */
    ATTN_SIMD_AVX512 = 2  /* AVX-512 F + DQ, 16 lanes */
} attn_simd;

/* The level in use. */
attn_simd attn_simd_level(void);
/* The best level this CPU supports. */
attn_simd attn_simd_best(void);
/* Forces a level; ATTN_E_INVALID (and no change) if the CPU lacks it. Not
 * to be called while a kernel runs. */
attn_status attn_simd_set(attn_simd level);
/* "avx512", "avx2", "scalar". */
const char *attn_simd_name(attn_simd level);

/* Threads the kernels use (OpenMP; 1 without it). Results never depend on it. */
int attn_threads(void);
void attn_set_threads(int n);

#ifdef __cplusplus
}
#endif
#endif
