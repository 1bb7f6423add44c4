/* test_kill.c - `attn train --checkpoint-every 1` killed with SIGKILL at
 * random moments (delays from a seeded RNG), both tasks: after every kill the
 * checkpoint directory must hold a complete state byte for byte equal to the
 * never-killed run's state at that step (the previous checkpoint or the new
 * one, never a mix), it must load, its step never goes back, and resuming
 * until the end gives the never-killed run's final bytes.
 *
 * ATTN_KILLS sets the kills per task that land once a chain has a checkpoint
 * (default 110, so at least 220 in all); kills before the first checkpoint
 * are counted apart, and push the next delay later.
 * The two tasks run at the same time (the classifier's in a child process).
 * The work goes to /dev/shm when there is one: the same code, but fsync is
 * free there, and a kill tests what a crash of the process (not of the
 * machine) leaves. */
#include "test_support.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attn/classify.h"
#include "attn/train.h"

#define MAX_STEPS 64

typedef struct task {
    const char *name;
    const char *const *common; /* after "attn train": the data */
    const char *const *args;   /* then, when not resuming: the run's configuration */
    const char *const *files;  /* the files of a state */
    size_t steps;
    uint64_t ref[MAX_STEPS + 1]; /* the never-killed state's hash at each step */
    double full_s;              /* the never-killed run's time */
} task;

static char work[512], text[600], data[600];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* Starts attn train with the task's arguments and then `mode dir` (--out or
 * --resume) and extra (may be NULL); stdout to /dev/null, stderr to
 * dir.stderr (quoted by failed()). */
static pid_t start(const task *tk, const char *mode, const char *dir, const char *extra, const char *extra_val)
{
    const char *argv[64];
    size_t n = 0;
    argv[n++] = attn_bin(), argv[n++] = "train";
    for (size_t i = 0; tk->common[i]; i++) argv[n++] = tk->common[i];
    for (size_t i = 0; strcmp(mode, "--resume") && tk->args[i]; i++) argv[n++] = tk->args[i];
    argv[n++] = mode, argv[n++] = dir;
    if (extra) argv[n++] = extra, argv[n++] = extra_val;
    argv[n] = NULL;
    char err[700];
    snprintf(err, sizeof err, "%s.stderr", dir);
    return start_quiet_err(argv, err);
}

/* Fails the test: what happened, and the start of what attn train said. */
static void failed(const char *name, const char *dir, const char *what, int status)
{
    char path[700], said[512] = "";
    snprintf(path, sizeof path, "%s.stderr", dir);
    FILE *f = fopen(path, "r");
    if (f) {
        const size_t got = fread(said, 1, sizeof said - 1, f);
        said[got] = 0;
        fclose(f);
    }
    fail_msg("%s: %s %s failed (status %d); its stderr: %s", name, what, dir, status, said);
}

static int finish(pid_t pid)
{
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) fail_msg("waitpid failed");
    return status;
}

static void run_to_end(const task *tk, const char *mode, const char *dir, const char *extra, const char *val)
{
    int status = finish(start(tk, mode, dir, extra, val));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        failed(tk->name, dir, mode, status);
}

/* The state in dir: its step (-1 when there is none) and a hash of its
 * files' bytes. */
static long state_of(const task *tk, const char *dir, uint64_t *hash)
{
    char path[700];
    snprintf(path, sizeof path, "%s/.steps/current", dir);
    struct stat sb;
    if (lstat(path, &sb) != 0) return -1;
    uint64_t h = 0xcbf29ce484222325ull;
    long step = -1;
    for (size_t i = 0; tk->files[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, tk->files[i]);
        FILE *f = fopen(path, "rb");
        if (!f && !strcmp(tk->files[i], "best.safetensors")) continue; /* before the first evaluation */
        if (!f) fail_msg("%s: a state without %s", dir, tk->files[i]);
        char buf[1 << 14];
        size_t got;
        int first = 1;
        while ((got = fread(buf, 1, sizeof buf - 1, f)) > 0) {
            if (i == 0 && first) { /* config.json: the step */
                buf[got] = 0;
                const char *s = strstr(buf, "\"step\":");
                if (s) step = strtol(s + 7, NULL, 10);
            }
            first = 0;
            for (size_t j = 0; j < got; j++) h = (h ^ (unsigned char)buf[j]) * 0x100000001b3ull;
        }
        fclose(f);
    }
    *hash = h;
    return step;
}

/* The library loads it, as generate, classify and --resume do. */
static void expect_loads(const task *tk, const char *dir)
{
    attn_status st;
    if (!strcmp(tk->name, "lm")) {
        attn_checkpoint info;
        attn_gpt *g = NULL;
        attn_tokenizer *tok = NULL;
        attn_adamw *opt = NULL;
        st = attn_checkpoint_load(dir, 1, &info, &g, &tok);
        attn_adamw_config ac = {info.train.beta1, info.train.beta2, info.train.eps, info.train.weight_decay};
        if (!st) st = attn_adamw_create(&opt, attn_gpt_params(g), attn_gpt_param_count(g), &ac);
        if (!st) st = attn_checkpoint_load_optim(dir, &info, g, opt);
        attn_adamw_free(opt), attn_gpt_free(g), attn_tokenizer_free(tok);
    } else {
        attn_cls_info info;
        attn_encoder *e = NULL;
        attn_tokenizer *tok = NULL;
        st = attn_cls_model_load(dir, 1, &info, &e, &tok);
        if (!st) attn_cls_info_free(&info);
        attn_encoder_free(e), attn_tokenizer_free(tok);
    }
    if (st) fail_msg("%s: %s does not load: %s", tk->name, dir, attn_last_error());
}

/* The never-killed run, then the same run stopped after each step (all
 * steps' states), which must end in the same bytes. */
static void reference(task *tk)
{
    char full[600], steps[600], val[32];
    snprintf(full, sizeof full, "%s/%s-full", work, tk->name);
    snprintf(steps, sizeof steps, "%s/%s-steps", work, tk->name);
    double t0 = now_s();
    run_to_end(tk, "--out", full, NULL, NULL);
    tk->full_s = now_s() - t0;
    uint64_t final;
    if (state_of(tk, full, &final) != (long)tk->steps) fail_msg("%s: the full run did not end at %zu", tk->name, tk->steps);
    run_to_end(tk, "--out", steps, "--stop-at", "1");
    for (size_t s = 1; s <= tk->steps; s++) {
        if (s > 1) snprintf(val, sizeof val, "%zu", s), run_to_end(tk, "--resume", steps, "--stop-at", val);
        if (state_of(tk, steps, &tk->ref[s]) != (long)s) fail_msg("%s: not at step %zu", tk->name, s);
    }
    if (tk->ref[tk->steps] != final) fail_msg("%s: stopping at every step changed the final bytes", tk->name);
}

typedef struct tally {
    size_t kills, chains, empty, mid_save, same, advanced;
} tally;

/* Kills until the run is done, in a fresh directory. */
static void chain(const task *tk, uint64_t *seed, size_t max_kills, tally *ty)
{
    char dir[600], tmp[700];
    snprintf(dir, sizeof dir, "%s/%s-kill%zu", work, tk->name, ty->chains++);
    long last = -1;
    /* Grows while kills land before the first checkpoint (a start-up slower
     * than the reference run's, on a loaded machine), so a chain always gets
     * past it. */
    double scale = 1.0;
    for (;;) {
        const int fresh = last < 0;
        pid_t pid = start(tk, fresh ? "--out" : "--resume", dir, NULL, NULL);
        /* up to half the whole run: several kills per run, some at start-up,
         * many inside a save (a save is most of a tiny step) */
        const double d = (double)(rng_next(seed) % 1000000) / 1e6 * tk->full_s / 2.0 * scale;
        int killed = 0;
        if (ty->kills < max_kills) {
            struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
            nanosleep(&ts, NULL);
            killed = kill(pid, SIGKILL) == 0;
        }
        int status = finish(pid);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) { /* it ended first */
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed(tk->name, dir, fresh ? "--out" : "--resume", status);
            killed = 0;
        }
        uint64_t h = 0;
        const long step = state_of(tk, dir, &h);
        if (killed) {
            /* A kill before the first checkpoint tests only that nothing is
             * left: counted apart (empty), not towards the kills wanted. */
            ty->kills += step >= 0;
            snprintf(tmp, sizeof tmp, "%s/.steps", dir);
            DIR *sd = opendir(tmp);
            struct dirent *e;
            int in_save = 0;
            while (sd && (e = readdir(sd))) in_save |= !strncmp(e->d_name, "tmp-", 4);
            if (sd) closedir(sd);
            ty->mid_save += in_save;
        }
        if (step < 0) {
            if (last >= 0) fail_msg("%s: %s lost its checkpoint of step %ld", tk->name, dir, last);
            ty->empty += killed;
            if (killed && scale < 64.0) scale *= 2.0;
            continue;
        }
        if (step < last) fail_msg("%s: %s went back from step %ld to %ld", tk->name, dir, last, step);
        if (step > (long)tk->steps || h != tk->ref[step])
            fail_msg("%s: %s after a kill: step %ld differs from the never-killed run's", tk->name, dir, step);
        expect_loads(tk, dir);
        if (killed) ty->same += step == last, ty->advanced += step > last;
        last = step;
        if (!killed && WIFEXITED(status)) break; /* done */
    }
    if (last != (long)tk->steps) fail_msg("%s: the chain ended at step %ld", tk->name, last);
}

static void kill_task(task *tk)
{
    const char *env = getenv("ATTN_KILLS");
    const size_t want = env && atoi(env) > 0 ? (size_t)atoi(env) : 110;
    double t0 = now_s();
    reference(tk);
    double t1 = now_s();
    uint64_t seed = 0x9E3779B97F4A7C15ull ^ (uint64_t)tk->steps;
    tally ty = {0};
    while (ty.kills < want) chain(tk, &seed, want, &ty);
    printf("%s: %zu kills survived after a first checkpoint in %zu runs (and %zu before it; %zu inside a save; state "
           "unchanged %zu, advanced %zu); every state equal to the never-killed run's at its step; "
           "reference %.2f s (full run %.3f s), kills %.2f s\n",
           tk->name, ty.kills, ty.chains, ty.empty, ty.mid_save, ty.same, ty.advanced, t1 - t0,
           tk->full_s, now_s() - t1);
}

static const char *const lm_files[] = {"config.json", "vocab.json", "model.safetensors", "optim.safetensors", NULL};
static const char *const cls_files[] = {"config.json", "vocab.json", "model.safetensors", "optim.safetensors",
                                        "best.safetensors", NULL};

static void test_kill_both_tasks(void **state)
{
    (void)state;
    const char *const lm_common[] = {"--data", text, NULL};
    const char *const lm_args[] = {"--layers", "1", "--heads", "2", "--width", "16", "--context", "8",
                                   "--batch", "4", "--iters", "24", "--eval-every", "8", "--eval-iters", "1",
                                   "--warmup", "2", "--checkpoint-every", "1", NULL};
    task lm = {"lm", lm_common, lm_args, lm_files, 24, {0}, 0};
    /* 48 texts in batches of 8: 6 steps an epoch, 4 epochs */
    const char *const cls_common[] = {"--task", "classify", "--data", data, "--no-baselines", NULL};
    const char *const cls_args[] = {"--layers", "1", "--heads", "2",
                                    "--width", "8", "--context", "6", "--batch", "8", "--epochs", "4",
                                    "--warmup", "2", "--min-count", "1",
                                    "--checkpoint-every", "1", NULL};
    task cls = {"classify", cls_common, cls_args, cls_files, 24, {0}, 0};
    /* The two tasks at once, the classifier's in a child process: most of
     * the time goes to waiting for the moment of a kill, so the waits
     * overlap (each task has its own directories under work). A failure in
     * the child ends it with status 1 after its message. */
    fflush(stdout), fflush(stderr);
    const pid_t child = fork();
    if (child < 0) fail_msg("fork failed");
    if (child == 0) {
        kill_task(&cls);
        fflush(stdout);
        _exit(0);
    }
    kill_task(&lm);
    int status = 0;
    if (waitpid(child, &status, 0) != child) fail_msg("waitpid failed");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the classify task failed (its message is above; status %d)", status);
}

static pid_t owner; /* the process that made work */

static int setup(void **state)
{
    (void)state;
    owner = getpid();
    setenv("OMP_NUM_THREADS", "1", 1); /* the machine is shared; the bits do not depend on it */
    struct stat sb;
    const char *base = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK) == 0
                           ? "/dev/shm" : test_tmpdir();
    snprintf(work, sizeof work, "%s/attn-kill-XXXXXX", base);
    if (!mkdtemp(work)) fail_msg("cannot create %s", work);
    snprintf(text, sizeof text, "%s", write_tiny_text());
    snprintf(data, sizeof data, "%s", write_tiny_labelled());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (getpid() != owner) return 0; /* a failed child's runner: the parent cleans up */
    run_result r = run_cmd("rm -rf '%s'", work);
    run_result_free(&r);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_both_tasks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
