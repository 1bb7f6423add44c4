/* test_gpt_torch.c - the GPT (forward, backward, AdamW training) against the
 * PyTorch reference in tests/gen_gpt_fixtures.py (which documents the files).
 * For each tests/fixtures/gpt/<case>.safetensors: load the initial weights by
 * name, check logits and loss (atol 1e-5), every parameter's gradient (atol
 * 1e-4, rtol 1e-3), then 10 AdamW steps with accumulation, clipping and the
 * warm-up/cosine schedule: the same per-step losses (1e-4). */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/gpt.h"
#include "attn/safetensors.h"
#include "attn/train.h"

#define GPT_DIR ATTN_TEST_FIXTURES "/gpt"

typedef struct fx {
    char path[512];
    attn_safetensors *st;
    attn_gpt *g;
} fx;

static attn_tensor get(fx *f, const char *name) { return fixture_tensor(f->st, f->path, name); }
static size_t meta_size(fx *f, const char *key) { return fixture_meta_size(f->st, key); }

static float meta_float(fx *f, const char *key)
{
    const char *v = attn_safetensors_metadata(f->st, key);
    assert_non_null(v);
    return strtof(v, NULL);
}

static uint32_t *ids_of(const attn_tensor *t)
{
    uint32_t *ids = malloc(t->numel * sizeof *ids);
    for (size_t i = 0; i < t->numel; i++) ids[i] = (uint32_t)t->data[i];
    return ids;
}

static void run_case(const char *name)
{
    fx f;
    memset(&f, 0, sizeof f);
    snprintf(f.path, sizeof f.path, "%s/%s.safetensors", GPT_DIR, name);
    assert_int_equal(attn_safetensors_open(&f.st, f.path), ATTN_OK);
    attn_gpt_config c = {meta_size(&f, "vocab_size"), meta_size(&f, "context"),
                         meta_size(&f, "layers"), meta_size(&f, "heads"), meta_size(&f, "width"),
                         (int)meta_size(&f, "bias")};
    attn_tensor x = get(&f, "x"), y = get(&f, "y");
    const size_t B = x.shape[0], T = x.shape[1], V = c.vocab_size;
    assert_int_equal(attn_gpt_create(&f.g, &c, B), ATTN_OK);
    assert_int_equal(attn_gpt_config_params(&c), attn_gpt_num_params(f.g));
    if (attn_gpt_load_safetensors(f.g, f.path, 0)) fail_msg("%s", attn_last_error());

    /* forward and loss */
    uint32_t *xi = ids_of(&x), *yi = ids_of(&y);
    double loss = 0;
    assert_int_equal(attn_gpt_forward(f.g, xi, yi, B, T, &loss, NULL), ATTN_OK);
    attn_tensor logits = get(&f, "logits"), want_loss = get(&f, "loss");
    assert_close_f32(attn_gpt_logits(f.g), logits.data, B * T * V, 1e-5, 1e-4, "logits");
    float lf = (float)loss;
    assert_close_f32(&lf, want_loss.data, 1, 1e-5, 0, "loss");

    /* every gradient */
    attn_gpt_zero_grad(f.g);
    assert_int_equal(attn_gpt_backward(f.g, 1.0f), ATTN_OK);
    const attn_param_ref *p = attn_gpt_params(f.g);
    for (size_t i = 0; i < attn_gpt_param_count(f.g); i++) {
        char gname[160];
        snprintf(gname, sizeof gname, "grad.%s", p[i].name);
        attn_tensor gw = get(&f, gname);
        assert_int_equal(gw.numel, p[i].numel);
        assert_close_f32(p[i].grad, gw.data, p[i].numel, 1e-4, 1e-3, gname);
        attn_tensor_free(&gw);
    }

    /* 10 AdamW steps from the same start */
    attn_gpt_free(f.g);
    f.g = NULL;
    assert_int_equal(attn_gpt_create(&f.g, &c, B), ATTN_OK);
    assert_int_equal(attn_gpt_load_safetensors(f.g, f.path, 0), ATTN_OK);
    attn_train_config tc = attn_train_defaults();
    tc.lr = meta_float(&f, "lr"), tc.min_lr = meta_float(&f, "min_lr");
    tc.warmup = meta_size(&f, "warmup"), tc.iters = meta_size(&f, "iters");
    tc.beta1 = meta_float(&f, "beta1"), tc.beta2 = meta_float(&f, "beta2");
    tc.eps = meta_float(&f, "eps"), tc.weight_decay = meta_float(&f, "weight_decay");
    tc.grad_clip = meta_float(&f, "grad_clip");
    attn_adamw_config ac = {tc.beta1, tc.beta2, tc.eps, tc.weight_decay};
    attn_adamw *opt = NULL;
    assert_int_equal(attn_adamw_create(&opt, attn_gpt_params(f.g), attn_gpt_param_count(f.g), &ac), ATTN_OK);
    attn_tensor sx = get(&f, "steps_x"), sy = get(&f, "steps_y"), want = get(&f, "step_losses");
    const size_t S = sx.shape[0], A = sx.shape[1];
    uint32_t *sxi = ids_of(&sx), *syi = ids_of(&sy);
    float *losses = malloc(S * sizeof *losses);
    for (size_t s = 0; s < S; s++) {
        attn_gpt_zero_grad(f.g);
        double total = 0;
        for (size_t a = 0; a < A; a++) {
            size_t off = (s * A + a) * B * T;
            assert_int_equal(attn_gpt_forward(f.g, sxi + off, syi + off, B, T, &loss, NULL), ATTN_OK);
            assert_int_equal(attn_gpt_backward(f.g, 1.0f / (float)A), ATTN_OK);
            total += loss / (double)A;
        }
        attn_clip_grad_norm(attn_gpt_params(f.g), attn_gpt_param_count(f.g), tc.grad_clip);
        assert_int_equal(attn_adamw_step(opt, (float)attn_lr_at(&tc, s)), ATTN_OK);
        losses[s] = (float)total;
    }
    assert_close_f32(losses, want.data, S, 1e-4, 0, "losses over the AdamW steps");
    /* the losses must actually move, or the comparison proves little */
    assert_true(fabsf(losses[S - 1] - losses[0]) > 1e-3f);

    free(losses), free(sxi), free(syi), free(xi), free(yi);
    attn_tensor_free(&sx), attn_tensor_free(&sy), attn_tensor_free(&want);
    attn_tensor_free(&x), attn_tensor_free(&y), attn_tensor_free(&logits);
    attn_tensor_free(&want_loss);
    attn_adamw_free(opt);
    attn_gpt_free(f.g);
    attn_safetensors_close(f.st);
}

static void test_bias(void **state)
{
    (void)state;
    run_case("bias");
}

static void test_no_bias(void **state)
{
    (void)state;
    run_case("no_bias");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_bias), cmocka_unit_test(test_no_bias)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
