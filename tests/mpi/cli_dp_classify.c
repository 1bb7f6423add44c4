/* cli_dp_classify.c - `mpirun -np K attn train --task classify` through the
 * real binary: a short run with 1, 2, 3 and 4 ranks gives the losses,
 * validation accuracies and final and best weights of one process on the
 * same global batch within float tolerance (dropout on: the masks follow
 * the example's place in the global batch), the same bits twice with a
 * fixed K, a resume with another K, ranks asked to stop at different steps
 * stopping together, and a one-line error for ranks that disagree on the
 * data. The last batch of an epoch holds 3 texts, so with
 * 4 ranks one rank has none. */
#include "dp_support.h"

#define RUN "--layers 1 --heads 2 --width 16 --context 12 --batch 16 --warmup 3 --lr 1e-2 " \
            "--min-count 1 --iters 9 --eval-every 3 --dropout 0.1 --no-baselines --no-bias"
/* Only the order of float sums differs (each rank's slice, then the sum,
 * against one pass over the batch). Observed over 9 steps: losses within
 * 1.2e-8 and weights within 1.2e-7 (1 ulp near 1) for 2, 3 and 4 ranks; the bounds
 * keep a factor of ~10 (Adam's 1/sqrt(v) amplifies differences). No
 * biases: the attention's key bias has an exactly zero gradient (softmax
 * ignores a shift common to a query's scores), so its "gradient" is
 * rounding noise that Adam turns into lr-sized steps, different for any
 * other order of sums (observed: 8e-5 apart after 32 steps). */
#define LOSS_TOL 1e-7
#define WEIGHT_TOL 1e-6

static char data[600], other[600];

/* n texts of 1 to 9 words, the class word among fillers. */
static void write_split(const char *dir, const char *name, size_t n, unsigned seed)
{
    static const char *const words[3][5] = {{"cat", "dog", "owl", "horse", "mouse"},
                                            {"screen", "cable", "laptop", "keyboard", "mouse"},
                                            {"bread", "cheese", "apple", "soup", "pie"}};
    static const char *const labels[3] = {"noun.animal", "noun.artifact", "noun.food"};
    static const char *const fillers[] = {"the", "a", "small", "with", "and", "of", "some", "big", "old"};
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned c = (seed >> 16) % 3, w = (seed >> 8) % 5, k = 1 + (seed >> 4) % 9, at = (seed >> 20) % k;
        fprintf(f, "%s\t", labels[c]);
        for (unsigned j = 0; j < k; j++)
            fprintf(f, "%s%s", j ? " " : "", j == at ? words[c][w] : fillers[(seed >> (j + 3)) % 9]);
        fprintf(f, "\n");
    }
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(data, sizeof data, "%s/data", test_tmpdir());
    snprintf(other, sizeof other, "%s/other", test_tmpdir());
    run_result r = run_cmd("mkdir -p '%s' '%s'", data, other);
    run_result_free(&r);
    write_split(data, "train.tsv", 99, 1), write_split(data, "valid.tsv", 40, 2);
    write_split(data, "test.tsv", 30, 3);
    write_split(other, "train.tsv", 99, 1), write_split(other, "valid.tsv", 40, 2);
    write_split(other, "test.tsv", 30, 4);
    return 0;
}

/* Trains with K ranks (0: plain, no mpiexec) into dir. */
static run_result train(int K, const char *dir, const char *extra)
{
    char launch[1024] = "";
    if (K) snprintf(launch, sizeof launch, "'%s' -np %d --oversubscribe ", mpiexec(), K);
    return run_cmd("%s'%s' train --task classify --data '%s' " RUN " --out '%s/%s' --json-log '%s/%s.log' %s",
                   launch, attn_bin(), data, test_tmpdir(), dir, test_tmpdir(), dir, extra ? extra : "");
}

/* The "val_accuracy" values of a log, joined. */
static char *accuracies(const char *dir)
{
    run_result r = run_cmd("grep -o '\"val_accuracy\": [0-9.e+-]*' '%s/%s.log'", test_tmpdir(), dir);
    assert_int_equal(r.status, 0);
    char *s = strdup(r.out);
    run_result_free(&r);
    return s;
}

static void test_ranks_match_one_process(void **state)
{
    (void)state;
    run_result r = train(0, "one", NULL);
    expect_ok(&r);
    double ref[64];
    const size_t n = log_losses("one", ref, 64);
    assert_int_equal(n, 9 + 3); /* 9 steps, 3 evaluations */
    char *acc = accuracies("one");
    static const int ranks[] = {1, 2, 3, 4};
    for (size_t k = 0; k < 4; k++) {
        char dir[32];
        snprintf(dir, sizeof dir, "np%d", ranks[k]);
        r = train(ranks[k], dir, NULL);
        if (ranks[k] == 2) expect_rank0_alone(&r, "attn train --task classify:");
        expect_ok(&r);
        const double worst = loss_diff(dir, ref, n);
        const double w = weight_diff_of(dir, "one", "model.safetensors");
        const double wb = weight_diff_of(dir, "one", "best.safetensors");
        printf("K=%d: largest loss difference %.3g, weight difference %.3g (best %.3g)\n", ranks[k], worst, w, wb);
        assert_true(worst <= LOSS_TOL);
        assert_true(w <= WEIGHT_TOL && wb <= WEIGHT_TOL);
        char *a = accuracies(dir);
        assert_string_equal(a, acc); /* the same predictions */
        free(a);
        if (ranks[k] == 1) assert_true(worst == 0.0 && w == 0.0); /* the same sums */
    }
    free(acc);
    /* a fixed K: the same bits run to run */
    r = train(2, "np2b", NULL);
    expect_ok(&r);
    r = run_cmd("cmp '%s/np2/model.safetensors' '%s/np2b/model.safetensors'", test_tmpdir(), test_tmpdir());
    expect_ok(&r);
    /* rank 0 alone wrote the log and the pictures */
    r = run_cmd("test $(grep -c '\"test\"' '%s/np2.log') = 1 && test -f '%s/np2/confusion.svg'", test_tmpdir(),
                test_tmpdir());
    expect_ok(&r);
}

/* The checkpoint in dir, resumed with 2 ranks to the end, holds the weights
 * of the one-process run. */
static void expect_resumes_to_one(const char *dir, const char *what)
{
    run_result r = run_cmd("'%s' -np 2 --oversubscribe '%s' train --task classify --data '%s' --resume '%s/%s' "
                           "--no-baselines", mpiexec(), attn_bin(), data, test_tmpdir(), dir);
    expect_ok(&r);
    const double w = weight_diff_of(dir, "one", "model.safetensors");
    printf("%s: weight difference %.3g\n", what, w);
    assert_true(w <= WEIGHT_TOL);
}

/* Stopped with 4 ranks at step 5, resumed with 2: one process's run. */
static void test_resume_with_other_ranks(void **state)
{
    (void)state;
    run_result r = train(4, "part", "--stop-at 5");
    expect_ok(&r);
    expect_resumes_to_one("part", "resumed 4 -> 2 ranks");
}

/* Ranks started with different --stop-at stop together at the first one's
 * step, and the checkpoint resumes to one process's run. */
static void test_ranks_stop_together(void **state)
{
    (void)state;
    run_result r = run_cmd("ATTN_DIST_TIMEOUT=10 timeout 60 '%s' -np 1 --oversubscribe '%s' train --task classify "
                           "--data '%s' " RUN " --out '%s/halt' --stop-at 5 : -np 1 '%s' train --task classify "
                           "--data '%s' " RUN " --out '%s/halt' --stop-at 7", mpiexec(), attn_bin(), data,
                           test_tmpdir(), attn_bin(), data, test_tmpdir());
    if (r.status) fail_msg("exit %d (124: a hang): %s", r.status, r.err);
    if (!strstr(r.out, "stopped at step 5 of 9")) fail_msg("expected a stop at step 5: %s", r.out);
    run_result_free(&r);
    expect_resumes_to_one("halt", "stopped together at step 5, resumed");
}

static void test_ranks_disagree(void **state)
{
    (void)state;
    /* rank 1 reads another test split: the start-up check names the disagreement */
    run_result r = run_cmd("'%s' -np 1 --oversubscribe '%s' train --task classify --data '%s' " RUN
                           " --out '%s/bad' : -np 1 '%s' train --task classify --data '%s' " RUN " --out '%s/bad'",
                           mpiexec(), attn_bin(), data, test_tmpdir(), attn_bin(), other, test_tmpdir());
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err, "ranks disagree on the configuration or the data"));
    run_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranks_match_one_process),
        cmocka_unit_test(test_resume_with_other_ranks),
        cmocka_unit_test(test_ranks_stop_together),
        cmocka_unit_test(test_ranks_disagree),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
