/* test_ckpt_lock.c - one trainer at a time writes a checkpoint directory
 * (ckpt_lock): while `attn train` (each task) runs on DIR, a second run on DIR
 * (--resume, or --out with --force) is refused at once with one line and exit
 * 2, and the first goes on; after kill -9 of the first, nothing is left
 * locked: a new run resumes from DIR and ends. Waits on the directory, not on
 * the clock. */
#include "test_support.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char text[600], data[600];

/* The step of DIR's committed state (config.json), -1 when there is none. */
static long step_of(const char *dir)
{
    char path[800], buf[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[got] = 0;
    const char *s = strstr(buf, "\"step\":");
    return s ? strtol(s + 7, NULL, 10) : -1;
}

/* attn train with args (split at spaces; none holds one), output to
 * /dev/null, in the background. */
static pid_t start(char *args)
{
    const char *argv[64];
    size_t n = 0;
    argv[n++] = attn_bin(), argv[n++] = "train";
    for (char *tok = strtok(args, " "); tok && n < 63; tok = strtok(NULL, " ")) argv[n++] = tok;
    argv[n] = NULL;
    return start_quiet(argv);
}

/* common: the data (and task); model: the run's configuration (refused when
 * resuming). */
static void lock_case(const char *name, const char *common, const char *model)
{
    char dir[700], args[2000];
    snprintf(dir, sizeof dir, "%.600s/%s", test_tmpdir(), name);
    /* the first run: far more steps than the test waits for, a checkpoint at
     * each */
    snprintf(args, sizeof args, "%s %s --iters 1000000 --checkpoint-every 1 --out %s", common, model, dir);
    pid_t first = start(args);
    struct timespec nap = {0, 20 * 1000 * 1000};
    long step = -1;
    for (int i = 0; i < 3000 && (step = step_of(dir)) < 2; i++) nanosleep(&nap, NULL);
    if (step < 2) fail_msg("%s: the first run wrote no checkpoint in 60 s", name);

    /* While it runs: refused, both ways, before any work (--stop-at would
     * make a run that ignored the lock end with 0). */
    run_result r = run_cmd("'%s' train %s --resume '%s' --stop-at 1000", attn_bin(), common, dir);
    assert_string_equal(r.out, "");
    expect_bad_input(&r, "attn train", "another training run is writing this checkpoint directory");
    r = run_cmd("'%s' train %s %s --out '%s' --force --stop-at 1", attn_bin(), common, model, dir);
    assert_string_equal(r.out, "");
    expect_bad_input(&r, "attn train", "another training run is writing this checkpoint directory");
    assert_int_equal(waitpid(first, NULL, WNOHANG), 0); /* the first still runs */
    const long before = step_of(dir);
    for (int i = 0; i < 3000 && step_of(dir) <= before; i++) nanosleep(&nap, NULL);
    assert_true(step_of(dir) > before); /* and still writes */

    kill(first, SIGKILL);
    int status = 0;
    assert_int_equal(waitpid(first, &status, 0), first);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* The kernel dropped the lock with the process: a new run resumes. */
    const long at = step_of(dir);
    assert_true(at >= 2);
    r = run_cmd("'%s' train %s --resume '%s' --stop-at %ld", attn_bin(), common, dir, at + 2);
    if (r.status != 0) fail_msg("%s: resuming after kill -9 failed (%d): %s", name, r.status, r.err);
    run_result_free(&r);
    assert_int_equal(step_of(dir), at + 2);
}

static void test_lock_lm(void **state)
{
    (void)state;
    char common[700];
    snprintf(common, sizeof common, "--data %s", text);
    lock_case("lm", common,
              "--layers 1 --heads 2 --width 16 --context 8 --batch 4 --eval-every 1000 --eval-iters 1 "
              "--warmup 2");
}

static void test_lock_classify(void **state)
{
    (void)state;
    char common[700];
    snprintf(common, sizeof common, "--task classify --data %s --no-baselines", data);
    lock_case("classify", common,
              "--layers 1 --heads 2 --width 8 --context 6 --batch 8 --warmup 2 --min-count 1 "
              "--patience 0");
}

static int setup(void **state)
{
    (void)state;
    setenv("OMP_NUM_THREADS", "1", 1);
    snprintf(text, sizeof text, "%s", write_tiny_text());
    snprintf(data, sizeof data, "%s", write_tiny_labelled());
    if (strchr(text, ' ') || strchr(data, ' ')) fail_msg("a temporary path with a space");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_lm),
        cmocka_unit_test(test_lock_classify),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
