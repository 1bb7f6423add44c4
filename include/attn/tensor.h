/* attn/tensor.h - float32 tensors (up to 4 dims, row-major) and an arena.
 *
 * A tensor is a pointer plus a shape. It either owns its data (created with
 * attn_tensor_create, released with attn_tensor_free) or borrows it (a view of
 * someone else's memory: a caller's array, another tensor, an arena). Tensors
 * are always contiguous and row-major; views of a leading index or a reshape
 * keep that true, which keeps every kernel simple.
 */
#ifndef ATTN_TENSOR_H
#define ATTN_TENSOR_H

#include <stddef.h>
#include "attn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_MAX_DIMS 4

typedef struct attn_tensor {
    float *data;
    int ndim;                      /* 0 (scalar) .. ATTN_MAX_DIMS */
    size_t shape[ATTN_MAX_DIMS];   /* unused entries are 1 */
    size_t numel;                  /* product of shape[0..ndim) */
    int owned;                     /* 1: attn_tensor_free releases data */
} attn_tensor;

/* Number of elements of `shape`, checked for overflow (ATTN_E_NOMEM). */
attn_status attn_shape_numel(int ndim, const size_t *shape, size_t *numel);

/* A new zero-filled tensor that owns its data. */
attn_status attn_tensor_create(attn_tensor *t, int ndim, const size_t *shape);

/* A borrowed view of `data` with the given shape. */
attn_status attn_tensor_view(attn_tensor *t, float *data, int ndim, const size_t *shape);

/* A borrowed view of src[i]: one index of the leading dimension. */
attn_status attn_tensor_index(attn_tensor *view, const attn_tensor *src, size_t i);

/* A borrowed view of src with another shape of the same element count. */
attn_status attn_tensor_reshape(attn_tensor *view, const attn_tensor *src, int ndim,
                                const size_t *shape);

/* An owned deep copy of src. */
attn_status attn_tensor_clone(attn_tensor *dst, const attn_tensor *src);

/* Releases owned data; resets the struct. Safe on a zeroed or borrowed tensor. */
void attn_tensor_free(attn_tensor *t);

/* Element pointer for a 2-D tensor (no bounds check; for readable loops). */
#define ATTN_AT2(t, i, j) ((t)->data[(size_t)(i) * (t)->shape[1] + (size_t)(j)])

/* ---- arena --------------------------------------------------------------
 * One allocation for many model-sized buffers: parameters, gradients,
 * optimizer moments, activations. Tensors taken from it are borrowed views,
 * 64-byte aligned and zero-filled; they all go away with reset or free. */
typedef struct attn_arena attn_arena;

attn_status attn_arena_create(attn_arena **arena, size_t capacity_bytes);
/* A zero-filled view of the arena's next bytes; ATTN_E_NOMEM when full. */
attn_status attn_arena_tensor(attn_arena *arena, attn_tensor *t, int ndim,
                              const size_t *shape);
size_t attn_arena_used(const attn_arena *arena);
size_t attn_arena_capacity(const attn_arena *arena);
/* Forgets every tensor taken so far (their memory is reused). */
/* Bytes still free; a tensor of b bytes fits when its size rounded up to 64
 * is at most this. */
size_t attn_arena_room(const attn_arena *arena);
/* Gives back everything handed out since attn_arena_used() returned `used`
 * (scratch taken and returned by one call). */
void attn_arena_rewind(attn_arena *arena, size_t used);
void attn_arena_reset(attn_arena *arena);
void attn_arena_free(attn_arena *arena);

/* ---- sizes and scratch ------------------------------------------------------
 * Every size product that input decides goes through attn_size_mul, so that
 * an overflow is an error (ATTN_E_NOMEM naming `what`) and never a short
 * buffer: a·b elements, and their bytes as floats, fit in size_t. */
attn_status attn_size_mul(const char *what, size_t a, size_t b, size_t *out);

/* bytes (rounded up to 64) 64-byte aligned, or NULL; from huge_min bytes on
 * (0: never) 2 MiB aligned and advised onto transparent huge pages before
 * the first touch (Linux; advice only). Release with free(). */
void *attn_alloc_aligned(size_t bytes, size_t huge_min);

/* A workspace: scratch floats that a layer or model takes per call without
 * allocating, from one 64-byte-aligned block that grows to the largest
 * request and is kept. Zero-initialise it ({0}) before use; not for two
 * threads at once. A call sums what it needs (attn_workspace_add: one piece
 * of a·b floats, rounded up to the alignment), reserves the sum (which
 * forgets the pieces taken before and may replace the block), then takes
 * the pieces in any order. Pieces are not zeroed. */
typedef struct attn_workspace {
    float *base;
    size_t cap, used; /* floats */
} attn_workspace;
attn_status attn_workspace_add(size_t *total, const char *what, size_t a, size_t b);
attn_status attn_workspace_reserve(attn_workspace *w, size_t total);
/* The next piece of a·b floats; NULL when the reservation did not count it. */
float *attn_workspace_take(attn_workspace *w, size_t a, size_t b);
void attn_workspace_free(attn_workspace *w);

#ifdef __cplusplus
}
#endif
#endif
