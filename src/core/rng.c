/* rng.c - xoshiro256** seeded through splitmix64 (public-domain algorithms by
 * Blackman and Vigna, written here from their description). */
#include "attn/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void attn_rng_seed(attn_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

uint64_t attn_rng_next(attn_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double attn_rng_uniform(attn_rng *r) { return (double)(attn_rng_next(r) >> 11) * 0x1.0p-53; }

size_t attn_rng_below(attn_rng *r, size_t n)
{
    /* Rejection sampling: no modulo bias. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, x;
    do x = attn_rng_next(r);
    while (x >= limit);
    return (size_t)(x % n);
}

double attn_rng_normal(attn_rng *r)
{
    double u1 = attn_rng_uniform(r), u2 = attn_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300; /* log(0) */
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void attn_rng_fill_uniform(attn_rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)attn_rng_uniform(r);
}

void attn_rng_fill_normal(attn_rng *r, float *x, size_t n, float mean, float std)
{
    for (size_t i = 0; i < n; i++) x[i] = mean + std * (float)attn_rng_normal(r);
}
