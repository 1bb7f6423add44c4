/* test_sdpa_torch.c - attn_sdpa_forward / attn_sdpa_ref against PyTorch.
 *
 * Every tests/fixtures/sdpa/<name>.txt (written by tests/gen_sdpa_fixtures.py,
 * which documents the format) becomes one cmocka test: parse it strictly, run
 * both entry points with and without a trace, and hold out and weights to the
 * float64 PyTorch reference. A separate test fails when fewer than
 * MIN_FIXTURES files are present, so a lost directory cannot pass silently.
 */
#include "test_support.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/ops.h"
#include "attn/trace.h"

#define SDPA_DIR ATTN_TEST_FIXTURES "/sdpa"
#define MIN_FIXTURES 10
#define MAX_DIM 4096 /* guards the allocations against a corrupt header */
#define ATOL 1e-5
#define RTOL 1e-5

typedef enum mask_kind { MASK_NONE, MASK_BOOL, MASK_ADD } mask_kind;

typedef struct fixture {
    size_t l, s, dk, dv;
    attn_scale_mode scale_mode;
    float scale; /* the scale the mode gives, as written by the generator */
    float temperature;
    attn_causal causal;
    mask_kind mask;
    float *q, *k, *v, *add_mask, *out, *weights;
    uint8_t *bool_mask;
} fixture;

/* Per-test state, owned by main(); case_free() is safe to call twice. */
typedef struct sdpa_case {
    char *path;
    fixture fx;
    float *got_out, *got_w;
    attn_trace *trace;
} sdpa_case;

/* ---- strict parser -------------------------------------------------------- */

typedef struct parser {
    const char *path;
    char *text;   /* whole file, split into lines in place */
    char *next;   /* start of the next unread line, NULL at EOF */
    size_t line;  /* number of the line last returned */
    char err[768];
} parser;

static int parse_fail(parser *ps, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static int parse_fail(parser *ps, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(ps->err, sizeof ps->err, "%s:%zu: %s", ps->path, ps->line, msg);
    return -1;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *s = malloc(cap);
    while (s && (got = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *t = realloc(s, cap * 2);
            if (!t) {
                free(s);
                s = NULL;
                break;
            }
            s = t;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!s || bad) {
        free(s);
        return NULL;
    }
    s[n] = '\0';
    if (strlen(s) != n) { /* an embedded NUL is not a text fixture */
        free(s);
        return NULL;
    }
    return s;
}

/* The next line, NUL-terminated, or NULL at end of file. */
static char *next_line(parser *ps)
{
    char *l = ps->next;
    if (!l || !*l) return NULL;
    char *nl = strchr(l, '\n');
    if (nl) {
        *nl = '\0';
        ps->next = nl + 1;
    } else {
        ps->next = NULL;
    }
    ps->line++;
    return l;
}

/* Splits a line on single spaces into at most max fields; -1 on empty fields
 * (leading, trailing or doubled spaces, tabs, CR), so the format stays exact. */
static int split(char *line, char **fields, int max)
{
    int n = 0;
    for (char *p = line;;) {
        char *sp = strchr(p, ' ');
        if (sp) *sp = '\0';
        if (!*p || strpbrk(p, "\t\r") || n == max) return -1;
        fields[n++] = p;
        if (!sp) return n;
        p = sp + 1;
    }
}

static int parse_size(const char *tok, size_t *out)
{
    if (tok[0] < '0' || tok[0] > '9') return -1;
    errno = 0;
    char *end;
    unsigned long v = strtoul(tok, &end, 10);
    if (errno || *end || v == 0 || v > MAX_DIM) return -1;
    *out = (size_t)v;
    return 0;
}

static int parse_float(const char *tok, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(tok, &end);
    /* Overflow is an error; float32 denormals (ERANGE on underflow) are fine. */
    if (end == tok || *end || isnan(v) || (errno == ERANGE && isinf(v))) return -1;
    *out = v;
    return 0;
}

/* One block: "name rows cols" and then rows lines of cols values. Values must
 * be finite unless allow_neg_inf (the additive mask); as_bool takes 0/1. */
static int parse_block(parser *ps, const char *name, size_t rows, size_t cols, float *f32,
                       uint8_t *u8, int allow_neg_inf)
{
    char *fields[4];
    char *line = next_line(ps);
    if (!line) return parse_fail(ps, "end of file, expected block '%s'", name);
    size_t r = 0, c = 0;
    if (split(line, fields, 4) != 3 || strcmp(fields[0], name) != 0 ||
        parse_size(fields[1], &r) || parse_size(fields[2], &c))
        return parse_fail(ps, "expected block header '%s %zu %zu'", name, rows, cols);
    if (r != rows || c != cols)
        return parse_fail(ps, "block '%s' is %zu x %zu, the header says %zu x %zu", name, r, c,
                          rows, cols);

    char **vals = malloc((cols + 1) * sizeof *vals);
    if (!vals) return parse_fail(ps, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < rows && !rc; i++) {
        line = next_line(ps);
        if (!line) {
            rc = parse_fail(ps, "end of file in block '%s' (row %zu of %zu)", name, i, rows);
            break;
        }
        int n = split(line, vals, (int)cols + 1);
        if (n != (int)cols) {
            rc = parse_fail(ps, "block '%s' row %zu: expected %zu single-space separated values",
                            name, i, cols);
            break;
        }
        for (size_t j = 0; j < cols; j++) {
            const char *tok = vals[j];
            if (u8) {
                if (strcmp(tok, "0") && strcmp(tok, "1")) {
                    rc = parse_fail(ps, "block '%s' [%zu,%zu]: '%s' is not 0 or 1", name, i, j,
                                    tok);
                    break;
                }
                u8[i * cols + j] = (uint8_t)(tok[0] == '1');
                continue;
            }
            float x;
            if (parse_float(tok, &x) || (isinf(x) && !(allow_neg_inf && x < 0))) {
                rc = parse_fail(ps, "block '%s' [%zu,%zu]: bad value '%s'", name, i, j, tok);
                break;
            }
            f32[i * cols + j] = x;
        }
    }
    free(vals);
    return rc;
}

static void fixture_free(fixture *fx)
{
    free(fx->q);
    free(fx->k);
    free(fx->v);
    free(fx->add_mask);
    free(fx->bool_mask);
    free(fx->out);
    free(fx->weights);
    memset(fx, 0, sizeof *fx);
}

static int parse_header(parser *ps, fixture *fx)
{
    char *line;
    while ((line = next_line(ps)) && line[0] == '#') {
    }
    if (!line) return parse_fail(ps, "end of file, expected the 'sdpa' header");
    char *f[11];
    if (split(line, f, 11) != 10 || strcmp(f[0], "sdpa") != 0)
        return parse_fail(ps, "expected 'sdpa L S dk dv scale_mode scale temperature causal "
                              "mask_kind'");
    if (parse_size(f[1], &fx->l) || parse_size(f[2], &fx->s) || parse_size(f[3], &fx->dk) ||
        parse_size(f[4], &fx->dv))
        return parse_fail(ps, "L, S, dk, dv must be integers in 1..%d", MAX_DIM);

    if (!strcmp(f[5], "default")) fx->scale_mode = ATTN_SCALE_DEFAULT;
    else if (!strcmp(f[5], "none")) fx->scale_mode = ATTN_SCALE_NONE;
    else if (!strcmp(f[5], "custom")) fx->scale_mode = ATTN_SCALE_CUSTOM;
    else return parse_fail(ps, "unknown scale_mode '%s'", f[5]);
    if (parse_float(f[6], &fx->scale) || !isfinite(fx->scale))
        return parse_fail(ps, "bad scale '%s'", f[6]);
    if (parse_float(f[7], &fx->temperature) || !isfinite(fx->temperature) ||
        !(fx->temperature > 0))
        return parse_fail(ps, "bad temperature '%s'", f[7]);

    if (!strcmp(f[8], "none")) fx->causal = ATTN_CAUSAL_NONE;
    else if (!strcmp(f[8], "top_left")) fx->causal = ATTN_CAUSAL_TOP_LEFT;
    else if (!strcmp(f[8], "bottom_right")) fx->causal = ATTN_CAUSAL_BOTTOM_RIGHT;
    else return parse_fail(ps, "unknown causal '%s'", f[8]);

    if (!strcmp(f[9], "none")) fx->mask = MASK_NONE;
    else if (!strcmp(f[9], "bool")) fx->mask = MASK_BOOL;
    else if (!strcmp(f[9], "add")) fx->mask = MASK_ADD;
    else return parse_fail(ps, "unknown mask_kind '%s'", f[9]);
    return 0;
}

/* Parses path into fx; on failure fills err (file:line: message), returns -1. */
static int fixture_load(const char *path, fixture *fx, char *err, size_t err_size)
{
    parser ps;
    memset(&ps, 0, sizeof ps);
    memset(fx, 0, sizeof *fx);
    ps.path = path;
    ps.text = read_text(path);
    if (!ps.text) {
        snprintf(err, err_size, "%s: cannot read the file", path);
        return -1;
    }
    ps.next = ps.text;

    int rc = parse_header(&ps, fx);
    if (!rc) {
        size_t ls = fx->l * fx->s;
        fx->q = malloc(fx->l * fx->dk * sizeof(float));
        fx->k = malloc(fx->s * fx->dk * sizeof(float));
        fx->v = malloc(fx->s * fx->dv * sizeof(float));
        fx->out = malloc(fx->l * fx->dv * sizeof(float));
        fx->weights = malloc(ls * sizeof(float));
        if (fx->mask == MASK_BOOL) fx->bool_mask = malloc(ls);
        if (fx->mask == MASK_ADD) fx->add_mask = malloc(ls * sizeof(float));
        if (!fx->q || !fx->k || !fx->v || !fx->out || !fx->weights ||
            (fx->mask == MASK_BOOL && !fx->bool_mask) || (fx->mask == MASK_ADD && !fx->add_mask))
            rc = parse_fail(&ps, "out of memory");
    }
    if (!rc) rc = parse_block(&ps, "q", fx->l, fx->dk, fx->q, NULL, 0);
    if (!rc) rc = parse_block(&ps, "k", fx->s, fx->dk, fx->k, NULL, 0);
    if (!rc) rc = parse_block(&ps, "v", fx->s, fx->dv, fx->v, NULL, 0);
    if (!rc && fx->mask == MASK_BOOL)
        rc = parse_block(&ps, "mask", fx->l, fx->s, NULL, fx->bool_mask, 0);
    if (!rc && fx->mask == MASK_ADD)
        rc = parse_block(&ps, "mask", fx->l, fx->s, fx->add_mask, NULL, 1);
    if (!rc) rc = parse_block(&ps, "out", fx->l, fx->dv, fx->out, NULL, 0);
    if (!rc) rc = parse_block(&ps, "weights", fx->l, fx->s, fx->weights, NULL, 0);
    if (!rc) {
        char *line = next_line(&ps);
        if (!line || strcmp(line, "end") != 0) rc = parse_fail(&ps, "expected 'end'");
        else if (ps.next && *ps.next) {
            ps.line++;
            rc = parse_fail(&ps, "text after 'end'");
        }
    }
    free(ps.text);
    if (rc) {
        snprintf(err, err_size, "%s", ps.err);
        fixture_free(fx);
    }
    return rc;
}

/* ---- the tests ------------------------------------------------------------ */

static void case_free(sdpa_case *c)
{
    fixture_free(&c->fx);
    free(c->got_out);
    free(c->got_w);
    attn_trace_free(c->trace);
    c->got_out = c->got_w = NULL;
    c->trace = NULL;
}

static int teardown_case(void **state)
{
    case_free(*state);
    return 0;
}

static attn_sdpa_params fixture_params(const fixture *fx)
{
    attn_sdpa_params p = attn_sdpa_defaults();
    p.scale_mode = fx->scale_mode;
    if (fx->scale_mode == ATTN_SCALE_CUSTOM) p.scale = fx->scale;
    p.temperature = fx->temperature;
    p.causal = fx->causal;
    p.bool_mask = fx->bool_mask;
    p.add_mask = fx->add_mask;
    return p;
}

typedef attn_status (*sdpa_fn)(float *, float *, const float *, const float *, const float *,
                              size_t, size_t, size_t, size_t, const attn_sdpa_params *,
                              const attn_op_ctx *);

/* Poisons the outputs with NaN so that an element the op never writes fails. */
static void poison(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = NAN;
}

/* The trace of a run holds the scalars and the attention/output it returned. */
static void check_trace(const sdpa_case *c, const char *what)
{
    const fixture *fx = &c->fx;
    char name[1024]; /* what (< 512) plus a short suffix */
    const attn_tensor *t = attn_trace_get(c->trace, "attention");
    if (!t) fail_msg("%s: trace has no 'attention'", what);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], fx->l);
    assert_int_equal(t->shape[1], fx->s);
    snprintf(name, sizeof name, "%s trace attention vs returned weights", what);
    assert_close_f32(t->data, c->got_w, fx->l * fx->s, 0.0, 0.0, name);
    snprintf(name, sizeof name, "%s trace attention vs torch", what);
    assert_close_f32(t->data, fx->weights, fx->l * fx->s, ATOL, RTOL, name);

    t = attn_trace_get(c->trace, "output");
    if (!t) fail_msg("%s: trace has no 'output'", what);
    assert_int_equal(t->numel, fx->l * fx->dv);
    snprintf(name, sizeof name, "%s trace output vs returned out", what);
    assert_close_f32(t->data, c->got_out, fx->l * fx->dv, 0.0, 0.0, name);

    t = attn_trace_get(c->trace, "scale");
    if (!t) fail_msg("%s: trace has no 'scale'", what);
    snprintf(name, sizeof name, "%s trace scale", what);
    assert_close_f32(t->data, &fx->scale, 1, 0.0, 1e-7, name);
    t = attn_trace_get(c->trace, "temperature");
    if (!t) fail_msg("%s: trace has no 'temperature'", what);
    snprintf(name, sizeof name, "%s trace temperature", what);
    assert_close_f32(t->data, &fx->temperature, 1, 0.0, 0.0, name);

    /* "mask" is recorded exactly when some mask or causality applies. */
    int masked = fx->mask != MASK_NONE || fx->causal != ATTN_CAUSAL_NONE;
    if ((attn_trace_get(c->trace, "mask") != NULL) != masked)
        fail_msg("%s: trace 'mask' entry %s", what, masked ? "missing" : "unexpected");
}

static void test_fixture(void **state)
{
    sdpa_case *c = *state;
    fixture *fx = &c->fx;
    char err[1024];
    if (fixture_load(c->path, fx, err, sizeof err)) fail_msg("parse error: %s", err);

    const attn_sdpa_params p = fixture_params(fx);
    char what[512];
    /* The generator wrote the scale the mode gives; the library must agree. */
    const float scale = attn_sdpa_scale(&p, fx->dk);
    snprintf(what, sizeof what, "%s: attn_sdpa_scale", c->path);
    assert_close_f32(&scale, &fx->scale, 1, 0.0, 1e-7, what);

    const size_t lo = fx->l * fx->dv, lw = fx->l * fx->s;
    c->got_out = malloc(lo * sizeof(float));
    c->got_w = malloc(lw * sizeof(float));
    assert_non_null(c->got_out);
    assert_non_null(c->got_w);

    static const struct {
        const char *name;
        sdpa_fn fn;
    } fns[] = {{"attn_sdpa_forward", attn_sdpa_forward}, {"attn_sdpa_ref", attn_sdpa_ref}};
    for (size_t f = 0; f < sizeof fns / sizeof fns[0]; f++) {
        for (int traced = 0; traced < 2; traced++) {
            attn_op_ctx ctx = {NULL, NULL};
            if (traced) {
                assert_int_equal(attn_trace_create(&c->trace), ATTN_OK);
                ctx.trace = c->trace;
            }
            poison(c->got_out, lo);
            poison(c->got_w, lw);
            attn_status st = fns[f].fn(c->got_out, c->got_w, fx->q, fx->k, fx->v, fx->l, fx->s,
                                       fx->dk, fx->dv, &p, traced ? &ctx : NULL);
            if (st != ATTN_OK)
                fail_msg("%s: %s%s failed: %s", c->path, fns[f].name, traced ? " (traced)" : "",
                         attn_last_error());
            snprintf(what, sizeof what, "%s: %s%s out", c->path, fns[f].name,
                     traced ? " (traced)" : "");
            assert_close_f32(c->got_out, fx->out, lo, ATOL, RTOL, what);
            snprintf(what, sizeof what, "%s: %s%s weights", c->path, fns[f].name,
                     traced ? " (traced)" : "");
            assert_close_f32(c->got_w, fx->weights, lw, ATOL, RTOL, what);
            if (traced) {
                snprintf(what, sizeof what, "%s: %s", c->path, fns[f].name);
                check_trace(c, what);
                attn_trace_free(c->trace);
                c->trace = NULL;
            }
        }
    }

    /* Without the weights output the op still gives the same out. */
    poison(c->got_out, lo);
    attn_status st = attn_sdpa_forward(c->got_out, NULL, fx->q, fx->k, fx->v, fx->l, fx->s,
                                       fx->dk, fx->dv, &p, NULL);
    if (st != ATTN_OK) fail_msg("%s: weights=NULL failed: %s", c->path, attn_last_error());
    snprintf(what, sizeof what, "%s: attn_sdpa_forward (weights=NULL) out", c->path);
    assert_close_f32(c->got_out, fx->out, lo, ATOL, RTOL, what);
}

static int n_found;       /* fixture files listed by main() */
static char list_err[600]; /* why the directory could not be listed, if so */

static void test_fixture_count(void **state)
{
    (void)state;
    if (list_err[0]) fail_msg("%s", list_err);
    if (n_found < MIN_FIXTURES)
        fail_msg("%s holds %d fixture(s), expected at least %d (run "
                 "tests/gen_sdpa_fixtures.py --out %s)",
                 SDPA_DIR, n_found, MIN_FIXTURES, SDPA_DIR);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted *.txt names of dir; NULL (with list_err set) when unreadable. */
static char **list_fixtures(const char *dir, size_t *n)
{
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
        if (len <= 4 || strcmp(e->d_name + len - 4, ".txt") != 0) continue;
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
    char **names = list_fixtures(SDPA_DIR, &n);
    n_found = (int)n;

    struct CMUnitTest *tests = calloc(n + 1, sizeof *tests);
    sdpa_case *cases = calloc(n ? n : 1, sizeof *cases);
    if (!tests || !cases) {
        fprintf(stderr, "test_sdpa_torch: out of memory\n");
        return 1;
    }
    tests[0].name = "fixture_count";
    tests[0].test_func = test_fixture_count;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(SDPA_DIR) + strlen(names[i]) + 2;
        cases[i].path = malloc(len);
        if (!cases[i].path) {
            fprintf(stderr, "test_sdpa_torch: out of memory\n");
            return 1;
        }
        snprintf(cases[i].path, len, "%s/%s", SDPA_DIR, names[i]);
        tests[i + 1].name = names[i];
        tests[i + 1].test_func = test_fixture;
        tests[i + 1].teardown_func = teardown_case;
        tests[i + 1].initial_state = &cases[i];
    }

    int failed = _cmocka_run_group_tests("sdpa_torch", tests, n + 1, NULL, NULL);

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
