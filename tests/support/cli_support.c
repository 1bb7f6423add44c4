/* cli_support.c - running the attn binary and the files the CLI tests use. */
#include "cli_support.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- files ------------------------------------------------------------------ */

void tmp_path(char *path, const char *name)
{
    snprintf(path, PATH_LEN, "%.300s/%.200s", test_tmpdir(), name);
}

void tmp_dir(char *path, const char *name)
{
    tmp_path(path, name);
    if (mkdir(path, 0700) != 0) {
        struct stat sb;
        if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) fail_msg("cannot create %s", path);
    }
}

void tmp_file(char *path, const char *name, const char *text)
{
    snprintf(path, PATH_LEN, "%s", write_tmp(name, text));
}

int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    if (n && fwrite(data, 1, n, f) != n) {
        fclose(f);
        fail_msg("cannot write %s", path);
    }
    if (fclose(f) != 0) fail_msg("cannot write %s", path);
}

char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *s = malloc(4097);
    size_t n = s ? fread(s, 1, 4096, f) : 0;
    fclose(f);
    if (s) s[n] = '\0';
    return s;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *list_dir(const char *dir)
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

void append_args(char *args, const char *fmt, ...)
{
    size_t len = strlen(args);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args + len, ARGS_LEN - len, fmt, ap);
    va_end(ap);
}

/* ---- runs ------------------------------------------------------------------- */

void expect_contains(const char *what, const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("%s: expected to contain \"%s\", got:\n%s", what, needle, hay);
}

void expect_lacks(const char *what, const char *hay, const char *needle)
{
    if (strstr(hay, needle)) fail_msg("%s: expected not to contain \"%s\", got:\n%s", what, needle, hay);
}

void expect_empty(const char *cmd, const char *stream, const char *s)
{
    if (s[0]) fail_msg("%s: expected an empty %s, got:\n%s", cmd, stream, s);
}

size_t count_substr(const char *s, const char *needle)
{
    size_t n = 0, len = strlen(needle);
    for (const char *p = strstr(s, needle); p; p = strstr(p + len, needle)) n++;
    return n;
}

run_result run_attn(char *cmd, size_t n, const char *args)
{
    snprintf(cmd, n, "'%s' %s", attn_bin(), args);
    return run_cmd("%s", cmd);
}

/* The message is kept here while the run's output is freed (so that a
 * failing test leaks nothing). */
static char fail_buf[16384];

void run_check(int ok, run_result *r, const char *fmt, ...)
{
    if (ok) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fail_buf, sizeof fail_buf, fmt, ap);
    va_end(ap);
    run_result_free(r);
    fail_msg("%s", fail_buf);
}

void run_status(const char *cmd, run_result *r, int want)
{
    run_check(r->status == want, r, "%s: expected exit status %d, got %d\nstdout:\n%s\nstderr:\n%s",
              cmd, want, r->status, r->out, r->err);
}

char *run_ok(const char *args)
{
    char cmd[ARGS_LEN + 600];
    run_result r = run_attn(cmd, sizeof cmd, args);
    run_status(cmd, &r, 0);
    run_check(!r.err[0], &r, "%s: expected an empty stderr, got:\n%s", cmd, r.err);
    free(r.err);
    return r.out;
}

cJSON *run_json(const char *args)
{
    char *out = run_ok(args);
    cJSON *root = cJSON_Parse(out);
    if (!root) {
        snprintf(fail_buf, sizeof fail_buf, "attn %s: stdout is not valid JSON (near \"%.40s\"):\n%s",
                 args, cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "?", out);
        free(out);
        fail_msg("%s", fail_buf);
    }
    free(out);
    return root;
}

void expect_error_line(const char *args, const char *prefix, const char *const *frags)
{
    char cmd[ARGS_LEN + 600];
    run_result r = run_attn(cmd, sizeof cmd, args);
    run_status(cmd, &r, 2);
    run_check(!r.out[0], &r, "%s: expected an empty stdout, got:\n%s", cmd, r.out);
    size_t len = strlen(r.err);
    run_check(count_lines(r.err) == 1 && len > 0 && r.err[len - 1] == '\n', &r,
              "%s: expected exactly one line on stderr, got %zu:\n%s", cmd, count_lines(r.err),
              r.err);
    run_check(strncmp(r.err, prefix, strlen(prefix)) == 0, &r,
              "%s: expected stderr to start with \"%s\", got:\n%s", cmd, prefix, r.err);
    for (size_t i = 0; frags && frags[i]; i++)
        run_check(strstr(r.err, frags[i]) != NULL, &r, "%s: expected to contain \"%s\", got:\n%s",
                  cmd, frags[i], r.err);
    run_result_free(&r);
}

void expect_bad_frags(const char *cmdname, const char *args, const char *file,
                      const char *const *frags)
{
    char prefix[64], full[ARGS_LEN + 32];
    const char *all[18];
    size_t n = 0;
    if (file) all[n++] = file; /* the message names the file */
    for (size_t i = 0; frags && frags[i] && n < 17; i++) all[n++] = frags[i];
    all[n] = NULL;
    snprintf(full, sizeof full, "%s %s", cmdname, args);
    snprintf(prefix, sizeof prefix, "attn %s: ", cmdname);
    expect_error_line(full, prefix, all);
}

void expect_bad(const char *cmdname, const char *args, const char *file, ...)
{
    const char *frags[16];
    size_t n = 0;
    va_list ap;
    va_start(ap, file);
    for (const char *m = va_arg(ap, const char *); m && n < 15; m = va_arg(ap, const char *))
        frags[n++] = m;
    va_end(ap);
    frags[n] = NULL;
    expect_bad_frags(cmdname, args, file, frags);
}

void expect_usage(const char *cmdname, const char *args, const char *mention)
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

void expect_usage_text(const char *args)
{
    char cmd[ARGS_LEN + 600];
    run_result r = run_attn(cmd, sizeof cmd, args);
    run_status(cmd, &r, 2);
    run_check(!r.out[0], &r, "%s: expected an empty stdout, got:\n%s", cmd, r.out);
    run_check(strstr(r.err, "usage: attn") != NULL, &r,
              "%s: expected to contain \"usage: attn\", got:\n%s", cmd, r.err);
    run_result_free(&r);
}

/* ---- scripts of runs ----------------------------------------------------------- */

static void run_step(const cli_step *st)
{
    run_result r = run_cmd("%s", st->cmd);
    const char *nl = strchr(r.err, '\n');
    const char *hit = st->needle ? strstr(r.err, st->needle) : NULL;
    int prefix_ok = !st->prefix || strncmp(r.err, st->prefix, strlen(st->prefix)) == 0;
    switch (st->kind) {
    case STEP_PREP:
        break;
    case STEP_OK:
        run_status(st->cmd, &r, 0);
        break;
    case STEP_BAD:
        run_check(r.status == 2 && count_lines(r.err) == 1 && hit && prefix_ok, &r,
                  "%s: expected exit 2 and one line with '%s', got %d: %s", st->cmd, st->needle,
                  r.status, r.err);
        break;
    case STEP_USAGE:
        run_check(r.status == 2 && prefix_ok && nl && hit && hit < nl && strstr(r.err, "usage:"),
                  &r, "%s: expected exit 2 and '%s' then the usage, got %d: %s", st->cmd,
                  st->needle, r.status, r.err);
        break;
    case STEP_STDOUT:
        run_check(strcmp(r.out, st->needle) == 0, &r, "%s: expected stdout \"%s\", got \"%s\"",
                  st->cmd, st->needle, r.out);
        break;
    case STEP_EXIT2:
        run_check(r.status == 2 && hit, &r, "%s: expected exit 2 and '%s', got %d: %s", st->cmd,
                  st->needle, r.status, r.err);
        break;
    }
    run_result_free(&r);
}

void run_steps(const cli_step *steps, size_t n)
{
    if (setenv("B", attn_bin(), 1) != 0 || setenv("T", test_tmpdir(), 1) != 0)
        fail_msg("setenv failed");
    for (size_t i = 0; i < n; i++) run_step(&steps[i]);
}

/* ---- safetensors files ---------------------------------------------------------- */

void write_st_bytes(const char *path, const char *header, const void *data, size_t dlen)
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

void shape_json(char *buf, size_t n, const attn_tensor *t)
{
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%zu", i ? "," : "", t->shape[i]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

void write_mask_bytes(const char *path, const char *dtype, const attn_tensor *t)
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

void write_f32(const char *path, const char *name, const attn_tensor *t)
{
    attn_st_named one = {name, t};
    if (attn_safetensors_write(path, &one, 1, NULL, NULL, 0) != ATTN_OK)
        fail_msg("attn_safetensors_write %s: %s", path, attn_last_error());
}

attn_tensor random_tensor(int ndim, size_t d0, size_t d1, size_t d2, size_t d3, uint32_t seed)
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

void read_tensor(const attn_safetensors *st, const char *name, attn_tensor *t)
{
    if (attn_safetensors_read(st, name, t) != ATTN_OK)
        fail_msg("%s: cannot read '%s': %s", attn_safetensors_name(st), name, attn_last_error());
}

attn_safetensors *open_st(const char *path)
{
    attn_safetensors *st = NULL;
    if (attn_safetensors_open(&st, path) != ATTN_OK)
        fail_msg("cannot open %s: %s", path, attn_last_error());
    return st;
}
