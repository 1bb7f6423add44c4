/* flash_rand.h - the inputs of the fused attention tests (test_flash.c,
 * test_flash_bf16.c): a 64-bit LCG, uniform floats in [-1, 1). */
#ifndef ATTN_TEST_FLASH_RAND_H
#define ATTN_TEST_FLASH_RAND_H

#include <stdint.h>
#include <stdlib.h>

static uint64_t rng_state;
static inline float frand(void) /* uniform in [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(rng_state >> 40) / (double)(1ULL << 24) * 2.0 - 1.0);
}

static inline float *alloc_fill(size_t n, float mag)
{
    float *x = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = mag * frand();
    return x;
}

#endif
