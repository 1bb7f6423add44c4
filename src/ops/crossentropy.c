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

attn_status attn_crossentropy_forward(double *loss, float *row_loss, float *probs,
                                      const float *logits, const uint32_t *targets, size_t rows,
                                      size_t vocab)
{
    attn_status st = check("crossentropy", probs, logits, targets, rows, vocab);
    if (st) return st;
    if (!loss) return attn_error(ATTN_E_INVALID, "crossentropy: NULL loss");
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
    return ATTN_OK;
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
                                       size_t vocab)
{
    attn_status st = check("crossentropy_backward", d_logits, probs, targets, rows, vocab);
    if (st) return st;
    ATTN_OMP_FOR_IF(rows * vocab >= ATTN_OMP_MIN_WORK)
    for (size_t i = 0; i < rows; i++) {
        float *d = d_logits + i * vocab;
        const float *p = probs + i * vocab;
        for (size_t j = 0; j < vocab; j++) d[j] += scale * p[j];
        d[targets[i]] -= scale;
    }
    return ATTN_OK;
}
