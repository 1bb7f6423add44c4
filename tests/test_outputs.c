/* test_outputs.c - where outputs go: never over an input, never over a device.
 *
 *   - An output that names an input (by another spelling, or a hard link) is
 *     refused with exit 2 before any work, and the input keeps its bytes:
 *     `attn explain --html/--xlsx`, `attn mha --out`, `attn train --json-log`.
 *   - attn_atomic_open writes a character device, a FIFO and stdout's file in
 *     place as a stream (the node stays what it was); a symbolic link is
 *     followed (the link stays, its target gets the new bytes atomically); a
 *     dangling link is refused.
 *   - Training text with a NUL byte is refused with its line and column (its
 *     vocabulary could not be loaded back), and /dev/zero at its first byte.
 */
#include "test_support.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attn/attn.h"
#include "attn/fileio.h"
#include "attn/mha.h"
#include "attn/mha_io.h"
#include "attn/safetensors.h"

static const char csv_text[] = "token,a,b\ncat,1,0\nmouse,0.5,0.5\n";

static char *slurp(const char *path, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    if (attn_read_file(path, (size_t)1 << 26, 0, &buf, &n)) return NULL;
    if (len) *len = n;
    return buf;
}

/* The file still holds exactly `want`. */
static void assert_file_is(const char *path, const char *want, size_t n)
{
    size_t len = 0;
    char *got = slurp(path, &len);
    assert_non_null(got);
    assert_int_equal(len, n);
    assert_memory_equal(got, want, n);
    free(got);
}

static void expect_refused(run_result *r, const char *fragment)
{
    if (r->status != 2 || !strstr(r->err, fragment) || r->out[0])
        fail_msg("status %d, stdout '%s', stderr '%s' (wanted 2 and '%s')", r->status, r->out,
                 r->err, fragment);
    assert_int_equal(count_lines(r->err), 1);
    run_result_free(r);
}

static void test_explain_output_is_input(void **state)
{
    (void)state;
    const char *csv = write_tmp("same.csv", csv_text);
    run_result r = run_cmd("'%s' explain --embeddings '%s' --html '%s'", attn_bin(), csv, csv);
    expect_refused(&r, "the output is the same file as the input");
    assert_file_is(csv, csv_text, strlen(csv_text));
    /* Another spelling of the same path, and a hard link. */
    char dotted[600], hard[600];
    snprintf(dotted, sizeof dotted, "%s/./same.csv", test_tmpdir());
    r = run_cmd("'%s' explain --embeddings '%s' --xlsx '%s'", attn_bin(), csv, dotted);
    expect_refused(&r, "same.csv");
    snprintf(hard, sizeof hard, "%s/hard.csv", test_tmpdir());
    unlink(hard);
    assert_int_equal(link(csv, hard), 0);
    r = run_cmd("'%s' explain --embeddings '%s' --compare '%s' --html '%s'", attn_bin(), csv,
                write_tmp("other.csv", csv_text), hard);
    expect_refused(&r, "hard.csv");
    assert_file_is(csv, csv_text, strlen(csv_text));
    /* A different file is fine. */
    char html[600];
    snprintf(html, sizeof html, "%s/fine.html", test_tmpdir());
    r = run_cmd("'%s' explain --embeddings '%s' --html '%s'", attn_bin(), csv, html);
    assert_int_equal(r.status, 0);
    run_result_free(&r);
}

/* A weights file of E = 4, H = 2 and a query (1, 3, 4). */
static void write_mha_files(char *wpath, char *qpath, size_t n)
{
    snprintf(wpath, n, "%s/w.safetensors", test_tmpdir());
    snprintf(qpath, n, "%s/q.safetensors", test_tmpdir());
    attn_mha_config cfg = attn_mha_default_config(4, 2);
    attn_mha *m = NULL;
    assert_int_equal(attn_mha_create(&m, &cfg), ATTN_OK);
    assert_int_equal(attn_mha_init(m, 1), ATTN_OK);
    assert_int_equal(attn_mha_save_safetensors(m, wpath), ATTN_OK);
    attn_mha_free(m);
    attn_tensor q;
    size_t shape[3] = {1, 3, 4};
    assert_int_equal(attn_tensor_create(&q, 3, shape), ATTN_OK);
    for (size_t i = 0; i < 12; i++) q.data[i] = (float)i / 12.0f;
    attn_st_named named[1] = {{"q", &q}};
    assert_int_equal(attn_safetensors_write(qpath, named, 1, NULL, NULL, 0), ATTN_OK);
    attn_tensor_free(&q);
}

static void test_mha_out_is_input(void **state)
{
    (void)state;
    char w[600], q[600];
    write_mha_files(w, q, sizeof w);
    size_t wlen = 0, qlen = 0;
    char *wbytes = slurp(w, &wlen), *qbytes = slurp(q, &qlen);
    assert_non_null(wbytes);
    assert_non_null(qbytes);
    run_result r = run_cmd("'%s' mha --weights '%s' --query '%s' --out '%s'", attn_bin(), w, q, q);
    expect_refused(&r, "the output is the same file as the input");
    r = run_cmd("'%s' mha --weights '%s' --query '%s' --out '%s'", attn_bin(), w, q, w);
    expect_refused(&r, "w.safetensors");
    assert_file_is(w, wbytes, wlen);
    assert_file_is(q, qbytes, qlen);
    free(wbytes), free(qbytes);
}

static void test_train_json_log_is_data(void **state)
{
    (void)state;
    const char *text = "to be or not to be, that is the question\n";
    const char *data = write_tmp("train.txt", text);
    run_result r = run_cmd("'%s' train --data '%s' --out '%s/ckpt' --iters 1 --json-log '%s'",
                           attn_bin(), data, test_tmpdir(), data);
    expect_refused(&r, "the output is the same file as the input");
    assert_file_is(data, text, strlen(text));
}

/* ---- defect 2: devices, FIFOs, stdout, links ---------------------------- */

static void write_all(const char *path, const char *text)
{
    attn_atomic_file af;
    assert_int_equal(attn_atomic_open(&af, path), ATTN_OK);
    fputs(text, af.f);
    assert_int_equal(attn_atomic_commit(&af), ATTN_OK);
}

static void test_device_stays_a_device(void **state)
{
    (void)state;
    struct stat sb;
    assert_int_equal(stat("/dev/null", &sb), 0);
    assert_true(S_ISCHR(sb.st_mode));
    write_all("/dev/null", "nothing\n");
    assert_int_equal(stat("/dev/null", &sb), 0);
    assert_true(S_ISCHR(sb.st_mode));
    /* The CLI too (as root this replaced the node with a regular file). */
    run_result r = run_cmd("'%s' demo --html /dev/null", attn_bin());
    assert_int_equal(r.status, 0);
    run_result_free(&r);
    assert_int_equal(stat("/dev/null", &sb), 0);
    assert_true(S_ISCHR(sb.st_mode));
    /* A full device: the write error is reported, not a rename. */
    attn_atomic_file af;
    if (access("/dev/full", W_OK) == 0) {
        assert_int_equal(attn_atomic_open(&af, "/dev/full"), ATTN_OK);
        for (int i = 0; i < 1000; i++) fputs("0123456789abcdef", af.f);
        assert_int_equal(attn_atomic_commit(&af), ATTN_E_IO);
        assert_non_null(strstr(attn_last_error(), "/dev/full: write failed"));
        assert_int_equal(stat("/dev/full", &sb), 0);
        assert_true(S_ISCHR(sb.st_mode));
    }
}

static void test_fifo_is_a_stream(void **state)
{
    (void)state;
    char fifo[600];
    snprintf(fifo, sizeof fifo, "%s/pipe", test_tmpdir());
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* the reader: exits 0 if it read the line */
        FILE *f = fopen(fifo, "r");
        char line[64] = "";
        int ok = f && fgets(line, sizeof line, f) && !strcmp(line, "through the fifo\n");
        _exit(ok ? 0 : 1);
    }
    write_all(fifo, "through the fifo\n");
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    struct stat sb;
    assert_int_equal(lstat(fifo, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    unlink(fifo);
}

static void test_stdout_is_a_stream(void **state)
{
    (void)state;
    /* /dev/stdout is a pipe here: the page arrives on it. */
    run_result r = run_cmd("'%s' demo --html /dev/stdout", attn_bin());
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "<!DOCTYPE html>"));
    assert_non_null(strstr(r.out, "wrote /dev/stdout"));
    run_result_free(&r);
    /* stdout redirected to a file: the same file is appended to in place,
     * not replaced behind the shell's back. */
    char path[600];
    snprintf(path, sizeof path, "%s/stdout.html", test_tmpdir());
    r = run_cmd("'%s' demo --html /dev/stdout > '%s'", attn_bin(), path);
    assert_int_equal(r.status, 0);
    run_result_free(&r);
    char *got = slurp(path, NULL);
    assert_non_null(got);
    assert_non_null(strstr(got, "<!DOCTYPE html>"));
    assert_non_null(strstr(got, "wrote /dev/stdout"));
    free(got);
}

static void test_symlink_is_followed(void **state)
{
    (void)state;
    char target[600], link[600], dangling[600];
    snprintf(target, sizeof target, "%s/target.txt", test_tmpdir());
    snprintf(link, sizeof link, "%s/link.txt", test_tmpdir());
    snprintf(dangling, sizeof dangling, "%s/dangling.txt", test_tmpdir());
    unlink(link), unlink(dangling), unlink(target);
    write_all(target, "old\n");
    assert_int_equal(symlink("target.txt", link), 0);
    write_all(link, "new\n");
    struct stat sb;
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_file_is(target, "new\n", 4);
    /* A link to nothing is not replaced by a file. */
    assert_int_equal(symlink("nowhere/at-all.txt", dangling), 0);
    attn_atomic_file af;
    assert_int_equal(attn_atomic_open(&af, dangling), ATTN_E_IO);
    assert_non_null(strstr(attn_last_error(), "a symbolic link to a missing file"));
    assert_int_equal(lstat(dangling, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    run_result r = run_cmd("'%s' demo --html '%s'", attn_bin(), dangling);
    expect_refused(&r, "a symbolic link to a missing file");
}

/* ---- defect 4: NUL bytes in training text -------------------------------- */

static void test_train_text_with_nul(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/nul.txt", test_tmpdir());
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("first line\nsec\0nd\n", 1, 18, f);
    fclose(f);
    run_result r = run_cmd("'%s' train --data '%s' --out '%s/nulck' --iters 1", attn_bin(), path,
                           test_tmpdir());
    expect_refused(&r, "nul.txt:2:4: unexpected NUL byte");
    r = run_cmd("'%s' train --data /dev/zero --out '%s/zerock' --iters 1", attn_bin(),
                test_tmpdir());
    expect_refused(&r, "/dev/zero:1:1: unexpected NUL byte");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_explain_output_is_input),
        cmocka_unit_test(test_mha_out_is_input),
        cmocka_unit_test(test_train_json_log_is_data),
        cmocka_unit_test(test_device_stays_a_device),
        cmocka_unit_test(test_fifo_is_a_stream),
        cmocka_unit_test(test_stdout_is_a_stream),
        cmocka_unit_test(test_symlink_is_followed),
        cmocka_unit_test(test_train_text_with_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
