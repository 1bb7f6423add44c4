/* sample.c - one token id drawn from logits: greedy, or from the softmax at a
 * temperature restricted to the top k and the top p of the mass. */
#include "attn/ops_nn.h"

#include <math.h>
#include <stdlib.h>

typedef struct ranked {
    float p;
    uint32_t id;
} ranked;

static int by_prob_desc(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id < y->id ? -1 : 1; /* ties by id: deterministic */
}

attn_status attn_sample_logits(uint32_t *out, const float *logits, size_t V, float temperature,
                               size_t top_k, float top_p, attn_rng *rng, float *scratch)
{
    if (!out || !logits || !rng || !scratch || !V)
        return attn_error(ATTN_E_INVALID, "attn_sample: NULL argument or empty vocabulary");
    if (!(temperature >= 0.0f) || !(top_p > 0.0f && top_p <= 1.0f))
        return attn_error(ATTN_E_INVALID, "sampling: temperature must be >= 0 and top-p in (0, 1]");
    size_t best = 0;
    for (size_t j = 1; j < V; j++)
        if (logits[j] > logits[best]) best = j;
    if (temperature == 0.0f) {
        *out = (uint32_t)best;
        return ATTN_OK;
    }
    /* Probabilities at the temperature, max-subtracted (not normalised). */
    ranked *r = (ranked *)(void *)scratch; /* 2·V floats hold V pairs */
    for (size_t j = 0; j < V; j++) {
        r[j].p = expf((logits[j] - logits[best]) / temperature);
        r[j].id = (uint32_t)j;
    }
    size_t keep = V;
    if (top_k || top_p < 1.0f) {
        qsort(r, V, sizeof *r, by_prob_desc);
        if (top_k && top_k < keep) keep = top_k;
        if (top_p < 1.0f) { /* the fewest most likely ids holding top_p of the mass */
            double kept = 0.0, cum = 0.0;
            for (size_t j = 0; j < keep; j++) kept += r[j].p;
            for (size_t j = 0; j < keep; j++) {
                cum += r[j].p;
                if (cum >= (double)top_p * kept) {
                    keep = j + 1;
                    break;
                }
            }
        }
    }
    double sum = 0.0;
    for (size_t j = 0; j < keep; j++) sum += r[j].p;
    const double u = attn_rng_uniform(rng) * sum;
    double acc = 0.0;
    for (size_t j = 0; j < keep; j++) {
        acc += r[j].p;
        if (u < acc) {
            *out = r[j].id;
            return ATTN_OK;
        }
    }
    *out = r[keep - 1].id;
    return ATTN_OK;
}

