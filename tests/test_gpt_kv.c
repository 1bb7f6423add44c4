/* test_gpt_kv.c - inference with the KV cache against the full forward: the
 * logits of every step (the one-token path and the batched prefill) match
 * the forward over the same window, and generation with and without the
 * cache gives the same tokens over several window restarts, greedy and
 * sampled. */
#include "test_support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/gpt.h"
#include "attn/rng.h"

#define V 13
#define T 8

/* A small random model; weights scaled up from GPT-2's 0.02 so that the
 * logits are far apart and greedy choices are not near-ties. */
static attn_gpt *model(int bias)
{
    attn_gpt_config c = {V, T, 2, 2, 16, bias};
    attn_gpt *g = NULL;
    assert_int_equal(attn_gpt_create(&g, &c, 1), ATTN_OK);
    assert_int_equal(attn_gpt_init(g, 7), ATTN_OK);
    const attn_param_ref *p = attn_gpt_params(g);
    attn_rng r;
    attn_rng_seed(&r, 11);
    for (size_t i = 0; i < attn_gpt_param_count(g); i++) {
        if (p[i].ndim == 2)
            for (size_t j = 0; j < p[i].numel; j++) p[i].data[j] *= 10.0f;
        else if (bias && strstr(p[i].name, ".bias")) /* nonzero biases, so they are tested */
            attn_rng_fill_uniform(&r, p[i].data, p[i].numel, -0.5f, 0.5f);
    }
    return g;
}

static void ids_of(uint32_t *ids, size_t n, uint64_t seed)
{
    attn_rng r;
    attn_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) ids[i] = (uint32_t)(attn_rng_uniform(&r) * V) % V;
}

/* Each step's logits are the forward's at the last position of the window. */
static void check_steps(int bias, size_t prefill)
{
    attn_gpt *g = model(bias);
    attn_gpt_kv *kv = NULL;
    assert_int_equal(attn_gpt_kv_create(&kv, g), ATTN_OK);
    uint32_t ids[T];
    ids_of(ids, T, 3 + prefill);
    float logits[V];
    for (size_t n = prefill; n <= T; n++) {
        const size_t fed = attn_gpt_kv_len(kv), add = n - fed;
        assert_int_equal(attn_gpt_kv_step(g, kv, ids + fed, add, logits), ATTN_OK);
        assert_int_equal(attn_gpt_kv_len(kv), n);
        assert_int_equal(attn_gpt_forward(g, ids, NULL, 1, n, NULL, NULL), ATTN_OK);
        assert_close_f32(logits, attn_gpt_logits(g) + (n - 1) * V, V, 1e-4, 1e-4,
                         "cached step logits");
    }
    /* The cache is full: one more token is an error, not a write past it. */
    assert_int_equal(attn_gpt_kv_step(g, kv, ids, 1, logits), ATTN_E_INVALID);
    attn_gpt_kv_reset(kv);
    uint32_t bad = V;
    assert_int_equal(attn_gpt_kv_step(g, kv, &bad, 1, logits), ATTN_E_INVALID);
    attn_clear_error();
    attn_gpt_kv_free(kv);
    attn_gpt_free(g);
}

static void test_one_token_steps(void **state)
{
    (void)state;
    check_steps(0, 1);
    check_steps(1, 1);
}

static void test_prefill_then_steps(void **state)
{
    (void)state;
    check_steps(0, 5);
    check_steps(1, 3);
}

typedef struct sink {
    uint32_t tok[64];
    size_t n;
} sink;

static int collect(uint32_t id, void *user)
{
    sink *s = user;
    if (s->n < 64) s->tok[s->n++] = id;
    return 0;
}

/* 5 context windows of generation (several restarts of the window), with
 * and without the cache, give the same tokens. */
static void same_tokens(int bias, size_t n_prompt, float temperature, size_t top_k)
{
    attn_gpt *g = model(bias);
    uint32_t prompt[2 * T];
    ids_of(prompt, n_prompt, 5);
    attn_generate_opts o;
    memset(&o, 0, sizeof o);
    o.max_new = 5 * T, o.sample.temperature = temperature, o.sample.top_k = top_k;
    o.sample.top_p = 1.0f, o.seed = 9;
    sink a = {{0}, 0}, b = {{0}, 0};
    o.use_cache = 1;
    assert_int_equal(attn_gpt_generate(g, prompt, n_prompt, &o, collect, &a), ATTN_OK);
    o.use_cache = 0;
    assert_int_equal(attn_gpt_generate(g, prompt, n_prompt, &o, collect, &b), ATTN_OK);
    assert_int_equal(a.n, 5 * T);
    assert_int_equal(b.n, 5 * T);
    assert_memory_equal(a.tok, b.tok, a.n * sizeof(uint32_t));
    attn_gpt_free(g);
}

static void test_generate_cache_matches(void **state)
{
    (void)state;
    same_tokens(0, 1, 0.0f, 0);
    same_tokens(1, 3, 0.0f, 0);
    same_tokens(0, 2 * T, 0.0f, 0); /* a prompt longer than the context */
    same_tokens(1, 1, 1.0f, 4);     /* sampled: the same seed, the same tokens */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_token_steps),
        cmocka_unit_test(test_prefill_then_steps),
        cmocka_unit_test(test_generate_cache_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
