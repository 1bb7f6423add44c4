/* arena.c - one allocation, many aligned tensors. */
#include "attn/tensor.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 64 /* a cache line, and an AVX-512 register */

struct attn_arena {
    unsigned char *base;
    size_t capacity;
    size_t used;
};

attn_status attn_arena_create(attn_arena **arena, size_t capacity_bytes)
{
    if (!arena) return attn_error(ATTN_E_INVALID, "attn_arena_create: arena is NULL");
    *arena = NULL;
    /* aligned_alloc wants a multiple of the alignment. */
    if (capacity_bytes > SIZE_MAX - (ARENA_ALIGN - 1))
        return attn_error(ATTN_E_NOMEM, "arena of %zu bytes overflows size_t", capacity_bytes);
    size_t cap = (capacity_bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    attn_arena *a = calloc(1, sizeof *a);
    if (!a) return attn_error(ATTN_E_NOMEM, "cannot allocate an arena");
    a->base = aligned_alloc(ARENA_ALIGN, cap ? cap : ARENA_ALIGN);
    if (!a->base) {
        free(a);
        return attn_error(ATTN_E_NOMEM, "cannot allocate an arena of %zu bytes", cap);
    }
    a->capacity = cap;
    *arena = a;
    return ATTN_OK;
}

attn_status attn_arena_tensor(attn_arena *a, attn_tensor *t, int ndim, const size_t *shape)
{
    if (!a || !t) return attn_error(ATTN_E_INVALID, "attn_arena_tensor: NULL argument");
    size_t numel;
    attn_status st = attn_shape_numel(ndim, shape, &numel);
    if (st) return st;
    size_t bytes = numel * sizeof(float);
    size_t room = a->capacity - a->used;
    size_t padded = bytes > SIZE_MAX - (ARENA_ALIGN - 1) ? SIZE_MAX
                                                         : (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (padded > room)
        return attn_error(ATTN_E_NOMEM, "arena full: need %zu bytes, %zu of %zu left", bytes,
                          room, a->capacity);
    float *p = (float *)(void *)(a->base + a->used);
    memset(p, 0, bytes);
    a->used += padded;
    return attn_tensor_view(t, p, ndim, shape);
}

size_t attn_arena_used(const attn_arena *a) { return a ? a->used : 0; }
size_t attn_arena_capacity(const attn_arena *a) { return a ? a->capacity : 0; }
size_t attn_arena_room(const attn_arena *a)
{
    return a ? a->capacity - a->used : 0;
}

void attn_arena_rewind(attn_arena *a, size_t used)
{
    if (a && used <= a->used) a->used = used;
}

void attn_arena_reset(attn_arena *a)
{
    if (a) a->used = 0;
}
void attn_arena_free(attn_arena *a)
{
    if (!a) return;
    free(a->base);
    free(a);
}
