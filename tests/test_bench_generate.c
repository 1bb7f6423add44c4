/* test_bench_generate.c - `attn bench generate` on the tiny configuration:
 * valid JSON with the expected keys and the sizes a model of that shape must
 * give (no timed assertions: speed is what the bench reports, not what a test
 * checks); with PyTorch where Debian's is installed, the same logits from
 * the same weights; --help and a bad option. */
#include "cli_support.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "attn/bench.h"
#include "attn/gpt.h"

static const cJSON *obj(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) fail_msg("no key '%s'", key);
    return v;
}

static double number(const cJSON *o, const char *key)
{
    const cJSON *v = obj(o, key);
    if (!cJSON_IsNumber(v)) fail_msg("'%s' is not a number", key);
    return v->valuedouble;
}

/* The keys both runs have; the weights' bytes follow from the shape. */
static void check_common(const cJSON *root)
{
    const attn_gpt_config tiny = {97, 64, 2, 2, 32, 1};
    const size_t params = attn_gpt_config_params(&tiny);
    const cJSON *c = obj(root, "config");
    assert_string_equal(obj(c, "name")->valuestring, "tiny");
    assert_int_equal((size_t)number(c, "layers"), 2);
    assert_int_equal((size_t)number(c, "params"), params);
    assert_int_equal((size_t)number(root, "prompt_tokens"), 16);
    assert_int_equal((size_t)number(root, "decode_tokens"), 8);
    /* all parameters but the position table, of which one row */
    assert_int_equal((size_t)number(root, "weight_bytes_per_token"), (params - 64 * 32 + 32) * 4);
    /* keys and values of 2 layers at the middle step's 16 + 4 positions */
    assert_int_equal((size_t)number(root, "kv_bytes_per_token"), 2 * 2 * 20 * 32 * 4);
    assert_true(number(root, "bandwidth_gb_s") > 0.0);
    /* measured after each of the 2 runs' decode (one before PyTorch, one after) */
    const cJSON *runs = obj(root, "bandwidth_runs_gb_s");
    assert_true(cJSON_IsArray(runs));
    assert_int_equal(cJSON_GetArraySize(runs), 2);
    for (int i = 0; i < 2; i++) assert_true(cJSON_GetArrayItem(runs, i)->valuedouble > 0.0);
    assert_true(number(root, "decode_limit_tok_s") > 0.0);
    const cJSON *a = obj(root, "attn");
    assert_true(number(a, "prefill_tok_s") > 0.0);
    assert_true(number(a, "decode_tok_s") > 0.0);
    assert_true(number(a, "decode_limit_fraction") > 0.0);
    number(a, "prefill_peak_fraction");
    const cJSON *l = obj(root, "load_average");
    number(l, "start"), number(l, "before_torch"), number(l, "end");
}

/* The bandwidth probe's arguments are checked; a measure is positive. */
static void test_bw_probe(void **state)
{
    (void)state;
    attn_bench_bw *p = NULL;
    assert_int_equal(attn_bench_bw_create(&p, 4095), ATTN_E_INVALID);
    assert_null(p);
    assert_int_equal(attn_bench_bw_create(&p, (size_t)1 << 20), ATTN_OK);
    double gb = 0.0;
    assert_int_equal(attn_bench_bw_measure(p, 0, &gb), ATTN_E_INVALID);
    assert_int_equal(attn_bench_bw_measure(NULL, 1, &gb), ATTN_E_INVALID);
    assert_int_equal(attn_bench_bw_measure(p, 2, &gb), ATTN_OK);
    assert_true(gb > 0.0 && isfinite(gb));
    attn_bench_bw_free(p);
    attn_bench_bw_free(NULL);
    assert_int_equal(attn_bench_read_bandwidth(4096, 1, &gb), ATTN_OK);
    assert_true(gb > 0.0);
}

static void test_json_without_torch(void **state)
{
    (void)state;
    cJSON *root = run_json("bench generate --config tiny --reps 1 --bandwidth-mib 4 --peak-seconds 0.01 --no-torch --json");
    check_common(root);
    assert_true(cJSON_IsNull(obj(root, "torch")));
    assert_true(cJSON_IsNull(obj(root, "attn_over_torch")));
    assert_string_equal(obj(root, "torch_skipped")->valuestring, "--no-torch");
    cJSON_Delete(root);
}

static void test_json_with_torch(void **state)
{
    (void)state;
    if (access("/usr/bin/python3", X_OK)) skip();
    run_result probe = run_cmd("/usr/bin/python3 -c 'import torch' 2>&1");
    const int have = probe.status == 0;
    run_result_free(&probe);
    if (!have) skip();
    cJSON *root = run_json("bench generate --config tiny --reps 1 --bandwidth-mib 4 --peak-seconds 0.01 --json");
    check_common(root);
    const cJSON *t = obj(root, "torch");
    assert_true(cJSON_IsObject(t));
    /* the same weights in both: the prefill's logits agree */
    assert_true(number(t, "logits_max_abs_diff") < 1e-4);
    assert_true(cJSON_IsTrue(obj(t, "same_argmax")));
    assert_true(number(t, "decode_tok_s") > 0.0);
    assert_true(number(obj(root, "attn_over_torch"), "decode") > 0.0);
    cJSON_Delete(root);
}

/* An installed attn (bin/attn) finds the script in share/attn beside its
 * bin/ (here a stand-in that prints fixed figures, so that nothing but the
 * lookup is tested), before the source tree's. */
static void test_installed_script(void **state)
{
    (void)state;
    if (access("/usr/bin/python3", X_OK)) skip();
    char root[1024], path[1100];
    tmp_dir(root, "installed");
    run_result r = run_cmd("mkdir -p '%s/bin' '%s/share/attn' && cp '%s' '%s/bin/attn'", root, root,
                           attn_bin(), root);
    assert_int_equal(r.status, 0);
    run_result_free(&r);
    static const char script[] =
        "print('{\"prefill_s\": 1, \"decode_s\": 1, \"logits_head\": [], \"version\": "
        "\"installed\", \"threads\": 1, \"argmax_prefill\": 0}')\n";
    snprintf(path, sizeof path, "%s/share/attn/generate_torch.py", root);
    write_bytes(path, script, sizeof script - 1);
    r = run_cmd("'%s/bin/attn' bench generate --config tiny --reps 1 --bandwidth-mib 4 --peak-seconds 0.01 --json", root);
    assert_int_equal(r.status, 0);
    cJSON *j = cJSON_Parse(r.out);
    assert_non_null(j);
    assert_string_equal(obj(obj(j, "torch"), "version")->valuestring, "installed");
    /* no logits from the stand-in: no difference to print (JSON has no inf) */
    assert_true(cJSON_IsNull(obj(obj(j, "torch"), "logits_max_abs_diff")));
    cJSON_Delete(j);
    run_result_free(&r);
}

static void test_help_and_bad_option(void **state)
{
    (void)state;
    char *out = run_ok("bench generate --help");
    expect_contains("help", out, "usage: attn bench generate");
    expect_contains("help", out, "--no-torch");
    expect_contains("help", out, "--peak-seconds");
    free(out);
    expect_usage_text("bench generate --config gpt3");
    expect_usage_text("bench generate --config tiny --prompt 60 --decode 8");
    expect_usage_text("bench generate --config tiny --peak-seconds 0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bw_probe),
        cmocka_unit_test(test_json_without_torch),
        cmocka_unit_test(test_json_with_torch),
        cmocka_unit_test(test_installed_script),
        cmocka_unit_test(test_help_and_bad_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
