/* test_signals.c - signals through the real binary: SIGTERM, SIGINT and
 * (stdin not a terminal) SIGHUP make `attn train` (both tasks) write a
 * checkpoint at the step it was on and stop with status 0; a second signal
 * ends it at once; on a terminal SIGHUP ends it; `attn generate` and
 * `attn classify` into a pipe that closes end quietly by SIGPIPE (141), also
 * when the parent left SIGPIPE ignored; a failed write to stdout exits 1 for
 * every command (defect 12 of issue 15). The program waits on the JSON log,
 * not on the clock. */
#define _XOPEN_SOURCE 700 /* posix_openpt */
#include "test_support.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LM "--layers 1 --heads 2 --width 16 --context 8 --batch 4 --eval-every 1000 --eval-iters 1 --warmup 2"
#define CLS "--task classify --layers 1 --heads 2 --width 8 --context 6 --batch 8 --warmup 2 --min-count 1 --no-baselines"

static char text[600], data[600];

static size_t lines_of(const char *path)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;
    int c;
    while (f && (c = fgetc(f)) != EOF) n += c == '\n';
    if (f) fclose(f);
    return n;
}

/* Starts `sh -c cmd` (stdout to out_file, stderr to err_file, stdin from a
 * pty when tty, else /dev/null) and waits until the JSON log has `want`
 * lines (at most 60 s). */
static pid_t start_logged(const char *cmd, const char *log, size_t want, int tty, const char *out_file,
                          const char *err_file)
{
    int master = -1;
    const char *slave = NULL;
    if (tty) {
        master = posix_openpt(O_RDWR | O_NOCTTY);
        if (master < 0 || grantpt(master) || unlockpt(master) || !(slave = ptsname(master)))
            fail_msg("no pseudo-terminal");
    }
    pid_t pid = fork();
    if (pid == 0) {
        int in = open(tty ? slave : "/dev/null", O_RDWR | O_NOCTTY);
        int out = open(out_file, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        int err = open(err_file, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        if (in < 0 || out < 0 || err < 0) _exit(126);
        dup2(in, 0), dup2(out, 1), dup2(err, 2);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    if (pid < 0) fail_msg("fork failed");
    for (int i = 0; i < 6000 && lines_of(log) < want; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) fail_msg("the run ended before it logged %zu steps: %d", want, status);
    }
    if (lines_of(log) < want) fail_msg("no progress in 60 s");
    if (master >= 0) close(master); /* the child keeps its own descriptor */
    return pid;
}

/* A run's directory and its log, stdout and stderr files beside it. */
typedef struct run_files {
    char dir[512], log[600], out[600], err[600];
} run_files;

static void files_of(run_files *f, const char *name)
{
    snprintf(f->dir, sizeof f->dir, "%.400s/%s", test_tmpdir(), name);
    snprintf(f->log, sizeof f->log, "%s.log", f->dir);
    snprintf(f->out, sizeof f->out, "%s.out", f->dir);
    snprintf(f->err, sizeof f->err, "%s.err", f->dir);
}

static int wait_for(pid_t pid)
{
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) fail_msg("waitpid failed");
    return status;
}

static char *slurp(const char *path)
{
    run_result r = run_cmd("cat '%s'", path);
    char *s = r.out;
    r.out = NULL;
    run_result_free(&r);
    return s;
}

/* One signal: status 0, "(interrupted)", and a checkpoint (the only one:
 * --checkpoint-every 0) at the last logged step, which resumes. */
static void stop_by(int sig, const char *name, int cls)
{
    const char *B = attn_bin(), *in = cls ? data : text, *args = cls ? CLS : LM;
    char cmd[2048];
    run_files f;
    files_of(&f, name);
    snprintf(cmd, sizeof cmd, "exec '%s' train --data '%s' %s --iters 100000 --checkpoint-every 0 --out '%s' --json-log '%s'",
             B, in, args, f.dir, f.log);
    pid_t pid = start_logged(cmd, f.log, 3, 0, f.out, f.err);
    kill(pid, sig);
    int status = wait_for(pid);
    char *o = slurp(f.out), *e = slurp(f.err);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !strstr(o, "(interrupted)"))
        fail_msg("%s: expected a clean stop, got %d: %s %s", name, status, o, e);
    size_t steps = lines_of(f.log);
    char want[64];
    snprintf(want, sizeof want, "stopped at step %zu of 100000", steps);
    if (!strstr(o, want)) fail_msg("%s: expected '%s': %s", name, want, o);
    free(o), free(e);
    run_result r = run_cmd("grep -c '^\t\"step\":\t%zu,' '%s/config.json' && '%s' train --data '%s' %s --resume '%s' "
                           "--iters %zu > /dev/null && grep -c '^\t\"step\":\t%zu,' '%s/config.json'",
                           steps, f.dir, B, in, cls ? "--task classify" : "", f.dir, steps + 2, steps + 2, f.dir);
    if (r.status != 0 || strcmp(r.out, "1\n1\n")) fail_msg("%s: checkpoint at %zu, resumed: %s %s", name, steps, r.out, r.err);
    run_result_free(&r);
}

static void test_stop_signals_save(void **state)
{
    (void)state;
    stop_by(SIGTERM, "term", 0);
    stop_by(SIGINT, "int", 0);
    stop_by(SIGHUP, "hup", 0); /* stdin /dev/null: not on a terminal */
    stop_by(SIGTERM, "cterm", 1);
    stop_by(SIGHUP, "chup", 1);
}

static void test_second_signal_stops_at_once(void **state)
{
    (void)state;
    const char *B = attn_bin();
    char cmd[2048];
    run_files f;
    files_of(&f, "twice");
    /* two different signals: two of the same may merge into one delivery */
    snprintf(cmd, sizeof cmd, "exec '%s' train --data '%s' " LM " --iters 100000 --checkpoint-every 2 --out '%s' --json-log '%s'",
             B, text, f.dir, f.log);
    pid_t pid = start_logged(cmd, f.log, 3, 0, f.out, f.err);
    kill(pid, SIGTERM), kill(pid, SIGINT);
    int status = wait_for(pid);
    if (!WIFSIGNALED(status) || (WTERMSIG(status) != SIGINT && WTERMSIG(status) != SIGTERM))
        fail_msg("expected death by the second signal, got %d", status);
    /* the last periodic checkpoint is whole */
    run_result r = run_cmd("'%s' generate --model '%s' --tokens 3 --temperature 0 > /dev/null", B, f.dir);
    if (r.status != 0) fail_msg("the checkpoint after two signals: %s", r.err);
    run_result_free(&r);
}

static void test_hup_on_a_terminal_ends(void **state)
{
    (void)state;
    const char *B = attn_bin();
    char cmd[2048];
    run_files f;
    files_of(&f, "tty");
    snprintf(cmd, sizeof cmd, "exec '%s' train --data '%s' " LM " --iters 100000 --checkpoint-every 0 --out '%s' --json-log '%s'",
             B, text, f.dir, f.log);
    pid_t pid = start_logged(cmd, f.log, 2, 1, f.out, f.err);
    kill(pid, SIGHUP);
    int status = wait_for(pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGHUP) fail_msg("expected death by SIGHUP, got %d", status);
}

/* A closed pipe: nothing on stderr, status 141 (killed by SIGPIPE), with
 * SIGPIPE ignored by the parent (`trap '' PIPE`) or not. */
static void test_closed_pipe_is_quiet(void **state)
{
    (void)state;
    const char *t = test_tmpdir(), *B = attn_bin();
    run_result r = run_cmd("'%s' train --data '%s' " LM " --iters 3 --out '%s/pipe' > /dev/null && "
                           "'%s' train --data '%s' " CLS " --epochs 1 --out '%s/cpipe' > /dev/null",
                           B, text, t, B, data, t);
    if (r.status != 0) fail_msg("train: %s", r.err);
    run_result_free(&r);
    for (int ignore = 0; ignore < 2; ignore++) {
        r = run_cmd("%s ('%s' generate --model '%s/pipe' --tokens 200000 --temperature 1 2> '%s/err'; echo $? > '%s/st') | "
                    "head -c 5 > /dev/null; cat '%s/st' '%s/err'",
                    ignore ? "trap '' PIPE;" : "", B, t, t, t, t, t);
        if (strcmp(r.out, "141\n")) fail_msg("generate | head (ignored %d): %s", ignore, r.out);
        run_result_free(&r);
        r = run_cmd("%s yes 'a cat and a dog' 2> /dev/null | head -n 200000 2> /dev/null | ('%s' classify --model "
                    "'%s/cpipe' 2> '%s/err'; echo $? > '%s/st') | head -c 5 > /dev/null; cat '%s/st' '%s/err'",
                    ignore ? "trap '' PIPE;" : "", B, t, t, t, t, t);
        if (strcmp(r.out, "141\n")) fail_msg("classify | head (ignored %d): %s", ignore, r.out);
        run_result_free(&r);
    }
}

/* Defect 12 of issue 15: stdout that cannot be written is status 1, the
 * same for every command and format. */
static void test_failed_stdout_is_one(void **state)
{
    (void)state;
    const char *t = test_tmpdir(), *B = attn_bin();
    if (access("/dev/full", W_OK) != 0) skip();
    char cmds[4][700];
    snprintf(cmds[0], sizeof cmds[0], "demo");
    snprintf(cmds[1], sizeof cmds[1], "demo --json");
    snprintf(cmds[2], sizeof cmds[2], "generate --model '%s/pipe' --tokens 20", t);
    snprintf(cmds[3], sizeof cmds[3], "classify --model '%s/cpipe' --text cat", t);
    for (size_t i = 0; i < 4; i++) {
        run_result r = run_cmd("'%s' %s > /dev/full", B, cmds[i]);
        if (r.status != 1 || count_lines(r.err) != 1 || !strstr(r.err, "cannot write the output"))
            fail_msg("attn %s > /dev/full: expected 1 and one line, got %d: %s", cmds[i], r.status, r.err);
        run_result_free(&r);
    }
}

static int setup(void **state)
{
    (void)state;
    snprintf(text, sizeof text, "%s", write_tiny_text());
    snprintf(data, sizeof data, "%s", write_tiny_labelled());
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_signals_save),
        cmocka_unit_test(test_second_signal_stops_at_once),
        cmocka_unit_test(test_hup_on_a_terminal_ends),
        cmocka_unit_test(test_closed_pipe_is_quiet),
        cmocka_unit_test(test_failed_stdout_is_one),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
