/* test_cli_csv_bad.c - `attn explain` on bad CSV input, run as the real program.
 *
 * Every kind of bad embeddings file must give exit 2, nothing on stdout and
 * exactly one line on stderr that starts "attn explain: FILE:LINE:COL: " at
 * the offending cell (or "FILE: " when the file cannot be read), naming what
 * was found where it says so. Most cases are rows of one table (a CSV text,
 * the position, a fragment of the message); a missing file, a directory, an
 * unreadable file, too many rows and --compare files are checked below it.
 */
#include "cli_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bad input: exit 2, nothing on stdout, exactly one line on stderr that starts
 * "attn explain: FILE:LOC: " (LOC "LINE:COL", or NULL for just "FILE: "), and
 * mentions `mention` when that is not NULL. */
static void expect_bad_input_args(const char *args, const char *file, const char *loc,
                                  const char *mention)
{
    char full[2048], prefix[1024];
    snprintf(full, sizeof full, "explain %s", args);
    if (loc) snprintf(prefix, sizeof prefix, "attn explain: %s:%s: ", file, loc);
    else snprintf(prefix, sizeof prefix, "attn explain: %s: ", file);
    const char *frags[2] = {mention, NULL};
    expect_error_line(full, prefix, frags);
}

/* The same for `attn explain --embeddings FILE`, FILE holding `csv`. */
static void expect_bad_csv(const char *name, const char *csv, const char *loc, const char *mention)
{
    char path[PATH_LEN], args[PATH_LEN + 32];
    tmp_file(path, name, csv);
    snprintf(args, sizeof args, "--embeddings '%s'", path);
    expect_bad_input_args(args, path, loc, mention);
}

static const char good_csv[] = "token,animal,tech,grammar\n"
                               "cat,2.0,0.0,0.2\n"
                               "and,0.0,0.0,1.5\n"
                               "mouse,1.5,1.5,0.2\n";


/* ---- the table ------------------------------------------------------------------- */

typedef struct bad_csv {
    const char *name, *csv;
    const char *loc;     /* LINE:COL of the message */
    const char *mention; /* a fragment of it, or NULL */
} bad_csv;

static const bad_csv BAD_CSV[] = {
    {"empty.csv", "", "1:1", "empty"},
    /* A header without dimensions. */
    {"token-only.csv", "token\n", "1:2", NULL},
    {"token-only-noeol.csv", "token", "1:2", NULL},
    {"token-comma.csv", "token,\n", "1:2", NULL},
    {"first-cell.csv", "word,a,b\nx,1,2\n", "1:1", "'word'"},
    /* Row on line 3 has 2 cells of 3: the missing one is column 3; 4 cells of
     * 3: the extra one is column 4; only a token. */
    {"too-few.csv", "token,a,b\nx,1,2\ny,1\n", "3:3", NULL},
    {"too-many.csv", "token,a,b\nx,1,2\ny,1,2,3\n", "3:4", NULL},
    {"token-cell.csv", "token,a,b\nx\n", "2:2", NULL},
    /* Line 3, dimension 2 = column 3 (column 1 is the token). */
    {"non-numeric.csv", "token,a,b\nx,1,2\ny,1,abc\n", "3:3", "'abc'"},
    {"non-numeric2.csv", "token,a,b\nx,1,2\ny,1,2\nz,1x,2\n", "4:2", "'1x'"},
    {"nan.csv", "token,a,b\nx,1,2\ny,1,nan\n", "3:3", NULL},
    {"nan2.csv", "token,a,b\nx,NaN,2\n", "2:2", NULL},
    {"inf.csv", "token,a,b\nx,1,2\ny,inf,2\n", "3:2", NULL},
    {"inf2.csv", "token,a,b\nx,1,-Infinity\n", "2:3", NULL},
    /* Finite as a double but not as a float32. */
    {"inf3.csv", "token,a,b\nx,1e39,2\n", "2:2", NULL},
    {"empty-cell.csv", "token,a,b\nx,,2\n", "2:2", "empty"},
    {"empty-cell2.csv", "token,a,b\nx,1,2\ny,1,\n", "3:3", "empty"},
    {"dup.csv", "token,a,b,a\nx,1,2,3\n", "1:4", "'a'"},
    /* The first row was expected on line 2. */
    {"no-rows.csv", "token,a,b\n", "2:1", NULL},
    {"unterminated.csv", "token,a,b\nx,1,2\n\"y,1,2\n", "3:1", NULL},
    {"unterminated2.csv", "token,a,b\nx,1,\"2\n", "2:3", NULL},
    /* An error in a CRLF file still names the right line and column; so does
     * one in a file with a BOM (the BOM is not a column). */
    {"crlf-bad.csv", "token,a,b\r\nx,1,2\r\ny,1,abc\r\n", "3:3", "'abc'"},
    {"bom-bad.csv", "\xEF\xBB\xBFtoken,a,b\nx,1,zz\n", "2:3", "'zz'"},
};

static void bad_csv_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof BAD_CSV / sizeof *BAD_CSV; i++)
        expect_bad_csv(BAD_CSV[i].name, BAD_CSV[i].csv, BAD_CSV[i].loc, BAD_CSV[i].mention);
}

/* ---- the rest ----------------------------------------------------------------------- */

static void bad_missing_file(void **state)
{
    (void)state;
    char path[PATH_LEN], args[PATH_LEN + 32];
    snprintf(path, sizeof path, "%s/no-such-file.csv", test_tmpdir());
    snprintf(args, sizeof args, "--embeddings '%s'", path);
    expect_bad_input_args(args, path, NULL, NULL);
}

static void bad_directory(void **state)
{
    (void)state;
    char path[PATH_LEN], args[PATH_LEN + 32];
    tmp_dir(path, "a-directory.csv");
    snprintf(args, sizeof args, "--embeddings '%s'", path);
    expect_bad_input_args(args, path, NULL, NULL);
}

static void bad_unreadable(void **state)
{
    (void)state;
    if (geteuid() == 0) skip(); /* root reads a mode-000 file anyway */
    char path[PATH_LEN], args[PATH_LEN + 32];
    tmp_file(path, "unreadable.csv", good_csv);
    assert_int_equal(chmod(path, 0), 0);
    snprintf(args, sizeof args, "--embeddings '%s'", path);
    expect_bad_input_args(args, path, NULL, NULL);
    chmod(path, 0600);
}

static void bad_too_many_rows(void **state)
{
    (void)state;
    const size_t rows = 4097;
    size_t cap = 64 + rows * 32, n = 0;
    char *csv = malloc(cap);
    assert_non_null(csv);
    n += (size_t)snprintf(csv + n, cap - n, "token,a,b\n");
    for (size_t i = 0; i < rows; i++) n += (size_t)snprintf(csv + n, cap - n, "t%zu,1,2\n", i);
    char path[PATH_LEN], args[PATH_LEN + 32];
    tmp_file(path, "rows-4097.csv", csv);
    free(csv);
    snprintf(args, sizeof args, "--embeddings '%s'", path);
    /* The 4097th row is on line 4098. */
    expect_bad_input_args(args, path, "4098:1", "4096");
}

static void bad_compare_dims(void **state)
{
    (void)state;
    char a[PATH_LEN], b[PATH_LEN], args[2 * PATH_LEN + 64];
    tmp_file(a, "good.csv", good_csv);
    /* Different name in column 3. */
    tmp_file(b, "renamed.csv", "token,animal,colour,grammar\nmouse,1,2,3\n");
    snprintf(args, sizeof args, "--embeddings '%s' --compare '%s'", a, b);
    expect_bad_input_args(args, b, "1:3", NULL);
    /* Fewer dimensions: column 4 is the first one missing. */
    tmp_file(b, "fewer.csv", "token,animal,tech\nmouse,1,2\n");
    snprintf(args, sizeof args, "--embeddings '%s' --compare '%s'", a, b);
    expect_bad_input_args(args, b, "1:4", NULL);
    /* A bad --compare file is reported like a bad --embeddings file. */
    tmp_file(b, "bad-compare.csv", "token,animal,tech,grammar\nmouse,1,x,3\n");
    snprintf(args, sizeof args, "--embeddings '%s' --compare '%s'", a, b);
    expect_bad_input_args(args, b, "2:3", "'x'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_csv_table),    cmocka_unit_test(bad_missing_file),
        cmocka_unit_test(bad_directory),    cmocka_unit_test(bad_unreadable),
        cmocka_unit_test(bad_too_many_rows), cmocka_unit_test(bad_compare_dims),
    };
    return cmocka_run_group_tests(tests, NULL, NULL); /* test_support removes the tmpdir */
}
