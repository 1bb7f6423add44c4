/* arena.c - one allocation, many aligned tensors; the workspace (scratch
 * that grows and is kept) and the checked size product they rest on. */
#define _DEFAULT_SOURCE /* madvise */
#include "attn/tensor.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

#define ARENA_ALIGN 64 /* a cache line, and an AVX-512 register */

/* Arenas from this size (a model's parameters, gradients, activations) are
 * aligned to 2 MiB and asked for transparent huge pages before their first
 * touch: a matrix-vector product streams such matrices once per token, and
 * with 4 KiB pages it misses the TLB every 4 KiB (measured: GPT-2's 154 MB
 * token table read 15-25% faster with huge pages). */
#define HUGE_ARENA ((size_t)32 << 20)
#define HUGE_PAGE ((size_t)2 << 20)

void *attn_alloc_aligned(size_t bytes, size_t huge_min)
{
    if (bytes > SIZE_MAX - HUGE_PAGE) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (huge_min && bytes >= huge_min) {
        const size_t rounded = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
        void *p = aligned_alloc(HUGE_PAGE, rounded);
        if (p) (void)madvise(p, rounded, MADV_HUGEPAGE);
        return p;
    }
#else
    (void)huge_min;
#endif
    return aligned_alloc(ARENA_ALIGN, bytes ? (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN
                                            : ARENA_ALIGN);
}

static void *arena_alloc(size_t cap) { return attn_alloc_aligned(cap, HUGE_ARENA); }

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
    a->base = arena_alloc(cap ? cap : ARENA_ALIGN);
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

/* ---- sizes and scratch ---------------------------------------------------- */

attn_status attn_size_mul(const char *what, size_t a, size_t b, size_t *out)
{
    if (a && b > SIZE_MAX / sizeof(float) / a)
        return attn_error(ATTN_E_NOMEM, "%s: %zu x %zu elements overflow size_t", what, a, b);
    *out = a * b;
    return ATTN_OK;
}

#define WS_ALIGN (ARENA_ALIGN / sizeof(float)) /* floats */

/* n floats rounded up to the alignment; n is below SIZE_MAX / sizeof(float). */
static size_t ws_round(size_t n) { return (n + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN; }

attn_status attn_workspace_add(size_t *total, const char *what, size_t a, size_t b)
{
    size_t n;
    attn_status st = attn_size_mul(what, a, b, &n);
    if (st) return st;
    n = ws_round(n);
    if (n > SIZE_MAX / sizeof(float) - *total)
        return attn_error(ATTN_E_NOMEM, "%s: the workspace overflows size_t", what);
    *total += n;
    return ATTN_OK;
}

attn_status attn_workspace_reserve(attn_workspace *w, size_t total)
{
    if (!w) return attn_error(ATTN_E_INVALID, "attn_workspace_reserve: NULL");
    w->used = 0;
    if (total <= w->cap && w->base) return ATTN_OK;
    free(w->base);
    w->cap = 0;
    /* total is a multiple of the alignment (a sum of rounded pieces) */
    w->base = aligned_alloc(ARENA_ALIGN, (total ? ws_round(total) : WS_ALIGN) * sizeof(float));
    if (!w->base) return attn_error(ATTN_E_NOMEM, "cannot allocate a workspace of %zu floats", total);
    w->cap = total;
    return ATTN_OK;
}

float *attn_workspace_take(attn_workspace *w, size_t a, size_t b)
{
    if (!w || !w->base || (a && b > SIZE_MAX / sizeof(float) / a)) return NULL;
    size_t n = ws_round(a * b);
    if (n > w->cap - w->used) return NULL;
    float *p = w->base + w->used;
    w->used += n;
    return p;
}

void attn_workspace_free(attn_workspace *w)
{
    if (!w) return;
    free(w->base);
    w->base = NULL, w->cap = w->used = 0;
}
