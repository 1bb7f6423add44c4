/* test_cli_mha.c - `attn mha` and `attn explain --weights`, run as the real program.
 *
 * Every test runs the binary named by ATTN_BIN (set by ctest) through run_cmd.
 *
 *   - `attn mha` end to end against PyTorch: the inputs of several
 *     tests/fixtures/mha/<case>.safetensors (written by gen_mha_fixtures.py)
 *     are split into one single-tensor file each (bool masks re-encoded by hand
 *     as BOOL or U8, float masks as F32), the fixture itself serves as the
 *     weights file (its extra tensors are ignored), and the "output" and
 *     "attn_weights" the command writes are held to the fixture's within
 *     atol 1e-5, rtol 1e-4. Also: self-attention (no --key/--value), an
 *     unbatched (L, E) query, --causal, --add-zero-attn, and a weights file
 *     saved by the library (num_heads in its metadata, so no --num-heads).
 *   - `attn explain --embeddings X.csv --weights W.safetensors`: the text and
 *     the JSON walkthrough of a layer built and saved by the library, checked
 *     against the same layer run in this process.
 *   - Bad input: exit 2, nothing on stdout, one line on stderr that says what
 *     was expected or found and names the file; usage errors; corrupted
 *     safetensors files built byte by byte; and no output file (or temporary
 *     file) left behind when the command fails.
 */
#include "test_support.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attn/attn.h"
#include "attn/mha.h"
#include "attn/mha_io.h"
#include "attn/safetensors.h"

#define PATH_LEN 512
#define ARGS_LEN 4096
#define MHA_DIR ATTN_TEST_FIXTURES "/mha"
#define ATOL 1e-5
#define RTOL 1e-4

/* ---- small helpers ---------------------------------------------------------- */

/* <tmpdir>/<name> into path. */
static void tmp_path(char *path, const char *name)
{
    snprintf(path, PATH_LEN, "%.300s/%.200s", test_tmpdir(), name);
}

static void fixture_path(char *path, const char *name)
{
    snprintf(path, PATH_LEN, "%s/%s.safetensors", MHA_DIR, name);
}

/* A directory under the temporary directory, created if needed. */
static void tmp_dir(char *path, const char *name)
{
    tmp_path(path, name);
    if (mkdir(path, 0700) != 0) {
        struct stat sb;
        if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) fail_msg("cannot create %s", path);
    }
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    if (n && fwrite(data, 1, n, f) != n) {
        fclose(f);
        fail_msg("cannot write %s", path);
    }
    if (fclose(f) != 0) fail_msg("cannot write %s", path);
}

/* A whole file, NUL-terminated (to free); NULL if it cannot be read. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *s = malloc(4097);
    size_t n = s ? fread(s, 1, 4096, f) : 0;
    fclose(f);
    if (s) s[n] = '\0';
    return s;
}

/* A safetensors file by hand: the 8-byte little-endian header length, the
 * JSON header padded with spaces to a multiple of 8, then the data. */
static void write_st_bytes(const char *path, const char *header, const void *data, size_t dlen)
{
    size_t hl = strlen(header), padded = (hl + 7) / 8 * 8, n = 8 + padded + dlen;
    unsigned char *b = malloc(n);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(b + 8, header, hl);
    memset(b + 8 + hl, ' ', padded - hl);
    if (dlen) memcpy(b + 8 + padded, data, dlen);
    write_bytes(path, b, n);
    free(b);
}

/* "[d0, d1, ...]" of a tensor's shape, JSON style. */
static void shape_json(char *buf, size_t n, const attn_tensor *t)
{
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%zu", i ? "," : "", t->shape[i]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

/* A mask as a one-tensor file of 1-byte dtype `dtype` (BOOL or U8): nonzero -> 1. */
static void write_mask_bytes(const char *path, const char *dtype, const attn_tensor *t)
{
    char shape[128], header[512];
    shape_json(shape, sizeof shape, t);
    snprintf(header, sizeof header,
             "{\"mask\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[0,%zu]}}", dtype, shape,
             t->numel);
    unsigned char *d = malloc(t->numel ? t->numel : 1);
    assert_non_null(d);
    for (size_t i = 0; i < t->numel; i++) d[i] = t->data[i] != 0.0f;
    write_st_bytes(path, header, d, t->numel);
    free(d);
}

/* A one-tensor F32 file through the library's writer. */
static void write_f32(const char *path, const char *name, const attn_tensor *t)
{
    attn_st_named one = {name, t};
    if (attn_safetensors_write(path, &one, 1, NULL, NULL, 0) != ATTN_OK)
        fail_msg("attn_safetensors_write %s: %s", path, attn_last_error());
}

/* A new owned tensor of the given shape filled with deterministic values in [-1, 1). */
static attn_tensor random_tensor(int ndim, size_t d0, size_t d1, size_t d2, size_t d3,
                                 uint32_t seed)
{
    const size_t shape[4] = {d0, d1, d2, d3};
    attn_tensor t;
    if (attn_tensor_create(&t, ndim, shape) != ATTN_OK) fail_msg("attn_tensor_create failed");
    uint32_t x = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < t.numel; i++) {
        x = x * 1664525u + 1013904223u;
        t.data[i] = (float)((double)(x >> 8) / (double)(1u << 24) * 2.0 - 1.0);
    }
    return t;
}

static void read_tensor(const attn_safetensors *st, const char *name, attn_tensor *t)
{
    if (attn_safetensors_read(st, name, t) != ATTN_OK)
        fail_msg("%s: cannot read '%s': %s", attn_safetensors_name(st), name, attn_last_error());
}

static attn_safetensors *open_st(const char *path)
{
    attn_safetensors *st = NULL;
    if (attn_safetensors_open(&st, path) != ATTN_OK)
        fail_msg("cannot open %s: %s", path, attn_last_error());
    return st;
}

/* The names in a directory (not . and ..), sorted, one per line (to free). */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *list_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot list %s", dir);
    char *names[256];
    size_t n = 0, total = 1;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        names[n] = strdup(e->d_name);
        assert_non_null(names[n]);
        total += strlen(names[n]) + 1;
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    char *s = malloc(total), *p = s;
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        memcpy(p, names[i], len);
        p[len] = '\n';
        p += len + 1;
        free(names[i]);
    }
    *p = '\0';
    return s;
}

/* ---- checking a run ---------------------------------------------------------- */

static void expect_contains(const char *what, const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("%s: expected to contain \"%s\", got:\n%s", what, needle, hay);
}

static void expect_lacks(const char *what, const char *hay, const char *needle)
{
    if (strstr(hay, needle)) fail_msg("%s: expected not to contain \"%s\", got:\n%s", what, needle, hay);
}

static void expect_empty(const char *cmd, const char *stream, const char *s)
{
    if (s[0]) fail_msg("%s: expected an empty %s, got:\n%s", cmd, stream, s);
}

/* Runs `attn ARGS`. */
static run_result run_attn(char *cmd, size_t n, const char *args)
{
    snprintf(cmd, n, "'%s' %s", attn_bin(), args);
    return run_cmd("%s", cmd);
}

/* Success: exit 0, nothing on stderr; returns stdout (to free). */
/* A failed check on a run: the message is formatted, the run's output
 * freed, then the test fails (so that a failing test leaks nothing). */
static char fail_buf[16384];

static void run_check(int ok, run_result *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void run_check(int ok, run_result *r, const char *fmt, ...)
{
    if (ok) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fail_buf, sizeof fail_buf, fmt, ap);
    va_end(ap);
    run_result_free(r);
    fail_msg("%s", fail_buf);
}

/* Exit status `want`, or the test fails showing both streams. */
static void run_status(const char *cmd, run_result *r, int want)
{
    run_check(r->status == want, r, "%s: expected exit status %d, got %d\nstdout:\n%s\nstderr:\n%s",
              cmd, want, r->status, r->out, r->err);
}

/* Success: exit 0, nothing on stderr; returns stdout (to free). */
static char *run_ok(const char *args)
{
    char cmd[ARGS_LEN + 600];
    run_result r = run_attn(cmd, sizeof cmd, args);
    run_status(cmd, &r, 0);
    run_check(!r.err[0], &r, "%s: expected an empty stderr, got:\n%s", cmd, r.err);
    free(r.err);
    return r.out;
}

/* Bad input for `attn CMD ARGS`: exit 2, nothing on stdout, exactly one line on
 * stderr starting "attn CMD: ", that names `file` (unless NULL) and contains
 * every string of the NULL-terminated list that follows. */
static void expect_bad(const char *cmdname, const char *args, const char *file, ...)
{
    char cmd[ARGS_LEN + 600], prefix[64];
    char full[ARGS_LEN + 32];
    snprintf(full, sizeof full, "%s %s", cmdname, args);
    run_result r = run_attn(cmd, sizeof cmd, full);
    run_status(cmd, &r, 2);
    run_check(!r.out[0], &r, "%s: expected an empty stdout, got:\n%s", cmd, r.out);
    size_t len = strlen(r.err);
    run_check(count_lines(r.err) == 1 && len > 0 && r.err[len - 1] == '\n', &r,
              "%s: expected exactly one line on stderr, got %zu:\n%s", cmd, count_lines(r.err),
              r.err);
    snprintf(prefix, sizeof prefix, "attn %s: ", cmdname);
    run_check(strncmp(r.err, prefix, strlen(prefix)) == 0, &r,
              "%s: expected stderr to start with \"%s\", got:\n%s", cmd, prefix, r.err);
    if (file)
        run_check(strstr(r.err, file) != NULL, &r,
                  "%s: expected the message to name %s, got:\n%s", cmd, file, r.err);
    va_list ap;
    va_start(ap, file);
    for (const char *m = va_arg(ap, const char *); m; m = va_arg(ap, const char *)) {
        if (!strstr(r.err, m)) va_end(ap);
        run_check(strstr(r.err, m) != NULL, &r, "%s: expected to contain \"%s\", got:\n%s", cmd,
                  m, r.err);
    }
    va_end(ap);
    run_result_free(&r);
}

/* Usage error for `attn CMD ARGS`: exit 2, nothing on stdout, the message then
 * the usage text on stderr; `mention` (unless NULL) in the message. */
static void expect_usage(const char *cmdname, const char *args, const char *mention)
{
    char cmd[ARGS_LEN + 600], full[ARGS_LEN + 32], prefix[64], usage[64];
    snprintf(full, sizeof full, "%s %s", cmdname, args);
    run_result r = run_attn(cmd, sizeof cmd, full);
    run_status(cmd, &r, 2);
    run_check(!r.out[0], &r, "%s: expected an empty stdout, got:\n%s", cmd, r.out);
    snprintf(prefix, sizeof prefix, "attn %s: ", cmdname);
    snprintf(usage, sizeof usage, "usage: attn %s", cmdname);
    run_check(strncmp(r.err, prefix, strlen(prefix)) == 0, &r,
              "%s: expected stderr to start with \"%s\", got:\n%s", cmd, prefix, r.err);
    run_check(strstr(r.err, usage) != NULL, &r, "%s: expected the usage text, got:\n%s", cmd,
              r.err);
    if (mention) {
        const char *nl = strchr(r.err, '\n');
        size_t first = nl ? (size_t)(nl - r.err) : strlen(r.err);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)(first < 1000 ? first : 1000), r.err);
        run_check(strstr(line, mention) != NULL, &r,
                  "%s: expected the message to mention \"%s\", got:\n%s", cmd, mention, r.err);
    }
    run_result_free(&r);
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

/* ---- attn mha against PyTorch ------------------------------------------------- */

typedef struct e2e_case {
    const char *fixture;
    const char *mask_dtype; /* attn_mask file dtype: F32, BOOL, U8; NULL: none */
    const char *kpm_dtype;  /* key_padding_mask likewise */
    int self;               /* no --key / --value: key = value = query */
    int causal;             /* --causal */
    int give_heads;         /* --num-heads from the metadata (else left to the file) */
} e2e_case;

/* Appends printf-style text to args. */
static void append(char *args, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void append(char *args, const char *fmt, ...)
{
    size_t len = strlen(args);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args + len, ARGS_LEN - len, fmt, ap);
    va_end(ap);
}

/* Writes the fixture's tensor `name` as a one-tensor file (F32, or a 1-byte
 * dtype for masks) named <fixture>.<name>.safetensors; its path into path. */
static void split_input(const attn_safetensors *fx, const char *fixture, const char *name,
                        const char *dtype, char *path)
{
    char file[256];
    snprintf(file, sizeof file, "%s.%s.safetensors", fixture, name);
    tmp_path(path, file);
    attn_tensor t;
    read_tensor(fx, name, &t);
    if (!dtype || strcmp(dtype, "F32") == 0) write_f32(path, name, &t);
    else write_mask_bytes(path, dtype, &t);
    attn_tensor_free(&t);
}

static void run_e2e(const e2e_case *c)
{
    char fx_path[PATH_LEN], q[PATH_LEN], k[PATH_LEN], v[PATH_LEN], m[PATH_LEN], p[PATH_LEN];
    char out[PATH_LEN], outdir[PATH_LEN], args[ARGS_LEN] = "";
    fixture_path(fx_path, c->fixture);
    attn_safetensors *fx = open_st(fx_path);
    const char *heads = attn_safetensors_metadata(fx, "num_heads");
    if (!heads) fail_msg("%s: no num_heads metadata", fx_path);

    split_input(fx, c->fixture, "query", NULL, q);
    append(args, "mha --weights '%s' --query '%s'", fx_path, q);
    if (c->give_heads) append(args, " --num-heads %s", heads);
    if (!c->self) {
        split_input(fx, c->fixture, "key", NULL, k);
        split_input(fx, c->fixture, "value", NULL, v);
        append(args, " --key '%s' --value '%s'", k, v);
    }
    if (c->mask_dtype) {
        split_input(fx, c->fixture, "attn_mask", c->mask_dtype, m);
        append(args, " --attn-mask '%s'", m);
    }
    if (c->kpm_dtype) {
        split_input(fx, c->fixture, "key_padding_mask", c->kpm_dtype, p);
        append(args, " --key-padding-mask '%s'", p);
    }
    if (c->causal) append(args, " --causal");
    tmp_dir(outdir, "e2e-out");
    snprintf(out, sizeof out, "%.400s/%.60s.out.safetensors", outdir, c->fixture);
    append(args, " --out '%s'", out);

    char *stdout_text = run_ok(args);
    expect_empty(args, "stdout", stdout_text);
    free(stdout_text);

    attn_tensor want_out, want_w;
    read_tensor(fx, "output", &want_out);
    read_tensor(fx, "attn_weights", &want_w);
    expect_results(out, &want_out, &want_w);
    attn_tensor_free(&want_out);
    attn_tensor_free(&want_w);
    attn_safetensors_close(fx);

    /* Written through a temporary file: nothing else is left beside it. */
    char *listing = list_dir(outdir);
    expect_lacks(outdir, listing, ".tmp-");
    free(listing);
}

static void mha_fixtures(void **state)
{
    (void)state;
    static const e2e_case cases[] = {
        {"basic", NULL, NULL, 0, 0, 1},
        {"basic", NULL, NULL, 0, 0, 0}, /* the fixture records num_heads */
        {"kdim_vdim", NULL, NULL, 0, 0, 1},
        {"kdim_vdim_no_bias", NULL, NULL, 0, 0, 1},
        {"bias_kv", NULL, NULL, 0, 0, 1},
        {"zero_attn", NULL, NULL, 0, 0, 1}, /* add_zero_attn from the metadata */
        {"bias_kv_zero_attn_kdim_kpm", NULL, "U8", 0, 0, 1},
        {"bool_mask_2d", "BOOL", NULL, 0, 0, 1},
        {"bool_mask_3d", "U8", NULL, 0, 0, 1},
        {"float_mask_2d", "F32", NULL, 0, 0, 1},
        {"float_mask_3d", "F32", NULL, 0, 0, 1},
        {"kpm_bool", NULL, "U8", 0, 0, 1},
        {"kpm_float", NULL, "F32", 0, 0, 1},
        {"bool_mask_kpm_bool", "BOOL", "BOOL", 0, 0, 1},
        {"float_mask_3d_kpm_float", "F32", "F32", 0, 0, 1},
        {"bool_mask_kpm_float", "U8", "F32", 0, 0, 1},
        {"fully_masked_row", "BOOL", "U8", 0, 0, 1},
        {"self_attn", NULL, NULL, 1, 0, 1},
        {"self_attn_no_bias", NULL, NULL, 1, 0, 1},
        {"causal_self", NULL, NULL, 1, 1, 1},
        {"causal_l_gt_s", NULL, NULL, 0, 1, 1},
        {"causal_bias_kv_zero_attn", NULL, NULL, 1, 1, 1},
        {"query_len_1", NULL, "BOOL", 0, 0, 1},
        {"src_len_1_bias_kv", NULL, NULL, 0, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        /* Check the case matches the fixture's own description. */
        char fx_path[PATH_LEN];
        fixture_path(fx_path, cases[i].fixture);
        attn_safetensors *fx = open_st(fx_path);
        const char *self = attn_safetensors_metadata(fx, "self");
        const char *causal = attn_safetensors_metadata(fx, "causal");
        const char *mk = attn_safetensors_metadata(fx, "attn_mask_kind");
        const char *pk = attn_safetensors_metadata(fx, "key_padding_kind");
        assert_non_null(self);
        assert_non_null(causal);
        assert_non_null(mk);
        assert_non_null(pk);
        if ((self[0] == '1') != cases[i].self || (causal[0] == '1') != cases[i].causal ||
            (strcmp(mk, "none") != 0) != (cases[i].mask_dtype != NULL) ||
            (strcmp(pk, "none") != 0) != (cases[i].kpm_dtype != NULL) ||
            (strcmp(mk, "bool") == 0 && strcmp(cases[i].mask_dtype, "F32") == 0) ||
            (strcmp(pk, "bool") == 0 && strcmp(cases[i].kpm_dtype, "F32") == 0))
            fail_msg("test table entry %zu does not match %s", i, fx_path);
        attn_safetensors_close(fx);
        run_e2e(&cases[i]);
    }
}

/* key = value = query given explicitly: the same as leaving them out. */
static void mha_self_explicit(void **state)
{
    (void)state;
    char fx_path[PATH_LEN], q[PATH_LEN], out[PATH_LEN], args[ARGS_LEN];
    fixture_path(fx_path, "self_attn");
    attn_safetensors *fx = open_st(fx_path);
    split_input(fx, "self_attn", "query", NULL, q);
    tmp_path(out, "self-explicit.out.safetensors");
    snprintf(args, sizeof args,
             "mha --weights '%s' --num-heads 2 --query '%s' --key '%s' --value '%s' --out '%s'",
             fx_path, q, q, q, out);
    free(run_ok(args));
    attn_tensor want_out, want_w;
    read_tensor(fx, "output", &want_out);
    read_tensor(fx, "attn_weights", &want_w);
    expect_results(out, &want_out, &want_w);
    attn_tensor_free(&want_out);
    attn_tensor_free(&want_w);
    attn_safetensors_close(fx);
}

/* An unbatched (L, E) query (and key, value): (L, E) output, (H, L, S) weights. */
static void mha_unbatched(void **state)
{
    (void)state;
    static const char *const fixtures[] = {"basic", "kdim_vdim", "bias_kv", "self_attn"};
    for (size_t f = 0; f < sizeof fixtures / sizeof *fixtures; f++) {
        char fx_path[PATH_LEN], q[PATH_LEN], k[PATH_LEN], v[PATH_LEN], out[PATH_LEN];
        char name[128], args[ARGS_LEN];
        fixture_path(fx_path, fixtures[f]);
        attn_safetensors *fx = open_st(fx_path);
        const int self = strcmp(fixtures[f], "self_attn") == 0;
        attn_tensor tq, tk = {0}, tv = {0}, view, want_out, want_w, want_out0, want_w0;
        /* Batch element 1 (not 0, so an off-by-one batch shows). */
        read_tensor(fx, "query", &tq);
        assert_int_equal(attn_tensor_index(&view, &tq, 1), ATTN_OK);
        snprintf(name, sizeof name, "unbatched-%s.q.safetensors", fixtures[f]);
        tmp_path(q, name);
        write_f32(q, "q", &view);
        snprintf(args, sizeof args, "mha --weights '%s' --query '%s'", fx_path, q);
        if (!self) {
            read_tensor(fx, "key", &tk);
            read_tensor(fx, "value", &tv);
            assert_int_equal(attn_tensor_index(&view, &tk, 1), ATTN_OK);
            snprintf(name, sizeof name, "unbatched-%s.k.safetensors", fixtures[f]);
            tmp_path(k, name);
            write_f32(k, "k", &view);
            assert_int_equal(attn_tensor_index(&view, &tv, 1), ATTN_OK);
            snprintf(name, sizeof name, "unbatched-%s.v.safetensors", fixtures[f]);
            tmp_path(v, name);
            write_f32(v, "v", &view);
            append(args, " --key '%s' --value '%s'", k, v);
        }
        snprintf(name, sizeof name, "unbatched-%s.out.safetensors", fixtures[f]);
        tmp_path(out, name);
        append(args, " --out '%s'", out);
        free(run_ok(args));

        read_tensor(fx, "output", &want_out);
        read_tensor(fx, "attn_weights", &want_w);
        assert_int_equal(attn_tensor_index(&want_out0, &want_out, 1), ATTN_OK);
        assert_int_equal(attn_tensor_index(&want_w0, &want_w, 1), ATTN_OK);
        assert_int_equal(want_out0.ndim, 2);
        assert_int_equal(want_w0.ndim, 3);
        expect_results(out, &want_out0, &want_w0);
        attn_tensor_free(&tq);
        attn_tensor_free(&tk);
        attn_tensor_free(&tv);
        attn_tensor_free(&want_out);
        attn_tensor_free(&want_w);
        attn_safetensors_close(fx);
    }
}

/* An unbatched query takes PyTorch's unbatched key_padding_mask shape (S,):
 * batch element 1 of kpm_bool, every input and the mask 1 rank down. */
static void mha_unbatched_key_padding_mask(void **state)
{
    (void)state;
    char fx_path[PATH_LEN], paths[4][PATH_LEN], out[PATH_LEN], args[ARGS_LEN];
    static const char *const names[4] = {"query", "key", "value", "key_padding_mask"};
    fixture_path(fx_path, "kpm_bool");
    attn_safetensors *fx = open_st(fx_path);
    for (int i = 0; i < 4; i++) {
        char file[128];
        attn_tensor t, view;
        read_tensor(fx, names[i], &t);
        assert_int_equal(attn_tensor_index(&view, &t, 1), ATTN_OK);
        snprintf(file, sizeof file, "unbatched-kpm.%s.safetensors", names[i]);
        tmp_path(paths[i], file);
        if (i == 3) write_mask_bytes(paths[i], "BOOL", &view);
        else write_f32(paths[i], names[i], &view);
        attn_tensor_free(&t);
    }
    attn_safetensors_close(fx); /* nothing held while the command may fail */
    tmp_path(out, "unbatched-kpm.out.safetensors");
    snprintf(args, sizeof args,
             "mha --weights '%s' --query '%s' --key '%s' --value '%s' --key-padding-mask '%s' "
             "--out '%s'",
             fx_path, paths[0], paths[1], paths[2], paths[3], out);
    free(run_ok(args));
    fx = open_st(fx_path);
    attn_tensor want_out, want_w, want_out1, want_w1;
    read_tensor(fx, "output", &want_out);
    read_tensor(fx, "attn_weights", &want_w);
    assert_int_equal(attn_tensor_index(&want_out1, &want_out, 1), ATTN_OK);
    assert_int_equal(attn_tensor_index(&want_w1, &want_w, 1), ATTN_OK);
    expect_results(out, &want_out1, &want_w1);
    attn_tensor_free(&want_out);
    attn_tensor_free(&want_w);
    attn_safetensors_close(fx);
}

/* --causal: nothing after the diagonal, and the fixture's values. */
static void mha_causal(void **state)
{
    (void)state;
    char fx_path[PATH_LEN], q[PATH_LEN], out[PATH_LEN], args[ARGS_LEN];
    fixture_path(fx_path, "causal_self");
    attn_safetensors *fx = open_st(fx_path);
    split_input(fx, "causal_self", "query", NULL, q);
    tmp_path(out, "causal.out.safetensors");
    snprintf(args, sizeof args, "mha --weights '%s' --num-heads 2 --query '%s' --causal --out '%s'",
             fx_path, q, out);
    free(run_ok(args));
    attn_tensor want_out, want_w, w;
    read_tensor(fx, "output", &want_out);
    read_tensor(fx, "attn_weights", &want_w);
    expect_results(out, &want_out, &want_w);
    attn_safetensors *o = open_st(out);
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

    /* Without --causal the same query gives other values. */
    tmp_path(out, "not-causal.out.safetensors");
    snprintf(args, sizeof args, "mha --weights '%s' --num-heads 2 --query '%s' --out '%s'", fx_path,
             q, out);
    free(run_ok(args));
    o = open_st(out);
    read_tensor(o, "attn_weights", &w);
    assert_true(w.data[1] > 0.0f); /* row 0 sees key 1 */
    attn_tensor_free(&w);
    attn_safetensors_close(o);
    attn_tensor_free(&want_out);
    attn_tensor_free(&want_w);
    attn_safetensors_close(fx);
}

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

/* A weights file saved by the library records num_heads: no --num-heads. */
static void mha_library_weights(void **state)
{
    (void)state;
    char fx_path[PATH_LEN], w[PATH_LEN], q[PATH_LEN], k[PATH_LEN], v[PATH_LEN], out[PATH_LEN];
    char args[ARGS_LEN];
    static const char *const fixtures[] = {"basic", "kdim_vdim", "bias_kv"};
    for (size_t f = 0; f < sizeof fixtures / sizeof *fixtures; f++) {
        char name[128];
        attn_mha *m = layer_of_fixture(fixtures[f], 0);
        snprintf(name, sizeof name, "saved-%s.safetensors", fixtures[f]);
        tmp_path(w, name);
        if (attn_mha_save_safetensors(m, w) != ATTN_OK)
            fail_msg("attn_mha_save_safetensors: %s", attn_last_error());
        attn_mha_free(m);

        fixture_path(fx_path, fixtures[f]);
        attn_safetensors *fx = open_st(fx_path);
        split_input(fx, fixtures[f], "query", NULL, q);
        split_input(fx, fixtures[f], "key", NULL, k);
        split_input(fx, fixtures[f], "value", NULL, v);
        snprintf(name, sizeof name, "saved-%s.out.safetensors", fixtures[f]);
        tmp_path(out, name);
        snprintf(args, sizeof args,
                 "mha --weights '%s' --query '%s' --key '%s' --value '%s' --out '%s'", w, q, k, v,
                 out);
        free(run_ok(args));
        attn_tensor want_out, want_w;
        read_tensor(fx, "output", &want_out);
        read_tensor(fx, "attn_weights", &want_w);
        expect_results(out, &want_out, &want_w);
        attn_tensor_free(&want_out);
        attn_tensor_free(&want_w);
        attn_safetensors_close(fx);
    }
}

/* A plain state_dict (no metadata) needs --num-heads; with it, it works. */
static void mha_state_dict_without_heads(void **state)
{
    (void)state;
    char fx_path[PATH_LEN], w[PATH_LEN], q[PATH_LEN], k[PATH_LEN], v[PATH_LEN], out[PATH_LEN];
    char args[ARGS_LEN];
    attn_mha *m = layer_of_fixture("basic", 0);
    attn_st_named named[8];
    attn_tensor views[8];
    size_t n = attn_mha_param_count(m);
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(attn_mha_param_at(m, i, &named[i].name, &views[i], NULL), ATTN_OK);
        named[i].tensor = &views[i];
    }
    tmp_path(w, "plain-state-dict.safetensors");
    if (attn_safetensors_write(w, named, n, NULL, NULL, 0) != ATTN_OK)
        fail_msg("attn_safetensors_write: %s", attn_last_error());
    attn_mha_free(m);

    fixture_path(fx_path, "basic");
    attn_safetensors *fx = open_st(fx_path);
    split_input(fx, "basic", "query", NULL, q);
    split_input(fx, "basic", "key", NULL, k);
    split_input(fx, "basic", "value", NULL, v);
    tmp_path(out, "plain-state-dict.out.safetensors");
    snprintf(args, sizeof args, "--weights '%s' --query '%s' --key '%s' --value '%s' --out '%s'",
             w, q, k, v, out);
    expect_bad("mha", args, w, "--num-heads", NULL);
    assert_false(file_exists(out));

    snprintf(args, sizeof args,
             "mha --weights '%s' --num-heads 2 --query '%s' --key '%s' --value '%s' --out '%s'", w,
             q, k, v, out);
    free(run_ok(args));
    attn_tensor want_out, want_w;
    read_tensor(fx, "output", &want_out);
    read_tensor(fx, "attn_weights", &want_w);
    expect_results(out, &want_out, &want_w);
    attn_tensor_free(&want_out);
    attn_tensor_free(&want_w);
    attn_safetensors_close(fx);
}

/* --add-zero-attn on a layer saved without it matches the zero_attn case. */
static void mha_add_zero_attn(void **state)
{
    (void)state;
    char fx_path[PATH_LEN], w[PATH_LEN], q[PATH_LEN], k[PATH_LEN], v[PATH_LEN], out[PATH_LEN];
    char args[ARGS_LEN];
    attn_mha *m = layer_of_fixture("zero_attn", 0);
    tmp_path(w, "no-zero-attn.safetensors");
    if (attn_mha_save_safetensors(m, w) != ATTN_OK)
        fail_msg("attn_mha_save_safetensors: %s", attn_last_error());
    attn_mha_free(m);
    fixture_path(fx_path, "zero_attn");
    attn_safetensors *fx = open_st(fx_path);
    split_input(fx, "zero_attn", "query", NULL, q);
    split_input(fx, "zero_attn", "key", NULL, k);
    split_input(fx, "zero_attn", "value", NULL, v);
    tmp_path(out, "zero-attn.out.safetensors");
    snprintf(args, sizeof args,
             "mha --weights '%s' --query '%s' --key '%s' --value '%s' --add-zero-attn --out '%s'",
             w, q, k, v, out);
    free(run_ok(args));
    attn_tensor want_out, want_w, got_w;
    read_tensor(fx, "output", &want_out);
    read_tensor(fx, "attn_weights", &want_w);
    expect_results(out, &want_out, &want_w);

    /* Without the flag: S key positions, not S + 1. */
    snprintf(args, sizeof args, "mha --weights '%s' --query '%s' --key '%s' --value '%s' --out '%s'",
             w, q, k, v, out);
    free(run_ok(args));
    attn_safetensors *o = open_st(out);
    read_tensor(o, "attn_weights", &got_w);
    assert_int_equal(got_w.ndim, 4);
    assert_int_equal(got_w.shape[3], want_w.shape[3] - 1);
    attn_tensor_free(&got_w);
    attn_safetensors_close(o);
    attn_tensor_free(&want_out);
    attn_tensor_free(&want_w);
    attn_safetensors_close(fx);
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

/* ---- attn mha: bad input ---------------------------------------------------- */

/* A small valid setup, made once: W (E = 4, H = 2, packed, num_heads in the
 * metadata), Q (2, 3, 4), K and V (2, 5, 4); and an empty output directory
 * that must stay empty through every failing run. */
static struct base {
    int ready;
    char w[PATH_LEN], q[PATH_LEN], k[PATH_LEN], v[PATH_LEN];
    char outdir[PATH_LEN], out[PATH_LEN];
} B;

static void base_files(void)
{
    if (B.ready) return;
    attn_mha_config cfg = attn_mha_default_config(4, 2);
    attn_mha *m = NULL;
    if (attn_mha_create(&m, &cfg) != ATTN_OK) fail_msg("attn_mha_create: %s", attn_last_error());
    assert_int_equal(attn_mha_init(m, 42), ATTN_OK);
    tmp_path(B.w, "base-w.safetensors");
    if (attn_mha_save_safetensors(m, B.w) != ATTN_OK)
        fail_msg("attn_mha_save_safetensors: %s", attn_last_error());
    attn_mha_free(m);
    attn_tensor t = random_tensor(3, 2, 3, 4, 1, 1);
    tmp_path(B.q, "base-q.safetensors");
    write_f32(B.q, "query", &t);
    attn_tensor_free(&t);
    t = random_tensor(3, 2, 5, 4, 1, 2);
    tmp_path(B.k, "base-k.safetensors");
    write_f32(B.k, "key", &t);
    attn_tensor_free(&t);
    t = random_tensor(3, 2, 5, 4, 1, 3);
    tmp_path(B.v, "base-v.safetensors");
    write_f32(B.v, "value", &t);
    attn_tensor_free(&t);
    tmp_dir(B.outdir, "bad-out");
    snprintf(B.out, sizeof B.out, "%.400s/o.safetensors", B.outdir);
    B.ready = 1;

    /* The setup itself works. */
    char args[ARGS_LEN], ok_out[PATH_LEN];
    tmp_path(ok_out, "base-ok.out.safetensors");
    snprintf(args, sizeof args, "mha --weights '%s' --query '%s' --key '%s' --value '%s' --out '%s'",
             B.w, B.q, B.k, B.v, ok_out);
    free(run_ok(args));
    attn_safetensors *o = open_st(ok_out);
    attn_st_info info;
    assert_int_equal(attn_safetensors_info(o, "attn_weights", &info), ATTN_OK);
    assert_int_equal(info.ndim, 4);
    assert_int_equal(info.shape[0], 2);
    assert_int_equal(info.shape[1], 2);
    assert_int_equal(info.shape[2], 3);
    assert_int_equal(info.shape[3], 5);
    attn_safetensors_close(o);
}

static void expect_outdir_empty(void)
{
    char *listing = list_dir(B.outdir);
    if (listing[0]) fail_msg("a failed run left files in %s:\n%s", B.outdir, listing);
    free(listing);
}

/* `attn mha --weights W --query Q --key K --value V <extra> --out O` with the
 * given replacements (NULL: the base file). */
static void base_args(char *args, const char *w, const char *q, const char *k, const char *v,
                      const char *extra)
{
    snprintf(args, ARGS_LEN, "--weights '%s' --query '%s' --key '%s' --value '%s' %s --out '%s'",
             w ? w : B.w, q ? q : B.q, k ? k : B.k, v ? v : B.v, extra ? extra : "", B.out);
}

/* A bad query file: its path and the mentions. */
#define EXPECT_BAD_QUERY(qpath, ...)                                  \
    do {                                                              \
        char a_[ARGS_LEN];                                            \
        base_args(a_, NULL, qpath, NULL, NULL, NULL);                 \
        expect_bad("mha", a_, qpath, __VA_ARGS__, (const char *)NULL); \
        expect_outdir_empty();                                        \
    } while (0)

static void bad_heads_not_divisible(void **state)
{
    (void)state;
    base_files();
    char args[ARGS_LEN];
    base_args(args, NULL, NULL, NULL, NULL, "--num-heads 3");
    expect_bad("mha", args, B.w, "divisible", "3", (const char *)NULL);
    expect_outdir_empty();
    /* Nor is a head count larger than E. */
    base_args(args, NULL, NULL, NULL, NULL, "--num-heads 8");
    expect_bad("mha", args, B.w, "divisible", (const char *)NULL);
    expect_outdir_empty();
}

static void bad_heads_usage(void **state)
{
    (void)state;
    base_files();
    char args[ARGS_LEN];
    static const char *const bad[] = {"--num-heads 0", "--num-heads -2", "--num-heads abc",
                                      "--num-heads 2x", "--num-heads ''"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        base_args(args, NULL, NULL, NULL, NULL, bad[i]);
        expect_usage("mha", args, "--num-heads");
        expect_outdir_empty();
    }
}

static void bad_query_rank(void **state)
{
    (void)state;
    base_files();
    char q[PATH_LEN];
    attn_tensor t = random_tensor(4, 1, 2, 3, 4, 5);
    tmp_path(q, "rank4-q.safetensors");
    write_f32(q, "query", &t);
    attn_tensor_free(&t);
    EXPECT_BAD_QUERY(q, "[1, 2, 3, 4]", "2-D", "3-D");
    t = random_tensor(1, 4, 1, 1, 1, 6);
    tmp_path(q, "rank1-q.safetensors");
    write_f32(q, "query", &t);
    attn_tensor_free(&t);
    EXPECT_BAD_QUERY(q, "[4]", "2-D");

    /* A key of rank 4 likewise names the key file. */
    char k[PATH_LEN], args[ARGS_LEN];
    t = random_tensor(4, 2, 5, 4, 1, 7);
    tmp_path(k, "rank4-k.safetensors");
    write_f32(k, "key", &t);
    attn_tensor_free(&t);
    base_args(args, NULL, NULL, k, NULL, NULL);
    expect_bad("mha", args, k, "[2, 5, 4, 1]", (const char *)NULL);
    expect_outdir_empty();
}

static void bad_query_dim(void **state)
{
    (void)state;
    base_files();
    char q[PATH_LEN];
    attn_tensor t = random_tensor(3, 2, 3, 5, 1, 8);
    tmp_path(q, "dim5-q.safetensors");
    write_f32(q, "query", &t);
    attn_tensor_free(&t);
    EXPECT_BAD_QUERY(q, "embedding dimension 4", "found 5", B.w);
    /* Unbatched too. */
    t = random_tensor(2, 3, 5, 1, 1, 9);
    tmp_path(q, "dim5-unbatched-q.safetensors");
    write_f32(q, "query", &t);
    attn_tensor_free(&t);
    EXPECT_BAD_QUERY(q, "embedding dimension 4", "found 5");

    /* A key or value of the wrong width names its file. */
    char kv[PATH_LEN], args[ARGS_LEN];
    t = random_tensor(3, 2, 5, 3, 1, 10);
    tmp_path(kv, "dim3-kv.safetensors");
    write_f32(kv, "x", &t);
    attn_tensor_free(&t);
    base_args(args, NULL, NULL, kv, NULL, NULL);
    expect_bad("mha", args, kv, "key dimension 4", "found 3", (const char *)NULL);
    expect_outdir_empty();
    base_args(args, NULL, NULL, NULL, kv, NULL);
    expect_bad("mha", args, kv, "value dimension 4", "found 3", (const char *)NULL);
    expect_outdir_empty();
}

static void bad_key_value_shapes(void **state)
{
    (void)state;
    base_files();
    char v[PATH_LEN], args[ARGS_LEN];
    /* Different S. */
    attn_tensor t = random_tensor(3, 2, 6, 4, 1, 11);
    tmp_path(v, "s6-v.safetensors");
    write_f32(v, "value", &t);
    attn_tensor_free(&t);
    base_args(args, NULL, NULL, NULL, v, NULL);
    expect_bad("mha", args, v, B.k, "[2, 5, 4]", "[2, 6, 4]", (const char *)NULL);
    expect_outdir_empty();
    /* Different N (key and value agree, the query does not). */
    char k[PATH_LEN];
    t = random_tensor(3, 3, 5, 4, 1, 12);
    tmp_path(k, "n3-k.safetensors");
    write_f32(k, "key", &t);
    attn_tensor_free(&t);
    t = random_tensor(3, 3, 5, 4, 1, 13);
    tmp_path(v, "n3-v.safetensors");
    write_f32(v, "value", &t);
    attn_tensor_free(&t);
    base_args(args, NULL, NULL, k, v, NULL);
    expect_bad("mha", args, k, v, "[3, 5, 4]", "N = 2", (const char *)NULL);
    expect_outdir_empty();
    /* Different N between key and value only. */
    base_args(args, NULL, NULL, NULL, v, NULL);
    expect_bad("mha", args, v, B.k, (const char *)NULL);
    expect_outdir_empty();
}

static void bad_attn_mask(void **state)
{
    (void)state;
    base_files();
    char m[PATH_LEN], args[ARGS_LEN], extra[PATH_LEN + 32];
    /* (L, S) = (3, 5) or (N*H, L, S) = (4, 3, 5) expected. */
    attn_tensor t = random_tensor(2, 3, 4, 1, 1, 14);
    tmp_path(m, "mask-3x4.safetensors");
    write_f32(m, "mask", &t);
    attn_tensor_free(&t);
    snprintf(extra, sizeof extra, "--attn-mask '%s'", m);
    base_args(args, NULL, NULL, NULL, NULL, extra);
    expect_bad("mha", args, m, "attn_mask", "[3, 4]", "[3, 5]", "[4, 3, 5]", (const char *)NULL);
    expect_outdir_empty();
    /* 3-D with N instead of N*H. */
    t = random_tensor(3, 2, 3, 5, 1, 15);
    tmp_path(m, "mask-2x3x5.safetensors");
    write_f32(m, "mask", &t);
    attn_tensor_free(&t);
    snprintf(extra, sizeof extra, "--attn-mask '%s'", m);
    base_args(args, NULL, NULL, NULL, NULL, extra);
    expect_bad("mha", args, m, "attn_mask", "[2, 3, 5]", (const char *)NULL);
    expect_outdir_empty();
    /* A bool mask of the wrong shape (transposed). */
    t = random_tensor(2, 5, 3, 1, 1, 16);
    tmp_path(m, "mask-bool-5x3.safetensors");
    write_mask_bytes(m, "BOOL", &t);
    attn_tensor_free(&t);
    snprintf(extra, sizeof extra, "--attn-mask '%s'", m);
    base_args(args, NULL, NULL, NULL, NULL, extra);
    expect_bad("mha", args, m, "[5, 3]", (const char *)NULL);
    expect_outdir_empty();
}

static void bad_mask_dtype(void **state)
{
    (void)state;
    base_files();
    char m[PATH_LEN], args[ARGS_LEN], extra[PATH_LEN + 64];
    int32_t data[15] = {0};
    tmp_path(m, "mask-i32.safetensors");
    write_st_bytes(m, "{\"mask\":{\"dtype\":\"I32\",\"shape\":[3,5],\"data_offsets\":[0,60]}}",
                   data, sizeof data);
    snprintf(extra, sizeof extra, "--attn-mask '%s'", m);
    base_args(args, NULL, NULL, NULL, NULL, extra);
    expect_bad("mha", args, m, "I32", "bool", "float", (const char *)NULL);
    expect_outdir_empty();
    /* Same for a key padding mask (N, S) = (2, 5). */
    int64_t d64[10] = {0};
    tmp_path(m, "kpm-i64.safetensors");
    write_st_bytes(m, "{\"kpm\":{\"dtype\":\"I64\",\"shape\":[2,5],\"data_offsets\":[0,80]}}",
                   d64, sizeof d64);
    snprintf(extra, sizeof extra, "--key-padding-mask '%s'", m);
    base_args(args, NULL, NULL, NULL, NULL, extra);
    expect_bad("mha", args, m, "I64", "bool", "float", (const char *)NULL);
    expect_outdir_empty();
}

static void bad_key_padding_mask(void **state)
{
    (void)state;
    base_files();
    char m[PATH_LEN], args[ARGS_LEN], extra[PATH_LEN + 64];
    attn_tensor t = random_tensor(2, 2, 4, 1, 1, 17);
    tmp_path(m, "kpm-2x4.safetensors");
    write_f32(m, "kpm", &t);
    attn_tensor_free(&t);
    snprintf(extra, sizeof extra, "--key-padding-mask '%s'", m);
    base_args(args, NULL, NULL, NULL, NULL, extra);
    expect_bad("mha", args, m, "key_padding_mask", "[2, 5]", "[2, 4]", (const char *)NULL);
    expect_outdir_empty();
    /* 3-D. */
    t = random_tensor(3, 2, 5, 1, 1, 18);
    tmp_path(m, "kpm-2x5x1.safetensors");
    write_mask_bytes(m, "U8", &t);
    attn_tensor_free(&t);
    snprintf(extra, sizeof extra, "--key-padding-mask '%s'", m);
    base_args(args, NULL, NULL, NULL, NULL, extra);
    expect_bad("mha", args, m, "key_padding_mask", "[2, 5, 1]", (const char *)NULL);
    expect_outdir_empty();
}

/* A weights file from named tensors (the base layer's, changed). */
static void bad_weights_file(const char *file, const char *drop, const char *replace,
                             const attn_tensor *with, char *path)
{
    attn_safetensors *st = open_st(B.w);
    attn_tensor t[8];
    attn_st_named named[8];
    size_t n = 0;
    for (size_t i = 0; i < attn_safetensors_count(st); i++) {
        attn_st_info info;
        assert_int_equal(attn_safetensors_info_at(st, i, &info), ATTN_OK);
        if (drop && strcmp(info.name, drop) == 0) continue;
        named[n].name = info.name;
        if (replace && strcmp(info.name, replace) == 0) {
            named[n].tensor = with;
            t[n].data = NULL;
            t[n].owned = 0;
        } else {
            read_tensor(st, info.name, &t[n]);
            named[n].tensor = &t[n];
        }
        n++;
    }
    tmp_path(path, file);
    static const char *const keys[] = {"num_heads"}, *const vals[] = {"2"};
    if (attn_safetensors_write(path, named, n, keys, vals, 1) != ATTN_OK)
        fail_msg("attn_safetensors_write: %s", attn_last_error());
    for (size_t i = 0; i < n; i++)
        if (named[i].tensor == &t[i]) attn_tensor_free(&t[i]);
    attn_safetensors_close(st);
}

static void bad_weights(void **state)
{
    (void)state;
    base_files();
    char w[PATH_LEN], args[ARGS_LEN];
    bad_weights_file("no-out-proj.safetensors", "out_proj.weight", NULL, NULL, w);
    base_args(args, w, NULL, NULL, NULL, NULL);
    expect_bad("mha", args, w, "out_proj.weight", (const char *)NULL);
    expect_outdir_empty();

    /* out_proj.weight (4, 3): 3 columns, 4 expected. */
    attn_tensor bad = random_tensor(2, 4, 3, 1, 1, 19);
    bad_weights_file("out-proj-4x3.safetensors", NULL, "out_proj.weight", &bad, w);
    attn_tensor_free(&bad);
    base_args(args, w, NULL, NULL, NULL, NULL);
    expect_bad("mha", args, w, "out_proj.weight", "3", (const char *)NULL);
    expect_outdir_empty();

    /* out_proj.weight 1-D. */
    bad = random_tensor(1, 16, 1, 1, 1, 20);
    bad_weights_file("out-proj-1d.safetensors", NULL, "out_proj.weight", &bad, w);
    attn_tensor_free(&bad);
    base_args(args, w, NULL, NULL, NULL, NULL);
    expect_bad("mha", args, w, "out_proj.weight", "[16]", (const char *)NULL);
    expect_outdir_empty();

    /* in_proj_weight of the wrong shape (5 rows, not 3 x 4). */
    bad = random_tensor(2, 5, 4, 1, 1, 21);
    bad_weights_file("in-proj-5x4.safetensors", NULL, "in_proj_weight", &bad, w);
    attn_tensor_free(&bad);
    base_args(args, w, NULL, NULL, NULL, NULL);
    expect_bad("mha", args, w, "in_proj_weight", (const char *)NULL);
    expect_outdir_empty();

    /* out_proj.bias of the wrong length. */
    bad = random_tensor(1, 3, 1, 1, 1, 22);
    bad_weights_file("out-bias-3.safetensors", NULL, "out_proj.bias", &bad, w);
    attn_tensor_free(&bad);
    base_args(args, w, NULL, NULL, NULL, NULL);
    expect_bad("mha", args, w, "out_proj.bias", "[3]", "[4]", (const char *)NULL);
    expect_outdir_empty();

    /* No projection at all. */
    bad_weights_file("no-in-proj.safetensors", "in_proj_weight", NULL, NULL, w);
    base_args(args, w, NULL, NULL, NULL, NULL);
    expect_bad("mha", args, w, "in_proj_weight", (const char *)NULL);
    expect_outdir_empty();

    /* Missing and corrupt weights files. */
    tmp_path(w, "no-such-weights.safetensors");
    base_args(args, w, NULL, NULL, NULL, NULL);
    expect_bad("mha", args, w, (const char *)NULL);
    expect_outdir_empty();
    tmp_path(w, "corrupt-weights.safetensors");
    write_st_bytes(w, "{\"in_proj_weight\":", NULL, 0);
    base_args(args, w, NULL, NULL, NULL, NULL);
    expect_bad("mha", args, w, "JSON", (const char *)NULL);
    expect_outdir_empty();
}

static void bad_two_tensors(void **state)
{
    (void)state;
    base_files();
    char q[PATH_LEN];
    attn_tensor a = random_tensor(3, 2, 3, 4, 1, 23), b = random_tensor(3, 2, 3, 4, 1, 24);
    attn_st_named named[2] = {{"a", &a}, {"b", &b}};
    tmp_path(q, "two-tensors.safetensors");
    if (attn_safetensors_write(q, named, 2, NULL, NULL, 0) != ATTN_OK)
        fail_msg("attn_safetensors_write: %s", attn_last_error());
    attn_tensor_free(&a);
    attn_tensor_free(&b);
    EXPECT_BAD_QUERY(q, "exactly one tensor", "2");
    /* No tensor at all. */
    tmp_path(q, "no-tensors.safetensors");
    write_st_bytes(q, "{}", NULL, 0);
    EXPECT_BAD_QUERY(q, "exactly one tensor", "0");
    /* The rule holds for masks too. */
    char args[ARGS_LEN], extra[PATH_LEN + 32];
    tmp_path(q, "two-tensors.safetensors");
    snprintf(extra, sizeof extra, "--attn-mask '%s'", q);
    base_args(args, NULL, NULL, NULL, NULL, extra);
    expect_bad("mha", args, q, "exactly one tensor", (const char *)NULL);
    expect_outdir_empty();
}

static void bad_corrupt_inputs(void **state)
{
    (void)state;
    base_files();
    char q[PATH_LEN];
    float d[3] = {1, 2, 3};

    /* Header length past the end of the file. */
    {
        unsigned char b[16] = {0xE8, 0x03, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
        tmp_path(q, "hlen-past-end.safetensors");
        write_bytes(q, b, sizeof b);
        EXPECT_BAD_QUERY(q, "1000", "past the end");
    }
    /* Data offsets past the end of the file. */
    tmp_path(q, "offsets-past-end.safetensors");
    write_st_bytes(q, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 4);
    EXPECT_BAD_QUERY(q, "8", "4 bytes");
    /* Overlapping ranges. */
    tmp_path(q, "overlap.safetensors");
    write_st_bytes(q,
                   "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                   d, 12);
    EXPECT_BAD_QUERY(q, "overlap");
    /* A gap between ranges. */
    tmp_path(q, "gap.safetensors");
    write_st_bytes(q,
                   "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                   d, 12);
    EXPECT_BAD_QUERY(q, "gap");
    /* Duplicate names. */
    tmp_path(q, "duplicate.safetensors");
    write_st_bytes(q,
                   "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                   d, 8);
    EXPECT_BAD_QUERY(q, "duplicate", "'a'");
    /* Unknown dtype. */
    tmp_path(q, "unknown-dtype.safetensors");
    write_st_bytes(q, "{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", d, 4);
    EXPECT_BAD_QUERY(q, "dtype", "F33");
    /* Size and shape disagree. */
    tmp_path(q, "short-range.safetensors");
    write_st_bytes(q, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", d, 12);
    EXPECT_BAD_QUERY(q, "12 bytes", "16");
    /* Invalid JSON. */
    tmp_path(q, "bad-json.safetensors");
    write_st_bytes(q, "{\"a\":{\"dtype\":\"F32\",", NULL, 0);
    EXPECT_BAD_QUERY(q, "JSON");
    /* A JSON array, not an object. */
    tmp_path(q, "array.safetensors");
    write_st_bytes(q, "[1,2,3]", NULL, 0);
    EXPECT_BAD_QUERY(q, "object", "array");
    /* An empty file. */
    tmp_path(q, "empty.safetensors");
    write_bytes(q, "", 0);
    EXPECT_BAD_QUERY(q, "0 bytes");
    /* Three bytes. */
    tmp_path(q, "three.safetensors");
    write_bytes(q, "abc", 3);
    EXPECT_BAD_QUERY(q, "3 bytes");
    /* Not there; a directory. */
    tmp_path(q, "no-such-query.safetensors");
    EXPECT_BAD_QUERY(q, "open");
    tmp_dir(q, "a-directory.safetensors");
    EXPECT_BAD_QUERY(q, "regular file");
}

/* L = 0 or S = 0: either a (degenerate) result, or bad input that names the file. */
static void bad_empty_sizes(void **state)
{
    (void)state;
    base_files();
    char q[PATH_LEN], k[PATH_LEN], v[PATH_LEN], args[ARGS_LEN], cmd[ARGS_LEN + 600];
    tmp_path(q, "empty-L-q.safetensors");
    write_st_bytes(q, "{\"q\":{\"dtype\":\"F32\",\"shape\":[2,0,4],\"data_offsets\":[0,0]}}",
                   NULL, 0);
    tmp_path(k, "empty-S-k.safetensors");
    write_st_bytes(k, "{\"k\":{\"dtype\":\"F32\",\"shape\":[2,0,4],\"data_offsets\":[0,0]}}",
                   NULL, 0);
    tmp_path(v, "empty-S-v.safetensors");
    write_st_bytes(v, "{\"v\":{\"dtype\":\"F32\",\"shape\":[2,0,4],\"data_offsets\":[0,0]}}",
                   NULL, 0);
    for (int which = 0; which < 2; which++) {
        const char *bad = which == 0 ? q : k;
        base_args(args, NULL, which == 0 ? q : NULL, which == 1 ? k : NULL,
                  which == 1 ? v : NULL, NULL);
        char full[ARGS_LEN + 8];
        snprintf(full, sizeof full, "mha %s", args);
        run_result r = run_attn(cmd, sizeof cmd, full);
        if (r.status == 0) {
            /* Accepted: then the output has the shapes that follow. */
            run_result_free(&r);
            attn_safetensors *o = open_st(B.out);
            attn_st_info info;
            attn_status st = attn_safetensors_info(o, "attn_weights", &info);
            attn_safetensors_close(o);
            unlink(B.out); /* the other tests want the directory empty */
            assert_int_equal(st, ATTN_OK);
            assert_int_equal(info.ndim, 4);
            assert_int_equal(info.shape[2], which == 0 ? 0 : 3);
            assert_int_equal(info.shape[3], which == 0 ? 5 : 0);
        } else {
            run_status(cmd, &r, 2);
            run_check(!r.out[0], &r, "%s: expected an empty stdout, got:\n%s", cmd, r.out);
            run_check(count_lines(r.err) == 1, &r,
                      "%s: expected exactly one line on stderr, got:\n%s", cmd, r.err);
            run_check(strstr(r.err, bad) != NULL, &r,
                      "%s: expected the message to name the empty file %s, got:\n%s", cmd, bad,
                      r.err);
            run_result_free(&r);
            expect_outdir_empty();
        }
    }
}

static void bad_usage(void **state)
{
    (void)state;
    base_files();
    char args[ARGS_LEN];
    snprintf(args, sizeof args, "--query '%s' --out '%s'", B.q, B.out);
    expect_usage("mha", args, "--weights");
    snprintf(args, sizeof args, "--weights '%s' --out '%s'", B.w, B.out);
    expect_usage("mha", args, "--query");
    snprintf(args, sizeof args, "--weights '%s' --query '%s'", B.w, B.q);
    expect_usage("mha", args, "--out");
    snprintf(args, sizeof args, "--weights '%s' --query '%s' --key '%s' --out '%s'", B.w, B.q,
             B.k, B.out);
    expect_usage("mha", args, "--value");
    snprintf(args, sizeof args, "--weights '%s' --query '%s' --value '%s' --out '%s'", B.w, B.q,
             B.v, B.out);
    expect_usage("mha", args, "--key");
    base_args(args, NULL, NULL, NULL, NULL, "--bogus");
    expect_usage("mha", args, "--bogus");
    base_args(args, NULL, NULL, NULL, NULL, "extra-argument");
    expect_usage("mha", args, "extra-argument");
    snprintf(args, sizeof args, "--weights '%s' --query '%s' --out", B.w, B.q);
    expect_usage("mha", args, "--out");
    expect_usage("mha", "", NULL);
    snprintf(args, sizeof args, "--weights '%s' --query '%s' --out ''", B.w, B.q);
    expect_bad("mha", args, NULL, "empty", (const char *)NULL);
    expect_outdir_empty();
}

/* The output path: a missing directory, a directory, and no partial file. */
static void bad_output_path(void **state)
{
    (void)state;
    base_files();
    char out[PATH_LEN], missing[PATH_LEN], args[ARGS_LEN];
    tmp_path(missing, "no-such-dir");
    snprintf(out, sizeof out, "%.400s/o.safetensors", missing);
    snprintf(args, sizeof args, "--weights '%s' --query '%s' --out '%s'", B.w, B.q, out);
    char *before = list_dir(test_tmpdir());
    expect_bad("mha", args, out, (const char *)NULL);
    assert_false(file_exists(missing));
    char *after = list_dir(test_tmpdir());
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* The output path is a directory. */
    snprintf(args, sizeof args, "--weights '%s' --query '%s' --out '%s'", B.w, B.q, B.outdir);
    expect_bad("mha", args, B.outdir, "directory", (const char *)NULL);
    expect_outdir_empty();

    /* The directory exists, the computation fails later (bad query): no
     * output, no temporary file, nothing else changed. */
    char dir[PATH_LEN], q[PATH_LEN], keep[PATH_LEN];
    tmp_dir(dir, "late-failure");
    snprintf(keep, sizeof keep, "%.400s/keep.txt", dir);
    write_bytes(keep, "keep\n", 5);
    snprintf(out, sizeof out, "%.400s/O.safetensors", dir);
    attn_tensor t = random_tensor(3, 2, 3, 7, 1, 25);
    tmp_path(q, "late-failure-q.safetensors");
    write_f32(q, "query", &t);
    attn_tensor_free(&t);
    before = list_dir(dir);
    snprintf(args, sizeof args, "--weights '%s' --query '%s' --out '%s'", B.w, q, out);
    expect_bad("mha", args, q, (const char *)NULL);
    after = list_dir(dir);
    assert_string_equal(before, after);
    expect_lacks(dir, after, "O.safetensors");
    expect_lacks(dir, after, ".tmp-");
    free(before);
    free(after);

    /* An existing output is left as it was by a failing run. */
    write_bytes(out, "old contents\n", 13);
    expect_bad("mha", args, q, (const char *)NULL);
    char *text = read_text(out);
    assert_non_null(text);
    assert_string_equal(text, "old contents\n");
    free(text);
    after = list_dir(dir);
    assert_string_equal(after, "O.safetensors\nkeep.txt\n");
    free(after);

    /* ... and replaced by a successful one, leaving nothing else. */
    snprintf(args, sizeof args, "mha --weights '%s' --query '%s' --out '%s'", B.w, B.q, out);
    free(run_ok(args));
    attn_safetensors *o = open_st(out);
    assert_int_equal(attn_safetensors_count(o), 2);
    attn_safetensors_close(o);
    after = list_dir(dir);
    assert_string_equal(after, "O.safetensors\nkeep.txt\n");
    free(after);
}

/* ---- attn explain --weights --------------------------------------------------- */

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

static void check_explain_json(const char *w_path, attn_mha *m, size_t H, int causal,
                               const char *extra)
{
    char csv[PATH_LEN], args[ARGS_LEN];
    snprintf(csv, sizeof csv, "%s", write_tmp("explain-x.csv", x_csv));
    snprintf(args, sizeof args, "explain --embeddings '%s' --weights '%s' --json %s%s", csv,
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
    for (size_t h = 0; h < H; h++) {
        char what[64];
        snprintf(what, sizeof what, "heads[%zu]", h);
        const cJSON *o = cJSON_GetArrayItem(heads, (int)h);
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
    fixture_path(w, "kdim_vdim"); /* E = 15, kdim = 7, vdim = 11 */
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

/* ---- main ------------------------------------------------------------------------ */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mha_fixtures),
        cmocka_unit_test(mha_self_explicit),
        cmocka_unit_test(mha_unbatched),
        cmocka_unit_test(mha_unbatched_key_padding_mask),
        cmocka_unit_test(mha_causal),
        cmocka_unit_test(mha_library_weights),
        cmocka_unit_test(mha_state_dict_without_heads),
        cmocka_unit_test(mha_add_zero_attn),
        cmocka_unit_test(mha_help),
        cmocka_unit_test(bad_heads_not_divisible),
        cmocka_unit_test(bad_heads_usage),
        cmocka_unit_test(bad_query_rank),
        cmocka_unit_test(bad_query_dim),
        cmocka_unit_test(bad_key_value_shapes),
        cmocka_unit_test(bad_attn_mask),
        cmocka_unit_test(bad_mask_dtype),
        cmocka_unit_test(bad_key_padding_mask),
        cmocka_unit_test(bad_weights),
        cmocka_unit_test(bad_two_tensors),
        cmocka_unit_test(bad_corrupt_inputs),
        cmocka_unit_test(bad_empty_sizes),
        cmocka_unit_test(bad_usage),
        cmocka_unit_test(bad_output_path),
        cmocka_unit_test(explain_weights_json),
        cmocka_unit_test(explain_weights_text),
        cmocka_unit_test(explain_weights_bad),
        cmocka_unit_test(explain_weights_kdim_mismatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL); /* test_support removes the tmpdir */
}
