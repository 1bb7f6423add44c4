/* tensor.c - float32 tensors: owned or borrowed, contiguous, row-major. */
#include "attn/tensor.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

attn_status attn_shape_numel(int ndim, const size_t *shape, size_t *numel)
{
    if (ndim < 0 || ndim > ATTN_MAX_DIMS)
        return attn_error(ATTN_E_INVALID, "tensor rank must be 0..%d, got %d", ATTN_MAX_DIMS, ndim);
    if (ndim > 0 && !shape)
        return attn_error(ATTN_E_INVALID, "tensor shape is NULL");
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] != 0 && n > SIZE_MAX / shape[i])
            return attn_error(ATTN_E_NOMEM, "tensor shape overflows size_t at dim %d", i);
        n *= shape[i];
    }
    /* Bytes must fit too, so that every later n * sizeof(float) is safe. */
    if (n > SIZE_MAX / sizeof(float))
        return attn_error(ATTN_E_NOMEM, "tensor of %zu floats overflows size_t bytes", n);
    *numel = n;
    return ATTN_OK;
}

static attn_status set_shape(attn_tensor *t, int ndim, const size_t *shape)
{
    size_t numel;
    attn_status st = attn_shape_numel(ndim, shape, &numel);
    if (st) return st;
    t->ndim = ndim;
    for (int i = 0; i < ATTN_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
    t->numel = numel;
    return ATTN_OK;
}

attn_status attn_tensor_create(attn_tensor *t, int ndim, const size_t *shape)
{
    if (!t) return attn_error(ATTN_E_INVALID, "attn_tensor_create: tensor is NULL");
    memset(t, 0, sizeof *t);
    attn_status st = set_shape(t, ndim, shape);
    if (st) return st;
    /* calloc(0) may return NULL; always allocate at least one float. */
    t->data = calloc(t->numel ? t->numel : 1, sizeof(float));
    if (!t->data)
        return attn_error(ATTN_E_NOMEM, "cannot allocate a tensor of %zu floats", t->numel);
    t->owned = 1;
    return ATTN_OK;
}

attn_status attn_tensor_view(attn_tensor *t, float *data, int ndim, const size_t *shape)
{
    if (!t) return attn_error(ATTN_E_INVALID, "attn_tensor_view: tensor is NULL");
    memset(t, 0, sizeof *t);
    attn_status st = set_shape(t, ndim, shape);
    if (st) return st;
    if (!data && t->numel)
        return attn_error(ATTN_E_INVALID, "attn_tensor_view: data is NULL");
    t->data = data;
    return ATTN_OK;
}

attn_status attn_tensor_index(attn_tensor *view, const attn_tensor *src, size_t i)
{
    if (!view || !src) return attn_error(ATTN_E_INVALID, "attn_tensor_index: NULL tensor");
    if (src->ndim < 1)
        return attn_error(ATTN_E_INVALID, "cannot index a scalar tensor");
    if (i >= src->shape[0])
        return attn_error(ATTN_E_INVALID, "index %zu out of range for leading dimension %zu",
                          i, src->shape[0]);
    size_t inner = src->shape[0] ? src->numel / src->shape[0] : 0;
    return attn_tensor_view(view, src->data + i * inner, src->ndim - 1, src->shape + 1);
}

attn_status attn_tensor_reshape(attn_tensor *view, const attn_tensor *src, int ndim,
                                const size_t *shape)
{
    if (!view || !src) return attn_error(ATTN_E_INVALID, "attn_tensor_reshape: NULL tensor");
    size_t numel;
    attn_status st = attn_shape_numel(ndim, shape, &numel);
    if (st) return st;
    if (numel != src->numel)
        return attn_error(ATTN_E_INVALID, "cannot reshape %zu elements into %zu", src->numel,
                          numel);
    return attn_tensor_view(view, src->data, ndim, shape);
}

attn_status attn_tensor_clone(attn_tensor *dst, const attn_tensor *src)
{
    if (!dst || !src) return attn_error(ATTN_E_INVALID, "attn_tensor_clone: NULL tensor");
    attn_status st = attn_tensor_create(dst, src->ndim, src->shape);
    if (st) return st;
    if (src->numel) memcpy(dst->data, src->data, src->numel * sizeof(float));
    return ATTN_OK;
}

void attn_tensor_free(attn_tensor *t)
{
    if (!t) return;
    if (t->owned) free(t->data);
    memset(t, 0, sizeof *t);
}
