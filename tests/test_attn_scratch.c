/* test_attn_scratch.c - the attention backward allocates nothing when its
 * caller gives scratch, and gives the same bits as when it allocates.
 *
 * The program is linked with -Wl,--wrap for malloc, calloc, realloc,
 * aligned_alloc and posix_memalign (tests/CMakeLists.txt), so every
 * allocation the library's objects make is counted here (the OpenMP
 * runtime's own, in its shared library, are not). Cases: the reference
 * backward (attn_sdpa_backward) with an arena of
 * attn_sdpa_backward_scratch_bytes, the fused one (attn_flash_backward) with
 * a workspace of attn_flash_backward_workspace (one head: the split mode;
 * four: per head), filled with NaN first so that no value is read before it
 * is written, and the MHA layer's forward and backward once its workspace
 * has grown. */
#include "test_support.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

static size_t n_allocs;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);

void *__wrap_malloc(size_t n)
{
    n_allocs++;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t size)
{
    n_allocs++;
    return __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t n)
{
    n_allocs++;
    return __real_realloc(p, n);
}
void *__wrap_aligned_alloc(size_t align, size_t n)
{
    n_allocs++;
    return __real_aligned_alloc(align, n);
}
int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
    n_allocs++;
    return __real_posix_memalign(p, align, n);
}

static float *rnd(size_t n, uint64_t seed, float mag)
{
    float *x = __real_malloc(n * sizeof *x);
    assert_non_null(x);
    attn_rng r;
    attn_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = mag * (2.0f * attn_rng_uniform(&r) - 1.0f);
    return x;
}

static float *zeros(size_t n)
{
    float *x = __real_calloc(n, sizeof *x);
    assert_non_null(x);
    return x;
}

/* The wrapping works: a call this program makes is counted. */
static void test_counting(void **state)
{
    (void)state;
    const size_t before = n_allocs;
    void *p = malloc(16);
    assert_non_null(p);
    free(p);
    assert_int_equal(n_allocs, before + 1);
}

static void test_sdpa_backward_arena(void **state)
{
    (void)state;
    const size_t l = 7, s = 11, dk = 5, dv = 3;
    float *q = rnd(l * dk, 1, 1), *k = rnd(s * dk, 2, 1), *v = rnd(s * dv, 3, 1);
    float *g = rnd(l * dv, 4, 1), *w = zeros(l * s), *o = zeros(l * dv);
    attn_sdpa_params p = attn_sdpa_defaults();
    p.causal = ATTN_CAUSAL_TOP_LEFT, p.temperature = 1.5f;
    assert_int_equal(attn_sdpa_ref(o, w, q, k, v, l, s, dk, dv, &p, NULL), ATTN_OK);
    float *gq[2] = {zeros(l * dk), zeros(l * dk)}, *gk[2] = {zeros(s * dk), zeros(s * dk)};
    float *gv[2] = {zeros(s * dv), zeros(s * dv)};
    /* Without scratch: the op allocates. */
    size_t before = n_allocs;
    assert_int_equal(attn_sdpa_backward(gq[0], gk[0], gv[0], g, q, k, v, w, l, s, dk, dv, &p), ATTN_OK);
    assert_true(n_allocs > before);
    /* With an arena of the size the helper names: nothing, and it is given back. */
    attn_arena *a = NULL;
    assert_int_equal(attn_arena_create(&a, attn_sdpa_backward_scratch_bytes(l, s)), ATTN_OK);
    p.scratch = a;
    before = n_allocs;
    assert_int_equal(attn_sdpa_backward(gq[1], gk[1], gv[1], g, q, k, v, w, l, s, dk, dv, &p), ATTN_OK);
    assert_int_equal(n_allocs, before);
    assert_int_equal(attn_arena_used(a), 0);
    assert_memory_equal(gq[0], gq[1], l * dk * sizeof(float));
    assert_memory_equal(gk[0], gk[1], s * dk * sizeof(float));
    assert_memory_equal(gv[0], gv[1], s * dv * sizeof(float));
    float sum = 0;
    for (size_t i = 0; i < l * dk; i++) sum += fabsf(gq[0][i]);
    assert_true(sum > 0); /* gradients were computed */
    /* Half of it holds one of the two (L, S) buffers: the op allocates the other. */
    attn_arena_free(a);
    assert_int_equal(attn_arena_create(&a, attn_sdpa_backward_scratch_bytes(l, s) / 2), ATTN_OK);
    p.scratch = a;
    before = n_allocs;
    assert_int_equal(attn_sdpa_backward(gq[1], gk[1], gv[1], g, q, k, v, w, l, s, dk, dv, &p), ATTN_OK);
    assert_true(n_allocs > before);
    attn_arena_free(a);
    free(q), free(k), free(v), free(g), free(w), free(o);
    for (int i = 0; i < 2; i++) free(gq[i]), free(gk[i]), free(gv[i]);
}

/* heads 1: the split mode; 4: per head. s = 1100: two chunks of key
 * blocks (the split mode's partial dQ sums in the workspace too). */
static void flash_case(size_t heads, size_t s)
{
    const size_t B = 1, l = 37, dk = 24, dv = 20;
    attn_flash_desc d = attn_flash_desc_make(B, heads, l, s, dk, dv);
    d.causal = ATTN_CAUSAL_BOTTOM_RIGHT;
    const size_t nq = B * heads * l * dk, nk = B * heads * s * dk, nv = B * heads * s * dv;
    const size_t no = B * heads * l * dv;
    float *q = rnd(nq, 11, 1), *k = rnd(nk, 12, 1), *v = rnd(nv, 13, 1), *g = rnd(no, 14, 1);
    float *o = zeros(no), *lse = zeros(B * heads * l);
    assert_int_equal(attn_flash_forward(o, lse, q, k, v, &d), ATTN_OK);
    float *dq[2] = {zeros(nq), zeros(nq)}, *dkk[2] = {zeros(nk), zeros(nk)}, *dvv[2] = {zeros(nv), zeros(nv)};
    size_t before = n_allocs;
    assert_int_equal(attn_flash_backward(dq[0], dkk[0], dvv[0], g, q, k, v, o, lse, &d), ATTN_OK);
    assert_true(n_allocs > before);
    const size_t bytes = attn_flash_backward_workspace(&d);
    float *ws = __real_aligned_alloc(64, bytes);
    assert_non_null(ws);
    for (size_t i = 0; i < bytes / sizeof(float); i++) ws[i] = NAN;
    d.workspace = ws, d.workspace_bytes = bytes;
    before = n_allocs;
    assert_int_equal(attn_flash_backward(dq[1], dkk[1], dvv[1], g, q, k, v, o, lse, &d), ATTN_OK);
    assert_int_equal(n_allocs, before);
    assert_memory_equal(dq[0], dq[1], nq * sizeof(float));
    assert_memory_equal(dkk[0], dkk[1], nk * sizeof(float));
    assert_memory_equal(dvv[0], dvv[1], nv * sizeof(float));
    /* Too small a workspace: the kernel takes its own. */
    d.workspace_bytes = bytes - 64;
    before = n_allocs;
    assert_int_equal(attn_flash_backward(dq[1], dkk[1], dvv[1], g, q, k, v, o, lse, &d), ATTN_OK);
    assert_true(n_allocs > before);
    free(ws);
    free(q), free(k), free(v), free(g), free(o), free(lse);
    for (int i = 0; i < 2; i++) free(dq[i]), free(dkk[i]), free(dvv[i]);
}

static void test_flash_backward_workspace(void **state)
{
    (void)state;
    flash_case(1, 45);
    flash_case(4, 45);
    flash_case(1, 1100);
    flash_case(4, 1100);
}

/* The layer's forward and backward (fused path, all batches at once and per
 * batch with a key padding mask) allocate nothing once the workspace has grown. */
static void mha_case(int kpm)
{
    const size_t E = 16, H = 4, N = 2, L = 9;
    attn_mha_config c = attn_mha_default_config(E, H);
    attn_mha *m = NULL;
    attn_mha_cache *cache = NULL;
    assert_int_equal(attn_mha_create(&m, &c), ATTN_OK);
    assert_int_equal(attn_mha_init(m, 5), ATTN_OK);
    assert_int_equal(attn_mha_cache_create(&cache), ATTN_OK);
    float *x = rnd(N * L * E, 21, 1), *g = rnd(N * L * E, 22, 1), *out = zeros(N * L * E);
    float *dx = zeros(N * L * E), *mask = zeros(N * L);
    mask[L - 1] = mask[N * L - 2] = 1; /* a padded key in each example */
    attn_mha_inputs in;
    memset(&in, 0, sizeof in);
    in.batch = N, in.tgt_len = L, in.src_len = L, in.query = in.key = in.value = x;
    in.causal = ATTN_CAUSAL_TOP_LEFT;
    if (kpm) in.key_padding_mask = mask, in.key_padding_kind = ATTN_MASK_BOOL;
    size_t before = 0;
    for (int round = 0; round < 2; round++) {
        before = n_allocs;
        assert_int_equal(attn_mha_forward(m, out, NULL, 0, &in, cache, NULL), ATTN_OK);
        assert_int_equal(attn_mha_backward(m, dx, dx, dx, g, &in, cache), ATTN_OK);
    }
    assert_int_equal(n_allocs, before); /* the second forward and backward */
    float sum = 0;
    for (size_t i = 0; i < N * L * E; i++) sum += fabsf(dx[i]);
    assert_true(sum > 0);
    free(x), free(g), free(out), free(dx), free(mask);
    attn_mha_cache_free(cache);
    attn_mha_free(m);
}

static void test_mha_backward_no_alloc(void **state)
{
    (void)state;
    mha_case(0);
    mha_case(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counting),
        cmocka_unit_test(test_sdpa_backward_arena),
        cmocka_unit_test(test_flash_backward_workspace),
        cmocka_unit_test(test_mha_backward_no_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
