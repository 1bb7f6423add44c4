/* embedding.c - table lookup (nn.Embedding), forward and backward. */
#include <string.h>

#include "attn/ops_nn.h"
#include "omp_util.h"
#include "op_check.h"

static attn_status check(const char *op, const void *a, const uint32_t *ids, const void *b,
                         size_t n, size_t dim, size_t vocab)
{
    size_t tmp;
    if (!a || !ids || !b) return attn_error(ATTN_E_INVALID, "%s: NULL buffer", op);
    if (!n || !dim || !vocab)
        return attn_error(ATTN_E_INVALID, "%s: sizes must be > 0, got n=%zu dim=%zu vocab=%zu",
                          op, n, dim, vocab);
    attn_status st = attn_mul_sizes(op, n, dim, &tmp);
    if (!st) st = attn_mul_sizes(op, vocab, dim, &tmp);
    if (st) return st;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= vocab)
            return attn_error(ATTN_E_INVALID, "%s: id %u at position %zu is not below vocab %zu",
                              op, (unsigned)ids[i], i, vocab);
    return ATTN_OK;
}

static attn_status embedding_run(float *out, const uint32_t *ids, const float *table, size_t n,
                                 size_t dim, size_t vocab, int accumulate)
{
    attn_status st = check("embedding", out, ids, table, n, dim, vocab);
    if (st) return st;
    ATTN_OMP_FOR_IF(n * dim >= 4 * ATTN_OMP_MIN_WORK)
    for (size_t i = 0; i < n; i++) {
        const float *row = table + (size_t)ids[i] * dim;
        float *o = out + i * dim;
        if (accumulate)
            for (size_t j = 0; j < dim; j++) o[j] += row[j];
        else
            memcpy(o, row, dim * sizeof(float));
    }
    return ATTN_OK;
}

attn_status attn_embedding_backward(float *d_table, const float *d_out, const uint32_t *ids,
                                    size_t n, size_t dim, size_t vocab)
{
    attn_status st = check("embedding_backward", d_table, ids, d_out, n, dim, vocab);
    if (st) return st;
    /* Rows may share an id: a scatter in order of i keeps the sum's order fixed. */
    for (size_t i = 0; i < n; i++) {
        float *row = d_table + (size_t)ids[i] * dim;
        const float *g = d_out + i * dim;
        for (size_t j = 0; j < dim; j++) row[j] += g[j];
    }
    return ATTN_OK;
}

attn_status attn_embedding_forward(float *out, const uint32_t *ids, const float *table,
                                   size_t n, size_t dim, size_t vocab, int accumulate,
                                   const attn_op_ctx *ctx)
{
    attn_status st = embedding_run(out, ids, table, n, dim, vocab, accumulate);
    if (!st) st = attn_op_record(ctx, "output", out, n, dim, "token", "dim");
    return st;
}
