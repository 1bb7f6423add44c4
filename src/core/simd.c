/* simd.c - the SIMD level and thread count the fast kernels use.
 *
 * The level is chosen once, on first use, from the CPU's features
 * (__builtin_cpu_supports); ATTN_SIMD=avx512|avx2|scalar lowers it (never
 * above what the CPU has), attn_simd_set changes it for tests. */
#include "attn/cpu.h"

#include <stdlib.h>
#include <string.h>

#ifdef ATTN_HAVE_OPENMP
#include <omp.h>
#endif

static int g_level = -1; /* -1: not chosen yet */

attn_simd attn_simd_best(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
        return ATTN_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ATTN_SIMD_AVX2;
#endif
    return ATTN_SIMD_SCALAR;
}

const char *attn_simd_name(attn_simd level)
{
    switch (level) {
    case ATTN_SIMD_AVX512: return "avx512";
    case ATTN_SIMD_AVX2: return "avx2";
    default: return "scalar";
    }
}

attn_simd attn_simd_level(void)
{
    int lv = __atomic_load_n(&g_level, __ATOMIC_ACQUIRE);
    if (lv >= 0) return (attn_simd)lv;
    attn_simd best = attn_simd_best();
    lv = (int)best;
    const char *env = getenv("ATTN_SIMD");
    if (env && *env) {
        int want = -1;
        if (strcmp(env, "avx512") == 0) want = ATTN_SIMD_AVX512;
        else if (strcmp(env, "avx2") == 0) want = ATTN_SIMD_AVX2;
        else if (strcmp(env, "scalar") == 0) want = ATTN_SIMD_SCALAR;
        if (want >= 0 && want < lv) lv = want;
    }
    __atomic_store_n(&g_level, lv, __ATOMIC_RELEASE);
    return (attn_simd)lv;
}

attn_status attn_simd_set(attn_simd level)
{
    if ((int)level < ATTN_SIMD_SCALAR || (int)level > ATTN_SIMD_AVX512)
        return attn_error(ATTN_E_INVALID, "unknown SIMD level %d", (int)level);
    if (level > attn_simd_best())
        return attn_error(ATTN_E_INVALID, "this CPU lacks %s (best: %s)", attn_simd_name(level),
                          attn_simd_name(attn_simd_best()));
    __atomic_store_n(&g_level, (int)level, __ATOMIC_RELEASE);
    return ATTN_OK;
}

int attn_threads(void)
{
#ifdef ATTN_HAVE_OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void attn_set_threads(int n)
{
#ifdef ATTN_HAVE_OPENMP
    if (n > 0) omp_set_num_threads(n);
#else
    (void)n;
#endif
}
