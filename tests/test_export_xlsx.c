/* test_export_xlsx.c - the workbook of live formulas, checked by a real
 * spreadsheet engine: Gnumeric recalculates it (ssconvert --recalc) and its
 * numbers must be the library's; editing an embedding (openpyxl) and
 * recalculating gives what the library computes for the edited input.
 * tests/xlsx_recalc.py does the spreadsheet side. Without ssconvert (Debian
 * gnumeric) or openpyxl (python3-openpyxl) those parts are skipped. */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attn/attn.h"
#include "attn/export.h"

#define HELPER ATTN_TEST_FIXTURES "/../xlsx_recalc.py"
#define TOL 1e-6

static const char *python(void)
{
    /* The system Python is the one with python3-openpyxl. */
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

static int have(const char *check)
{
    run_result r = run_cmd("%s", check);
    int ok = r.status == 0;
    run_result_free(&r);
    return ok;
}

/* Skips the test (before it allocates anything) when a tool is missing. */
static void need_tools(int ssconvert, int openpyxl)
{
    if (ssconvert && !have("command -v ssconvert >/dev/null 2>&1")) {
        print_message("skipped: ssconvert not found (apt-get install gnumeric)\n");
        skip();
    }
    char cmd[256];
    /* found, not imported: the import is most of a run of the helper */
    snprintf(cmd, sizeof cmd, "'%s' -c 'import importlib.util as u, sys; sys.exit(not u.find_spec(\"openpyxl\"))' "
             "2>/dev/null", python());
    if (openpyxl && !have(cmd)) {
        print_message("skipped: openpyxl not found (apt-get install python3-openpyxl)\n");
        skip();
    }
}

/* ---- the recalculated workbook: one record per number of each block -------- */

typedef struct rec {
    char sheet[32], key[48];
    size_t i, j;
    double v;
} rec;

typedef struct book {
    rec *r;
    size_t n;
} book;

/* The helper's dump lines into b; with `cached`, every number of every block
 * recalculated must also equal the result cached in the file (what viewers
 * that do not recalculate show): Exp, row sums and the rest, not only the
 * blocks the trace holds (needs openpyxl too; one run of Gnumeric for both). */
static void recalc_run(const char *xlsx, book *b, int cached)
{
    run_result r = cached ? run_cmd("'%s' '%s' check '%s' %g", python(), HELPER, xlsx, TOL)
                          : run_cmd("'%s' '%s' dump '%s'", python(), HELPER, xlsx);
    if (r.status != 0)
        fail_msg("xlsx_recalc.py %s %s: status %d: %.300s %s", cached ? "check" : "dump", xlsx, r.status,
                 cached && strstr(r.out, "cells=") ? strstr(r.out, "cells=") : "", r.err);
    size_t lines = count_lines(r.out);
    b->r = calloc(lines + 1, sizeof *b->r);
    b->n = 0;
    assert_non_null(b->r);
    int summary = 0;
    for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n")) {
        if (cached && (!strncmp(line, "cells=", 6) || !strncmp(line, "cached values not checked", 25))) {
            if (line[0] != 'c' || line[1] != 'e') print_message("%s\n", line);
            summary = 1;
            continue;
        }
        rec *c = &b->r[b->n];
        char *f[5] = {line, NULL, NULL, NULL, NULL};
        for (int k = 1; k < 5; k++) {
            char *tab = strchr(f[k - 1], '\t');
            if (!tab) fail_msg("bad dump line '%s'", line);
            *tab = '\0';
            f[k] = tab + 1;
        }
        snprintf(c->sheet, sizeof c->sheet, "%s", f[0]);
        snprintf(c->key, sizeof c->key, "%s", f[1]);
        c->i = strtoul(f[2], NULL, 10), c->j = strtoul(f[3], NULL, 10);
        c->v = strtod(f[4], NULL);
        b->n++;
    }
    if (cached && !summary) fail_msg("xlsx_recalc.py check %s: no line about the cached values", xlsx);
    run_result_free(&r);
}

static void recalc(const char *xlsx, book *b) { recalc_run(xlsx, b, 0); }
static void recalc_cached(const char *xlsx, book *b) { recalc_run(xlsx, b, 1); }

static void book_free(book *b) { free(b->r); }

static size_t block_size(const book *b, const char *sheet, const char *key)
{
    size_t n = 0;
    for (size_t k = 0; k < b->n; k++)
        n += !strcmp(b->r[k].sheet, sheet) && !strcmp(b->r[k].key, key);
    return n;
}

static double value(const book *b, const char *sheet, const char *key, size_t i, size_t j)
{
    for (size_t k = 0; k < b->n; k++) {
        const rec *c = &b->r[k];
        if (c->i == i && c->j == j && !strcmp(c->sheet, sheet) && !strcmp(c->key, key)) return c->v;
    }
    fail_msg("no cell (%zu, %zu) in block '%s' of sheet '%s'", i, j, key, sheet);
    return NAN;
}

/* Block `key` of `sheet` holds exactly the rows x cols numbers of `want`. */
static void expect_block(const book *b, const char *sheet, const char *key, const float *want,
                         size_t rows, size_t cols)
{
    if (block_size(b, sheet, key) != rows * cols)
        fail_msg("block '%s' of sheet '%s' has %zu numbers, expected %zu x %zu", key, sheet,
                 block_size(b, sheet, key), rows, cols);
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) {
            double got = value(b, sheet, key, i, j), w = (double)want[i * cols + j];
            if (!(fabs(got - w) <= TOL))
                fail_msg("%s!%s (%zu, %zu): the spreadsheet gives %.9g, the library %.9g", sheet,
                         key, i, j, got, w);
        }
}

static void expect_entry(const book *b, const char *sheet, const char *key, const attn_trace *t,
                         const char *entry)
{
    const attn_tensor *e = attn_trace_get(t, entry);
    if (!e) fail_msg("the trace has no '%s'", entry);
    expect_block(b, sheet, key, e->data, e->shape[0], e->shape[1]);
}

/* ---- documents ------------------------------------------------------------------ */

typedef struct doc {
    attn_embeddings vocab, x[2];
    attn_trace *t[2];
    const char *texts[2];
    attn_mha *mha;
    attn_doc doc;
} doc;

static void doc_finish(doc *d, size_t n, size_t heads)
{
    d->doc.title = "test";
    d->doc.n = n;
    d->doc.traces = (const attn_trace *const *)d->t;
    d->doc.captions = d->texts;
    d->doc.num_heads = heads;
}

/* The demo's two sentences, plain walkthrough with `p` (NULL: defaults). */
static void build_demo_xlsx(doc *d, const attn_sdpa_params *p)
{
    memset(d, 0, sizeof *d);
    assert_int_equal(attn_seed_vocabulary(&d->vocab), ATTN_OK);
    for (size_t i = 0; i < 2; i++) {
        d->texts[i] = attn_seed_sentence(i);
        assert_int_equal(attn_embeddings_lookup(&d->x[i], &d->vocab, d->texts[i]), ATTN_OK);
        assert_int_equal(attn_trace_create(&d->t[i]), ATTN_OK);
        assert_int_equal(attn_self_attention(NULL, &d->x[i], p, d->t[i]), ATTN_OK);
    }
    doc_finish(d, 2, 0);
}

/* A small multi-head layer (E = 6) with nonzero biases on 4-token sequences. */
static void build_mha(doc *d, const attn_mha_config *cfg, size_t n, attn_causal causal)
{
    static const char *const dims[] = {"d0", "d1", "d2", "d3", "d4", "d5"};
    static const char *const tok[2][4] = {{"cat", "and", "mouse", "play"},
                                          {"keyboard", "mouse", "and", "click"}};
    memset(d, 0, sizeof *d);
    assert_int_equal(attn_mha_create(&d->mha, cfg), ATTN_OK);
    assert_int_equal(attn_mha_init(d->mha, 7), ATTN_OK);
    for (size_t i = 0; i < attn_mha_param_count(d->mha); i++) {
        const char *name;
        attn_tensor p;
        assert_int_equal(attn_mha_param_at(d->mha, i, &name, &p, NULL), ATTN_OK);
        if (strstr(name, "bias")) /* in_proj_bias, out_proj.bias, bias_k, bias_v */
            for (size_t k = 0; k < p.numel; k++) p.data[k] = 0.3f * sinf(1.7f * (float)k + 0.5f);
    }
    for (size_t s = 0; s < n; s++) {
        float x[24];
        for (size_t k = 0; k < 24; k++) x[k] = 0.8f * cosf(0.9f * (float)k + (float)s);
        x[2 * 6 + 1] = s == 0 ? 1.5f : x[2 * 6 + 1]; /* "mouse": the same row in both */
        if (s == 1)
            for (size_t k = 0; k < 6; k++) x[6 + k] = 0.8f * cosf(0.9f * (float)(12 + k));
        if (s == 1) x[6 + 1] = 1.5f;
        assert_int_equal(attn_embeddings_from_arrays(&d->x[s], 4, tok[s], 6, dims, x), ATTN_OK);
        assert_int_equal(attn_trace_create(&d->t[s]), ATTN_OK);
        attn_sdpa_params p = attn_sdpa_defaults();
        p.causal = causal;
        assert_int_equal(attn_mha_self_attention(NULL, d->mha, &d->x[s], &p, d->t[s]), ATTN_OK);
        d->texts[s] = s ? "keyboard mouse and click" : "cat and mouse play";
    }
    doc_finish(d, n, cfg->num_heads);
}

static void release(doc *d)
{
    for (int i = 0; i < 2; i++) attn_trace_free(d->t[i]), attn_embeddings_free(&d->x[i]);
    attn_embeddings_free(&d->vocab);
    attn_mha_free(d->mha);
}

static const char *out_path(const char *name)
{
    static char buf[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", test_tmpdir(), name);
    return buf[k];
}

/* The plain walkthrough of each sequence against its trace. */
static void expect_plain(const book *b, const doc *d)
{
    for (size_t s = 0; s < d->doc.n; s++) {
        char sheet[32];
        snprintf(sheet, sizeof sheet, "S%zu", s + 1);
        expect_entry(b, sheet, "Scores", d->t[s], "scores");
        expect_entry(b, sheet, "Scaled", d->t[s], "scaled");
        expect_entry(b, sheet, "Attention", d->t[s], "attention");
        expect_entry(b, sheet, "Output", d->t[s], "output");
    }
}

/* ---- tests --------------------------------------------------------------------- */

/* (1) Gnumeric's recalculation of the demo gives the library's numbers. */
static void test_demo_recalculates_to_the_library(void **state)
{
    (void)state;
    need_tools(1, 0);
    doc d;
    build_demo_xlsx(&d, NULL);
    const char *path = out_path("demo.xlsx");
    assert_int_equal(attn_export_xlsx(&d.doc, path), ATTN_OK);
    book b;
    recalc_cached(path, &b);
    expect_block(&b, "Inputs", "S1 embeddings", d.x[0].data, d.x[0].n_tokens, d.x[0].n_dims);
    expect_plain(&b, &d);
    assert_int_equal(block_size(&b, "S1", "Masked"), 0); /* no mask, no mask blocks */
    /* Compare: "mouse" (3rd sentence word in both) in and out, and the difference. */
    const attn_tensor *o1 = attn_trace_get(d.t[0], "output");
    const attn_tensor *o2 = attn_trace_get(d.t[1], "output");
    size_t shared = block_size(&b, "Compare", "Outputs") / 3 / 4;
    assert_true(shared >= 1);
    for (size_t k = 0; k < shared; k++) {
        /* Shared tokens in S1 order: and (1), mouse (2), are (3); the same positions in S2. */
        size_t i = k + 1;
        for (size_t j = 0; j < 4; j++) {
            double a = value(&b, "Compare", "Outputs", 3 * k, j);
            double c = value(&b, "Compare", "Outputs", 3 * k + 1, j);
            double diff = value(&b, "Compare", "Outputs", 3 * k + 2, j);
            assert_true(fabs(a - ATTN_AT2(o1, i, j)) <= TOL);
            assert_true(fabs(c - ATTN_AT2(o2, i, j)) <= TOL);
            assert_true(fabs(diff - (c - a)) <= TOL);
            assert_true(value(&b, "Compare", "Inputs", 2 * k, j) ==
                        value(&b, "Compare", "Inputs", 2 * k + 1, j));
        }
    }
    book_free(&b);
    release(&d);
}

/* A causal mask; and a custom scale, a temperature, a finite mask bias and a
 * query that may attend to nothing (attention 0, output 0). */
static void test_masks_recalculate_to_the_library(void **state)
{
    (void)state;
    need_tools(1, 0);
    attn_sdpa_params p = attn_sdpa_defaults();
    p.causal = ATTN_CAUSAL_TOP_LEFT;
    doc d;
    build_demo_xlsx(&d, &p);
    const char *path = out_path("causal.xlsx");
    assert_int_equal(attn_export_xlsx(&d.doc, path), ATTN_OK);
    book b;
    recalc_cached(path, &b);
    expect_plain(&b, &d);
    assert_int_equal(block_size(&b, "S1", "Allowed"), 25);
    assert_true(value(&b, "S1", "Allowed", 0, 1) == 0 && value(&b, "S1", "Allowed", 1, 0) == 1);
    assert_int_equal(block_size(&b, "S1", "Mask bias"), 0);
    book_free(&b);
    release(&d);

    float add[25];
    uint8_t allow[25];
    for (int k = 0; k < 25; k++) add[k] = 0.1f * (float)(k % 7) - 0.3f, allow[k] = k % 4 != 0;
    for (int k = 5; k < 10; k++) allow[k] = 0; /* row 1 may attend to nothing */
    p = attn_sdpa_defaults();
    p.scale_mode = ATTN_SCALE_CUSTOM, p.scale = 0.7f, p.temperature = 1.5f;
    p.add_mask = add, p.bool_mask = allow;
    build_demo_xlsx(&d, &p);
    path = out_path("masked.xlsx");
    assert_int_equal(attn_export_xlsx(&d.doc, path), ATTN_OK);
    recalc_cached(path, &b);
    expect_plain(&b, &d);
    assert_int_equal(block_size(&b, "S2", "Mask bias"), 25);
    assert_true(fabs(value(&b, "S1", "Parameters", 0, 0) - 0.7) < 1e-7);
    assert_true(value(&b, "S1", "Parameters", 1, 0) == 1.5);
    for (size_t j = 0; j < 5; j++) assert_true(value(&b, "S1", "Attention", 1, j) == 0);
    book_free(&b);
    release(&d);
}

/* The multi-head layer: Q, K, V, each head, concat and output. */
static void expect_mha(const book *b, const doc *d)
{
    for (size_t s = 0; s < d->doc.n; s++) {
        char sheet[64], entry[64], outs[32];
        for (size_t h = 0; h < d->doc.num_heads; h++) {
            snprintf(sheet, sizeof sheet, "S%zu head%zu", s + 1, h);
            static const char *const keys[] = {"Q", "K", "V", "Scores", "Attention", "Output"};
            static const char *const names[] = {"q", "k", "v", "scores", "attention", "output"};
            for (int k = 0; k < 6; k++) {
                snprintf(entry, sizeof entry, "head%zu.%s", h, names[k]);
                expect_entry(b, sheet, keys[k], d->t[s], entry);
            }
        }
        snprintf(outs, sizeof outs, "S%zu output", s + 1);
        expect_entry(b, outs, "Concat", d->t[s], "concat");
        expect_entry(b, outs, "Output", d->t[s], "output");
    }
}

static void test_mha_recalculates_to_the_library(void **state)
{
    (void)state;
    need_tools(1, 0);
    attn_mha_config cfg = attn_mha_default_config(6, 2); /* biases on */
    doc d;
    build_mha(&d, &cfg, 1, ATTN_CAUSAL_NONE);
    const char *path = out_path("mha.xlsx");
    assert_int_equal(attn_export_xlsx(&d.doc, path), ATTN_OK);
    book b;
    recalc_cached(path, &b);
    expect_block(&b, "Weights", "W_Q head1", attn_trace_get(d.t[0], "head1.w_q")->data, 3, 6);
    expect_mha(&b, &d);
    book_free(&b);
    release(&d);

    /* Other widths, the extra key positions, causal, two sequences. */
    cfg.head_dim = 2, cfg.v_head_dim = 3, cfg.out_dim = 5;
    cfg.add_bias_kv = 1, cfg.add_zero_attn = 1;
    build_mha(&d, &cfg, 2, ATTN_CAUSAL_TOP_LEFT);
    path = out_path("mha2.xlsx");
    assert_int_equal(attn_export_xlsx(&d.doc, path), ATTN_OK);
    recalc_cached(path, &b);
    expect_mha(&b, &d);
    assert_int_equal(block_size(&b, "S2 head1", "K"), 6 * 2); /* 4 tokens + <bias_k> + <zero> */
    assert_int_equal(block_size(&b, "Compare", "Outputs"), 3 * 2 * 5); /* mouse, and */
    book_free(&b);
    release(&d);
}

/* (2) Editing one embedding and recalculating gives the library's answer for
 * the edited input; the other sentence does not move. */
static void test_edit_an_embedding(void **state)
{
    (void)state;
    need_tools(1, 1);
    doc d;
    build_demo_xlsx(&d, NULL);
    const char *path = out_path("edit.xlsx"), *edited = out_path("edited.xlsx");
    assert_int_equal(attn_export_xlsx(&d.doc, path), ATTN_OK);
    /* "mouse" (row 2 of sentence 1) loses most of its animal component. */
    run_result r = run_cmd("'%s' '%s' edit '%s' '%s' Inputs 'S1 embeddings' 2 0 0.25", python(),
                           HELPER, path, edited);
    if (r.status != 0) fail_msg("edit: %s", r.err);
    run_result_free(&r);
    book b;
    recalc(edited, &b);
    d.x[0].data[2 * 4 + 0] = 0.25f;
    attn_trace *t;
    assert_int_equal(attn_trace_create(&t), ATTN_OK);
    assert_int_equal(attn_self_attention(NULL, &d.x[0], NULL, t), ATTN_OK);
    expect_entry(&b, "S1", "Attention", t, "attention");
    expect_entry(&b, "S1", "Output", t, "output");
    expect_entry(&b, "S2", "Output", d.t[1], "output");
    /* It really moved. */
    const attn_tensor *before = attn_trace_get(d.t[0], "output");
    assert_true(fabs(value(&b, "S1", "Output", 2, 0) - ATTN_AT2(before, 2, 0)) > 0.01);
    attn_trace_free(t);
    book_free(&b);
    release(&d);

    /* The same through a multi-head layer: the edit flows through Q, K, V. */
    attn_mha_config cfg = attn_mha_default_config(6, 2);
    build_mha(&d, &cfg, 1, ATTN_CAUSAL_NONE);
    path = out_path("edit-mha.xlsx"), edited = out_path("edited-mha.xlsx");
    assert_int_equal(attn_export_xlsx(&d.doc, path), ATTN_OK);
    r = run_cmd("'%s' '%s' edit '%s' '%s' Inputs 'S1 embeddings' 1 3 -0.75", python(), HELPER,
                path, edited);
    if (r.status != 0) fail_msg("edit: %s", r.err);
    run_result_free(&r);
    recalc(edited, &b);
    d.x[0].data[1 * 6 + 3] = -0.75f;
    assert_int_equal(attn_trace_create(&t), ATTN_OK);
    assert_int_equal(attn_mha_self_attention(NULL, d.mha, &d.x[0], NULL, t), ATTN_OK);
    expect_entry(&b, "S1 head0", "Attention", t, "head0.attention");
    expect_entry(&b, "S1 output", "Output", t, "output");
    attn_trace_free(t);
    book_free(&b);
    release(&d);
}

/* (3) The computed cells are formulas, the inputs are not; colour scales on. */
static void test_cells_are_formulas(void **state)
{
    (void)state;
    need_tools(0, 1);
    doc d;
    build_demo_xlsx(&d, NULL);
    const char *path = out_path("formulas.xlsx");
    assert_int_equal(attn_export_xlsx(&d.doc, path), ATTN_OK);
    static const struct {
        const char *sheet, *key, *want;
    } cases[] = {
        {"S1", "Scores", "formulas=25 others=0 colour=1"},
        {"S1", "Attention", "formulas=25 others=0 colour=1"},
        {"S1", "Output", "formulas=20 others=0 colour=1"},
        {"S2", "Output", "formulas=20 others=0 colour=1"},
        {"S2", "V transposed", "formulas=20 others=0 colour=1"},
        {"Compare", "Outputs", "formulas=36 others=0 colour=1"},
        {"Inputs", "S1 embeddings", "formulas=0 others=20 colour=1"},
    };
    /* one run of the helper for every block: a line each */
    const size_t n = sizeof cases / sizeof *cases;
    char args[1024] = "";
    for (size_t k = 0, len = 0; k < n; k++)
        len += (size_t)snprintf(args + len, sizeof args - len, " '%s' '%s'", cases[k].sheet, cases[k].key);
    run_result r = run_cmd("'%s' '%s' formulas '%s'%s", python(), HELPER, path, args);
    if (r.status != 0) fail_msg("xlsx_recalc.py formulas: status %d: %s", r.status, r.err);
    char *line = r.out;
    for (size_t k = 0; k < n; k++) {
        char *end = line ? strchr(line, '\n') : NULL;
        if (end) *end = '\0';
        if (!line || !strstr(line, cases[k].want))
            fail_msg("%s!%s: '%s' (%s), expected '%s'", cases[k].sheet, cases[k].key, line ? line : "(no line)",
                     r.err, cases[k].want);
        line = end ? end + 1 : NULL;
    }
    run_result_free(&r);
    /* The cached results are the library's (for viewers that do not recalculate). */
    r = run_cmd("cd '%s' && unzip -p formulas.xlsx xl/worksheets/sheet2.xml | "
                           "grep -o '<f>SUMPRODUCT([^<]*</f><v>[^<]*</v>' | head -1",
                           test_tmpdir());
    if (r.status == 0 && r.out[0]) { /* unzip may be missing; openpyxl covered the rest */
        double v = strtod(strstr(r.out, "<v>") + 3, NULL);
        assert_true(fabs(v - attn_trace_get(d.t[0], "scores")->data[0]) < 1e-6);
    }
    run_result_free(&r);
    release(&d);
}

/* (4) Bad paths and inputs too big: the right status, one line, nothing left. */
static void test_refusals_leave_nothing(void **state)
{
    (void)state;
    doc d;
    build_demo_xlsx(&d, NULL);
    assert_int_equal(attn_export_xlsx(&d.doc, "/no/such/dir/x.xlsx"), ATTN_E_IO);
    assert_non_null(strstr(attn_last_error(), "/no/such/dir"));
    assert_int_equal(attn_export_xlsx(&d.doc, test_tmpdir()), ATTN_E_IO); /* a directory */
    char dir[600];
    snprintf(dir, sizeof dir, "%s/refused", test_tmpdir());
    assert_int_equal(mkdir(dir, 0777), 0);
    char path[700];
    snprintf(path, sizeof path, "%s/big.xlsx", dir);

    /* 65 tokens. */
    attn_embeddings big;
    const char *tok[65];
    float data[65 * 2];
    for (int k = 0; k < 65; k++) tok[k] = "w", data[2 * k] = 1, data[2 * k + 1] = (float)k / 65;
    static const char *const dims2[] = {"a", "b"};
    assert_int_equal(attn_embeddings_from_arrays(&big, 65, tok, 2, dims2, data), ATTN_OK);
    attn_trace *t;
    assert_int_equal(attn_trace_create(&t), ATTN_OK);
    assert_int_equal(attn_self_attention(NULL, &big, NULL, t), ATTN_OK);
    const attn_trace *tt[1] = {t};
    const char *cap[1] = {"big"};
    attn_doc one = {"t", 1, tt, cap, 0};
    assert_int_equal(attn_export_xlsx(&one, path), ATTN_E_INVALID);
    assert_non_null(strstr(attn_last_error(), "at most 64"));
    assert_null(strchr(attn_last_error(), '\n'));
    attn_trace_free(t);
    attn_embeddings_free(&big);

    /* 64 tokens of 1600 dimensions: more than 200000 formulas. */
    const size_t T = 64, D = 1600;
    float *wide = calloc(T * D, sizeof *wide);
    char **dn = calloc(D, sizeof *dn);
    assert_non_null(wide);
    assert_non_null(dn);
    for (size_t k = 0; k < D; k++) {
        dn[k] = malloc(16);
        assert_non_null(dn[k]);
        snprintf(dn[k], 16, "x%zu", k);
    }
    for (size_t k = 0; k < T * D; k++) wide[k] = 0.01f * (float)(k % 17);
    assert_int_equal(attn_embeddings_from_arrays(&big, T, tok, D, (const char *const *)dn, wide),
                     ATTN_OK);
    assert_int_equal(attn_trace_create(&t), ATTN_OK);
    tt[0] = t;
    assert_int_equal(attn_self_attention(NULL, &big, NULL, t), ATTN_OK);
    /* An older file at the target survives a refusal untouched. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("old", f);
    fclose(f);
    assert_int_equal(attn_export_xlsx(&one, path), ATTN_E_INVALID);
    assert_non_null(strstr(attn_last_error(), "200000"));
    run_result r = run_cmd("ls -A '%s' && cat '%s'", dir, path);
    assert_string_equal(r.out, "big.xlsx\nold");
    run_result_free(&r);
    attn_trace_free(t);
    attn_embeddings_free(&big);
    for (size_t k = 0; k < D; k++) free(dn[k]);
    free(dn);
    free(wide);

    /* Numbers a workbook cannot hold (overflowing scores) are refused, too. */
    static const char *const tok2[] = {"p", "q"};
    float huge[4] = {1e20f, 1, 2, 1e20f};
    assert_int_equal(attn_embeddings_from_arrays(&big, 2, tok2, 2, dims2, huge), ATTN_OK);
    assert_int_equal(attn_trace_create(&t), ATTN_OK);
    tt[0] = t;
    (void)attn_self_attention(NULL, &big, NULL, t);
    assert_int_equal(attn_export_xlsx(&one, path), ATTN_E_INVALID);
    assert_non_null(strstr(attn_last_error(), "non-finite"));
    r = run_cmd("ls -A '%s'", dir);
    assert_string_equal(r.out, "big.xlsx\n"); /* no temporary file left */
    run_result_free(&r);
    attn_trace_free(t);
    attn_embeddings_free(&big);
    release(&d);
}

/* The CLI writes it: `attn demo --xlsx`. */
static void test_cli_writes_the_workbook(void **state)
{
    (void)state;
    run_result r =
        run_cmd("cd '%s' && '%s' demo --xlsx cli.xlsx && ls -A", test_tmpdir(), attn_bin());
    if (r.status != 0) fail_msg("demo --xlsx: status %d, %s", r.status, r.err);
    assert_non_null(strstr(r.out, "cli.xlsx"));
    assert_null(strstr(r.out, ".tmp-"));
    run_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_recalculates_to_the_library),
        cmocka_unit_test(test_masks_recalculate_to_the_library),
        cmocka_unit_test(test_mha_recalculates_to_the_library),
        cmocka_unit_test(test_edit_an_embedding),
        cmocka_unit_test(test_cells_are_formulas),
        cmocka_unit_test(test_refusals_leave_nothing),
        cmocka_unit_test(test_cli_writes_the_workbook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
