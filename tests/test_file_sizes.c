/* test_file_sizes.c - no source file of the project is over 800 lines and
 * no function of src/ or tools/ over 100 (the house rules; see the
 * developers' guide), so that they stay true.
 *
 * Walks src/, include/, tools/, tests/ and bench/ of the source tree and
 * counts the lines of every C source or header, script, stylesheet and
 * CMake file (fixtures and other data are not source). The failure names
 * every file over the limit. The C files of src/ and tools/ are also
 * scanned for function bodies (braces counted outside comments, strings,
 * character constants and preprocessor lines; a top-level brace after a
 * parenthesis and no '=' opens a function): a function of more than
 * MAX_FUNC_LINES lines, from its opening to its closing brace, fails unless
 * LONG_FUNCS names it with a reason. */
#define _XOPEN_SOURCE 700
#include "test_support.h"

#include <ctype.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINES 800
#define MAX_FUNC_LINES 100

/* Functions allowed over MAX_FUNC_LINES: "file", "function", why. Keep it empty or tiny. */
static const struct {
    const char *file, *func, *reason;
} LONG_FUNCS[] = {
    {NULL, NULL, NULL}, /* none */
};
#define ROOT ATTN_TEST_FIXTURES "/../.."

static const char *const SOURCE_EXT[] = {".c", ".h", ".js", ".css", ".py", ".cmake", ".sh"};

static char over[8192];
static char long_funcs[8192];
static size_t n_files, n_funcs;

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

/* ---- function lengths ------------------------------------------------------ */

typedef void (*func_fn)(const char *name, size_t lines, void *user);

/* Skips a comment, string or character constant starting at s[i] (counting
 * its newlines into *line); returns the index after it, or i when none starts. */
static size_t skip_lexeme(const char *s, size_t i, size_t *line)
{
    if (s[i] == '/' && s[i + 1] == '*') {
        const char *e = strstr(s + i + 2, "*/");
        size_t j = e ? (size_t)(e - s) + 2 : strlen(s);
        for (size_t k = i; k < j; k++) *line += s[k] == '\n';
        return j;
    }
    if (s[i] == '/' && s[i + 1] == '/') {
        while (s[i] && s[i] != '\n') i++;
        return i;
    }
    if (s[i] == '"' || s[i] == '\'') {
        const char q = s[i++];
        while (s[i] && s[i] != q && s[i] != '\n') i += (s[i] == '\\' && s[i + 1]) ? 2 : 1;
        return s[i] == q ? i + 1 : i;
    }
    return i;
}

/* The name of the function whose head (the text at file level since the last
 * ';' or '}') is `head`, or "" when the brace opens no function (data, struct). */
static void func_name(const char *head, char *name, size_t n)
{
    name[0] = 0;
    const char *paren = strchr(head, '(');
    if (!paren || memchr(head, '=', (size_t)(paren - head))) return;
    const char *e = paren;
    while (e > head && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n')) e--;
    const char *b = e;
    while (b > head && (isalnum((unsigned char)b[-1]) || b[-1] == '_')) b--;
    snprintf(name, n, "%.*s", (int)(e - b), b);
}

/* Calls fn for every function of the C text s with its length in lines. */
static void scan_functions(const char *s, func_fn fn, void *user)
{
    size_t line = 1, start = 0, depth = 0, nh = 0;
    char head[1024] = "", opened[1024] = "";
    int bol = 1;
    for (size_t i = 0; s[i];) {
        if (bol && (s[i] == ' ' || s[i] == '\t')) { i++; continue; }
        if (bol && s[i] == '#') { /* a preprocessor line, with its continuations */
            while (s[i] && !(s[i] == '\n' && s[i - 1] != '\\')) line += s[i++] == '\n';
            continue;
        }
        bol = 0;
        size_t j = skip_lexeme(s, i, &line);
        if (j != i) { i = j; continue; }
        const char c = s[i++];
        if (c == '\n') line++, bol = 1;
        if (c == '{' && depth++ == 0) {
            start = line;
            memcpy(opened, head, sizeof head);
        } else if (c == '}' && depth > 0 && --depth == 0) {
            char name[128];
            func_name(opened, name, sizeof name);
            if (name[0]) fn(name, line - start + 1, user);
            nh = 0, head[0] = 0;
        } else if (depth == 0) {
            if (c == ';') nh = 0, head[0] = 0;
            else if (nh + 1 < sizeof head) head[nh++] = c, head[nh] = 0;
        }
    }
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    char *text = NULL;
    size_t n = 0, cap = 0;
    int ch;
    while ((ch = getc(f)) != EOF) {
        if (n + 2 > cap) {
            cap = cap ? 2 * cap : 4096;
            text = realloc(text, cap);
            assert_non_null(text);
        }
        text[n++] = (char)ch;
    }
    fclose(f);
    if (!text) text = calloc(1, 1);
    assert_non_null(text);
    text[n] = 0;
    return text;
}

static int long_func_allowed(const char *path, const char *func)
{
    for (size_t i = 0; i < sizeof LONG_FUNCS / sizeof *LONG_FUNCS; i++) {
        if (!LONG_FUNCS[i].file) continue;
        const size_t lp = strlen(path), lf = strlen(LONG_FUNCS[i].file);
        if (lp >= lf && strcmp(path + lp - lf, LONG_FUNCS[i].file) == 0 &&
            strcmp(func, LONG_FUNCS[i].func) == 0)
            return 1;
    }
    return 0;
}

static void check_func(const char *name, size_t lines, void *user)
{
    const char *path = user;
    n_funcs++;
    if (lines > MAX_FUNC_LINES && !long_func_allowed(path, name)) {
        size_t len = strlen(long_funcs);
        snprintf(long_funcs + len, sizeof long_funcs - len, "  %s: %s, %zu lines\n", path, name,
                 lines);
    }
}

static int visit_c(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)ftw;
    const size_t n = strlen(path);
    if (type != FTW_F || n < 2 || strcmp(path + n - 2, ".c") != 0) return 0;
    char *text = read_text(path);
    scan_functions(text, check_func, (void *)path);
    free(text);
    return 0;
}

static void test_no_function_over_the_limit(void **state)
{
    (void)state;
    static const char *const dirs[] = {"src", "tools"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", ROOT, dirs[i]);
        if (nftw(dir, visit_c, 16, FTW_PHYS) != 0) fail_msg("cannot walk %s", dir);
    }
    assert_true(n_funcs > 500); /* the scan found the functions */
    if (long_funcs[0])
        fail_msg("functions over %d lines (split them, or list them with a reason):\n%s",
                 MAX_FUNC_LINES, long_funcs);
}

typedef struct found {
    char names[512];
    size_t lines[8], n;
} found;

static void collect(const char *name, size_t lines, void *user)
{
    found *f = user;
    size_t len = strlen(f->names);
    snprintf(f->names + len, sizeof f->names - len, "%s%s", len ? " " : "", name);
    if (f->n < 8) f->lines[f->n++] = lines;
}

/* The scanner on a hand-made file: functions found with their lengths;
 * braces in comments, strings, character constants, macros and data are not
 * functions. */
static void test_function_scan(void **state)
{
    (void)state;
    const char *text = "#include <stdio.h>\n"
                       "#define OPEN {\n"
                       "static const int table[] = {1, 2,\n"
                       "  3};\n"
                       "struct s { int a; };\n"
                       "/* void fake(void) { } */\n"
                       "static int one(int x) { return x; }\n"
                       "int\n"
                       "two(const char *s)\n"
                       "{\n"
                       "    if (s[0] == '{') puts(\"}}\"); // }\n"
                       "    { int y = 0; (void)y; }\n"
                       "    return 0;\n"
                       "}\n";
    found f = {.names = ""};
    scan_functions(text, collect, &f);
    assert_string_equal(f.names, "one two");
    assert_int_equal(f.n, 2);
    assert_int_equal(f.lines[0], 1);
    assert_int_equal(f.lines[1], 5);
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
        cmocka_unit_test(test_function_scan),
        cmocka_unit_test(test_no_function_over_the_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
