/* test_mha_torch.c - attn_mha (forward and backward) against torch.nn.MultiheadAttention.
 *
 * Every tests/fixtures/mha/<name>.safetensors (written by
 * tests/gen_mha_fixtures.py, which documents the names and metadata) becomes
 * one cmocka test: build the layer from the file's configuration, load its
 * parameters by their state_dict names, run the forward pass with per-head
 * weights and a cache, then the backward pass with d_out = R, and hold the
 * output, the weights and every gradient to the float64 PyTorch reference. The
 * forward pass is run once more with head-averaged weights. A separate test
 * fails when fewer than MIN_FIXTURES files are present, so a lost directory
 * cannot pass silently.
 */
#include "test_support.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/mha.h"
#include "attn/safetensors.h"

#define MHA_DIR ATTN_TEST_FIXTURES "/mha"
#define MIN_FIXTURES 20
#define MAX_TENSORS 40
#define FWD_ATOL 1e-5
#define FWD_RTOL 1e-4
#define BWD_ATOL 1e-4
#define BWD_RTOL 1e-3

typedef struct named_tensor {
    const char *name; /* owned by the open safetensors file */
    attn_tensor t;
} named_tensor;

/* Per-test state, owned by main(); case_free() is safe to call twice. */
typedef struct mha_case {
    char *path;
    attn_safetensors *st;
    named_tensor tensors[MAX_TENSORS];
    size_t n_tensors;
    attn_mha *mha;
    attn_mha_cache *cache;
    float *out, *weights, *out_avg, *weights_avg, *want_avg, *d_query, *d_key, *d_value;
} mha_case;

static void case_free(mha_case *c)
{
    for (size_t i = 0; i < c->n_tensors; i++) attn_tensor_free(&c->tensors[i].t);
    c->n_tensors = 0;
    attn_safetensors_close(c->st);
    c->st = NULL;
    attn_mha_free(c->mha);
    c->mha = NULL;
    attn_mha_cache_free(c->cache);
    c->cache = NULL;
    free(c->out), free(c->weights), free(c->out_avg), free(c->weights_avg);
    free(c->want_avg), free(c->d_query), free(c->d_key), free(c->d_value);
    c->out = c->weights = c->out_avg = c->weights_avg = c->want_avg = NULL;
    c->d_query = c->d_key = c->d_value = NULL;
}

static int teardown_case(void **state)
{
    case_free(*state);
    return 0;
}

/* ---- fixture access ------------------------------------------------------- */

static const attn_tensor *get(const mha_case *c, const char *name)
{
    for (size_t i = 0; i < c->n_tensors; i++)
        if (strcmp(c->tensors[i].name, name) == 0) return &c->tensors[i].t;
    return NULL;
}

static const attn_tensor *need(const mha_case *c, const char *name)
{
    const attn_tensor *t = get(c, name);
    if (!t) fail_msg("%s: no tensor '%s'", c->path, name);
    return t;
}

/* Fails unless t has exactly the given shape. */
static void need_shape(const mha_case *c, const char *name, const attn_tensor *t, int ndim,
                       size_t d0, size_t d1, size_t d2, size_t d3)
{
    const size_t want[4] = {d0, d1, d2, d3};
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == want[i];
    if (!ok) {
        char got[128] = "", exp[128] = "";
        size_t a = 0, b = 0;
        for (int i = 0; i < t->ndim && a < sizeof got; i++)
            a += (size_t)snprintf(got + a, sizeof got - a, "%s%zu", i ? ", " : "", t->shape[i]);
        for (int i = 0; i < ndim && b < sizeof exp; i++)
            b += (size_t)snprintf(exp + b, sizeof exp - b, "%s%zu", i ? ", " : "", want[i]);
        fail_msg("%s: tensor '%s' has shape [%s], expected [%s]", c->path, name, got, exp);
    }
}

static const char *meta(const mha_case *c, const char *key)
{
    const char *v = attn_safetensors_metadata(c->st, key);
    if (!v) fail_msg("%s: no metadata '%s'", c->path, key);
    return v;
}

static int meta_flag(const mha_case *c, const char *key)
{
    const char *v = meta(c, key);
    if (strcmp(v, "0") && strcmp(v, "1"))
        fail_msg("%s: metadata %s = '%s', expected \"0\" or \"1\"", c->path, key, v);
    return v[0] == '1';
}

/* -1: none; otherwise the mask kind. */
static int meta_kind(const mha_case *c, const char *key)
{
    const char *v = meta(c, key);
    if (strcmp(v, "none") == 0) return -1;
    if (strcmp(v, "bool") == 0) return ATTN_MASK_BOOL;
    if (strcmp(v, "float") == 0) return ATTN_MASK_ADDITIVE;
    fail_msg("%s: metadata %s = '%s', expected none, bool or float", c->path, key, v);
    return -1;
}

static int is_param_name(const char *name)
{
    static const char *const data[] = {"query", "key", "value", "attn_mask", "key_padding_mask",
                                       "R", "output", "attn_weights", "attn_weights_rows"};
    if (strncmp(name, "grad.", 5) == 0) return 0;
    for (size_t i = 0; i < sizeof data / sizeof data[0]; i++)
        if (strcmp(name, data[i]) == 0) return 0;
    return 1;
}

static float *alloc_floats(size_t n, int nan_fill)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    if (nan_fill)
        for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

/* ---- the test --------------------------------------------------------------- */

static void load(mha_case *c)
{
    if (attn_safetensors_open(&c->st, c->path) != ATTN_OK)
        fail_msg("%s: cannot open: %s", c->path, attn_last_error());
    size_t n = attn_safetensors_count(c->st);
    if (n > MAX_TENSORS) fail_msg("%s: %zu tensors, at most %d expected", c->path, n, MAX_TENSORS);
    for (size_t i = 0; i < n; i++) {
        attn_st_info info;
        if (attn_safetensors_info_at(c->st, i, &info) != ATTN_OK)
            fail_msg("%s: tensor %zu: %s", c->path, i, attn_last_error());
        if (attn_safetensors_read(c->st, info.name, &c->tensors[i].t) != ATTN_OK)
            fail_msg("%s: cannot read '%s': %s", c->path, info.name, attn_last_error());
        c->tensors[i].name = info.name;
        c->n_tensors = i + 1;
    }
}

static void test_fixture(void **state)
{
    mha_case *c = *state;
    char what[768];
    load(c);

    /* ---- configuration from the metadata and the shapes ---- */
    const int self = meta_flag(c, "self");
    const attn_tensor *query = need(c, "query");
    if (query->ndim != 3) fail_msg("%s: query must be (N, L, E), has %d dims", c->path, query->ndim);
    const size_t N = query->shape[0], L = query->shape[1], E = query->shape[2];
    const attn_tensor *key = self ? query : need(c, "key");
    const attn_tensor *value = self ? query : need(c, "value");
    if (self && (get(c, "key") || get(c, "value")))
        fail_msg("%s: self-attention fixture holds a separate key or value", c->path);
    if (key->ndim != 3) fail_msg("%s: key must be (N, S, kdim), has %d dims", c->path, key->ndim);
    const size_t S = key->shape[1], kdim = key->shape[2];
    need_shape(c, "key", key, 3, N, S, kdim, 0);
    if (value->ndim != 3) fail_msg("%s: value must be 3-D", c->path);
    const size_t vdim = value->shape[2];
    need_shape(c, "value", value, 3, N, S, vdim, 0);

    char *end = NULL;
    const char *hs = meta(c, "num_heads");
    errno = 0;
    unsigned long hl = strtoul(hs, &end, 10);
    if (errno || end == hs || *end || hl == 0 || hl > 4096)
        fail_msg("%s: metadata num_heads = '%s' is not a head count", c->path, hs);
    const size_t H = (size_t)hl;

    attn_mha_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.embed_dim = E;
    cfg.num_heads = H;
    cfg.kdim = kdim;
    cfg.vdim = vdim;
    cfg.bias = get(c, "in_proj_bias") != NULL;
    cfg.add_bias_kv = get(c, "bias_k") != NULL;
    cfg.add_zero_attn = meta_flag(c, "add_zero_attn");
    if ((get(c, "out_proj.bias") != NULL) != cfg.bias)
        fail_msg("%s: in_proj_bias and out_proj.bias must be both present or both absent", c->path);
    if ((get(c, "bias_v") != NULL) != cfg.add_bias_kv)
        fail_msg("%s: bias_k and bias_v must be both present or both absent", c->path);
    if (meta_flag(c, "bias") != cfg.bias || meta_flag(c, "add_bias_kv") != cfg.add_bias_kv)
        fail_msg("%s: metadata bias/add_bias_kv disagree with the tensors present", c->path);

    if (attn_mha_create(&c->mha, &cfg) != ATTN_OK)
        fail_msg("%s: attn_mha_create: %s", c->path, attn_last_error());

    /* ---- parameters, by state_dict name ---- */
    const size_t np = attn_mha_param_count(c->mha);
    for (size_t i = 0; i < np; i++) {
        const char *name;
        attn_tensor p;
        if (attn_mha_param_at(c->mha, i, &name, &p, NULL) != ATTN_OK)
            fail_msg("%s: attn_mha_param_at(%zu): %s", c->path, i, attn_last_error());
        const attn_tensor *f = get(c, name);
        if (!f) fail_msg("%s: the layer has parameter '%s', the fixture does not", c->path, name);
        need_shape(c, name, f, p.ndim, p.shape[0], p.shape[1], p.shape[2], p.shape[3]);
        if (f->numel != p.numel)
            fail_msg("%s: '%s' holds %zu values, the layer %zu", c->path, name, f->numel, p.numel);
        memcpy(p.data, f->data, p.numel * sizeof(float));
    }
    size_t n_fixture_params = 0, n_grads = 0;
    for (size_t i = 0; i < c->n_tensors; i++) {
        n_fixture_params += (size_t)is_param_name(c->tensors[i].name);
        n_grads += strncmp(c->tensors[i].name, "grad.", 5) == 0;
    }
    if (n_fixture_params != np)
        fail_msg("%s: the fixture holds %zu parameters, the layer %zu", c->path, n_fixture_params, np);
    if (n_grads != np + (self ? 1 : 3))
        fail_msg("%s: the fixture holds %zu gradients, expected %zu", c->path, n_grads,
                 np + (self ? 1 : 3));

    /* ---- inputs and masks ---- */
    attn_mha_inputs in;
    memset(&in, 0, sizeof in);
    in.batch = N, in.tgt_len = L, in.src_len = S;
    in.query = query->data, in.key = key->data, in.value = value->data;
    int kind = meta_kind(c, "attn_mask_kind");
    in.attn_mask_per_head = meta_flag(c, "attn_mask_per_head");
    if (kind >= 0) {
        const attn_tensor *m = need(c, "attn_mask");
        if (in.attn_mask_per_head)
            need_shape(c, "attn_mask", m, 3, N * H, L, S, 0);
        else
            need_shape(c, "attn_mask", m, 2, L, S, 0, 0);
        in.attn_mask = m->data;
        in.attn_mask_kind = (attn_mask_kind)kind;
    } else if (get(c, "attn_mask")) {
        fail_msg("%s: attn_mask present but attn_mask_kind is none", c->path);
    }
    kind = meta_kind(c, "key_padding_kind");
    if (kind >= 0) {
        const attn_tensor *m = need(c, "key_padding_mask");
        need_shape(c, "key_padding_mask", m, 2, N, S, 0, 0);
        in.key_padding_mask = m->data;
        in.key_padding_kind = (attn_mask_kind)kind;
    } else if (get(c, "key_padding_mask")) {
        fail_msg("%s: key_padding_mask present but key_padding_kind is none", c->path);
    }
    in.causal = meta_flag(c, "causal") ? ATTN_CAUSAL_TOP_LEFT : ATTN_CAUSAL_NONE;
    /* optional: a temperature on every head (the fixture's torch divided its
     * query projection by it) */
    attn_sdpa_params sdpa = attn_sdpa_defaults();
    const char *temp = attn_safetensors_metadata(c->st, "temperature");
    if (temp) {
        char *rest;
        sdpa.temperature = strtof(temp, &rest);
        if (rest == temp || *rest || !(sdpa.temperature > 0.0f))
            fail_msg("%s: metadata temperature = '%s' is not a positive number", c->path, temp);
        in.sdpa = &sdpa;
    }

    /* ---- forward, per-head weights, with a cache ---- */
    const size_t S2 = attn_mha_kv_len(c->mha, S);
    assert_int_equal(S2, S + (size_t)cfg.add_bias_kv + (size_t)cfg.add_zero_attn);
    const attn_tensor *want_out = need(c, "output");
    need_shape(c, "output", want_out, 3, N, L, E, 0);
    const attn_tensor *want_w = get(c, "attn_weights");
    size_t rows = L; /* query rows of the weights the fixture holds */
    if (want_w) {
        need_shape(c, "attn_weights", want_w, 4, N, H, L, S2);
    } else {
        want_w = need(c, "attn_weights_rows");
        rows = want_w->shape[2];
        if (rows > L) fail_msg("%s: attn_weights_rows has %zu rows, L = %zu", c->path, rows, L);
        need_shape(c, "attn_weights_rows", want_w, 4, N, H, rows, S2);
    }
    const attn_tensor *R = need(c, "R");
    need_shape(c, "R", R, 3, N, L, E, 0);

    c->out = alloc_floats(N * L * E, 1);
    c->weights = alloc_floats(N * H * L * S2, 1);
    if (attn_mha_cache_create(&c->cache) != ATTN_OK)
        fail_msg("%s: attn_mha_cache_create: %s", c->path, attn_last_error());
    if (attn_mha_forward(c->mha, c->out, c->weights, 0, &in, c->cache, NULL) != ATTN_OK)
        fail_msg("%s: attn_mha_forward: %s", c->path, attn_last_error());
    snprintf(what, sizeof what, "%s: output", c->path);
    assert_close_f32(c->out, want_out->data, N * L * E, FWD_ATOL, FWD_RTOL, what);
    for (size_t nh = 0; nh < N * H; nh++) {
        snprintf(what, sizeof what, "%s: %s[n=%zu, h=%zu] (flat row-major over L x S')", c->path,
                 rows == L ? "attn_weights" : "attn_weights_rows", nh / H, nh % H);
        assert_close_f32(c->weights + nh * L * S2, want_w->data + nh * rows * S2, rows * S2,
                         FWD_ATOL, FWD_RTOL, what);
    }

    /* ---- backward with d_out = R ---- */
    attn_mha_zero_grad(c->mha);
    c->d_query = alloc_floats(N * L * E, 0);
    if (!self) {
        c->d_key = alloc_floats(N * S * kdim, 0);
        c->d_value = alloc_floats(N * S * vdim, 0);
    }
    float *dk = self ? c->d_query : c->d_key, *dv = self ? c->d_query : c->d_value;
    if (attn_mha_backward(c->mha, c->d_query, dk, dv, R->data, &in, c->cache) != ATTN_OK)
        fail_msg("%s: attn_mha_backward: %s", c->path, attn_last_error());
    const attn_tensor *g = need(c, "grad.query");
    need_shape(c, "grad.query", g, 3, N, L, E, 0);
    snprintf(what, sizeof what, "%s: grad.query%s", c->path, self ? " (q = k = v, summed)" : "");
    assert_close_f32(c->d_query, g->data, N * L * E, BWD_ATOL, BWD_RTOL, what);
    if (!self) {
        g = need(c, "grad.key");
        need_shape(c, "grad.key", g, 3, N, S, kdim, 0);
        snprintf(what, sizeof what, "%s: grad.key", c->path);
        assert_close_f32(c->d_key, g->data, N * S * kdim, BWD_ATOL, BWD_RTOL, what);
        g = need(c, "grad.value");
        need_shape(c, "grad.value", g, 3, N, S, vdim, 0);
        snprintf(what, sizeof what, "%s: grad.value", c->path);
        assert_close_f32(c->d_value, g->data, N * S * vdim, BWD_ATOL, BWD_RTOL, what);
    }
    for (size_t i = 0; i < np; i++) {
        const char *name;
        attn_tensor grad;
        if (attn_mha_param_at(c->mha, i, &name, NULL, &grad) != ATTN_OK)
            fail_msg("%s: attn_mha_param_at(%zu): %s", c->path, i, attn_last_error());
        char gname[128];
        snprintf(gname, sizeof gname, "grad.%s", name);
        g = need(c, gname);
        need_shape(c, gname, g, grad.ndim, grad.shape[0], grad.shape[1], grad.shape[2],
                   grad.shape[3]);
        snprintf(what, sizeof what, "%s: %s", c->path, gname);
        assert_close_f32(grad.data, g->data, grad.numel, BWD_ATOL, BWD_RTOL, what);
    }

    /* ---- forward again with head-averaged weights, no cache ---- */
    c->out_avg = alloc_floats(N * L * E, 1);
    c->weights_avg = alloc_floats(N * L * S2, 1);
    c->want_avg = alloc_floats(N * rows * S2, 0);
    for (size_t n = 0; n < N; n++)
        for (size_t i = 0; i < rows * S2; i++) {
            double sum = 0.0;
            for (size_t h = 0; h < H; h++) sum += want_w->data[(n * H + h) * rows * S2 + i];
            c->want_avg[n * rows * S2 + i] = (float)(sum / (double)H);
        }
    if (attn_mha_forward(c->mha, c->out_avg, c->weights_avg, 1, &in, NULL, NULL) != ATTN_OK)
        fail_msg("%s: attn_mha_forward (average_weights): %s", c->path, attn_last_error());
    snprintf(what, sizeof what, "%s: output (average_weights=1, no cache)", c->path);
    assert_close_f32(c->out_avg, want_out->data, N * L * E, FWD_ATOL, FWD_RTOL, what);
    for (size_t n = 0; n < N; n++) {
        snprintf(what, sizeof what, "%s: mean over heads of %s[n=%zu]", c->path,
                 rows == L ? "attn_weights" : "attn_weights_rows", n);
        assert_close_f32(c->weights_avg + n * L * S2, c->want_avg + n * rows * S2, rows * S2,
                         FWD_ATOL, FWD_RTOL, what);
    }
    /* ---- and without weights: the fused kernels ---- */
    if (attn_mha_forward(c->mha, c->out_avg, NULL, 0, &in, NULL, NULL) != ATTN_OK)
        fail_msg("%s: attn_mha_forward (fused): %s", c->path, attn_last_error());
    snprintf(what, sizeof what, "%s: output (fused path)", c->path);
    assert_close_f32(c->out_avg, want_out->data, N * L * E, FWD_ATOL, FWD_RTOL, what);
}

/* ---- the fixture list ------------------------------------------------------- */

static int n_found;        /* fixture files listed by main() */
static char list_err[600]; /* why the directory could not be listed, if so */

static void test_fixture_count(void **state)
{
    (void)state;
    if (list_err[0]) fail_msg("%s", list_err);
    if (n_found < MIN_FIXTURES)
        fail_msg("%s holds %d fixture(s), expected at least %d (run "
                 "tests/gen_mha_fixtures.py --out %s)",
                 MHA_DIR, n_found, MIN_FIXTURES, MHA_DIR);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted *.safetensors names of dir; NULL (with list_err set) when unreadable. */
static char **list_fixtures(const char *dir, size_t *n)
{
    static const char ext[] = ".safetensors";
    const size_t el = sizeof ext - 1;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(list_err, sizeof list_err, "cannot open %.500s: %s", dir, strerror(errno));
        return NULL;
    }
    size_t cap = 0;
    char **names = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len <= el || strcmp(e->d_name + len - el, ext) != 0) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 32;
            char **t = realloc(names, cap * sizeof *t);
            if (!t) break;
            names = t;
        }
        names[*n] = strdup(e->d_name);
        if (!names[*n]) break;
        (*n)++;
    }
    closedir(d);
    if (*n) qsort(names, *n, sizeof *names, cmp_str);
    return names;
}

int main(void)
{
    size_t n = 0;
    char **names = list_fixtures(MHA_DIR, &n);
    n_found = (int)n;

    struct CMUnitTest *tests = calloc(n + 1, sizeof *tests);
    mha_case *cases = calloc(n ? n : 1, sizeof *cases);
    if (!tests || !cases) {
        fprintf(stderr, "test_mha_torch: out of memory\n");
        return 1;
    }
    tests[0].name = "fixture_count";
    tests[0].test_func = test_fixture_count;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(MHA_DIR) + strlen(names[i]) + 2;
        cases[i].path = malloc(len);
        if (!cases[i].path) {
            fprintf(stderr, "test_mha_torch: out of memory\n");
            return 1;
        }
        snprintf(cases[i].path, len, "%s/%s", MHA_DIR, names[i]);
        tests[i + 1].name = names[i];
        tests[i + 1].test_func = test_fixture;
        tests[i + 1].teardown_func = teardown_case;
        tests[i + 1].initial_state = &cases[i];
    }

    int failed = _cmocka_run_group_tests("mha_torch", tests, n + 1, NULL, NULL);

    for (size_t i = 0; i < n; i++) {
        case_free(&cases[i]); /* in case a failed test skipped its teardown */
        free(cases[i].path);
        free(names[i]);
    }
    free(names);
    free(cases);
    free(tests);
    return failed;
}
