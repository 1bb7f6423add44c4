/* crossentropy.c - softmax cross-entropy over a vocabulary, forward and backward. */
#include <math.h>

#include "attn/ops_nn.h"
#include "omp_util.h"
#include "op_check.h"

static attn_status check(const char *op, const void *a, const void *b, const uint32_t *targets,
                         size_t rows, size_t vocab)
{
    size_t tmp;
    if (!a || !b || !targets) return attn_error(ATTN_E_INVALID, "%s: NULL buffer", op);
    if (!rows || !vocab)
        return attn_error(ATTN_E_INVALID, "%s: sizes must be > 0, got rows=%zu vocab=%zu", op,
                          rows, vocab);
    attn_status st = attn_mul_sizes(op, rows, vocab, &tmp);
    if (st) return st;
    for (size_t i = 0; i < rows; i++)
        if (targets[i] >= vocab)
            return attn_error(ATTN_E_INVALID, "%s: target %u at row %zu is not below vocab %zu",
                              op, (unsigned)targets[i], i, vocab);
    return ATTN_OK;
}

/* Softmax of one row into p (may alias l); returns the row's loss. */
static double row_forward(float *p, const float *l, uint32_t target, size_t vocab)
{
    float mx = -INFINITY;
    for (size_t j = 0; j < vocab; j++)
        if (l[j] > mx) mx = l[j];
    const float target_logit = l[target];
    double sum = 0.0;
    for (size_t j = 0; j < vocab; j++) {
        const float e = expf(l[j] - mx);
        p[j] = e;
        sum += e;
    }
    const float inv = (float)(1.0 / sum);
    for (size_t j = 0; j < vocab; j++) p[j] *= inv;
    return log(sum) + (double)mx - (double)target_logit;
}

/* Σ over rows of ε's share of the smoothed loss before scaling by ε: the mean
 * over classes of −log p minus the row's cross-entropy, i.e. z_target − mean z,
 * written as (lse − mean) − (lse − z_target) in double (as first computed in
 * the encoder, so that losses stay the same bits). */
static double smoothing_extra(const float *logits, const uint32_t *targets, size_t rows,
                              size_t vocab)
{
    double extra = 0.0;
    for (size_t b = 0; b < rows; b++) {
        const float *z = logits + b * vocab;
        double mx = z[0], sum = 0.0, mean = 0.0;
        for (size_t k = 1; k < vocab; k++) mx = z[k] > mx ? z[k] : mx;
        for (size_t k = 0; k < vocab; k++) sum += exp((double)z[k] - mx), mean += z[k];
        const double lse = mx + log(sum);
        extra += (lse - mean / (double)vocab) - (lse - (double)z[targets[b]]);
    }
    return extra;
}

static attn_status check_smoothing(const char *op, float smoothing)
{
    if (!(smoothing >= 0.0f && smoothing < 1.0f))
        return attn_error(ATTN_E_INVALID, "%s: label smoothing must be in [0, 1), got %g", op,
                          (double)smoothing);
    return ATTN_OK;
}

attn_status attn_crossentropy_forward(double *loss, float *row_loss, float *probs,
                                      const float *logits, const uint32_t *targets, size_t rows,
                                      size_t vocab, float smoothing, const attn_op_ctx *ctx)
{
    attn_status st = check("crossentropy", probs, logits, targets, rows, vocab);
    if (!st) st = check_smoothing("crossentropy", smoothing);
    if (st) return st;
    if (!loss) return attn_error(ATTN_E_INVALID, "crossentropy: NULL loss");
    if (smoothing > 0.0f && (const float *)probs == logits)
        return attn_error(ATTN_E_INVALID, "crossentropy: probs may not alias logits with label smoothing");
    /* before the softmax overwrites anything */
    const double extra = smoothing > 0.0f ? smoothing_extra(logits, targets, rows, vocab) : 0.0;
    double total = 0.0;
    if (row_loss) {
        /* Rows in parallel, each alone; then summed in order. */
        ATTN_OMP_FOR_IF(rows * vocab >= ATTN_OMP_MIN_WORK)
        for (size_t i = 0; i < rows; i++)
            row_loss[i] = (float)row_forward(probs + i * vocab, logits + i * vocab, targets[i], vocab);
        for (size_t i = 0; i < rows; i++) total += row_loss[i];
    } else {
        for (size_t i = 0; i < rows; i++)
            total += row_forward(probs + i * vocab, logits + i * vocab, targets[i], vocab);
    }
    *loss = total / (double)rows;
    if (smoothing > 0.0f) *loss += (double)smoothing * extra / (double)rows;
    if (row_loss) st = attn_op_record(ctx, "row_loss", row_loss, rows, 1, "token", NULL);
    if (!st) st = attn_op_record(ctx, "probs", probs, rows, vocab, "token", "class");
    return st;
}

attn_status attn_crossentropy_ref(double *loss, const float *logits, const uint32_t *targets,
                                  size_t rows, size_t vocab)
{
    attn_status st = check("crossentropy_ref", logits, logits, targets, rows, vocab);
    if (st) return st;
    if (!loss) return attn_error(ATTN_E_INVALID, "crossentropy_ref: NULL loss");
    double total = 0.0;
    for (size_t i = 0; i < rows; i++) {
        const float *l = logits + i * vocab;
        double mx = -INFINITY, sum = 0.0;
        for (size_t j = 0; j < vocab; j++)
            if (l[j] > mx) mx = l[j];
        for (size_t j = 0; j < vocab; j++) sum += exp(l[j] - mx);
        total += log(sum) + mx - l[targets[i]];
    }
    *loss = total / (double)rows;
    return ATTN_OK;
}

attn_status attn_crossentropy_backward(float *d_logits, const float *probs,
                                       const uint32_t *targets, float scale, size_t rows,
                                       size_t vocab, float smoothing)
{
    attn_status st = check("crossentropy_backward", d_logits, probs, targets, rows, vocab);
    if (!st) st = check_smoothing("crossentropy_backward", smoothing);
    if (st) return st;
    /* the smoothed target's share: scale·ε·(onehot − 1/vocab) */
    const float s = scale * smoothing, u = s / (float)vocab;
    ATTN_OMP_FOR_IF(rows * vocab >= ATTN_OMP_MIN_WORK)
    for (size_t i = 0; i < rows; i++) {
        float *d = d_logits + i * vocab;
        const float *p = probs + i * vocab;
        for (size_t j = 0; j < vocab; j++) d[j] += scale * p[j];
        d[targets[i]] -= scale;
        if (smoothing > 0.0f) {
            for (size_t j = 0; j < vocab; j++) d[j] -= u;
            d[targets[i]] += s;
        }
    }
    return ATTN_OK;
}
