/* op_trace.c - how every op and layer keeps an intermediate in a trace. */
#include "attn/ops.h"

attn_status attn_op_record(const attn_op_ctx *ctx, const char *name, const float *data,
                           size_t rows, size_t cols, const char *row_axis, const char *col_axis)
{
    if (!ctx || !ctx->trace) return ATTN_OK;
    size_t shape[2] = {rows, cols};
    return attn_trace_record(ctx->trace, ctx->prefix, name, data, 2, shape, row_axis, col_axis);
}
