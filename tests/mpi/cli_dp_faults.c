/* cli_dp_faults.c - a rank that fails under `mpirun attn train --task
 * classify`: the others end with an error, not a hang. Rank 1 is a shell
 * that never starts attn, or starts it and kills it (SIGKILL: it dies) or
 * stops it (SIGSTOP: it is stuck) once rank 0's log shows training under
 * way. ATTN_DIST_TIMEOUT is 2 s where rank 1 never starts, 10 s once it
 * has (a loaded machine may take seconds to start a rank); `timeout 100`
 * around mpirun tells a hang (status 124) from an error. */
#include "dp_support.h"

#define RUN "--layers 1 --heads 2 --width 16 --context 12 --batch 16 --min-count 1 --iters 100000 " \
            "--patience 0 --eval-every 1000 --no-baselines"

static char data[600];

static int setup(void **state)
{
    (void)state;
    snprintf(data, sizeof data, "%s/data", test_tmpdir());
    run_result r = run_cmd("mkdir -p '%s' && for s in train valid test; do for i in 1 2 3 4 5 6 7 8; do "
                           "printf 'a\\tthe cat sat\\nb\\ta red bread\\nb\\tsome cheese\\na\\tan owl\\n'; "
                           "done > '%s/'$s.tsv; done", data, data);
    expect_ok(&r);
    return 0;
}

/* mpirun with rank 0 training into dir and rank 1 running `rank1` (a
 * shell script; $ATTN is the rank-0 command, $LOG its log). */
static run_result faulty(const char *dir, int timeout_s, const char *rank1)
{
    char cmd[2048];
    /* unquoted: it travels in $ATTN too (the paths have no spaces) */
    snprintf(cmd, sizeof cmd, "%s train --task classify --data %s " RUN " --out %s/%s", attn_bin(), data,
             test_tmpdir(), dir);
    return run_cmd("ATTN_DIST_TIMEOUT=%d ATTN=\"%s\" LOG='%s/%s.log' timeout 100 '%s' -np 1 --oversubscribe %s "
                   "--json-log '%s/%s.log' : -np 1 sh -c '%s'", timeout_s, cmd, test_tmpdir(), dir, mpiexec(), cmd,
                   test_tmpdir(), dir, rank1);
}

/* waits for rank 0's log to show 3 steps, then signals rank 1's attn */
#define AFTER_3_STEPS(sig) "$ATTN & p=$!; while [ $(cat \"$LOG\" 2>/dev/null | wc -l) -lt 3 ]; do " \
                           "sleep 0.1; done; kill -" sig " $p; wait $p"

static void expect_error(run_result *r, const char *msg)
{
    if (r->status == 0 || r->status == 124) fail_msg("exit %d (0: no error, 124: a hang): %s", r->status, r->err);
    if (!strstr(r->err, msg)) fail_msg("expected '%s' in: %s", msg, r->err);
    run_result_free(r);
}

static void test_rank_never_starts(void **state)
{
    (void)state;
    /* rank 0 waits in MPI_Init for a rank that never comes: the watchdog */
    run_result r = faulty("never", 2, "sleep 60");
    expect_error(&r, "attn train: data parallel: not every rank started within 2 s");
}

static void test_rank_dies(void **state)
{
    (void)state;
    /* mpirun sees rank 1 end without MPI_Finalize and ends rank 0 */
    run_result r = faulty("dies", 10, AFTER_3_STEPS("KILL"));
    expect_error(&r, "137"); /* the shell's status: its attn was killed (128 + 9) */
}

static void test_rank_stuck(void **state)
{
    (void)state;
    /* rank 0's gradient sum gets no answer: its own timeout */
    run_result r = faulty("stuck", 10, AFTER_3_STEPS("STOP"));
    expect_error(&r, "data parallel: no answer from the other ranks for 10 s");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank_never_starts),
        cmocka_unit_test(test_rank_dies),
        cmocka_unit_test(test_rank_stuck),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
