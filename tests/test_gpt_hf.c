/* test_gpt_hf.c - GPT-2 folders in Hugging Face's layout (attn/gpt_hf.h)
 * against the float64 GPT-2 of tests/gen_hf_fixtures.py: logits, greedy
 * generations, F16/BF16, the round trip, and bad folders. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/gpt.h"
#include "attn/gpt_hf.h"
#include "attn/safetensors.h"
#include "attn/tokenizer.h"
#include "test_support.h"

static const char *case_dir(const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 512, "%s/hf/%s", ATTN_TEST_FIXTURES, name);
    return p;
}

static uint32_t *as_ids(const attn_tensor *t)
{
    uint32_t *ids = malloc(t->numel * sizeof *ids);
    assert_non_null(ids);
    for (size_t i = 0; i < t->numel; i++) ids[i] = (uint32_t)t->data[i];
    return ids;
}

typedef struct collected {
    uint32_t ids[64];
    size_t n;
} collected;

static int collect(uint32_t id, void *user)
{
    collected *c = user;
    if (c->n < 64) c->ids[c->n++] = id;
    return 0;
}

/* Logits within 1e-4 of GPT-2's in float64, and the same greedy tokens with
 * and without the KV cache. */
static void check_case(const char *name)
{
    const char *dir = case_dir(name);
    char path[600];
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    attn_safetensors *st = NULL;
    assert_int_equal(attn_safetensors_open(&st, path), ATTN_OK);
    attn_tensor ids_t = fixture_tensor(st, path, "ids"), want = fixture_tensor(st, path, "logits"),
                prompt_t = fixture_tensor(st, path, "prompt"), greedy = fixture_tensor(st, path, "greedy");
    attn_gpt *g = NULL;
    if (attn_gpt_hf_load(&g, dir, 1)) fail_msg("%s: %s", dir, attn_last_error());
    const attn_gpt_config *c = attn_gpt_get_config(g);
    assert_int_equal(c->vocab_size, 257);
    assert_int_equal(c->context, 24);
    assert_true(c->bias);
    uint32_t *ids = as_ids(&ids_t), *prompt = as_ids(&prompt_t);
    assert_int_equal(attn_gpt_forward(g, ids, NULL, 1, ids_t.numel, NULL, NULL), ATTN_OK);
    double diff = max_abs_diff_f32(attn_gpt_logits(g), want.data, want.numel);
    printf("%s: max |logit - GPT-2's| = %.2e\n", name, diff);
    assert_true(diff <= 1e-4);
    for (int cache = 0; cache < 2; cache++) {
        attn_generate_opts o;
        memset(&o, 0, sizeof o);
        o.max_new = greedy.numel, o.use_cache = cache, o.sample.top_p = 1.0f;
        collected got = {{0}, 0};
        assert_int_equal(attn_gpt_generate(g, prompt, prompt_t.numel, &o, collect, &got), ATTN_OK);
        assert_int_equal(got.n, greedy.numel);
        for (size_t i = 0; i < got.n; i++)
            if (got.ids[i] != (uint32_t)greedy.data[i])
                fail_msg("%s: greedy token %zu is %u, GPT-2's is %g (cache %d)", name, i,
                         (unsigned)got.ids[i], greedy.data[i], cache);
    }
    free(ids), free(prompt);
    attn_tensor_free(&ids_t), attn_tensor_free(&want), attn_tensor_free(&prompt_t), attn_tensor_free(&greedy);
    attn_safetensors_close(st);
    attn_gpt_free(g);
}

static void test_f32(void **state) { (void)state; check_case("f32"); }
static void test_f16_prefix_head_buffers(void **state) { (void)state; check_case("f16"); }
static void test_bf16(void **state) { (void)state; check_case("bf16"); }

static void assert_same_params(const attn_gpt *a, const attn_gpt *b)
{
    assert_int_equal(attn_gpt_param_count(a), attn_gpt_param_count(b));
    const attn_param_ref *p = attn_gpt_params(a), *q = attn_gpt_params(b);
    for (size_t i = 0; i < attn_gpt_param_count(a); i++) {
        assert_string_equal(p[i].name, q[i].name);
        assert_int_equal(p[i].numel, q[i].numel);
        if (memcmp(p[i].data, q[i].data, p[i].numel * sizeof(float))) fail_msg("%s differs", p[i].name);
    }
}

/* attn -> GPT-2 layout -> attn gives the same floats, with and without biases. */
static void test_round_trip(void **state)
{
    (void)state;
    char dir[600];
    attn_gpt *a = NULL, *b = NULL;
    assert_int_equal(attn_gpt_hf_load(&a, case_dir("f32"), 1), ATTN_OK);
    snprintf(dir, sizeof dir, "%s/rt_bias", test_tmpdir());
    run_result r = run_cmd("mkdir -p '%s'", dir);
    run_result_free(&r);
    assert_int_equal(attn_gpt_hf_save(a, dir), ATTN_OK);
    assert_true(attn_gpt_hf_is_dir(dir));
    assert_int_equal(attn_gpt_hf_load(&b, dir, 1), ATTN_OK);
    assert_same_params(a, b);
    attn_gpt_free(b);
    /* attn_gpt_hf_init overwrites a model of the same sizes (fine-tuning) */
    attn_gpt_config fc;
    assert_int_equal(attn_gpt_hf_config(case_dir("f32"), &fc), ATTN_OK);
    assert_int_equal(attn_gpt_create(&b, &fc, 2), ATTN_OK);
    assert_int_equal(attn_gpt_init(b, 3), ATTN_OK);
    assert_int_equal(attn_gpt_hf_init(b, case_dir("f32")), ATTN_OK);
    assert_same_params(a, b);
    attn_gpt_free(a), attn_gpt_free(b);

    attn_gpt_config c = {61, 16, 2, 2, 8, 0};
    assert_int_equal(attn_gpt_create(&a, &c, 1), ATTN_OK);
    assert_int_equal(attn_gpt_init(a, 7), ATTN_OK);
    snprintf(dir, sizeof dir, "%s/rt_nobias", test_tmpdir());
    r = run_cmd("mkdir -p '%s'", dir);
    run_result_free(&r);
    assert_int_equal(attn_gpt_hf_save(a, dir), ATTN_OK);
    assert_int_equal(attn_gpt_hf_load(&b, dir, 1), ATTN_OK);
    assert_false(attn_gpt_get_config(b)->bias);
    assert_same_params(a, b);
    /* the file holds transformers' full set: zero biases included */
    char path[700];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    attn_safetensors *st = NULL;
    assert_int_equal(attn_safetensors_open(&st, path), ATTN_OK);
    assert_int_equal(attn_safetensors_count(st), 2 + 2 * 12 + 2);
    attn_st_info info;
    assert_int_equal(attn_safetensors_info(st, "h.1.mlp.c_fc.weight", &info), ATTN_OK);
    assert_true(info.shape[0] == 8 && info.shape[1] == 32); /* Conv1D: (in, out) */
    assert_int_equal(attn_safetensors_info(st, "h.1.mlp.c_fc.bias", &info), ATTN_OK);
    assert_int_equal(info.shape[0], 32);
    attn_safetensors_close(st);
    attn_gpt_free(a), attn_gpt_free(b);
}

/* A copy of the f32 case whose config.json has `from` replaced by `to`. */
static const char *bad_copy(const char *name, const char *from, const char *to)
{
    static char dir[600];
    snprintf(dir, sizeof dir, "%s/%s", test_tmpdir(), name);
    run_result r = run_cmd("mkdir -p '%s' && cp '%s'/model.safetensors '%s'/ && "
                           "sed 's/%s/%s/' '%s'/config.json > '%s'/config.json",
                           dir, case_dir("f32"), dir, from, to, case_dir("f32"), dir);
    assert_int_equal(r.status, 0);
    run_result_free(&r);
    return dir;
}

static void expect_error(const char *dir, const char *want)
{
    attn_gpt *g = NULL;
    attn_status st = attn_gpt_hf_load(&g, dir, 1);
    assert_int_equal(st, ATTN_E_FORMAT);
    assert_null(g);
    if (!strstr(attn_last_error(), want)) fail_msg("'%s' lacks '%s'", attn_last_error(), want);
    assert_null(strchr(attn_last_error(), '\n'));
}

static void test_bad_folders(void **state)
{
    (void)state;
    expect_error(bad_copy("vocab", "\"vocab_size\": 257", "\"vocab_size\": 258"),
                 "tensor 'wte.weight' has shape [257, 32], but the sizes in");
    expect_error(bad_copy("width", "\"n_positions\": 24", "\"n_positions\": 30"), "[30, 32]");
    expect_error(bad_copy("llama", "\"gpt2\"", "\"llama\""), "the model is llama, not GPT-2");
    expect_error(bad_copy("relu", "gelu_new", "relu"), "activation_function \"relu\"");
    expect_error(bad_copy("layers", "\"n_layer\": 2", "\"n_layer\": 3"), "'h.2.ln_1.weight'");
}

/* attn generate --model on a GPT-2 folder with tokenizer files beside the
 * weights: the greedy tokens of the library, decoded; a prompt longer than
 * n_positions is refused. */
static void test_generate_cli(void **state)
{
    (void)state;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/gen", test_tmpdir());
    const char *text = write_tmp("tok.txt", "abc");
    run_result r = run_cmd("mkdir -p '%s' && cp '%s'/config.json '%s'/model.safetensors '%s'/ && "
                           "'%s' tokenize --train '%s' --vocab-size 257 --out '%s'",
                           dir, case_dir("f32"), case_dir("f32"), dir, attn_bin(), text, dir);
    assert_int_equal(r.status, 0);
    run_result_free(&r);
    attn_gpt *g = NULL;
    attn_tokenizer *tok = NULL;
    assert_int_equal(attn_gpt_hf_load(&g, dir, 1), ATTN_OK);
    assert_int_equal(attn_bpe_tokenizer_load(&tok, dir), ATTN_OK);
    uint32_t prompt[3] = {10, 64, 65}; /* "+ab": bytes in GPT-2's order */
    attn_generate_opts o;
    memset(&o, 0, sizeof o);
    o.max_new = 8, o.use_cache = 1, o.sample.top_p = 1.0f;
    collected got = {{0}, 0};
    assert_int_equal(attn_gpt_generate(g, prompt, 3, &o, collect, &got), ATTN_OK);
    char *want = NULL;
    size_t len;
    assert_int_equal(attn_tokenizer_decode(tok, got.ids, got.n, "ids", &want, &len), ATTN_OK);
    r = run_cmd("'%s' generate --model '%s' --prompt '+ab' --tokens 8 --temperature 0", attn_bin(), dir);
    assert_int_equal(r.status, 0);
    assert_true(strlen(r.out) == 3 + len + 1);
    assert_memory_equal(r.out, "+ab", 3);
    assert_memory_equal(r.out + 3, want, len);
    run_result_free(&r);
    r = run_cmd("'%s' generate --model '%s' --prompt 0123456789012345678901234 --tokens 1", attn_bin(), dir);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "25 tokens, but the model has 24 positions"));
    run_result_free(&r);
    free(want);
    attn_tokenizer_free(tok);
    attn_gpt_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f32),        cmocka_unit_test(test_f16_prefix_head_buffers),
        cmocka_unit_test(test_bf16),       cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bad_folders), cmocka_unit_test(test_generate_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
