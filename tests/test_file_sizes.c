/* test_file_sizes.c - no source file of the project is over 800 lines (the
 * house rule; see the developers' guide), so that it stays true.
 *
 * Walks src/, include/, tools/, tests/ and bench/ of the source tree and
 * counts the lines of every C source or header, script, stylesheet and
 * CMake file (fixtures and other data are not source). The failure names
 * every file over the limit. */
#define _XOPEN_SOURCE 700
#include "test_support.h"

#include <ftw.h>
#include <stdio.h>
#include <string.h>

#define MAX_LINES 800
#define ROOT ATTN_TEST_FIXTURES "/../.."

static const char *const SOURCE_EXT[] = {".c", ".h", ".js", ".css", ".py", ".cmake", ".sh"};

static char over[8192];
static size_t n_files;

static int is_source(const char *path)
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return 0;
    for (size_t i = 0; i < sizeof SOURCE_EXT / sizeof *SOURCE_EXT; i++)
        if (strcmp(dot, SOURCE_EXT[i]) == 0) return 1;
    return 0;
}

static size_t lines_of(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    size_t n = 0;
    int ch, last = '\n';
    while ((ch = getc(f)) != EOF) {
        if (ch == '\n') n++;
        last = ch;
    }
    fclose(f);
    return n + (last != '\n'); /* a last line without newline counts */
}

static int visit(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)ftw;
    if (type != FTW_F || !is_source(path)) return 0;
    n_files++;
    const size_t n = lines_of(path);
    if (n > MAX_LINES) {
        size_t len = strlen(over);
        snprintf(over + len, sizeof over - len, "  %s: %zu lines\n", path, n);
    }
    return 0;
}

static void test_no_file_over_the_limit(void **state)
{
    (void)state;
    static const char *const dirs[] = {"src", "include", "tools", "tests", "bench"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", ROOT, dirs[i]);
        if (nftw(dir, visit, 16, FTW_PHYS) != 0) fail_msg("cannot walk %s", dir);
    }
    assert_true(n_files > 50); /* the walk found the tree */
    if (over[0]) fail_msg("files over %d lines:\n%s", MAX_LINES, over);
}

/* The counter itself: 3 lines, with and without a final newline. */
static void test_line_count(void **state)
{
    (void)state;
    assert_int_equal(lines_of(write_tmp("three.txt", "a\nb\nc\n")), 3);
    assert_int_equal(lines_of(write_tmp("three-noeol.txt", "a\nb\nc")), 3);
    assert_int_equal(lines_of(write_tmp("empty.txt", "")), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_count),
        cmocka_unit_test(test_no_file_over_the_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
