/* test_explain_model.c - `attn explain --model`: a GPT-2 folder (the f32
 * case of gen_hf_fixtures.py, with a tokenizer of GPT-2's 256 byte tokens
 * beside it) on a text. The JSON maps and the hidden-state cosines of
 * --compare-text equal PyTorch's computation from the same weights (the
 * fixture's explain_* tensors); a text compared with itself gives cosines of
 * 1; every renderer writes its files; the page runs in Chromium without an
 * error. */
#include "test_support.h"

#include "browser.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn/attn.h"

#define TEXT "the cat and mouse"
#define COMPARE "a keyboard and mouse"
enum { L = 2, H = 4, C = 32 };

static char model[600];

/* The f32 GPT-2 folder plus encoder.json and vocab.bpe of 257 tokens. */
static int setup(void **state)
{
    (void)state;
    snprintf(model, sizeof model, "%s/gpt2", test_tmpdir());
    const char *text = write_tmp("abc.txt", "abc");
    run_result r = run_cmd("mkdir -p '%s' && cp '%s/hf/f32/config.json' '%s/hf/f32/model.safetensors' '%s'/ && "
                           "'%s' tokenize --train '%s' --vocab-size 257 --out '%s'",
                           model, ATTN_TEST_FIXTURES, ATTN_TEST_FIXTURES, model, attn_bin(), text, model);
    if (r.status) fail_msg("setup: %s", r.err);
    run_result_free(&r);
    return 0;
}

static attn_tensor expected(const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/hf/f32/expected.safetensors", ATTN_TEST_FIXTURES);
    attn_safetensors *st = NULL;
    assert_int_equal(attn_safetensors_open(&st, path), ATTN_OK);
    attn_tensor t = fixture_tensor(st, path, name);
    attn_safetensors_close(st);
    return t;
}

/* `attn explain --model` with extra arguments; its stdout parsed as JSON. */
static cJSON *explain_json(const char *extra)
{
    run_result r = run_cmd("'%s' explain --model '%s' --text '" TEXT "' --json %s", attn_bin(), model, extra);
    if (r.status) fail_msg("exit %d: %s", r.status, r.err);
    cJSON *j = cJSON_Parse(r.out);
    if (!j) fail_msg("not JSON: %.200s", r.out);
    run_result_free(&r);
    return j;
}

static void expect_ids(const cJSON *arr, const attn_tensor *want)
{
    assert_int_equal(cJSON_GetArraySize(arr), (int)want->numel);
    for (size_t i = 0; i < want->numel; i++)
        assert_int_equal(cJSON_GetArrayItem(arr, (int)i)->valuedouble, want->data[i]);
}

/* One map of the JSON against PyTorch's; zeros above the diagonal exactly. */
static void expect_map(const cJSON *head, const attn_tensor *att, size_t l, size_t h, size_t n)
{
    const cJSON *m = cJSON_GetObjectItem(head, "attention");
    assert_int_equal(cJSON_GetArraySize(m), (int)n);
    for (size_t i = 0; i < n; i++) {
        const cJSON *row = cJSON_GetArrayItem(m, (int)i);
        assert_int_equal(cJSON_GetArraySize(row), (int)n);
        for (size_t j = 0; j < n; j++) {
            const double got = cJSON_GetArrayItem(row, (int)j)->valuedouble;
            const double want = att->data[((l * H + h) * n + i) * n + j];
            if (j > i) assert_true(got == 0.0);
            if (!(fabs(got - want) <= 1e-5))
                fail_msg("layer %zu head %zu [%zu][%zu] = %.9g, PyTorch %.9g", l, h, i, j, got, want);
        }
    }
}

static void test_json_maps(void **state)
{
    (void)state;
    attn_tensor ids = expected("explain_ids"), att = expected("explain_attention");
    const size_t n = ids.numel;
    cJSON *j = explain_json("");
    expect_ids(cJSON_GetObjectItem(j, "ids"), &ids);
    const cJSON *tokens = cJSON_GetObjectItem(j, "tokens");
    assert_int_equal(cJSON_GetArraySize(tokens), (int)n);
    assert_string_equal(cJSON_GetArrayItem(tokens, 3)->valuestring, " ");
    assert_string_equal(cJSON_GetArrayItem(tokens, 4)->valuestring, "c");
    const cJSON *layers = cJSON_GetObjectItem(j, "layers");
    assert_int_equal(cJSON_GetArraySize(layers), L);
    assert_null(cJSON_GetObjectItem(j, "layer"));
    for (size_t l = 0; l < L; l++) {
        const cJSON *heads = cJSON_GetObjectItem(cJSON_GetArrayItem(layers, (int)l), "heads");
        assert_int_equal(cJSON_GetArraySize(heads), H);
        for (size_t h = 0; h < H; h++) expect_map(cJSON_GetArrayItem(heads, (int)h), &att, l, h, n);
    }
    cJSON_Delete(j);

    /* the filters: one layer, one head, named */
    j = explain_json("--layer 1 --head 2");
    assert_int_equal(cJSON_GetObjectItem(j, "layer")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(j, "head")->valueint, 2);
    layers = cJSON_GetObjectItem(j, "layers");
    assert_int_equal(cJSON_GetArraySize(layers), 1);
    const cJSON *ly = cJSON_GetArrayItem(layers, 0), *heads = cJSON_GetObjectItem(ly, "heads");
    assert_int_equal(cJSON_GetObjectItem(ly, "layer")->valueint, 1);
    assert_int_equal(cJSON_GetArraySize(heads), 1);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(heads, 0), "head")->valueint, 2);
    expect_map(cJSON_GetArrayItem(heads, 0), &att, 1, 2, n);
    cJSON_Delete(j);
    attn_tensor_free(&ids), attn_tensor_free(&att);
}

/* The cosine, in double, of rows a and b of PyTorch's hidden states. */
static double cosine(const float *a, const float *b)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t k = 0; k < C; k++) ab += (double)a[k] * b[k], aa += (double)a[k] * a[k], bb += (double)b[k] * b[k];
    return ab / sqrt(aa * bb);
}

static void test_compare(void **state)
{
    (void)state;
    attn_tensor ids = expected("explain_ids"), hid = expected("explain_hidden");
    attn_tensor cids = expected("compare_ids"), chid = expected("compare_hidden");
    const size_t n = ids.numel, m = cids.numel;
    cJSON *j = explain_json("--compare-text '" COMPARE "'");
    expect_ids(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "compare"), "ids"), &cids);
    const cJSON *shared = cJSON_GetObjectItem(j, "shared_tokens");
    /* the distinct characters of TEXT that COMPARE holds, in TEXT's order */
    static const char *const want[] = {"e", " ", "a", "n", "d", "m", "o", "u", "s"};
    assert_int_equal(cJSON_GetArraySize(shared), 9);
    int some_below = 0;
    for (int s = 0; s < 9; s++) {
        const cJSON *e = cJSON_GetArrayItem(shared, s);
        assert_string_equal(cJSON_GetObjectItem(e, "token")->valuestring, want[s]);
        const size_t pa = (size_t)cJSON_GetObjectItem(e, "position")->valueint;
        const size_t pb = (size_t)cJSON_GetObjectItem(e, "compare_position")->valueint;
        assert_true(pa < n && pb < m);
        const cJSON *cos = cJSON_GetObjectItem(e, "cosine_by_layer");
        assert_int_equal(cJSON_GetArraySize(cos), L);
        for (size_t l = 0; l < L; l++) {
            const double c = cosine(hid.data + (l * n + pa) * C, chid.data + (l * m + pb) * C);
            const double got = cJSON_GetArrayItem(cos, (int)l)->valuedouble;
            if (!(fabs(got - c) <= 1e-5)) fail_msg("%s layer %zu: cosine %.9g, PyTorch's %.9g", want[s], l, got, c);
            some_below |= c < 0.99;
        }
        const cJSON *at = cJSON_GetObjectItem(e, "attends_to");
        assert_int_equal(cJSON_GetArraySize(at), L);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetArrayItem(at, 0)), H);
    }
    assert_true(some_below); /* the contexts differ: so do the states */
    cJSON_Delete(j);

    /* the same context: every shared token's state is the same, cosine 1 */
    j = explain_json("--compare-text '" TEXT "'");
    shared = cJSON_GetObjectItem(j, "shared_tokens");
    assert_int_equal(cJSON_GetArraySize(shared), 12); /* the distinct characters: t h e ' ' c a n d m o u s */
    cJSON *e;
    cJSON_ArrayForEach(e, shared)
    {
        cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(e, "cosine_by_layer")) assert_true(fabs(c->valuedouble - 1.0) < 1e-6);
    }
    cJSON_Delete(j);
    attn_tensor_free(&ids), attn_tensor_free(&hid), attn_tensor_free(&cids), attn_tensor_free(&chid);
}

static size_t files_in(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name), sl = strlen(suffix);
        n += len > sl && !strcmp(e->d_name + len - sl, suffix);
    }
    closedir(d);
    return n;
}

static void test_renderers(void **state)
{
    (void)state;
    const char *tmp = test_tmpdir();
    run_result r = run_cmd("cd '%s' && '%s' explain --model '%s' --text '" TEXT "' --csv csv --svg svg --html p.html && "
                           "'%s' explain --model '%s' --text '" TEXT "' --layer 1 --head 2 --xlsx w.xlsx",
                           tmp, attn_bin(), model, attn_bin(), model);
    if (r.status) fail_msg("exit %d: %s", r.status, r.err);
    assert_non_null(strstr(r.out, "wrote csv/"));
    run_result_free(&r);
    char path[700];
    snprintf(path, sizeof path, "%s/csv", tmp);
    assert_int_equal(files_in(path, "-attention.csv"), L * H);
    snprintf(path, sizeof path, "%s/svg", tmp);
    assert_int_equal(files_in(path, "-attention.svg"), L * H);
    /* a CSV's cell is the JSON's number */
    r = run_cmd("sed -n 3p '%s/csv/layer1-head2-attention.csv'", tmp);
    attn_tensor att = expected("explain_attention");
    const size_t n = 17;
    double a, b;
    assert_int_equal(sscanf(r.out, "h,%lf,%lf", &a, &b), 2);
    assert_true(fabs(a - att.data[((1 * H + 2) * n + 1) * n]) < 1e-5);
    assert_true(fabs(b - att.data[((1 * H + 2) * n + 1) * n + 1]) < 1e-5);
    run_result_free(&r);
    attn_tensor_free(&att);
    r = run_cmd("head -c 2 '%s/w.xlsx'; grep -c 'attn-model-html-1' '%s/p.html'", tmp, tmp);
    assert_memory_equal(r.out, "PK", 2);
    assert_non_null(strstr(r.out, "1"));
    run_result_free(&r);
    /* the workbook's formulas, recalculated by Gnumeric, give the library's numbers */
    r = run_cmd("/usr/bin/python3 '%s/../xlsx_recalc.py' cached '%s/w.xlsx' 1e-4", ATTN_TEST_FIXTURES, tmp);
    if (r.status == 77) print_message("skipped the recalculation: %s", r.err);
    else if (r.status != 0) fail_msg("xlsx_recalc.py cached: %s%s", r.out, r.err);
    else assert_non_null(strstr(r.out, "cells="));
    run_result_free(&r);
    /* the terminal: the summary names every head, one head's map has its rows */
    r = run_cmd("'%s' explain --model '%s' --text '" TEXT "' --color never && "
                "'%s' explain --model '%s' --text '" TEXT "' --layer 0 --head 3 --color never",
                attn_bin(), model, attn_bin(), model);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "== layer 1: the key each query weights most, per head =="));
    assert_non_null(strstr(r.out, "head 3"));
    assert_non_null(strstr(r.out, "== layer 0, head 3: attention"));
    run_result_free(&r);
    browser *chromium = browser_start();
    if (!chromium) {
        print_message("skipped the page: " BROWSER_CHROMIUM " is not installed\n");
        return;
    }
    snprintf(path, sizeof path, "%s/p.html", tmp);
    const browser_page pg = {path, "#1,2", 0, 0, NULL, NULL};
    char *dom = browser_load(chromium, &pg);
    browser_stop(chromium);
    const char *body = strstr(dom, "<body");
    assert_non_null(body);
    assert_non_null(strstr(body, "data-ready=\"1\""));
    assert_non_null(strstr(body, "data-detail=\"1,2\""));
    assert_null(strstr(body, "data-errors"));
    /* Thumbnails are drawn lazily, when an IntersectionObserver says they are
     * in view; headless Chromium under load may dump the page before it has
     * delivered every callback, so at least one and at most the 8 maps. */
    const char *drawn = strstr(body, "data-thumbs-drawn=\"");
    assert_non_null(drawn);
    const int n_drawn = atoi(drawn + strlen("data-thumbs-drawn=\""));
    assert_true(n_drawn >= 1 && n_drawn <= 8);
    free(dom);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_maps),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_renderers),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
