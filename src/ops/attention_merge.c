/* attention_merge.c - merging attention computed over disjoint key sets.
 *
 * Attention over keys A ∪ B equals the two partial results weighted by their
 * share of the softmax's denominator: with a = lse_A, b = lse_B (log of each
 * row's sum of exp(score)), s = log(exp a + exp b) and
 *   out = exp(a − s)·out_A + exp(b − s)·out_B,   lse = s.
 * Ring attention (src/dist) and any split-key scheme merge with this; it is
 * computed in double so that the order of merges costs no accuracy. */
#include <math.h>
#include <string.h>

#include "attn/ops.h"

void attn_attention_merge(float *out, float *lse, const float *out_p, const float *lse_p,
                          size_t bh, size_t n, size_t row0, size_t ql, size_t dv)
{
    for (size_t h = 0; h < bh; h++)
        for (size_t i = 0; i < ql; i++) {
            const double b = lse_p[h * ql + i];
            float *o = out + (h * n + row0 + i) * dv;
            float *l = lse + h * n + row0 + i;
            const float *op = out_p + (h * ql + i) * dv;
            if (b == -INFINITY) continue; /* the partial saw no key */
            const double a = *l;
            if (a == -INFINITY) {
                memcpy(o, op, dv * sizeof *o);
                *l = (float)b;
                continue;
            }
            const double m = a > b ? a : b;
            const double s = m + log(exp(a - m) + exp(b - m));
            const double wa = exp(a - s), wb = exp(b - s);
            for (size_t c = 0; c < dv; c++) o[c] = (float)(wa * o[c] + wb * op[c]);
            *l = (float)s;
        }
}
