/* test_cli_explain_weights.c - `attn explain --embeddings X.csv --weights W`,
 * run as the real program: the text and the JSON walkthrough of a layer built
 * and saved by the library, checked against the same layer run in this
 * process (projections, scores, attention, head outputs, concatenation,
 * output), and its bad input.
 */
#include "cli_support.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/mha.h"
#include "attn/mha_io.h"

#define MHA_DIR ATTN_TEST_FIXTURES "/mha"
#define ATOL 1e-5
#define RTOL 1e-4

#define XT 3 /* tokens */
#define XE 4 /* dimensions */
static const char *const x_tokens[XT] = {"cat", "and", "mouse"};
static const float x_values[XT][XE] = {
    {2.0f, 0.0f, 0.25f, -0.5f}, {0.0f, 0.5f, 1.5f, 0.0f}, {1.5f, 1.5f, 0.25f, 0.75f}};
static const char x_csv[] = "token,animal,tech,grammar,mood\n"
                            "cat,2.0,0.0,0.25,-0.5\n"
                            "and,0.0,0.5,1.5,0.0\n"
                            "mouse,1.5,1.5,0.25,0.75\n";

/* A layer of E = XE and H heads, xavier init plus nonzero biases, saved. */
static attn_mha *explain_layer_file(size_t heads, const char *file, char *path)
{
    attn_mha_config cfg = attn_mha_default_config(XE, heads);
    attn_mha *m = NULL;
    if (attn_mha_create(&m, &cfg) != ATTN_OK) fail_msg("attn_mha_create: %s", attn_last_error());
    assert_int_equal(attn_mha_init(m, 1234), ATTN_OK);
    for (size_t i = 0; i < attn_mha_param_count(m); i++) {
        const char *name;
        attn_tensor p;
        assert_int_equal(attn_mha_param_at(m, i, &name, &p, NULL), ATTN_OK);
        if (strstr(name, "bias"))
            for (size_t j = 0; j < p.numel; j++) p.data[j] = 0.1f * (float)((j * 7) % 5) - 0.2f;
    }
    tmp_path(path, file);
    if (attn_mha_save_safetensors(m, path) != ATTN_OK)
        fail_msg("attn_mha_save_safetensors: %s", attn_last_error());
    return m;
}


static void expect_close(const char *what, const double *got, const float *want, size_t n,
                         size_t stride_got, size_t stride_want, size_t cols)
{
    for (size_t r = 0; r < n; r++)
        for (size_t c = 0; c < cols; c++) {
            double a = got[r * stride_got + c], b = want[r * stride_want + c];
            if (!(fabs(a - b) <= ATOL + RTOL * fabs(b)))
                fail_msg("%s[%zu][%zu] = %.9g, expected %.9g", what, r, c, a, b);
        }
}

/* One head of the JSON walkthrough: Q, K, V = X Wᵀ + b with the head's rows
 * of in_proj; scores Q Kᵀ (scaled or not); attention rows in [0, 1] summing to
 * 1 (0 above the diagonal when causal) and equal to the layer's weights
 * want_w; the head output attention · V, held at h·d_v of the concatenation. */
static void check_head(const cJSON *o, size_t h, size_t H, size_t dk, size_t dv, int causal,
                       const attn_tensor *w_in_t, const attn_tensor *b_in_t, const float *want_w,
                       const double *concat)
{
    const attn_tensor w_in = *w_in_t, b_in = *b_in_t;
    char what[64];
    snprintf(what, sizeof what, "heads[%zu]", h);
    if (!cJSON_IsObject(o)) fail_msg("%s: not an object", what);
    double *q = matrix_of(what, o, "q", XT, dk), *k = matrix_of(what, o, "k", XT, dk);
    double *v = matrix_of(what, o, "v", XT, dv), *sc = matrix_of(what, o, "scores", XT, XT);
    double *att = matrix_of(what, o, "attention", XT, XT);
    double *ho = matrix_of(what, o, "output", XT, dv);
    /* Q, K, V = X Wᵀ + b with the head's rows of in_proj. */
    double *proj[3] = {q, k, v};
    for (size_t part = 0; part < 3; part++)
        for (size_t t = 0; t < XT; t++)
            for (size_t c = 0; c < dk; c++) {
                size_t row = part * XE + h * dk + c;
                double x = b_in.data[row];
                for (size_t e = 0; e < XE; e++) x += x_values[t][e] * w_in.data[row * XE + e];
                double got = proj[part][t * dk + c];
                if (!(fabs(got - x) <= ATOL + RTOL * fabs(x)))
                    fail_msg("%s.%c[%zu][%zu] = %.9g, X Wᵀ + b gives %.9g", what, "qkv"[part],
                             t, c, got, x);
            }
    /* Scores = Q Kᵀ (unscaled or scaled: rank order kept; check Q Kᵀ up to a factor). */
    for (size_t i = 0; i < XT; i++) {
        double sum = 0;
        for (size_t j = 0; j < XT; j++) {
            double a = att[i * XT + j];
            if (!(a >= 0 && a <= 1)) fail_msg("%s.attention[%zu][%zu] = %g", what, i, j, a);
            if (causal && j > i && a != 0.0)
                fail_msg("%s.attention[%zu][%zu] = %g, expected 0 (causal)", what, i, j, a);
            sum += a;
        }
        if (fabs(sum - 1.0) > 1e-5) fail_msg("%s.attention row %zu sums to %.9g", what, i, sum);
    }
    for (size_t i = 0; i < XT; i++)
        for (size_t j = 0; j < XT; j++) {
            double dot = 0;
            for (size_t c = 0; c < dk; c++) dot += q[i * dk + c] * k[j * dk + c];
            double s = sc[i * XT + j];
            if (!(fabs(s - dot) <= 1e-4 * fmax(1.0, fabs(dot))) &&
                !(fabs(s - dot / sqrt((double)dk)) <= 1e-4 * fmax(1.0, fabs(dot))))
                fail_msg("%s.scores[%zu][%zu] = %.9g, Q Kᵀ gives %.9g", what, i, j, s, dot);
        }
    expect_close("attention", att, want_w + h * XT * XT, XT, XT, XT, XT);
    /* The head output is attention · V, and the concat holds it at h·d_v. */
    for (size_t i = 0; i < XT; i++)
        for (size_t c = 0; c < dv; c++) {
            double x = 0;
            for (size_t j = 0; j < XT; j++) x += att[i * XT + j] * v[j * dv + c];
            if (!(fabs(ho[i * dv + c] - x) <= 1e-4 * fmax(1.0, fabs(x))))
                fail_msg("%s.output[%zu][%zu] = %.9g, attention · V gives %.9g", what, i, c,
                         ho[i * dv + c], x);
            if (concat[i * H * dv + h * dv + c] != ho[i * dv + c])
                fail_msg("concat[%zu][%zu] = %.9g, but %s.output[%zu][%zu] = %.9g", i,
                         h * dv + c, concat[i * H * dv + h * dv + c], what, i, c,
                         ho[i * dv + c]);
        }
    free(q), free(k), free(v), free(sc), free(att), free(ho);
}

/* Runs `attn explain --json` on the layer's file and checks the document's
 * keys, dimension names, text, tokens and embeddings; returns it parsed. */
static cJSON *explain_json_doc(const char *w_path, int causal, const char *extra, char *args)
{
    char csv[PATH_LEN];
    snprintf(csv, sizeof csv, "%s", write_tmp("explain-x.csv", x_csv));
    snprintf(args, ARGS_LEN, "explain --embeddings '%s' --weights '%s' --json %s%s", csv,
             w_path, causal ? "--causal " : "", extra);
    char *out = run_ok(args);
    cJSON *root = cJSON_Parse(out);
    if (!root) fail_msg("%s: stdout is not JSON:\n%s", args, out);
    free(out);

    static const char *const keys[] = {"dims", "text", "tokens", "embeddings", "heads", "concat",
                                       "output"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!cJSON_GetObjectItemCaseSensitive(root, keys[i]))
            fail_msg("%s: no key \"%s\"", args, keys[i]);
    if (cJSON_GetArraySize(root) != (int)(sizeof keys / sizeof *keys))
        fail_msg("%s: expected %zu top-level keys, got %d", args, sizeof keys / sizeof *keys,
                 cJSON_GetArraySize(root));
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(root, "dims");
    static const char *const dim_names[XE] = {"animal", "tech", "grammar", "mood"};
    assert_true(cJSON_IsArray(dims));
    assert_int_equal(cJSON_GetArraySize(dims), XE);
    for (int j = 0; j < XE; j++) {
        const cJSON *d = cJSON_GetArrayItem(dims, j);
        assert_true(cJSON_IsString(d));
        assert_string_equal(d->valuestring, dim_names[j]);
    }
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "text");
    assert_true(cJSON_IsString(text));
    assert_string_equal(text->valuestring, "cat and mouse");
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(root, "tokens");
    assert_int_equal(cJSON_GetArraySize(tokens), XT);
    for (int i = 0; i < XT; i++)
        assert_string_equal(cJSON_GetArrayItem(tokens, i)->valuestring, x_tokens[i]);
    double *emb = matrix_of(args, root, "embeddings", XT, XE);
    expect_close("embeddings", emb, &x_values[0][0], XT, XE, XE, XE);
    free(emb);
    return root;
}

static void check_explain_json(const char *w_path, attn_mha *m, size_t H, int causal,
                               const char *extra)
{
    char args[ARGS_LEN];
    cJSON *root = explain_json_doc(w_path, causal, extra, args);
    /* The same layer in this process. */
    const attn_mha_config *cfg = attn_mha_get_config(m);
    const size_t dk = cfg->head_dim, dv = cfg->v_head_dim;
    assert_int_equal(cfg->num_heads, H);
    float want_out[XT * XE], want_w[16 * XT * XT];
    assert_true(H <= 16);
    attn_mha_inputs in;
    memset(&in, 0, sizeof in);
    in.batch = 1, in.tgt_len = XT, in.src_len = XT;
    in.query = in.key = in.value = &x_values[0][0];
    in.causal = causal ? ATTN_CAUSAL_TOP_LEFT : ATTN_CAUSAL_NONE;
    if (attn_mha_forward(m, want_out, want_w, 0, &in, NULL, NULL) != ATTN_OK)
        fail_msg("attn_mha_forward: %s", attn_last_error());
    attn_tensor w_in, b_in;
    const char *pname;
    assert_int_equal(attn_mha_param_at(m, 0, &pname, &w_in, NULL), ATTN_OK);
    assert_string_equal(pname, "in_proj_weight");
    assert_int_equal(attn_mha_param_at(m, 1, &pname, &b_in, NULL), ATTN_OK);
    assert_string_equal(pname, "in_proj_bias");

    const cJSON *heads = cJSON_GetObjectItemCaseSensitive(root, "heads");
    if (!cJSON_IsArray(heads) || (size_t)cJSON_GetArraySize(heads) != H)
        fail_msg("%s: heads is not an array of %zu", args, H);
    double *concat = matrix_of(args, root, "concat", XT, H * dv);
    for (size_t h = 0; h < H; h++)
        check_head(cJSON_GetArrayItem(heads, (int)h), h, H, dk, dv, causal, &w_in, &b_in, want_w,
                   concat);
    free(concat);
    double *output = matrix_of(args, root, "output", XT, XE);
    expect_close("output", output, want_out, XT, XE, XE, XE);
    free(output);
    cJSON_Delete(root);
}

static void explain_weights_json(void **state)
{
    (void)state;
    char w[PATH_LEN];
    attn_mha *m = explain_layer_file(2, "explain-w2.safetensors", w);
    check_explain_json(w, m, 2, 0, "");              /* num_heads from the file */
    check_explain_json(w, m, 2, 0, "--num-heads 2"); /* or given */
    check_explain_json(w, m, 2, 1, "");              /* causal */
    attn_mha_free(m);

    /* Four heads of d_k = 1, given on the command line over the file's 2:
     * the same parameters, split in 4. */
    attn_mha_config cfg = attn_mha_default_config(XE, 4);
    attn_safetensors *st = open_st(w);
    assert_int_equal(attn_mha_create(&m, &cfg), ATTN_OK);
    if (attn_mha_load_safetensors(m, st, NULL) != ATTN_OK)
        fail_msg("attn_mha_load_safetensors: %s", attn_last_error());
    attn_safetensors_close(st);
    check_explain_json(w, m, 4, 0, "--num-heads 4");
    attn_mha_free(m);

    /* One head. */
    m = explain_layer_file(1, "explain-w1.safetensors", w);
    check_explain_json(w, m, 1, 0, "");
    attn_mha_free(m);
}

static void explain_weights_text(void **state)
{
    (void)state;
    char w[PATH_LEN], csv[PATH_LEN], args[ARGS_LEN];
    attn_mha_free(explain_layer_file(2, "explain-text-w.safetensors", w));
    snprintf(csv, sizeof csv, "%s", write_tmp("explain-text-x.csv", x_csv));
    snprintf(args, sizeof args, "explain --embeddings '%s' --weights '%s' --color never", csv, w);
    char *out = run_ok(args);
    expect_contains(args, out, "Head 1 of 2");
    expect_contains(args, out, "Head 2 of 2");
    expect_lacks(args, out, "Head 3 of");
    expect_contains(args, out, "Concatenation");
    expect_contains(args, out, "Output");
    expect_contains(args, out, "mouse");
    expect_contains(args, out, w);
    expect_contains(args, out, csv);
    expect_lacks(args, out, "\x1b[");
    free(out);

    snprintf(args, sizeof args, "explain --embeddings '%s' --weights '%s' --num-heads 4", csv, w);
    out = run_ok(args);
    expect_contains(args, out, "Head 1 of 4");
    expect_contains(args, out, "Head 4 of 4");
    expect_contains(args, out, "Concatenation");
    free(out);
}

static void explain_weights_bad(void **state)
{
    (void)state;
    char w[PATH_LEN], csv[PATH_LEN], args[ARGS_LEN];
    attn_mha_free(explain_layer_file(2, "explain-bad-w.safetensors", w));
    /* 3 dimensions in the CSV, 4 in the layer. */
    snprintf(csv, sizeof csv, "%s",
             write_tmp("explain-3d.csv", "token,a,b,c\ncat,1,2,3\nmouse,3,2,1\n"));
    snprintf(args, sizeof args, "--embeddings '%s' --weights '%s'", csv, w);
    expect_bad("explain", args, csv, "3 dimensions", "4", (const char *)NULL);
    snprintf(args, sizeof args, "--embeddings '%s' --weights '%s' --json", csv, w);
    expect_bad("explain", args, csv, "3 dimensions", (const char *)NULL);

    snprintf(csv, sizeof csv, "%s", write_tmp("explain-bad-x.csv", x_csv));
    /* --num-heads that does not divide E. */
    snprintf(args, sizeof args, "--embeddings '%s' --weights '%s' --num-heads 3", csv, w);
    expect_bad("explain", args, w, "divisible", (const char *)NULL);
    /* A corrupt or missing weights file. */
    char bad[PATH_LEN];
    tmp_path(bad, "explain-corrupt-w.safetensors");
    write_bytes(bad, "abc", 3);
    snprintf(args, sizeof args, "--embeddings '%s' --weights '%s'", csv, bad);
    expect_bad("explain", args, bad, "3 bytes", (const char *)NULL);
    tmp_path(bad, "explain-missing-w.safetensors");
    snprintf(args, sizeof args, "--embeddings '%s' --weights '%s'", csv, bad);
    expect_bad("explain", args, bad, (const char *)NULL);

    /* Usage errors. */
    snprintf(args, sizeof args, "--embeddings '%s' --weights '%s' --compare '%s'", csv, w, csv);
    expect_usage("explain", args, "--compare");
    snprintf(args, sizeof args, "--embeddings '%s' --num-heads 2", csv);
    expect_usage("explain", args, "--num-heads");
    snprintf(args, sizeof args, "--embeddings '%s' --weights '%s' --num-heads 0", csv, w);
    expect_usage("explain", args, "--num-heads");
    snprintf(args, sizeof args, "--weights '%s'", w);
    expect_usage("explain", args, "--embeddings");
}

/* A layer whose key/value widths differ from E: a CSV of E dimensions fits
 * the query but not the keys; the message must say what the layer expects
 * (kdim 7, vdim 11), not "E dimensions, but the layer expects embed_dim E". */
static void explain_weights_kdim_mismatch(void **state)
{
    (void)state;
    char w[PATH_LEN], csv[PATH_LEN], args[ARGS_LEN], cmd[ARGS_LEN + 600];
    snprintf(w, sizeof w, "%s/kdim_vdim.safetensors", MHA_DIR); /* E = 15, kdim = 7, vdim = 11 */
    char text[1024] = "token";
    for (int j = 0; j < 15; j++) snprintf(text + strlen(text), 32, ",d%d", j);
    for (int t = 0; t < 2; t++) {
        snprintf(text + strlen(text), 32, "\nt%d", t);
        for (int j = 0; j < 15; j++) snprintf(text + strlen(text), 32, ",%d", (j + t) % 3);
    }
    strcat(text, "\n");
    snprintf(csv, sizeof csv, "%s", write_tmp("explain-15.csv", text));
    snprintf(args, sizeof args, "--embeddings '%s' --weights '%s'", csv, w);
    expect_bad("explain", args, csv, (const char *)NULL);
    /* What the message says besides the two paths must mention 7 (kdim) or 11 (vdim). */
    char full[ARGS_LEN + 16];
    snprintf(full, sizeof full, "explain %s", args);
    run_result r = run_attn(cmd, sizeof cmd, full);
    char rest[2048], msg[2048];
    snprintf(rest, sizeof rest, "%s", r.err);
    snprintf(msg, sizeof msg, "%s", r.err);
    run_result_free(&r);
    const char *paths[2] = {csv, w};
    for (int i = 0; i < 2; i++)
        for (char *p = strstr(rest, paths[i]); p; p = strstr(rest, paths[i]))
            memmove(p, p + strlen(paths[i]), strlen(p + strlen(paths[i])) + 1);
    if (!strstr(rest, "7") && !strstr(rest, "11"))
        fail_msg("%s: the message should name the layer's key/value width (kdim 7, vdim 11) "
                 "that 15 dimensions do not fit, got:\n%s",
                 cmd, msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(explain_weights_json),
        cmocka_unit_test(explain_weights_text),
        cmocka_unit_test(explain_weights_bad),
        cmocka_unit_test(explain_weights_kdim_mismatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL); /* test_support removes the tmpdir */
}
