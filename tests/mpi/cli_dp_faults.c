/* cli_dp_faults.c - a rank that fails under `mpirun attn train --task
 * classify`: the others end with an error, not a hang. Rank 1 is a shell
 * that never starts attn, or starts it and kills it (SIGKILL: it dies) or
 * stops it (SIGSTOP: it is stuck) once rank 0's log shows training under
 * way. ATTN_DIST_TIMEOUT is 2 s where rank 1 never starts, 10 s once it
 * has (a loaded machine may take seconds to start a rank); `timeout 100`
 * around mpirun tells a hang (status 124) from an error. The three runs
 * mostly wait for their timeouts: they run at the same time, in setup, and
 * each test checks one's result. */
#include "dp_support.h"

#define RUN "--layers 1 --heads 2 --width 16 --context 12 --batch 16 --min-count 1 --iters 100000 " \
            "--patience 0 --eval-every 1000 --no-baselines"

static char data[600];

/* mpirun with rank 0 training into dir and rank 1 running `rank1` (a
 * shell script; $ATTN is the rank-0 command, $LOG its log), into out. */
static void faulty(char *out, size_t n, const char *dir, int timeout_s, const char *rank1)
{
    char cmd[2048];
    /* unquoted: it travels in $ATTN too (the paths have no spaces) */
    snprintf(cmd, sizeof cmd, "%s train --task classify --data %s " RUN " --out %s/%s", attn_bin(), data,
             test_tmpdir(), dir);
    snprintf(out, n, "ATTN_DIST_TIMEOUT=%d ATTN=\"%s\" LOG='%s/%s.log' timeout 100 '%s' -np 1 --oversubscribe %s "
             "--json-log '%s/%s.log' : -np 1 sh -c '%s'", timeout_s, cmd, test_tmpdir(), dir, mpiexec(), cmd,
             test_tmpdir(), dir, rank1);
}

/* waits for rank 0's log to show 3 steps, then signals rank 1's attn */
#define AFTER_3_STEPS(sig) "$ATTN & p=$!; while [ $(cat \"$LOG\" 2>/dev/null | wc -l) -lt 3 ]; do " \
                           "sleep 0.1; done; kill -" sig " $p; wait $p"

enum { NEVER, DIES, STUCK, RUNS };
static run_result results[RUNS];

static int setup(void **state)
{
    (void)state;
    snprintf(data, sizeof data, "%s/data", test_tmpdir());
    run_result r = run_cmd("mkdir -p '%s' && for s in train valid test; do for i in 1 2 3 4 5 6 7 8; do "
                           "printf 'a\\tthe cat sat\\nb\\ta red bread\\nb\\tsome cheese\\na\\tan owl\\n'; "
                           "done > '%s/'$s.tsv; done", data, data);
    expect_ok(&r);
    static char cmds[RUNS][8192];
    /* rank 0 waits in MPI_Init for a rank that never comes: the watchdog */
    faulty(cmds[NEVER], sizeof cmds[NEVER], "never", 2, "sleep 60");
    /* mpirun sees rank 1 end without MPI_Finalize and ends rank 0 */
    faulty(cmds[DIES], sizeof cmds[DIES], "dies", 10, AFTER_3_STEPS("KILL"));
    /* rank 0's gradient sum gets no answer: its own timeout */
    faulty(cmds[STUCK], sizeof cmds[STUCK], "stuck", 10, AFTER_3_STEPS("STOP"));
    const char *const list[RUNS] = {cmds[NEVER], cmds[DIES], cmds[STUCK]};
    run_cmds(RUNS, list, results);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < RUNS; i++) run_result_free(&results[i]);
    return 0;
}

static void expect_error(run_result *r, const char *msg)
{
    if (r->status == 0 || r->status == 124) fail_msg("exit %d (0: no error, 124: a hang): %s", r->status, r->err);
    if (!strstr(r->err, msg)) fail_msg("expected '%s' in: %s", msg, r->err);
    run_result_free(r);
}

static void test_rank_never_starts(void **state)
{
    (void)state;
    expect_error(&results[NEVER], "attn train: data parallel: not every rank started within 2 s");
}

static void test_rank_dies(void **state)
{
    (void)state;
    expect_error(&results[DIES], "137"); /* the shell's status: its attn was killed (128 + 9) */
}

static void test_rank_stuck(void **state)
{
    (void)state;
    expect_error(&results[STUCK], "data parallel: no answer from the other ranks for 10 s");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rank_never_starts),
        cmocka_unit_test(test_rank_dies),
        cmocka_unit_test(test_rank_stuck),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
