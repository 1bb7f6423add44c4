/* test_export_csv.c - one CSV per matrix, labels included, all or nothing;
 * and the CLI's checks of every output path before any work. */
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attn/attn.h"
#include "attn/export.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *s = calloc(1, 1 << 20);
    size_t n = s ? fread(s, 1, (1 << 20) - 1, f) : 0;
    (void)n;
    fclose(f);
    return s;
}

static void test_csv_files_and_values(void **state)
{
    (void)state;
    demo_doc d;
    build_demo(&d);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/csv-out", test_tmpdir());
    assert_int_equal(attn_export_csv(&d.doc, dir), ATTN_OK); /* creates the directory */
    static const char *const names[] = {"embeddings", "scores", "scaled", "attention", "output"};
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
            char path[700];
            snprintf(path, sizeof path, "%s/s%d-%s.csv", dir, s + 1, names[i]);
            char *text = slurp(path);
            if (!text) fail_msg("missing %s", path);
            free(text);
        }
    /* The attention file: header of key tokens, rows labelled, values as recorded. */
    char path[700];
    snprintf(path, sizeof path, "%s/s1-attention.csv", dir);
    char *text = slurp(path);
    assert_non_null(text);
    assert_non_null(strstr(text, "query,cat,and,mouse,are,friends\n"));
    const attn_tensor *a = attn_trace_get(d.t[0], "attention");
    char *line = strstr(text, "\nmouse,");
    assert_non_null(line);
    float v[5];
    assert_int_equal(sscanf(line + 7, "%g,%g,%g,%g,%g", &v[0], &v[1], &v[2], &v[3], &v[4]), 5);
    for (int j = 0; j < 5; j++) assert_true(v[j] == a->data[2 * 5 + j]); /* exact: %.9g */
    free(text);
    release_demo(&d);
}

static void test_csv_bad_paths_leave_nothing(void **state)
{
    (void)state;
    demo_doc d;
    build_demo(&d);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/no/such/dir", test_tmpdir());
    assert_int_equal(attn_export_csv(&d.doc, dir), ATTN_E_IO);
    assert_non_null(strstr(attn_last_error(), "does not exist"));
    /* A failure midway (a target name taken by a directory) removes what was written. */
    snprintf(dir, sizeof dir, "%s/half", test_tmpdir());
    assert_int_equal(mkdir(dir, 0777), 0);
    char blocker[700];
    snprintf(blocker, sizeof blocker, "%s/s2-scores.csv", dir);
    assert_int_equal(mkdir(blocker, 0777), 0);
    assert_int_not_equal(attn_export_csv(&d.doc, dir), ATTN_OK);
    run_result r = run_cmd("ls -A '%s'", dir);
    assert_string_equal(r.out, "s2-scores.csv\n"); /* only what was there before */
    run_result_free(&r);
    release_demo(&d);
}

/* Every output path is checked before any work; nothing goes to stdout. */
static void test_cli_checks_paths_first(void **state)
{
    (void)state;
    static const char *const opts[] = {"--html /no/such/dir/x.html", "--xlsx /no/such/dir/x.xlsx",
                                       "--svg /no/such/dir/svg", "--csv /no/such/dir/csv"};
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) {
        run_result r = run_cmd("'%s' demo %s", attn_bin(), opts[i]);
        if (r.status != 2 || r.out[0] || count_lines(r.err) != 1 || !strstr(r.err, "/no/such/dir"))
            fail_msg("demo %s: status %d, stdout '%s', stderr '%s'", opts[i], r.status, r.out, r.err);
        run_result_free(&r);
    }
    const char *csv = write_tmp("x.csv", "token,a,b\nx,1,0\ny,0,1\n");
    run_result r = run_cmd("'%s' explain --embeddings '%s' --csv /no/such/dir/out", attn_bin(), csv);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.out, "");
    run_result_free(&r);
    /* And a good run lists what it wrote. */
    r = run_cmd("cd '%s' && '%s' explain --embeddings '%s' --csv out-csv && ls out-csv", test_tmpdir(),
                attn_bin(), csv);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "wrote out-csv/"));
    assert_non_null(strstr(r.out, "attention.csv"));
    run_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_files_and_values),
        cmocka_unit_test(test_csv_bad_paths_leave_nothing),
        cmocka_unit_test(test_cli_checks_paths_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
