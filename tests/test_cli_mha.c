/* test_cli_mha.c - `attn mha` end to end against PyTorch, run as the real program.
 *
 * Every case is a row of a table: the inputs of a tests/fixtures/mha/<case>
 * .safetensors (written by gen_mha_fixtures.py) are split into one
 * single-tensor file each (bool masks re-encoded by hand as BOOL or U8, float
 * masks as F32), `attn mha` runs on them with the weights named by the row
 * (the fixture itself, whose extra tensors are ignored; a file saved by the
 * library; a plain state_dict), and the "output" and "attn_weights" it writes
 * are held to the fixture's within atol 1e-5, rtol 1e-4. Rows also cover
 * self-attention (no --key/--value, or the query given as both), unbatched
 * (L, E) inputs, --causal and --add-zero-attn, with the checks particular to
 * them in small hooks. Bad input is in test_cli_mha_bad.c, `attn explain
 * --weights` in test_cli_explain_weights.c.
 */
#include "cli_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/mha.h"
#include "attn/mha_io.h"

#define MHA_DIR ATTN_TEST_FIXTURES "/mha"
#define ATOL 1e-5
#define RTOL 1e-4

static void fixture_path(char *path, const char *name)
{
    snprintf(path, PATH_LEN, "%s/%s.safetensors", MHA_DIR, name);
}

/* ---- comparing an `attn mha` output file --------------------------------------- */

static void expect_shape(const char *what, const attn_tensor *got, const attn_tensor *want)
{
    int same = got->ndim == want->ndim;
    for (int i = 0; same && i < got->ndim; i++) same = got->shape[i] == want->shape[i];
    if (!same) {
        char a[128], b[128];
        shape_json(a, sizeof a, got);
        shape_json(b, sizeof b, want);
        fail_msg("%s: shape %s, expected %s", what, a, b);
    }
}

/* O holds exactly "output" and "attn_weights", close to the expected ones. */
static void expect_results(const char *out_path, const attn_tensor *want_out,
                           const attn_tensor *want_w)
{
    char what[PATH_LEN + 64];
    attn_safetensors *st = open_st(out_path);
    if (attn_safetensors_count(st) != 2)
        fail_msg("%s: expected 2 tensors, found %zu", out_path, attn_safetensors_count(st));
    attn_st_info info;
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(attn_safetensors_info_at(st, i, &info), ATTN_OK);
        if (info.dtype != ATTN_DTYPE_F32)
            fail_msg("%s: tensor '%s' is %s, expected F32", out_path, info.name,
                     attn_dtype_name(info.dtype));
    }
    attn_tensor out, w;
    read_tensor(st, "output", &out);
    read_tensor(st, "attn_weights", &w);
    snprintf(what, sizeof what, "%s: output", out_path);
    expect_shape(what, &out, want_out);
    assert_close_f32(out.data, want_out->data, out.numel, ATOL, RTOL, what);
    snprintf(what, sizeof what, "%s: attn_weights", out_path);
    expect_shape(what, &w, want_w);
    assert_close_f32(w.data, want_w->data, w.numel, ATOL, RTOL, what);
    attn_tensor_free(&out);
    attn_tensor_free(&w);
    attn_safetensors_close(st);
}

/* The fixture's "output" and "attn_weights" (of batch element `batch` when
 * >= 0) against the file the command wrote. */
static void expect_fixture_results(const attn_safetensors *fx, const char *out, int batch)
{
    attn_tensor want_out, want_w, out_b, w_b;
    read_tensor(fx, "output", &want_out);
    read_tensor(fx, "attn_weights", &want_w);
    if (batch >= 0) {
        assert_int_equal(attn_tensor_index(&out_b, &want_out, (size_t)batch), ATTN_OK);
        assert_int_equal(attn_tensor_index(&w_b, &want_w, (size_t)batch), ATTN_OK);
        assert_int_equal(out_b.ndim, 2);
        assert_int_equal(w_b.ndim, 3);
        expect_results(out, &out_b, &w_b);
    } else {
        expect_results(out, &want_out, &want_w);
    }
    attn_tensor_free(&want_out);
    attn_tensor_free(&want_w);
}

/* ---- the table ------------------------------------------------------------------- */

typedef enum { W_FIXTURE, W_SAVED, W_PLAIN, W_SAVED_NO_ZERO_ATTN } weights_kind;
typedef enum { KV_SPLIT, KV_NONE, KV_QUERY } kv_kind;

typedef struct e2e_paths {
    char w[PATH_LEN], q[PATH_LEN], k[PATH_LEN], v[PATH_LEN], out[PATH_LEN];
} e2e_paths;

typedef struct e2e_case e2e_case;
struct e2e_case {
    const char *fixture;
    const char *mask_dtype; /* attn_mask file dtype: F32, BOOL, U8; NULL: none */
    const char *kpm_dtype;  /* key_padding_mask likewise */
    kv_kind kv;             /* --key/--value split from the fixture, left out, or the query */
    int causal;             /* --causal */
    const char *heads;      /* --num-heads: NULL none, "" the fixture's, else this */
    weights_kind weights;
    int unbatched;          /* batch element 1 of every input, one rank down */
    const char *extra;      /* more options, or NULL */
    /* Checks particular to a row, before and after the compared run. */
    void (*before)(const e2e_case *c, const e2e_paths *p, const char *args);
    void (*after)(const e2e_case *c, const e2e_paths *p);
};

/* The parameters of fixture `name` in a layer (to free); num_heads from the
 * fixture's metadata. */
static attn_mha *layer_of_fixture(const char *name, int add_zero_attn)
{
    char fx_path[PATH_LEN];
    fixture_path(fx_path, name);
    attn_safetensors *fx = open_st(fx_path);
    attn_mha_config cfg;
    attn_mha *m = NULL;
    if (attn_mha_config_from_safetensors(&cfg, fx, NULL, 0) != ATTN_OK)
        fail_msg("%s: %s", fx_path, attn_last_error());
    cfg.add_zero_attn = add_zero_attn;
    if (attn_mha_create(&m, &cfg) != ATTN_OK) fail_msg("attn_mha_create: %s", attn_last_error());
    if (attn_mha_load_safetensors(m, fx, NULL) != ATTN_OK)
        fail_msg("%s: %s", fx_path, attn_last_error());
    attn_safetensors_close(fx);
    return m;
}

/* The weights file of a row: the fixture, or its layer saved by the library
 * (with add_zero_attn off for W_SAVED_NO_ZERO_ATTN), or a plain state_dict
 * without metadata. */
static void weights_file(const e2e_case *c, char *w)
{
    if (c->weights == W_FIXTURE) {
        fixture_path(w, c->fixture);
        return;
    }
    char name[128];
    snprintf(name, sizeof name, "weights-%d-%s.safetensors", (int)c->weights, c->fixture);
    tmp_path(w, name);
    attn_mha *m = layer_of_fixture(c->fixture, 0);
    if (c->weights == W_PLAIN) {
        attn_st_named named[8];
        attn_tensor views[8];
        size_t n = attn_mha_param_count(m);
        assert_true(n <= 8);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(attn_mha_param_at(m, i, &named[i].name, &views[i], NULL), ATTN_OK);
            named[i].tensor = &views[i];
        }
        if (attn_safetensors_write(w, named, n, NULL, NULL, 0) != ATTN_OK)
            fail_msg("attn_safetensors_write: %s", attn_last_error());
    } else if (attn_mha_save_safetensors(m, w) != ATTN_OK) {
        fail_msg("attn_mha_save_safetensors: %s", attn_last_error());
    }
    attn_mha_free(m);
}

/* Writes the fixture's tensor `name` (batch element 1 when unbatched) as a
 * one-tensor file (F32, or a 1-byte dtype for masks) named
 * <fixture>.<name>.safetensors; its path into path. */
static void split_input(const attn_safetensors *fx, const e2e_case *c, const char *name,
                        const char *dtype, char *path)
{
    char file[256];
    snprintf(file, sizeof file, "%s%s.%s.safetensors", c->unbatched ? "unbatched-" : "",
             c->fixture, name);
    tmp_path(path, file);
    attn_tensor t, view;
    read_tensor(fx, name, &t);
    if (c->unbatched) assert_int_equal(attn_tensor_index(&view, &t, 1), ATTN_OK);
    else view = t;
    if (!dtype || strcmp(dtype, "F32") == 0) write_f32(path, name, &view);
    else write_mask_bytes(path, dtype, &view);
    attn_tensor_free(&t);
}

/* The command line of a row; the inputs written. */
static void e2e_args(const e2e_case *c, const attn_safetensors *fx, e2e_paths *p, char *args)
{
    char m[PATH_LEN], kpm[PATH_LEN], outdir[PATH_LEN];
    args[0] = '\0';
    split_input(fx, c, "query", NULL, p->q);
    append_args(args, "mha --weights '%s' --query '%s'", p->w, p->q);
    if (c->heads) {
        const char *meta = attn_safetensors_metadata(fx, "num_heads");
        if (!meta) fail_msg("%s: no num_heads metadata", c->fixture);
        append_args(args, " --num-heads %s", c->heads[0] ? c->heads : meta);
    }
    if (c->kv == KV_SPLIT) {
        split_input(fx, c, "key", NULL, p->k);
        split_input(fx, c, "value", NULL, p->v);
    } else if (c->kv == KV_QUERY) {
        snprintf(p->k, PATH_LEN, "%s", p->q);
        snprintf(p->v, PATH_LEN, "%s", p->q);
    }
    if (c->kv != KV_NONE) append_args(args, " --key '%s' --value '%s'", p->k, p->v);
    if (c->mask_dtype) {
        split_input(fx, c, "attn_mask", c->mask_dtype, m);
        append_args(args, " --attn-mask '%s'", m);
    }
    if (c->kpm_dtype) {
        split_input(fx, c, "key_padding_mask", c->kpm_dtype, kpm);
        append_args(args, " --key-padding-mask '%s'", kpm);
    }
    if (c->causal) append_args(args, " --causal");
    if (c->extra) append_args(args, " %s", c->extra);
    /* A fresh name for every run: a row may check that a failing run wrote nothing. */
    static unsigned runs;
    tmp_dir(outdir, "e2e-out");
    snprintf(p->out, PATH_LEN, "%.400s/%u-%.60s.out.safetensors", outdir, runs++, c->fixture);
    append_args(args, " --out '%s'", p->out);
}

static void run_e2e(const e2e_case *c)
{
    char fx_path[PATH_LEN], args[ARGS_LEN];
    e2e_paths p;
    fixture_path(fx_path, c->fixture);
    weights_file(c, p.w);
    attn_safetensors *fx = open_st(fx_path);
    e2e_args(c, fx, &p, args);
    if (c->before) c->before(c, &p, args);

    char *stdout_text = run_ok(args);
    expect_empty(args, "stdout", stdout_text);
    free(stdout_text);
    expect_fixture_results(fx, p.out, c->unbatched ? 1 : -1);
    attn_safetensors_close(fx);

    /* Written through a temporary file: nothing else is left beside it. */
    char outdir[PATH_LEN];
    tmp_dir(outdir, "e2e-out");
    char *listing = list_dir(outdir);
    expect_lacks(outdir, listing, ".tmp-");
    free(listing);
    if (c->after) c->after(c, &p);
}

/* Rows of the fixture set: their flags must match the fixture's own
 * description (metadata self, causal, attn_mask_kind, key_padding_kind). */
static void expect_row_matches_fixture(const e2e_case *c, size_t i)
{
    char fx_path[PATH_LEN];
    fixture_path(fx_path, c->fixture);
    attn_safetensors *fx = open_st(fx_path);
    const char *self = attn_safetensors_metadata(fx, "self");
    const char *causal = attn_safetensors_metadata(fx, "causal");
    const char *mk = attn_safetensors_metadata(fx, "attn_mask_kind");
    const char *pk = attn_safetensors_metadata(fx, "key_padding_kind");
    assert_non_null(self);
    assert_non_null(causal);
    assert_non_null(mk);
    assert_non_null(pk);
    if ((self[0] == '1') != (c->kv == KV_NONE) || (causal[0] == '1') != c->causal ||
        (strcmp(mk, "none") != 0) != (c->mask_dtype != NULL) ||
        (strcmp(pk, "none") != 0) != (c->kpm_dtype != NULL) ||
        (strcmp(mk, "bool") == 0 && strcmp(c->mask_dtype, "F32") == 0) ||
        (strcmp(pk, "bool") == 0 && strcmp(c->kpm_dtype, "F32") == 0))
        fail_msg("test table entry %zu does not match %s", i, fx_path);
    attn_safetensors_close(fx);
}

#define ROW(fx, mask, kpm, kv, causal) {fx, mask, kpm, kv, causal, "", W_FIXTURE, 0, NULL, NULL, NULL}

static void mha_fixtures(void **state)
{
    (void)state;
    static const e2e_case cases[] = {
        ROW("basic", NULL, NULL, KV_SPLIT, 0),
        {"basic", NULL, NULL, KV_SPLIT, 0, NULL, W_FIXTURE, 0, NULL, NULL, NULL}, /* the fixture records num_heads */
        ROW("kdim_vdim", NULL, NULL, KV_SPLIT, 0),
        ROW("kdim_vdim_no_bias", NULL, NULL, KV_SPLIT, 0),
        ROW("bias_kv", NULL, NULL, KV_SPLIT, 0),
        ROW("zero_attn", NULL, NULL, KV_SPLIT, 0), /* add_zero_attn from the metadata */
        ROW("bias_kv_zero_attn_kdim_kpm", NULL, "U8", KV_SPLIT, 0),
        ROW("bool_mask_2d", "BOOL", NULL, KV_SPLIT, 0),
        ROW("bool_mask_3d", "U8", NULL, KV_SPLIT, 0),
        ROW("float_mask_2d", "F32", NULL, KV_SPLIT, 0),
        ROW("float_mask_3d", "F32", NULL, KV_SPLIT, 0),
        ROW("kpm_bool", NULL, "U8", KV_SPLIT, 0),
        ROW("kpm_float", NULL, "F32", KV_SPLIT, 0),
        ROW("bool_mask_kpm_bool", "BOOL", "BOOL", KV_SPLIT, 0),
        ROW("float_mask_3d_kpm_float", "F32", "F32", KV_SPLIT, 0),
        ROW("bool_mask_kpm_float", "U8", "F32", KV_SPLIT, 0),
        ROW("fully_masked_row", "BOOL", "U8", KV_SPLIT, 0),
        ROW("self_attn", NULL, NULL, KV_NONE, 0),
        ROW("self_attn_no_bias", NULL, NULL, KV_NONE, 0),
        ROW("causal_self", NULL, NULL, KV_NONE, 1),
        ROW("causal_l_gt_s", NULL, NULL, KV_SPLIT, 1),
        ROW("causal_bias_kv_zero_attn", NULL, NULL, KV_NONE, 1),
        ROW("query_len_1", NULL, "BOOL", KV_SPLIT, 0),
        ROW("src_len_1_bias_kv", NULL, NULL, KV_SPLIT, 0),
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        expect_row_matches_fixture(&cases[i], i);
        run_e2e(&cases[i]);
    }
}

/* ---- rows with checks of their own ------------------------------------------------ */

/* --causal: nothing after the diagonal; without it the same query gives
 * other values. */
static void after_causal(const e2e_case *c, const e2e_paths *p)
{
    (void)c;
    attn_tensor w;
    attn_safetensors *o = open_st(p->out);
    read_tensor(o, "attn_weights", &w);
    assert_int_equal(w.ndim, 4);
    const size_t L = w.shape[2], S = w.shape[3];
    for (size_t nh = 0; nh < w.shape[0] * w.shape[1]; nh++)
        for (size_t i = 0; i < L; i++)
            for (size_t j = i + 1; j < S; j++)
                if (w.data[(nh * L + i) * S + j] != 0.0f)
                    fail_msg("--causal: attn_weights[%zu][%zu][%zu] = %g, expected 0", nh, i, j,
                             (double)w.data[(nh * L + i) * S + j]);
    attn_tensor_free(&w);
    attn_safetensors_close(o);

    char out[PATH_LEN], args[ARGS_LEN];
    tmp_path(out, "not-causal.out.safetensors");
    snprintf(args, sizeof args, "mha --weights '%s' --num-heads 2 --query '%s' --out '%s'", p->w,
             p->q, out);
    free(run_ok(args));
    o = open_st(out);
    read_tensor(o, "attn_weights", &w);
    assert_true(w.data[1] > 0.0f); /* row 0 sees key 1 */
    attn_tensor_free(&w);
    attn_safetensors_close(o);
}

/* A plain state_dict (no metadata) needs --num-heads. */
static void before_plain(const e2e_case *c, const e2e_paths *p, const char *args)
{
    (void)c, (void)args;
    char bad[ARGS_LEN];
    snprintf(bad, sizeof bad, "--weights '%s' --query '%s' --key '%s' --value '%s' --out '%s'",
             p->w, p->q, p->k, p->v, p->out);
    expect_bad("mha", bad, p->w, "--num-heads", NULL);
    assert_false(file_exists(p->out));
}

/* Without --add-zero-attn: S key positions, not S + 1. */
static void after_zero_attn(const e2e_case *c, const e2e_paths *p)
{
    char fx_path[PATH_LEN], args[ARGS_LEN];
    fixture_path(fx_path, c->fixture);
    attn_safetensors *fx = open_st(fx_path);
    attn_tensor want_w, got_w;
    read_tensor(fx, "attn_weights", &want_w);
    snprintf(args, sizeof args, "mha --weights '%s' --query '%s' --key '%s' --value '%s' --out '%s'",
             p->w, p->q, p->k, p->v, p->out);
    free(run_ok(args));
    attn_safetensors *o = open_st(p->out);
    read_tensor(o, "attn_weights", &got_w);
    assert_int_equal(got_w.ndim, 4);
    assert_int_equal(got_w.shape[3], want_w.shape[3] - 1);
    attn_tensor_free(&got_w);
    attn_tensor_free(&want_w);
    attn_safetensors_close(o);
    attn_safetensors_close(fx);
}

static void mha_options(void **state)
{
    (void)state;
    static const e2e_case cases[] = {
        /* key = value = query given explicitly: the same as leaving them out. */
        {"self_attn", NULL, NULL, KV_QUERY, 0, "2", W_FIXTURE, 0, NULL, NULL, NULL},
        /* An unbatched (L, E) query (and key, value): (L, E) output, (H, L, S)
         * weights; batch element 1 (not 0, so an off-by-one batch shows). */
        {"basic", NULL, NULL, KV_SPLIT, 0, NULL, W_FIXTURE, 1, NULL, NULL, NULL},
        {"kdim_vdim", NULL, NULL, KV_SPLIT, 0, NULL, W_FIXTURE, 1, NULL, NULL, NULL},
        {"bias_kv", NULL, NULL, KV_SPLIT, 0, NULL, W_FIXTURE, 1, NULL, NULL, NULL},
        {"self_attn", NULL, NULL, KV_NONE, 0, NULL, W_FIXTURE, 1, NULL, NULL, NULL},
        /* ... with PyTorch's unbatched key_padding_mask shape (S,). */
        {"kpm_bool", NULL, "BOOL", KV_SPLIT, 0, NULL, W_FIXTURE, 1, NULL, NULL, NULL},
        {"causal_self", NULL, NULL, KV_NONE, 1, "2", W_FIXTURE, 0, NULL, NULL, after_causal},
        /* A weights file saved by the library records num_heads: no --num-heads. */
        {"basic", NULL, NULL, KV_SPLIT, 0, NULL, W_SAVED, 0, NULL, NULL, NULL},
        {"kdim_vdim", NULL, NULL, KV_SPLIT, 0, NULL, W_SAVED, 0, NULL, NULL, NULL},
        {"bias_kv", NULL, NULL, KV_SPLIT, 0, NULL, W_SAVED, 0, NULL, NULL, NULL},
        /* A plain state_dict (no metadata) needs --num-heads; with it, it works. */
        {"basic", NULL, NULL, KV_SPLIT, 0, "2", W_PLAIN, 0, NULL, before_plain, NULL},
        /* --add-zero-attn on a layer saved without it matches the zero_attn case. */
        {"zero_attn", NULL, NULL, KV_SPLIT, 0, NULL, W_SAVED_NO_ZERO_ATTN, 0, "--add-zero-attn",
         NULL, after_zero_attn},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_e2e(&cases[i]);
}

static void mha_help(void **state)
{
    (void)state;
    char *out = run_ok("mha --help");
    expect_contains("attn mha --help", out, "usage: attn mha");
    expect_contains("attn mha --help", out, "--weights");
    expect_contains("attn mha --help", out, "--num-heads");
    free(out);
    out = run_ok("mha -h");
    expect_contains("attn mha -h", out, "usage: attn mha");
    free(out);
    out = run_ok("--help");
    expect_contains("attn --help", out, "mha");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mha_fixtures),
        cmocka_unit_test(mha_options),
        cmocka_unit_test(mha_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL); /* test_support removes the tmpdir */
}
