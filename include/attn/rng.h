/* attn/rng.h - a small, seedable, portable random generator (xoshiro256**).
 * The same seed gives the same numbers on every machine: initialisation and
 * sampling are reproducible. */
#ifndef ATTN_RNG_H
#define ATTN_RNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_rng {
    uint64_t s[4];
} attn_rng;

void attn_rng_seed(attn_rng *r, uint64_t seed);
uint64_t attn_rng_next(attn_rng *r);
/* Uniform in [0, 1). */
double attn_rng_uniform(attn_rng *r);
/* Uniform integer in [0, n); n > 0. */
size_t attn_rng_below(attn_rng *r, size_t n);
/* Standard normal (Box-Muller). */
double attn_rng_normal(attn_rng *r);
/* Fills x[0..n) uniformly in [lo, hi) or normally with (mean, std). */
void attn_rng_fill_uniform(attn_rng *r, float *x, size_t n, float lo, float hi);
void attn_rng_fill_normal(attn_rng *r, float *x, size_t n, float mean, float std);

#ifdef __cplusplus
}
#endif
#endif
