/* test_plot.c - the pictures of training (attn/plot.h): curves.svg of both
 * trainers, the classifier's confusion heatmap and `attn plot`, each checked
 * to parse as XML (xmllint), to render in headless Chromium, and to carry the
 * same numbers as the JSON log it draws. */
#include "test_support.h"

#include "browser.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GPT_TINY "--layers 1 --heads 2 --width 16 --context 16 --batch 4 --eval-every 5 --eval-iters 1 --warmup 2"
#define CLS_TINY "--layers 1 --heads 2 --width 16 --context 12 --batch 16 --warmup 5 --min-count 1 --patience 0"

static char *slurp(const char *path)
{
    run_result r = run_cmd("cat '%s'", path);
    if (r.status) fail_msg("cannot read %s", path);
    char *s = r.out;
    r.out = NULL;
    run_result_free(&r);
    return s;
}

/* The values of attribute attr of the polyline named name: n of them. */
static double *series_values(const char *svg, const char *name, const char *attr, size_t *n)
{
    char pat[256];
    snprintf(pat, sizeof pat, "data-name=\"%s\"", name);
    const char *p = strstr(svg, pat);
    if (!p) fail_msg("no series '%s'", name);
    snprintf(pat, sizeof pat, " %s=\"", attr);
    p = strstr(p, pat);
    assert_non_null(p);
    p += strlen(pat);
    double *v = malloc(4096 * sizeof *v);
    assert_non_null(v);
    *n = 0;
    while (*p != '"' && *n < 4096) {
        char *end;
        v[(*n)++] = strtod(p, &end);
        assert_true(end > p);
        p = end + (*end == ' ');
    }
    return v;
}

/* The values of key in every line of a JSON log that has it, with their steps. */
static double *log_values(const char *log, const char *key, double *steps, size_t *n)
{
    char *text = slurp(log);
    double *v = malloc(4096 * sizeof *v);
    assert_non_null(v);
    *n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *x = cJSON_GetObjectItem(o, key), *s = cJSON_GetObjectItem(o, "step");
        if (cJSON_IsNumber(x) && cJSON_IsNumber(s) && *n < 4096) steps[*n] = s->valuedouble, v[(*n)++] = x->valuedouble;
        cJSON_Delete(o);
    }
    free(text);
    return v;
}

static void expect_series(const char *svg, const char *name, const char *log, const char *key)
{
    static double steps[4096];
    size_t n, nx, ny;
    double *want = log_values(log, key, steps, &n);
    double *x = series_values(svg, name, "data-x", &nx), *y = series_values(svg, name, "data-y", &ny);
    if (nx != n || ny != n) fail_msg("series '%s': %zu points, the log has %zu values of %s", name, ny, n, key);
    for (size_t i = 0; i < n; i++)
        if (x[i] != steps[i] || fabs(y[i] - want[i]) > 1e-8 * fabs(want[i]))
            fail_msg("series '%s' point %zu: (%g, %.9g), the log has (%g, %.9g)", name, i, x[i], y[i], steps[i], want[i]);
    free(want), free(x), free(y);
}

/* One Chromium for every picture (browser.h), closed by the group's teardown. */
static browser *chromium;
static int chromium_tried;

/* xmllint parses it; headless Chromium draws it into a PNG of some substance. */
static void expect_renders(const char *path)
{
    run_result r = run_cmd("xmllint --noout '%s' 2>&1", path);
    if (r.status == 127) print_message("xmllint missing: not checked\n");
    else if (r.status) fail_msg("%s does not parse: %s", path, r.out);
    run_result_free(&r);
    if (!chromium_tried) chromium_tried = 1, chromium = browser_start();
    if (!chromium) {
        print_message("skipped: " BROWSER_CHROMIUM " is not installed\n");
        return;
    }
    char png[1200];
    snprintf(png, sizeof png, "%s.png", path);
    /* an SVG file: its load event is the whole wait */
    const browser_page pg = {path, NULL, 800, 900, "true", png};
    free(browser_load(chromium, &pg));
    struct stat sb;
    if (stat(png, &sb) != 0 || sb.st_size < 8000) fail_msg("%s: no picture (%lld bytes)", png, (long long)sb.st_size);
}

static void test_gpt_curves(void **state)
{
    (void)state;
    static char text[3000];
    for (size_t n = 0; n + 20 < sizeof text;) n += (size_t)sprintf(text + n, "%s", n % 3 ? "the cat sat. " : "a dog ran! ");
    const char *data = write_tmp("t.txt", text), *t = test_tmpdir();
    run_result r = run_cmd("'%s' train --data '%s' " GPT_TINY " --iters 20 --out '%s/g' --json-log '%s/g.log'",
                           attn_bin(), data, t, t);
    if (r.status) fail_msg("train: %s", r.err);
    run_result_free(&r);
    char svg_path[1200], log[1200];
    snprintf(svg_path, sizeof svg_path, "%s/g/curves.svg", t);
    snprintf(log, sizeof log, "%s/g.log", t);
    char *svg = slurp(svg_path);
    expect_series(svg, "training loss (each step)", log, "train_loss");
    expect_series(svg, "validation loss", log, "val_loss");
    expect_series(svg, "learning rate", log, "lr");
    assert_non_null(strstr(svg, ">cross-entropy loss<"));
    assert_non_null(strstr(svg, ">learning rate<"));
    assert_non_null(strstr(svg, ">step<"));
    assert_null(strstr(svg, "(log scale)"));
    free(svg);
    expect_renders(svg_path);
    /* --log-curves: the same run with the loss axis in log scale */
    r = run_cmd("'%s' train --data '%s' " GPT_TINY " --iters 20 --out '%s/glog' --log-curves", attn_bin(), data, t);
    if (r.status) fail_msg("train --log-curves: %s", r.err);
    run_result_free(&r);
    snprintf(svg_path, sizeof svg_path, "%s/glog/curves.svg", t);
    svg = slurp(svg_path);
    assert_non_null(strstr(svg, "(log scale)"));
    expect_series(svg, "training loss (each step)", log, "train_loss");
    free(svg);
}

static void test_classifier_curves_and_confusion(void **state)
{
    (void)state;
    const char *t = test_tmpdir();
    run_result r = run_cmd("mkdir -p '%s/d' && cd '%s/d' && for s in train valid test; do for i in 1 2 3 4 5 6 7 8 9; do "
                           "printf 'noun.animal\\tthe cat and dog\\nnoun.food\\tsome soup & bread\\nnoun.act\\ta run <fast>\\n'; "
                           "done > $s.tsv; done",
                           t, t);
    run_result_free(&r);
    r = run_cmd("'%s' train --task classify --data '%s/d' --out '%s/c' " CLS_TINY " --epochs 4 --eval-every 2 "
                "--no-baselines --json-log '%s/c.log'",
                attn_bin(), t, t, t);
    if (r.status) fail_msg("train: %s", r.err);
    assert_non_null(strstr(r.out, "confusion.svg"));
    run_result_free(&r);
    char path[1200], log[1200];
    snprintf(path, sizeof path, "%s/c/curves.svg", t);
    snprintf(log, sizeof log, "%s/c.log", t);
    char *svg = slurp(path);
    expect_series(svg, "validation accuracy", log, "val_accuracy");
    expect_series(svg, "validation macro-F1", log, "val_macro_f1");
    expect_series(svg, "validation loss", log, "val_loss");
    free(svg);
    expect_renders(path);
    /* the heatmap: class names, and the counts of the log's confusion matrix */
    snprintf(path, sizeof path, "%s/c/confusion.svg", t);
    svg = slurp(path);
    char *text = slurp(log), *last = strstr(text, "{\"test\"");
    assert_non_null(last);
    cJSON *o = cJSON_Parse(last);
    const cJSON *conf = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "test"), "confusion");
    assert_int_equal(cJSON_GetArraySize(conf), 3);
    const char *p = svg;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            p = strstr(p, "data-count=\"");
            assert_non_null(p);
            p += 12;
            assert_int_equal(atoi(p), (int)cJSON_GetArrayItem(cJSON_GetArrayItem(conf, i), j)->valuedouble);
        }
    assert_non_null(strstr(svg, ">noun.animal<"));
    assert_non_null(strstr(svg, ">noun.food<"));
    cJSON_Delete(o);
    free(text), free(svg);
    expect_renders(path);
}

static void test_plot_command(void **state)
{
    (void)state;
    const char *a = write_tmp("a.jsonl", "{\"step\": 1, \"train_loss\": 4.5}\n{\"step\": 2, \"train_loss\": 3.25, "
                                         "\"val_loss\": 3.5}\n{\"summary\": true, \"val_loss\": 9}\n");
    const char *b = write_tmp("b.jsonl", "{\"step\": 2, \"train_loss\": 3.75, \"val_loss\": 3.875}\n"
                                         "{\"step\": 4, \"train_loss\": 2.5, \"val_loss\": 3.125}\n");
    const char *t = test_tmpdir();
    run_result r = run_cmd("'%s' plot '%s' '%s' --out '%s/ab.svg' --log", attn_bin(), a, b, t);
    if (r.status || !strstr(r.out, "4 lines from 2 logs")) fail_msg("plot: %d %s%s", r.status, r.out, r.err);
    run_result_free(&r);
    char path[1200], name[1200];
    snprintf(path, sizeof path, "%s/ab.svg", t);
    char *svg = slurp(path);
    snprintf(name, sizeof name, "%s: val_loss", a);
    expect_series(svg, name, a, "val_loss");
    snprintf(name, sizeof name, "%s: train_loss", b);
    expect_series(svg, name, b, "train_loss");
    assert_non_null(strstr(svg, "(log scale)"));
    free(svg);
    expect_renders(path);
    r = run_cmd("'%s' plot '%s' --y train_loss --y2 val_loss --out '%s/a.html'", attn_bin(), a, t);
    assert_int_equal(r.status, 0);
    run_result_free(&r);
    snprintf(path, sizeof path, "%s/a.html", t);
    svg = slurp(path);
    assert_non_null(strstr(svg, "<!DOCTYPE html>"));
    assert_non_null(strstr(svg, "(right)"));
    free(svg);
    /* bad input: one line naming file and line, nothing written */
    const char *bad = write_tmp("bad.jsonl", "{\"step\": 1, \"train_loss\": 2}\nnot json\n");
    r = run_cmd("'%s' plot '%s' --out '%s/bad.svg'", attn_bin(), bad, t);
    if (r.status != 2 || count_lines(r.err) != 1 || !strstr(r.err, "bad.jsonl:2: expected a JSON object"))
        fail_msg("bad log: %d %s", r.status, r.err);
    run_result_free(&r);
    snprintf(path, sizeof path, "%s/bad.svg", t);
    assert_int_not_equal(access(path, F_OK), 0);
    r = run_cmd("'%s' plot '%s' --out '%s/x.png'", attn_bin(), a, t);
    if (r.status != 2 || count_lines(r.err) != 2 || !strstr(r.err, ".svg or .html")) fail_msg("--out x.png: %s", r.err);
    run_result_free(&r);
}

static int teardown(void **state)
{
    (void)state;
    browser_stop(chromium);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt_curves),
        cmocka_unit_test(test_classifier_curves_and_confusion),
        cmocka_unit_test(test_plot_command),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
