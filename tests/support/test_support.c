/* test_support.c - helpers shared by the tests. */
#include "test_support.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The first index where |a - b| > atol + rtol·|b| (or either is NaN); n if none. */
static size_t first_far(const float *a, const float *b, size_t n, double atol, double rtol)
{
    for (size_t i = 0; i < n; i++) {
        double x = a[i], y = b[i];
        if (isnan(x) || isnan(y) || fabs(x - y) > atol + rtol * fabs(y)) return i;
    }
    return n;
}

void assert_close_f32(const float *a, const float *b, size_t n, double atol, double rtol,
                      const char *what)
{
    size_t i = first_far(a, b, n, atol, rtol);
    if (i < n)
        fail_msg("%s[%zu]: got %.9g, expected %.9g (atol %g, rtol %g)", what, i, (double)a[i],
                 (double)b[i], atol, rtol);
}

int all_close_f32(const float *a, const float *b, size_t n, double atol, double rtol)
{
    return first_far(a, b, n, atol, rtol) == n;
}

double max_abs_diff_f32(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

attn_tensor fixture_tensor(attn_safetensors *st, const char *path, const char *name)
{
    attn_tensor t = {0};
    if (attn_safetensors_read(st, name, &t)) fail_msg("%s: %s", path, attn_last_error());
    return t;
}

size_t fixture_meta_size(attn_safetensors *st, const char *key)
{
    const char *v = attn_safetensors_metadata(st, key);
    if (!v) fail_msg("fixture metadata '%s' is missing", key);
    return (size_t)strtoull(v, NULL, 10);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    size_t got;
    while (s && (got = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            char *t = realloc(s, cap * 2);
            if (!t) break;
            s = t;
            cap *= 2;
        }
    }
    fclose(f);
    if (s) s[n] = '\0';
    return s;
}

const char *attn_bin(void)
{
    const char *b = getenv("ATTN_BIN");
    if (!b) fail_msg("ATTN_BIN is not set (run the tests through ctest)");
    return b;
}

static char dir[256];

/* Tests leave nothing behind in /tmp. */
static void remove_tmpdir(void)
{
    char cmd[300];
    if (!dir[0]) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

const char *test_tmpdir(void)
{
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/attn-test-XXXXXX", base && base[0] ? base : "/tmp");
        if (!mkdtemp(dir)) fail_msg("cannot create a temporary directory");
        atexit(remove_tmpdir);
    }
    return dir;
}

const char *write_tmp(const char *name, const char *text)
{
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 512, "%.255s/%.200s", test_tmpdir(), name);
    FILE *f = fopen(p, "wb");
    if (!f) fail_msg("cannot write %s", p);
    fputs(text, f);
    fclose(f);
    return p;
}

run_result run_cmd(const char *fmt, ...)
{
    char cmd[4096], full[8192], out[512], err[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(out, sizeof out, "%.300s/stdout.txt", test_tmpdir());
    snprintf(err, sizeof err, "%.300s/stderr.txt", test_tmpdir());
    snprintf(full, sizeof full, "(%.4096s) </dev/null >'%.512s' 2>'%.512s'", cmd, out, err);
    int rc = system(full);
    run_result r;
    r.status = (rc != -1 && WIFEXITED(rc)) ? WEXITSTATUS(rc) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
}

void run_cmds(size_t n, const char *const *cmds, run_result *r)
{
    pid_t pid[16];
    char out[16][512], err[16][512];
    if (n > 16) fail_msg("run_cmds: %zu commands, at most 16", n);
    for (size_t i = 0; i < n; i++) {
        snprintf(out[i], sizeof out[i], "%.300s/stdout%zu.txt", test_tmpdir(), i);
        snprintf(err[i], sizeof err[i], "%.300s/stderr%zu.txt", test_tmpdir(), i);
        pid[i] = fork();
        if (pid[i] == 0) {
            /* as system() does, with this command's own output files */
            size_t len = strlen(cmds[i]) + 2 * sizeof out[i] + 32;
            char *full = malloc(len);
            if (!full) _exit(127);
            snprintf(full, len, "(%s) </dev/null >'%s' 2>'%s'", cmds[i], out[i], err[i]);
            execl("/bin/sh", "sh", "-c", full, (char *)NULL);
            _exit(127);
        }
        if (pid[i] < 0) fail_msg("fork failed");
    }
    for (size_t i = 0; i < n; i++) {
        int st = 0;
        const int ok = waitpid(pid[i], &st, 0) == pid[i];
        r[i].status = ok && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        r[i].out = slurp(out[i]);
        r[i].err = slurp(err[i]);
    }
}

int start_quiet_err(const char *const *argv, const char *err_path)
{
    pid_t pid = fork();
    if (pid == 0) {
        FILE *devnull = fopen("/dev/null", "w");
        FILE *err = err_path ? fopen(err_path, "w") : NULL;
        if (devnull) dup2(fileno(devnull), 1), dup2(fileno(err ? err : devnull), 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    if (pid < 0) fail_msg("fork failed");
    return (int)pid;
}

int start_quiet(const char *const *argv) { return start_quiet_err(argv, NULL); }

void run_result_free(run_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

size_t count_lines(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p; p++)
        if (*p == '\n') n++;
    if (*s && s[strlen(s) - 1] != '\n') n++;
    return n;
}

double *matrix_of(const char *what, const cJSON *obj, const char *key, size_t rows, size_t cols)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsArray(m)) fail_msg("%s.%s: not an array", what, key);
    if ((size_t)cJSON_GetArraySize(m) != rows)
        fail_msg("%s.%s: expected %zu rows, got %d", what, key, rows, cJSON_GetArraySize(m));
    double *v = malloc((rows * cols > 0 ? rows * cols : 1) * sizeof *v);
    assert_non_null(v);
    size_t i = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, m)
    {
        if (!cJSON_IsArray(row) || (size_t)cJSON_GetArraySize(row) != cols) {
            free(v);
            fail_msg("%s.%s: row %zu is not an array of %zu numbers", what, key, i, cols);
        }
        size_t j = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, row)
        {
            if (!cJSON_IsNumber(x)) {
                free(v);
                fail_msg("%s.%s[%zu][%zu]: not a number", what, key, i, j);
            }
            v[i * cols + j++] = x->valuedouble;
        }
        i++;
    }
    return v;
}

void build_demo(demo_doc *d)
{
    memset(d, 0, sizeof *d);
    assert_int_equal(attn_seed_vocabulary(&d->vocab), ATTN_OK);
    for (int i = 0; i < 2; i++) {
        d->texts[i] = attn_seed_sentence((size_t)i);
        assert_int_equal(attn_embeddings_lookup(&d->x[i], &d->vocab, d->texts[i]), ATTN_OK);
        assert_int_equal(attn_trace_create(&d->t[i]), ATTN_OK);
        assert_int_equal(attn_self_attention(NULL, &d->x[i], NULL, d->t[i]), ATTN_OK);
    }
    d->doc.title = "attn demo";
    d->doc.n = 2;
    d->doc.traces = (const attn_trace *const *)d->t;
    d->doc.captions = d->texts;
}

void release_demo(demo_doc *d)
{
    for (int i = 0; i < 2; i++) attn_trace_free(d->t[i]), attn_embeddings_free(&d->x[i]);
    attn_embeddings_free(&d->vocab);
}

void write_sparse_safetensors(const char *path, const char *dtype, const char *shape, size_t bytes)
{
    char hdr[256];
    int h = snprintf(hdr, sizeof hdr, "{\"x\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[0,%zu]}}",
                     dtype, shape, bytes);
    while (h % 8) hdr[h++] = ' ';
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)h >> (8 * i));
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(len, 1, 8, f) != 8 || fwrite(hdr, 1, (size_t)h, f) != (size_t)h ||
        fflush(f) != 0 || ftruncate(fileno(f), (off_t)(8 + (size_t)h + bytes)) != 0)
        fail_msg("cannot write %s", path);
    fclose(f);
}

void expect_bad_input(run_result *r, const char *cmd, const char *needle)
{
    if (r->status != 2 || count_lines(r->err) != 1 || !strstr(r->err, needle) ||
        strncmp(r->err, cmd, strlen(cmd)) != 0)
        fail_msg("expected exit 2 and one line with '%s', got %d: %s", needle, r->status, r->err);
    run_result_free(r);
}

void write_labelled_split(const char *path, size_t n, unsigned seed)
{
    static const char *const words[3][3] = {{"cat", "dog", "owl"}, {"screen", "cable", "laptop"},
                                            {"bread", "cheese", "soup"}};
    static const char *const labels[3] = {"noun.animal", "noun.artifact", "noun.food"};
    FILE *f = fopen(path, "w");
    if (!f) fail_msg("cannot write %s", path);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned c = (seed >> 16) % 3, w = (seed >> 8) % 3;
        fprintf(f, "%s\tthe %s %s\n", labels[c], words[c][w], i % 2 ? "with a" : "and");
    }
    fclose(f);
}

const char *write_tiny_text(void)
{
    static char path[600];
    char buf[4096] = "";
    for (int i = 0; i < 60; i++) strcat(buf, i % 3 ? "the cat sat on the mat.\n" : "we see the sea.\n");
    snprintf(path, sizeof path, "%s", write_tmp("text.txt", buf));
    return path;
}

const char *write_labelled_dir(const char *name, const size_t n[3], unsigned seed)
{
    static char dirs[4][600];
    static int next;
    char *ddir = dirs[next++ % 4];
    snprintf(ddir, 600, "%.400s/%.150s", test_tmpdir(), name);
    mkdir(ddir, 0777);
    const char *const names[3] = {"train.tsv", "valid.tsv", "test.tsv"};
    for (int i = 0; i < 3; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s", ddir, names[i]);
        write_labelled_split(path, n[i], (unsigned)i + 1 + seed);
    }
    return ddir;
}

const char *write_tiny_labelled(void)
{
    static const size_t n[3] = {48, 12, 12};
    return write_labelled_dir("data", n, 0);
}

float *test_nan_buffer(size_t n)
{
    float *t = malloc((n ? n : 1) * sizeof *t);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) t[i] = NAN;
    return t;
}

void test_add_free(float *g, float *t, size_t n)
{
    for (size_t i = 0; i < n; i++) g[i] += t[i];
    free(t);
}
