/* test_cli.c - the attn command-line tool, run as a real program.
 *
 * Every test runs the binary named by ATTN_BIN (set by ctest) through
 * run_cmd, and checks its exit status, stdout and stderr: the walkthrough of
 * `attn demo`, the JSON documents of `demo --json` and `explain --json`, the
 * scaling options, --compare, the CSV details that must be accepted, and
 * usage errors (bad CSV input: test_cli_csv_bad.c). CSV inputs are written to
 * the test's temporary directory with write_tmp.
 */
#include "cli_support.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------------- */

/* The object has exactly the keys `keys` (in any order). */
static void expect_keys(const char *what, const cJSON *obj, const char *const *keys, size_t n)
{
    if (!cJSON_IsObject(obj)) fail_msg("%s: not a JSON object", what);
    size_t count = (size_t)cJSON_GetArraySize(obj);
    for (size_t i = 0; i < n; i++)
        if (!cJSON_GetObjectItemCaseSensitive(obj, keys[i]))
            fail_msg("%s: no key \"%s\"", what, keys[i]);
    if (count != n) {
        char got[1024] = "";
        const cJSON *it;
        cJSON_ArrayForEach(it, obj)
        {
            size_t len = strlen(got);
            snprintf(got + len, sizeof got - len, "%s\"%s\"", len ? ", " : "", it->string);
        }
        fail_msg("%s: expected exactly %zu keys, got %zu: %s", what, n, count, got);
    }
}

/* An array of strings, checked; returns its length. */
static size_t string_array(const char *what, const cJSON *a)
{
    if (!cJSON_IsArray(a)) fail_msg("%s: not an array", what);
    const cJSON *it;
    cJSON_ArrayForEach(it, a)
    {
        if (!cJSON_IsString(it)) fail_msg("%s: an element is not a string", what);
    }
    return (size_t)cJSON_GetArraySize(a);
}

static long index_of(const cJSON *strings, const char *s)
{
    long i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, strings)
    {
        if (cJSON_IsString(it) && strcmp(it->valuestring, s) == 0) return i;
        i++;
    }
    return -1;
}


static int close_enough(double a, double b, double rtol)
{
    return fabs(a - b) <= rtol * fmax(1.0, fmax(fabs(a), fabs(b)));
}

/* Every row of an n x n attention matrix sums to 1 and is in [0, 1]. */
static void expect_stochastic_rows(const char *what, const double *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double sum = 0;
        for (size_t j = 0; j < n; j++) {
            double x = a[i * n + j];
            if (!(x >= 0 && x <= 1)) fail_msg("%s[%zu][%zu] = %g is not in [0, 1]", what, i, j, x);
            sum += x;
        }
        if (fabs(sum - 1.0) > 1e-5) fail_msg("%s: row %zu sums to %.9g, not 1", what, i, sum);
    }
}

/* Checks one walkthrough object (keys text, tokens, embeddings, scores,
 * scaled, attention, output, plus "dims" when `extra_dims`): shapes and
 * softmax rows. Returns the number of tokens. */
static size_t check_walkthrough(const char *what, const cJSON *w, size_t n_dims, int extra_dims)
{
    static const char *const keys[] = {"text",   "tokens",    "embeddings", "scores",
                                       "scaled", "attention", "output",     "dims"};
    expect_keys(what, w, keys, extra_dims ? 8 : 7);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(w, "text");
    if (!cJSON_IsString(text)) fail_msg("%s.text: not a string", what);
    size_t n = string_array(what, cJSON_GetObjectItemCaseSensitive(w, "tokens"));
    assert_true(n > 0);
    double *emb = matrix_of(what, w, "embeddings", n, n_dims);
    double *scores = matrix_of(what, w, "scores", n, n);
    double *scaled = matrix_of(what, w, "scaled", n, n);
    double *att = matrix_of(what, w, "attention", n, n);
    double *out = matrix_of(what, w, "output", n, n_dims);
    /* Scores = X Xᵀ, recomputed from the embeddings. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double dot = 0;
            for (size_t k = 0; k < n_dims; k++) dot += emb[i * n_dims + k] * emb[j * n_dims + k];
            if (!close_enough(scores[i * n + j], dot, 1e-5))
                fail_msg("%s.scores[%zu][%zu] = %.9g, but X Xᵀ gives %.9g", what, i, j,
                         scores[i * n + j], dot);
        }
    expect_stochastic_rows(what, att, n);
    free(emb);
    free(scores);
    free(scaled);
    free(att);
    free(out);
    return n;
}

/* ---- attn demo ----------------------------------------------------------------- */

static void demo_text(void **state)
{
    (void)state;
    char *out = run_ok("demo");
    expect_lacks("attn demo (piped)", out, "\x1b[");
    expect_contains("attn demo", out, "\"cat and mouse are friends\"");
    expect_contains("attn demo", out, "\"keyboard and mouse are useful\"");
    /* The four steps, once per sentence. */
    static const char *const steps[] = {"Scores", "Scaled", "Attention", "Output"};
    for (size_t i = 0; i < 4; i++)
        if (count_substr(out, steps[i]) < 2)
            fail_msg("attn demo: expected the step title \"%s\" for both sentences, got:\n%s",
                     steps[i], out);
    expect_contains("attn demo", out, "Step 1. Scores");
    expect_contains("attn demo", out, "Step 2. Scaled");
    expect_contains("attn demo", out, "Step 3. Attention");
    expect_contains("attn demo", out, "Step 4. Output");
    expect_contains("attn demo", out,
                    "In \"cat and mouse are friends\" the output of \"mouse\" is mostly animal.");
    expect_contains("attn demo", out,
                    "In \"keyboard and mouse are useful\" the output of \"mouse\" is mostly tech.");
    free(out);
}

static void demo_color(void **state)
{
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "NO_COLOR=1 '%s' demo --color auto", attn_bin());
    run_result r = run_cmd("%s", cmd);
    run_status(cmd, &r, 0);
    expect_empty(cmd, "stderr", r.err);
    expect_lacks(cmd, r.out, "\x1b[");
    expect_contains(cmd, r.out, "mostly animal");
    run_result_free(&r);

    char *out = run_ok("demo --color always");
    expect_contains("attn demo --color always", out, "\x1b[");
    expect_contains("attn demo --color always", out, "mostly tech");
    free(out);

    out = run_ok("demo --color never");
    expect_lacks("attn demo --color never", out, "\x1b[");
    free(out);

    expect_usage_text("demo --color bogus");
}

static void demo_json(void **state)
{
    (void)state;
    cJSON *root = run_json("demo --json");
    static const char *const top[] = {"dims", "sentences"};
    expect_keys("demo --json", root, top, 2);
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(root, "dims");
    size_t nd = string_array("demo --json dims", dims);
    long animal = index_of(dims, "animal"), tech = index_of(dims, "tech");
    if (animal < 0 || tech < 0) fail_msg("demo --json: dims lack \"animal\" or \"tech\"");
    const cJSON *sentences = cJSON_GetObjectItemCaseSensitive(root, "sentences");
    assert_true(cJSON_IsArray(sentences));
    assert_int_equal(cJSON_GetArraySize(sentences), 2);

    static const char *const texts[] = {"cat and mouse are friends",
                                        "keyboard and mouse are useful"};
    for (int s = 0; s < 2; s++) {
        char what[64];
        snprintf(what, sizeof what, "demo --json sentences[%d]", s);
        const cJSON *w = cJSON_GetArrayItem(sentences, s);
        size_t n = check_walkthrough(what, w, nd, 0);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(w, "text")->valuestring, texts[s]);
        assert_int_equal(n, 5);
        const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(w, "tokens");
        long mouse = index_of(tokens, "mouse");
        if (mouse < 0) fail_msg("%s: no token \"mouse\"", what);
        double *out = matrix_of(what, w, "output", n, nd);
        double a = out[(size_t)mouse * nd + (size_t)animal], t = out[(size_t)mouse * nd + (size_t)tech];
        free(out);
        if (s == 0 && !(a > t))
            fail_msg("%s: mouse's output should be more animal than tech, got animal %g, tech %g",
                     what, a, t);
        if (s == 1 && !(t > a))
            fail_msg("%s: mouse's output should be more tech than animal, got animal %g, tech %g",
                     what, a, t);
    }
    cJSON_Delete(root);
}

/* ---- attn explain --------------------------------------------------------------- */

static const char good_csv[] = "token,animal,tech,grammar\n"
                               "cat,2.0,0.0,0.2\n"
                               "and,0.0,0.0,1.5\n"
                               "mouse,1.5,1.5,0.2\n";

static const char other_csv[] = "token,animal,tech,grammar\n"
                                "keyboard,0.0,2.0,0.2\n"
                                "mouse,1.5,1.5,0.2\n";

static void explain_text(void **state)
{
    (void)state;
    char path[PATH_LEN], args[PATH_LEN + 64];
    tmp_file(path, "good.csv", good_csv);
    snprintf(args, sizeof args, "explain --embeddings '%s'", path);
    char *out = run_ok(args);
    expect_lacks(args, out, "\x1b[");
    expect_contains(args, out, "cat");
    expect_contains(args, out, "mouse");
    expect_contains(args, out, "Step 1. Scores");
    expect_contains(args, out, "Step 4. Output");
    free(out);
}

/* explain --json with extra options: the parsed document and its matrices. */
typedef struct explained {
    cJSON *root;
    size_t n, d;
    double *scores, *scaled, *att;
} explained;

static explained explain_json(const char *csv_path, const char *opts)
{
    char args[PATH_LEN + 128];
    snprintf(args, sizeof args, "explain --embeddings '%s' --json %s", csv_path, opts);
    explained e = {0};
    e.root = run_json(args);
    e.d = string_array(args, cJSON_GetObjectItemCaseSensitive(e.root, "dims"));
    e.n = check_walkthrough(args, e.root, e.d, 1);
    e.scores = matrix_of(args, e.root, "scores", e.n, e.n);
    e.scaled = matrix_of(args, e.root, "scaled", e.n, e.n);
    e.att = matrix_of(args, e.root, "attention", e.n, e.n);
    return e;
}

static void explained_free(explained *e)
{
    cJSON_Delete(e->root);
    free(e->scores);
    free(e->scaled);
    free(e->att);
}

static void explain_json_default(void **state)
{
    (void)state;
    char path[PATH_LEN];
    tmp_file(path, "good.csv", good_csv);
    explained e = explain_json(path, "");
    assert_int_equal(e.n, 3);
    assert_int_equal(e.d, 3);
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(e.root, "tokens");
    assert_int_equal(index_of(tokens, "cat"), 0);
    assert_int_equal(index_of(tokens, "and"), 1);
    assert_int_equal(index_of(tokens, "mouse"), 2);
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(e.root, "dims");
    assert_int_equal(index_of(dims, "animal"), 0);
    assert_int_equal(index_of(dims, "tech"), 1);
    assert_int_equal(index_of(dims, "grammar"), 2);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e.root, "text")->valuestring,
                        "cat and mouse");
    /* Default scaling: 1/sqrt(d). */
    for (size_t i = 0; i < e.n * e.n; i++)
        if (!close_enough(e.scaled[i], e.scores[i] / sqrt(3.0), 1e-5))
            fail_msg("scaled[%zu] = %.9g, expected scores/sqrt(3) = %.9g", i, e.scaled[i],
                     e.scores[i] / sqrt(3.0));
    explained_free(&e);
}

static void explain_scaling_options(void **state)
{
    (void)state;
    char path[PATH_LEN];
    tmp_file(path, "good.csv", good_csv);
    explained def = explain_json(path, "");

    explained e = explain_json(path, "--no-scale");
    for (size_t i = 0; i < e.n * e.n; i++)
        if (!close_enough(e.scaled[i], e.scores[i], 1e-7))
            fail_msg("--no-scale: scaled[%zu] = %.9g, expected scores = %.9g", i, e.scaled[i],
                     e.scores[i]);
    explained_free(&e);

    e = explain_json(path, "--scale 0.25");
    for (size_t i = 0; i < e.n * e.n; i++)
        if (!close_enough(e.scaled[i], 0.25 * e.scores[i], 1e-6))
            fail_msg("--scale 0.25: scaled[%zu] = %.9g, expected 0.25 * %.9g", i, e.scaled[i],
                     e.scores[i]);
    explained_free(&e);

    e = explain_json(path, "--temperature 2");
    assert_int_equal(e.n, def.n);
    for (size_t i = 0; i < e.n * e.n; i++)
        if (!close_enough(e.scaled[i], def.scaled[i] / 2, 1e-5))
            fail_msg("--temperature 2: scaled[%zu] = %.9g, expected half of %.9g", i, e.scaled[i],
                     def.scaled[i]);
    /* A higher temperature flattens the attention: the largest weight drops. */
    for (size_t i = 0; i < e.n; i++) {
        double mx = 0, mx_def = 0;
        for (size_t j = 0; j < e.n; j++) {
            mx = fmax(mx, e.att[i * e.n + j]);
            mx_def = fmax(mx_def, def.att[i * e.n + j]);
        }
        if (!(mx <= mx_def + 1e-7))
            fail_msg("--temperature 2: row %zu's largest weight grew from %g to %g", i, mx_def, mx);
    }
    explained_free(&e);

    e = explain_json(path, "--causal");
    for (size_t i = 0; i < e.n; i++)
        for (size_t j = i + 1; j < e.n; j++)
            if (e.att[i * e.n + j] != 0.0)
                fail_msg("--causal: attention[%zu][%zu] = %g, expected 0", i, j,
                         e.att[i * e.n + j]);
    /* The first token can only attend to itself. */
    assert_true(fabs(e.att[0] - 1.0) <= 1e-6);
    explained_free(&e);
    explained_free(&def);
}

static void explain_compare_text(void **state)
{
    (void)state;
    char a[PATH_LEN], b[PATH_LEN], args[2 * PATH_LEN + 64];
    tmp_file(a, "good.csv", good_csv);
    tmp_file(b, "other.csv", other_csv);
    snprintf(args, sizeof args, "explain --embeddings '%s' --compare '%s'", a, b);
    char *out = run_ok(args);
    expect_contains(args, out, a);
    expect_contains(args, out, b);
    expect_contains(args, out, "keyboard"); /* the second input's own walkthrough */
    expect_contains(args, out, "cat");
    expect_contains(args, out, "\"mouse\" in both");
    expect_lacks(args, out, "\"keyboard\" in both");
    expect_lacks(args, out, "\"cat\" in both");
    if (count_substr(out, "Step 4. Output") != 2)
        fail_msg("%s: expected two walkthroughs, got:\n%s", args, out);
    free(out);

    /* No shared token: said so. */
    tmp_file(b, "other2.csv", "token,animal,tech,grammar\nkeyboard,0,2,0.2\n");
    snprintf(args, sizeof args, "explain --embeddings '%s' --compare '%s'", a, b);
    out = run_ok(args);
    expect_contains(args, out, "No token appears in both inputs.");
    free(out);
}

static void explain_compare_json(void **state)
{
    (void)state;
    char a[PATH_LEN], b[PATH_LEN], args[2 * PATH_LEN + 64];
    tmp_file(a, "good.csv", good_csv);
    tmp_file(b, "other.csv", other_csv);
    snprintf(args, sizeof args, "explain --embeddings '%s' --compare '%s' --json", a, b);
    cJSON *root = run_json(args);
    static const char *const keys[] = {"dims",   "text",      "tokens", "embeddings", "scores",
                                       "scaled", "attention", "output", "compare",
                                       "shared_tokens"};
    expect_keys(args, root, keys, 10);
    size_t nd = string_array(args, cJSON_GetObjectItemCaseSensitive(root, "dims"));
    assert_int_equal(nd, 3);
    const cJSON *cmp = cJSON_GetObjectItemCaseSensitive(root, "compare");
    size_t nb = check_walkthrough("compare", cmp, nd, 0);
    assert_int_equal(nb, 2);
    assert_int_equal(index_of(cJSON_GetObjectItemCaseSensitive(cmp, "tokens"), "keyboard"), 0);

    const cJSON *shared = cJSON_GetObjectItemCaseSensitive(root, "shared_tokens");
    assert_true(cJSON_IsArray(shared));
    assert_int_equal(cJSON_GetArraySize(shared), 1);
    const cJSON *item = cJSON_GetArrayItem(shared, 0);
    const cJSON *token = cJSON_GetObjectItemCaseSensitive(item, "token");
    assert_true(cJSON_IsString(token));
    assert_string_equal(token->valuestring, "mouse");
    /* Its outputs are the mouse rows of both walkthroughs. */
    double *oa = matrix_of("output", root, "output", 3, nd);
    double *ob = matrix_of("compare.output", cmp, "output", nb, nd);
    const cJSON *va = cJSON_GetObjectItemCaseSensitive(item, "output");
    const cJSON *vb = cJSON_GetObjectItemCaseSensitive(item, "compare_output");
    assert_int_equal(cJSON_GetArraySize(va), (int)nd);
    assert_int_equal(cJSON_GetArraySize(vb), (int)nd);
    for (size_t k = 0; k < nd; k++) {
        double x = cJSON_GetArrayItem(va, (int)k)->valuedouble;
        double y = cJSON_GetArrayItem(vb, (int)k)->valuedouble;
        if (x != oa[2 * nd + k] || y != ob[1 * nd + k])
            fail_msg("shared_tokens[0]: output %zu is %g / %g, the walkthroughs say %g / %g", k, x,
                     y, oa[2 * nd + k], ob[1 * nd + k]);
    }
    free(oa);
    free(ob);
    cJSON_Delete(root);
}

/* ---- usage ------------------------------------------------------------------------ */

static void usage_errors(void **state)
{
    (void)state;
    char path[PATH_LEN], args[PATH_LEN + 64];
    tmp_file(path, "good.csv", good_csv);
    expect_usage_text("explain --bogus");
    expect_usage_text("demo --bogus");
    expect_usage_text("explain --embeddings");
    expect_usage_text("explain");
    expect_usage_text("explain --json");
    static const char *const bad[] = {"--temperature 0",   "--temperature -1", "--temperature abc",
                                      "--precision 10",    "--precision -1",   "--precision abc",
                                      "--scale x",         "--color bogus"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(args, sizeof args, "explain --embeddings '%s' %s", path, bad[i]);
        expect_usage_text(args);
    }
    expect_usage_text("demo --temperature 0");
    expect_usage_text("demo --precision 10");
    expect_usage_text("demo unexpected");
}

static void unknown_command(void **state)
{
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' frobnicate", attn_bin());
    run_result r = run_cmd("%s", cmd);
    run_status(cmd, &r, 2);
    expect_empty(cmd, "stdout", r.out);
    expect_contains(cmd, r.err, "frobnicate");
    run_result_free(&r);

    snprintf(cmd, sizeof cmd, "'%s'", attn_bin());
    r = run_cmd("%s", cmd);
    run_status(cmd, &r, 2);
    expect_empty(cmd, "stdout", r.out);
    expect_contains(cmd, r.err, "usage: attn");
    run_result_free(&r);
}

static void help(void **state)
{
    (void)state;
    char *out = run_ok("--help");
    expect_contains("attn --help", out, "usage: attn");
    expect_contains("attn --help", out, "demo");
    expect_contains("attn --help", out, "explain");
    free(out);
    out = run_ok("demo --help");
    expect_contains("attn demo --help", out, "usage: attn demo");
    free(out);
    out = run_ok("explain --help");
    expect_contains("attn explain --help", out, "usage: attn explain");
    expect_contains("attn explain --help", out, "--embeddings");
    free(out);
    out = run_ok("-h");
    expect_contains("attn -h", out, "usage: attn");
    free(out);
}

/* ---- CSV details that must be accepted ---------------------------------------- */

/* Runs explain --json on `csv` and checks tokens, dims and the first
 * embeddings row. */
static void expect_accepted(const char *name, const char *csv, const char *const *tokens,
                            size_t n, const char *const *dims, size_t d, const double *row0)
{
    char path[PATH_LEN];
    tmp_file(path, name, csv);
    explained e = explain_json(path, "");
    if (e.n != n || e.d != d)
        fail_msg("%s: expected %zu tokens x %zu dims, got %zu x %zu", name, n, d, e.n, e.d);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(e.root, "tokens");
    for (size_t i = 0; i < n; i++) {
        const char *got = cJSON_GetArrayItem(t, (int)i)->valuestring;
        if (strcmp(got, tokens[i]) != 0)
            fail_msg("%s: token %zu is \"%s\", expected \"%s\"", name, i, got, tokens[i]);
    }
    const cJSON *dd = cJSON_GetObjectItemCaseSensitive(e.root, "dims");
    for (size_t j = 0; j < d; j++) {
        const char *got = cJSON_GetArrayItem(dd, (int)j)->valuestring;
        if (strcmp(got, dims[j]) != 0)
            fail_msg("%s: dimension %zu is \"%s\", expected \"%s\"", name, j, got, dims[j]);
    }
    double *emb = matrix_of(name, e.root, "embeddings", n, d);
    for (size_t j = 0; j < d; j++)
        if (emb[j] != row0[j])
            fail_msg("%s: embeddings[0][%zu] = %g, expected %g", name, j, emb[j], row0[j]);
    free(emb);
    explained_free(&e);
}

static void csv_accepted(void **state)
{
    (void)state;
    static const char *const ab[] = {"a", "b"};
    static const double row0[] = {1, 2};
    {
        static const char *const tokens[] = {"a,b", "c"};
        expect_accepted("quoted.csv", "token,a,b\n\"a,b\",1,2\nc,3,4\n", tokens, 2, ab, 2, row0);
    }
    {
        static const char *const tokens[] = {"say \"hi\"", "c"};
        expect_accepted("quoted-quote.csv", "token,a,b\n\"say \"\"hi\"\"\",1,2\nc,3,4\n", tokens,
                        2, ab, 2, row0);
    }
    {
        static const char *const tokens[] = {"x", "y"};
        expect_accepted("crlf.csv", "token,a,b\r\nx,1,2\r\ny,3,4\r\n", tokens, 2, ab, 2, row0);
        expect_accepted("bom.csv", "\xEF\xBB\xBFtoken,a,b\nx,1,2\ny,3,4\n", tokens, 2, ab, 2,
                        row0);
        expect_accepted("blank-lines.csv", "token,a,b\n\nx,1,2\n\ny,3,4\n\n", tokens, 2, ab, 2,
                        row0);
        expect_accepted("no-final-eol.csv", "token,a,b\nx,1,2\ny,3,4", tokens, 2, ab, 2, row0);
    }
    {
        static const char *const tokens[] = {"a,b", "y"};
        expect_accepted("all.csv", "\xEF\xBB\xBFtoken,a,b\r\n\"a,b\",1,2\r\ny,3,4\r\n", tokens, 2,
                        ab, 2, row0);
    }
    /* (Errors in CRLF and BOM files: test_cli_csv_bad.c.) */
}

/* ---- main ------------------------------------------------------------------------ */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(demo_text),
        cmocka_unit_test(demo_color),
        cmocka_unit_test(demo_json),
        cmocka_unit_test(explain_text),
        cmocka_unit_test(explain_json_default),
        cmocka_unit_test(explain_scaling_options),
        cmocka_unit_test(explain_compare_text),
        cmocka_unit_test(explain_compare_json),
        cmocka_unit_test(usage_errors),
        cmocka_unit_test(unknown_command),
        cmocka_unit_test(help),
        cmocka_unit_test(csv_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL); /* test_support removes the tmpdir */
}
