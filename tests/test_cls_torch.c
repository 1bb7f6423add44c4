/* test_cls_torch.c - the encoder classifier (forward, backward) against the
 * PyTorch reference in tests/gen_cls_fixtures.py (which documents the files).
 * For each tests/fixtures/cls/<case>.safetensors (mean and [CLS] pooling):
 * load the weights with the checkpoint loader, check logits and loss (atol
 * 1e-5) and every parameter's gradient (atol 1e-4, rtol 1e-3). So that the
 * comparison is known to be able to fail: the reference gradients are not
 * zero, and a perturbed weight makes a gradient disagree. Padding ids are
 * also swapped for word ids, which must change nothing (keys are masked). */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/classify.h"
#include "attn/safetensors.h"
#include "attn/train.h"

#define CLS_DIR ATTN_TEST_FIXTURES "/cls"

typedef struct fx {
    char path[512];
    attn_safetensors *st;
    attn_encoder *e;
    uint32_t *ids, *labels;
    size_t *lens;
    size_t B, T;
} fx;

static attn_tensor get(fx *f, const char *name) { return fixture_tensor(f->st, f->path, name); }
static size_t meta_size(fx *f, const char *key) { return fixture_meta_size(f->st, key); }


static const attn_param_ref *param(fx *f, const char *name)
{
    const attn_param_ref *p = attn_encoder_params(f->e);
    for (size_t i = 0; i < attn_encoder_param_count(f->e); i++)
        if (!strcmp(p[i].name, name)) return &p[i];
    fail_msg("the encoder has no parameter '%s'", name);
    return NULL;
}

static void open_case(fx *f, const char *name)
{
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s/%s.safetensors", CLS_DIR, name);
    assert_int_equal(attn_safetensors_open(&f->st, f->path), ATTN_OK);
    const char *pool = attn_safetensors_metadata(f->st, "pooling");
    assert_non_null(pool);
    attn_encoder_config c = {meta_size(f, "vocab_size"), meta_size(f, "context"),
                             meta_size(f, "layers"), meta_size(f, "heads"), meta_size(f, "width"),
                             meta_size(f, "classes"), (int)meta_size(f, "bias"),
                             strcmp(pool, "cls") ? ATTN_POOL_MEAN : ATTN_POOL_CLS};
    assert_string_equal(pool, c.pooling == ATTN_POOL_CLS ? "cls" : "mean");
    attn_tensor ids = get(f, "ids"), lens = get(f, "lens"), labels = get(f, "labels");
    f->B = ids.shape[0], f->T = ids.shape[1];
    assert_int_equal(lens.numel, f->B);
    assert_int_equal(labels.numel, f->B);
    f->ids = malloc(f->B * f->T * sizeof *f->ids);
    f->lens = malloc(f->B * sizeof *f->lens);
    f->labels = malloc(f->B * sizeof *f->labels);
    assert_true(f->ids && f->lens && f->labels);
    for (size_t i = 0; i < f->B * f->T; i++) f->ids[i] = (uint32_t)ids.data[i];
    for (size_t b = 0; b < f->B; b++) {
        f->lens[b] = (size_t)lens.data[b];
        f->labels[b] = (uint32_t)labels.data[b];
    }
    attn_tensor_free(&ids), attn_tensor_free(&lens), attn_tensor_free(&labels);
    assert_int_equal(attn_encoder_create(&f->e, &c, f->B), ATTN_OK);
    /* the checkpoint loader: names and shapes as in attn/classify.h */
    if (attn_params_read(f->path, "attn-encoder", 0, attn_encoder_params(f->e),
                         attn_encoder_param_count(f->e), 0))
        fail_msg("%s", attn_last_error());
}

static void close_case(fx *f)
{
    free(f->ids), free(f->lens), free(f->labels);
    attn_encoder_free(f->e);
    attn_safetensors_close(f->st);
}

static double forward_backward(fx *f)
{
    double loss = 0;
    if (attn_encoder_forward(f->e, f->ids, f->lens, f->labels, f->B, f->T, &loss, NULL))
        fail_msg("%s: forward: %s", f->path, attn_last_error());
    attn_encoder_zero_grad(f->e);
    if (attn_encoder_backward(f->e, 1.0f)) fail_msg("%s: backward: %s", f->path, attn_last_error());
    return loss;
}

static void run_case(const char *name)
{
    fx f;
    open_case(&f, name);
    const size_t K = attn_encoder_get_config(f.e)->classes;

    /* forward and loss */
    double loss = forward_backward(&f);
    attn_tensor logits = get(&f, "logits"), want_loss = get(&f, "loss");
    assert_int_equal(logits.numel, f.B * K);
    assert_close_f32(attn_encoder_logits(f.e), logits.data, f.B * K, 1e-5, 0, "logits");
    float lf = (float)loss;
    assert_close_f32(&lf, want_loss.data, 1, 1e-5, 0, "loss");
    double d_logits = max_abs_diff_f32(attn_encoder_logits(f.e), logits.data, f.B * K);
    double d_loss = fabs(loss - (double)want_loss.data[0]), d_grad = 0;
    const char *worst = "";

    /* every gradient; the reference's are not all zero, or they would prove little */
    const attn_param_ref *p = attn_encoder_params(f.e);
    for (size_t i = 0; i < attn_encoder_param_count(f.e); i++) {
        char gname[160];
        snprintf(gname, sizeof gname, "grad.%s", p[i].name);
        attn_tensor gw = get(&f, gname);
        assert_int_equal(gw.numel, p[i].numel);
        float big = 0.0f;
        for (size_t j = 0; j < gw.numel; j++) big = fmaxf(big, fabsf(gw.data[j]));
        if (big < 1e-6f) fail_msg("%s: the reference gradient is zero", gname);
        assert_close_f32(p[i].grad, gw.data, p[i].numel, 1e-4, 1e-3, gname);
        double d = max_abs_diff_f32(p[i].grad, gw.data, p[i].numel);
        if (d > d_grad) d_grad = d, worst = p[i].name;
        attn_tensor_free(&gw);
    }
    print_message("cls %s: max |diff| logits %.3g, loss %.3g, gradients %.3g (%s)\n", name,
                  d_logits, d_loss, d_grad, worst);

    /* padding is masked: other ids at the padded positions change nothing */
    const attn_param_ref *in_w = param(&f, "h.0.attn.in_proj_weight");
    float *grad_before = malloc(in_w->numel * sizeof *grad_before);
    float *logits_before = malloc(f.B * K * sizeof *logits_before);
    assert_true(grad_before && logits_before);
    memcpy(grad_before, in_w->grad, in_w->numel * sizeof *grad_before);
    memcpy(logits_before, attn_encoder_logits(f.e), f.B * K * sizeof *logits_before);
    size_t swapped = 0;
    for (size_t b = 0; b < f.B; b++)
        for (size_t t = f.lens[b]; t < f.T; t++, swapped++) f.ids[b * f.T + t] = 5;
    assert_true(swapped > 0);
    double loss2 = forward_backward(&f);
    assert_true(fabs(loss2 - loss) < 1e-7);
    assert_close_f32(attn_encoder_logits(f.e), logits_before, f.B * K, 1e-7, 0,
                     "logits, other padding ids");
    assert_close_f32(in_w->grad, grad_before, in_w->numel, 1e-7, 0,
                     "in_proj grad, other padding ids");

    /* the comparison can fail: a perturbed layer-norm gain moves the gradient */
    attn_tensor gw = get(&f, "grad.h.0.attn.in_proj_weight");
    assert_true(all_close_f32(in_w->grad, gw.data, in_w->numel, 1e-4, 1e-3));
    param(&f, "h.0.ln_1.weight")->data[0] += 0.1f;
    forward_backward(&f);
    assert_false(all_close_f32(in_w->grad, gw.data, in_w->numel, 1e-4, 1e-3));

    free(grad_before), free(logits_before);
    attn_tensor_free(&gw), attn_tensor_free(&logits), attn_tensor_free(&want_loss);
    close_case(&f);
}

static void test_mean_pooling(void **state)
{
    (void)state;
    run_case("mean");
}

static void test_cls_pooling(void **state)
{
    (void)state;
    run_case("cls");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_mean_pooling),
                                       cmocka_unit_test(test_cls_pooling)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
