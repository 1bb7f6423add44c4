/* op_check.h - argument checks shared by the ops (internal). */
#ifndef ATTN_OP_CHECK_H
#define ATTN_OP_CHECK_H

#include <stdint.h>
#include "attn/status.h"
#include "attn/tensor.h"

/* a * b without overflow of size_t nor of its byte count as floats: the
 * core's one checked product (attn/tensor.h). */
static inline attn_status attn_mul_sizes(const char *op, size_t a, size_t b, size_t *out)
{
    return attn_size_mul(op, a, b, out);
}

/* Every size > 0 and every product of two of them representable. */
static inline attn_status attn_check_matmul(const char *op, const void *c, const void *a,
                                            const void *b, size_t m, size_t k, size_t n)
{
    size_t tmp;
    if (!c || !a || !b) return attn_error(ATTN_E_INVALID, "%s: NULL buffer", op);
    if (!m || !k || !n)
        return attn_error(ATTN_E_INVALID, "%s: sizes must be > 0, got M=%zu K=%zu N=%zu", op, m,
                          k, n);
    attn_status st = attn_mul_sizes(op, m, k, &tmp);
    if (!st) st = attn_mul_sizes(op, k, n, &tmp);
    if (!st) st = attn_mul_sizes(op, m, n, &tmp);
    return st;
}

#endif
