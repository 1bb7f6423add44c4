/* attn/trace.h - a recorder of named intermediates.
 *
 * An attn_trace handed to the ops (through attn_op_ctx) makes them take the
 * reference path and keep a copy of every intermediate under a name, e.g.
 * "scores", "scaled", "attention", or "layer0.head1.attention" when the caller
 * sets a prefix. Each entry also names its row and column axes ("query",
 * "key", "value_dim", ...); the caller attaches labels to axis names (token
 * strings, dimension names) so that renderers can label every number without
 * knowing where it came from. Renderers read traces; they never recompute.
 */
#ifndef ATTN_TRACE_H
#define ATTN_TRACE_H

#include <stddef.h>
#include "attn/status.h"
#include "attn/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_trace attn_trace;

typedef struct attn_trace_entry {
    const char *name;       /* full name, prefix included */
    const attn_tensor *tensor;
    const char *row_axis;   /* axis name of dim 0 of a 2-D entry, or NULL */
    const char *col_axis;   /* axis name of dim 1, or NULL */
} attn_trace_entry;

attn_status attn_trace_create(attn_trace **trace);
void attn_trace_free(attn_trace *trace);

/* Copies `data` (shape `shape`) into the trace as "<prefix>.<name>" (or
 * "<name>" when prefix is NULL or ""). Recording a name twice replaces the
 * earlier entry. */
attn_status attn_trace_record(attn_trace *trace, const char *prefix, const char *name,
                              const float *data, int ndim, const size_t *shape,
                              const char *row_axis, const char *col_axis);

/* From now on records only the entries whose full name matches one of the
 * `n` glob patterns ('*' matches any run of characters), e.g.
 * "layer*.head*.attention": a traced run then keeps what its reader needs and
 * not every intermediate. Other recordings succeed and keep nothing. n == 0
 * records everything again. Patterns are copied. */
attn_status attn_trace_set_filter(attn_trace *trace, size_t n, const char *const *patterns);

/* Attaches labels to an axis name (copied). Replaces earlier labels. */
attn_status attn_trace_set_labels(attn_trace *trace, const char *axis, size_t n,
                                  const char *const *labels);

/* The entry called `name` (full name), or NULL. */
const attn_tensor *attn_trace_get(const attn_trace *trace, const char *name);

/* The labels of an axis (NULL if none); *n receives their count. */
const char *const *attn_trace_labels(const attn_trace *trace, const char *axis, size_t *n);

/* Entries in recording order. */
size_t attn_trace_count(const attn_trace *trace);
attn_status attn_trace_entry_at(const attn_trace *trace, size_t i, attn_trace_entry *entry);

#ifdef __cplusplus
}
#endif
#endif
