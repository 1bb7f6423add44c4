/* cli_dp_train.c - `mpirun -np K attn train` through the real binary (run
 * by ctest as one process that starts mpiexec itself): a short GPT run with
 * 1, 2 and 4 ranks gives the losses and final weights of one process on the
 * same global batch, within float tolerance (only the order of the gradient
 * sums differs), the same bits twice with a fixed K, a resume with another
 * K, ranks asked to stop at different steps stopping together, and
 * one-line errors for a batch that does not divide and for ranks that
 * disagree on the data. */
#include "dp_support.h"

#define RUN "--layers 2 --heads 2 --width 16 --context 16 --batch 4 --iters 8 --eval-every 4 " \
            "--eval-iters 2 --warmup 2 --lr 3e-3"
/* Only the order of the float sums differs (a rank's slice, then the
 * all-reduce, against one pass over the batch): observed after 8 steps,
 * losses within 1.1e-8 and weights within 1.2e-7 (1 ulp of weights near 1)
 * for 2 and 4 ranks; Adam's 1/sqrt(v) can amplify such differences, so the
 * bounds keep a factor of ~10. */
#define LOSS_TOL 1e-7
#define WEIGHT_TOL 1e-6

static const char *data_path;

static int setup(void **state)
{
    (void)state;
    static char text[5000];
    const char *words[] = {"attention ", "is ", "all ", "you ", "need, ", "said ", "the ", "paper.\n"};
    size_t n = 0;
    for (size_t i = 0; n + 16 < sizeof text; i++) {
        const char *w = words[(i * 5 + i / 7) % 8];
        memcpy(text + n, w, strlen(w)), n += strlen(w);
    }
    text[n] = 0;
    data_path = write_tmp("dp.txt", text);
    return 0;
}

/* Runs the training with K ranks (0: plain, no mpiexec) into dir. */
static run_result train(int K, const char *dir, const char *extra)
{
    char launch[1024] = "";
    if (K) snprintf(launch, sizeof launch, "'%s' -np %d --oversubscribe ", mpiexec(), K);
    return run_cmd("%s'%s' train --data '%s' " RUN " --out '%s/%s' --json-log '%s/%s.log' %s", launch,
                   attn_bin(), data_path, test_tmpdir(), dir, test_tmpdir(), dir, extra ? extra : "");
}

static double weight_diff(const char *a, const char *b) { return weight_diff_of(a, b, "model.safetensors"); }

static void test_ranks_match_one_process(void **state)
{
    (void)state;
    run_result r = train(0, "one", NULL);
    expect_ok(&r);
    double ref[64];
    const size_t n = log_losses("one", ref, 64);
    assert_int_equal(n, 8 + 2); /* 8 steps, 2 evaluations */
    static const int ranks[] = {1, 2, 4};
    for (size_t k = 0; k < 3; k++) {
        char dir[32];
        snprintf(dir, sizeof dir, "np%d", ranks[k]);
        r = train(ranks[k], dir, NULL);
        if (ranks[k] == 2) expect_rank0_alone(&r, "attn train:");
        expect_ok(&r);
        const double worst = loss_diff(dir, ref, n);
        const double w = weight_diff(dir, "one");
        printf("K=%d: largest loss difference %.3g, weight difference %.3g\n", ranks[k], worst, w);
        assert_true(worst <= LOSS_TOL);
        assert_true(w <= WEIGHT_TOL);
        if (ranks[k] == 1) assert_true(worst == 0.0 && w == 0.0); /* the same sums */
    }
    /* a fixed K: the same bits run to run */
    r = train(2, "np2b", NULL);
    expect_ok(&r);
    r = run_cmd("cmp '%s/np2/model.safetensors' '%s/np2b/model.safetensors'", test_tmpdir(), test_tmpdir());
    expect_ok(&r);
}

/* The checkpoint in dir, resumed with 2 ranks to the end, holds the weights
 * of the one-process run. */
static void expect_resumes_to_one(const char *dir, const char *what)
{
    run_result r = run_cmd("'%s' -np 2 --oversubscribe '%s' train --data '%s' --resume '%s/%s'", mpiexec(),
                           attn_bin(), data_path, test_tmpdir(), dir);
    expect_ok(&r);
    const double w = weight_diff(dir, "one");
    printf("%s: weight difference %.3g\n", what, w);
    assert_true(w <= WEIGHT_TOL);
}

/* Stopped with 4 ranks at step 4, resumed with 2: the run of 2 ranks. */
static void test_resume_with_other_ranks(void **state)
{
    (void)state;
    run_result r = train(4, "part", "--stop-at 4");
    expect_ok(&r);
    expect_resumes_to_one("part", "resumed 4 -> 2 ranks");
}

/* Ranks started with different --stop-at stop together at the first one's
 * step (before, the rank that stopped left the other waiting for its
 * gradients until the timeout), and the checkpoint resumes to the run of
 * one process. */
static void test_ranks_stop_together(void **state)
{
    (void)state;
    run_result r = run_cmd("ATTN_DIST_TIMEOUT=10 timeout 60 '%s' -np 1 --oversubscribe '%s' train --data '%s' " RUN
                           " --out '%s/halt' --stop-at 3 : -np 1 '%s' train --data '%s' " RUN
                           " --out '%s/halt' --stop-at 5", mpiexec(), attn_bin(), data_path, test_tmpdir(),
                           attn_bin(), data_path, test_tmpdir());
    if (r.status) fail_msg("exit %d (124: a hang): %s", r.status, r.err);
    if (!strstr(r.out, "stopped at step 3 of 8")) fail_msg("expected a stop at step 3: %s", r.out);
    run_result_free(&r);
    expect_resumes_to_one("halt", "stopped together at step 3, resumed");
}

static void test_bad_runs(void **state)
{
    (void)state;
    run_result r = train(3, "bad", NULL); /* batch 4 over 3 ranks */
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err, "does not divide among 3 ranks"));
    run_result_free(&r);
    /* rank 1 reads other data: the start-up check names the disagreement */
    const char *other = write_tmp("dp_other.txt", "attention is all you need, said the paper.\n"
                                  "attention is all you need, said the paper.\n"
                                  "attention is all you need, said the paper.\n"
                                  "attention is all you need, said the paper.\n"
                                  "attention is all you need, said the paper.\n");
    r = run_cmd("'%s' -np 1 --oversubscribe '%s' train --data '%s' " RUN " --out '%s/bad' : -np 1 '%s' "
                "train --data '%s' " RUN " --out '%s/bad'", mpiexec(), attn_bin(), data_path, test_tmpdir(),
                attn_bin(), other, test_tmpdir());
    assert_int_not_equal(r.status, 0);
    if (!strstr(r.err, "disagree") && !strstr(r.err, "too few"))
        fail_msg("expected a disagreement, got: %s", r.err);
    run_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranks_match_one_process),
        cmocka_unit_test(test_resume_with_other_ranks),
        cmocka_unit_test(test_ranks_stop_together),
        cmocka_unit_test(test_bad_runs),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
