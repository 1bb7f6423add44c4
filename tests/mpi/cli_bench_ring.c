/* cli_bench_ring.c - `mpirun -np K attn bench ring` through the real binary:
 * its JSON's forward and backward figures, the ring against the
 * single-process fused kernels (out, and d_q, d_k, d_v), --pass fwd leaving
 * the backward's figures null, and a usage error said once (by rank 0), not
 * once per rank. */
#include <cjson/cJSON.h>

#include "dp_support.h"

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) fail_msg("\"%s\" is not a number", key);
    return v->valuedouble;
}

static cJSON *bench(int ranks, const char *args)
{
    run_result r = run_cmd("'%s' -np %d --oversubscribe '%s' bench ring --json %s", mpiexec(), ranks, attn_bin(),
                           args);
    if (r.status) fail_msg("exit %d: %s", r.status, r.err);
    cJSON *o = cJSON_Parse(r.out);
    if (!o) fail_msg("not JSON: %s", r.out);
    run_result_free(&r);
    return o;
}

static void test_forward_and_backward(void **state)
{
    (void)state;
    static const int ranks[] = {2, 3};
    for (size_t i = 0; i < 2; i++) {
        cJSON *o = bench(ranks[i], "--n 384 --heads 2 --d 32 --causal");
        assert_int_equal((int)num(o, "ranks"), ranks[i]);
        /* the ring's sums run in another order than one pass over the keys */
        assert_true(num(o, "max_abs_diff") < 1e-5);
        assert_true(num(o, "max_abs_diff_backward") < 1e-4);
        assert_true(num(o, "ms") > 0.0 && num(o, "ms_backward") > 0.0);
        assert_true(num(o, "gflops_per_rank") > 0.0 && num(o, "gflops_backward_per_rank") > 0.0);
        const double w = num(o, "wait_share"), wb = num(o, "wait_share_backward");
        assert_true(w >= 0.0 && w <= 1.0 && wb >= 0.0 && wb <= 1.0);
        /* the backward sends K, V and their gradients: more than the forward's K, V */
        assert_true(num(o, "bytes_sent_backward_per_rank") > num(o, "bytes_sent_per_rank"));
        assert_true(num(o, "bytes_sent_per_rank") > 0.0);
        cJSON_Delete(o);
    }
}

static void test_forward_only(void **state)
{
    (void)state;
    cJSON *o = bench(2, "--n 256 --pass fwd");
    assert_true(num(o, "max_abs_diff") < 1e-5);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "ms_backward")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "max_abs_diff_backward")));
    assert_int_equal((int)num(o, "bytes_sent_backward_per_rank"), 0);
    cJSON_Delete(o);
}

static void test_usage_error_once(void **state)
{
    (void)state;
    run_result r = run_cmd("'%s' -np 2 --oversubscribe '%s' bench ring --n 64 --pass sideways", mpiexec(), attn_bin());
    assert_int_not_equal(r.status, 0);
    const char *msg = "attn bench ring: --pass: fwd or both, got 'sideways'";
    const char *first = strstr(r.err, msg);
    if (!first) fail_msg("expected '%s' in: %s", msg, r.err);
    if (strstr(first + 1, msg)) fail_msg("said more than once: %s", r.err);
    assert_string_equal(r.out, "");
    run_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_and_backward),
        cmocka_unit_test(test_forward_only),
        cmocka_unit_test(test_usage_error_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
