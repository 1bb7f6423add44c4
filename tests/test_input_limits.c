/* test_input_limits.c - inputs at and past the limits, run as the real program.
 *
 *   - WordNet's reader bounds its lines: /dev/zero and a 2 MB line are
 *     refused at once, with the line number, and leave no output.
 *   - The CSV reader: /dev/zero refused at its first byte; more than
 *     ATTN_CSV_MAX_DIMS columns refused; a duplicate among 60,000 columns
 *     found (through a hash); invalid UTF-8 refused with line and cell;
 *     control characters in tokens shown escaped, never raw.
 *   - Finite inputs whose attention overflows (cells of 3e38, --temperature
 *     1e-45): exit 2 with a word, not NaN. `attn mha` refuses NaN and
 *     infinite weights and inputs.
 *   - A checkpoint config that passes the checks but cannot fit in memory:
 *     exit 2 naming the file and the sizes.
 *   - `attn mha` checks dtype and shape from the header before converting:
 *     under a memory limit smaller than the conversion, a wrong query is
 *     still refused for what it is (skipped under AddressSanitizer, which
 *     cannot run under a small address-space limit).
 *   - `explain --json` writes its document as it goes: the peak memory of
 *     400 tokens stays far below what the whole document as a tree took.
 */
#define _DEFAULT_SOURCE /* wait4 */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "attn/attn.h"
#include "attn/mha.h"
#include "attn/mha_io.h"
#include "attn/safetensors.h"

/* Under AddressSanitizer with allocator_may_return_null=1 (make test-sanitize),
 * a refused huge allocation adds one "==PID==WARNING: AddressSanitizer failed
 * to allocate" line to the child's stderr before attn's own message: drop it. */
static void drop_sanitizer_lines(char *err)
{
    char *w = err;
    for (const char *line = err; *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
        if (!(line[0] == '=' && line[1] == '=' && strstr(line, "Sanitizer") && strstr(line, "Sanitizer") < line + n)) {
            memmove(w, line, n);
            w += n;
        }
        line += n;
    }
    *w = '\0';
}

static void expect(run_result r, int status, const char *fragment)
{
    drop_sanitizer_lines(r.err);
    if (r.status != status || !strstr(r.err, fragment) || r.out[0] || count_lines(r.err) != 1)
        fail_msg("status %d, stdout '%.200s', stderr '%.300s' (wanted %d and '%s')", r.status,
                 r.out, r.err, status, fragment);
    run_result_free(&r);
}

static void expect_ok(run_result r)
{
    if (r.status != 0) fail_msg("status %d, stderr '%.300s'", r.status, r.err);
    run_result_free(&r);
}

/* <tmpdir>/<name>, kept for the life of the test program. */
static const char *tmp(const char *name)
{
    static char buf[32][600];
    static int i;
    if (i == 32) fail_msg("tmp(): out of slots");
    snprintf(buf[i], sizeof buf[i], "%s/%s", test_tmpdir(), name);
    return buf[i++];
}

static size_t dir_entries(const char *dir)
{
    run_result r = run_cmd("ls -A '%s' 2>/dev/null | wc -l", dir);
    size_t n = (size_t)strtoul(r.out, NULL, 10);
    run_result_free(&r);
    return n;
}

/* ---- WordNet (defect 3) ----------------------------------------------------- */

static void test_wordnet_bounded_lines(void **state)
{
    (void)state;
    const char *out = tmp("wn-out");
    expect(run_cmd("'%s' data wordnet --source /dev/zero --out '%s'", attn_bin(), out), 2,
           "/dev/zero:1: a NUL byte in the line");
    assert_int_equal(dir_entries(out), 0);
    /* One line of 2 MB (no newline): refused by length, not read whole. */
    const char *big = tmp("wn-big.noun");
    FILE *f = fopen(big, "wb");
    assert_non_null(f);
    fputs("00001740 03 n 01 entity 0 000 | x\n", f);
    for (int i = 0; i < 2 << 20; i++) fputc('a', f);
    fclose(f);
    expect(run_cmd("'%s' data wordnet --source '%s' --out '%s'", attn_bin(), big, out), 2,
           "wn-big.noun:2: a line longer than 1048576 bytes");
    assert_int_equal(dir_entries(out), 0);
}

/* ---- CSV (defects 6 and 7) -------------------------------------------------- */

/* A CSV header of n dimensions d0..d(n-1) (the last named `last`), one row. */
static const char *wide_csv(const char *name, size_t n, const char *last)
{
    const char *path = tmp(name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("token", f);
    for (size_t j = 0; j + 1 < n; j++) fprintf(f, ",d%zu", j);
    fprintf(f, ",%s\nx", last);
    for (size_t j = 0; j < n; j++) fputs(",0", f);
    fputc('\n', f);
    fclose(f);
    return path;
}

static void test_csv_limits(void **state)
{
    (void)state;
    expect(run_cmd("'%s' explain --embeddings /dev/zero", attn_bin()), 2,
           "/dev/zero:1:1: unexpected NUL byte");
    expect(run_cmd("'%s' explain --embeddings '%s'", attn_bin(),
                   wide_csv("wide.csv", 70000, "last")),
           2, "wide.csv:1:65538: more than 65537 cells (at most 65536 dimensions)");
    /* 60,000 columns with a duplicate at the end: found, and quickly (the
     * quadratic check took minutes at 10^6). */
    attn_embeddings e;
    const char *dup = wide_csv("dup.csv", 60000, "d0");
    assert_int_equal(attn_embeddings_read_csv(&e, dup), ATTN_E_FORMAT);
    assert_non_null(strstr(attn_last_error(), "dup.csv:1:60001: duplicate dimension name 'd0' (also column 2)"));
    assert_int_equal(attn_embeddings_read_csv(&e, wide_csv("ok.csv", 60000, "last")), ATTN_OK);
    assert_int_equal(e.n_dims, 60000);
    assert_string_equal(e.dims[59999], "last");
    assert_string_equal(e.tokens[0], "x");
    attn_embeddings_free(&e);
}

static void test_csv_utf8_and_controls(void **state)
{
    (void)state;
    expect(run_cmd("'%s' explain --embeddings '%s'", attn_bin(),
                   write_tmp("latin1.csv", "token,a\ncat,1\ncaf\xe9,2\n")),
           2, "latin1.csv:3:1: not valid UTF-8 (byte 0xe9");
    expect(run_cmd("'%s' explain --embeddings '%s'", attn_bin(),
                   write_tmp("overlong.csv", "token,\xc0\xaf\ncat,1\n")),
           2, "overlong.csv:1:2: not valid UTF-8");
    expect(run_cmd("'%s' explain --embeddings '%s'", attn_bin(),
                   write_tmp("surrogate.csv", "token,a\n\xed\xa0\x80,1\n")),
           2, "surrogate.csv:2:1: not valid UTF-8");
    /* An escape sequence in a token and a dimension: shown as \x1b. */
    const char *esc = write_tmp("esc.csv", "token,\"a\x07\"\n\"x\x1b[2Jy\",1\nmouse,0.5\n");
    run_result r = run_cmd("'%s' explain --embeddings '%s' --color never", attn_bin(), esc);
    assert_int_equal(r.status, 0);
    assert_null(strchr(r.out, 0x1b));
    assert_null(strchr(r.out, 0x07));
    assert_non_null(strstr(r.out, "x\\x1b[2Jy"));
    assert_non_null(strstr(r.out, "a\\x07"));
    run_result_free(&r);
    char buf[64];
    assert_int_equal(attn_text_escape(buf, sizeof buf, "a\x1b\xc2\x9b b\xc3\xa9"), 13);
    assert_string_equal(buf, "a\\x1b\\x9b b\xc3\xa9");
}

/* ---- overflow to NaN (defect 8) ---------------------------------------------- */

static void write_tensor(const char *path, const char *name, int ndim, const size_t *shape,
                         const float *values)
{
    attn_tensor t;
    assert_int_equal(attn_tensor_create(&t, ndim, shape), ATTN_OK);
    memcpy(t.data, values, t.numel * sizeof(float));
    attn_st_named named[1] = {{name, &t}};
    assert_int_equal(attn_safetensors_write(path, named, 1, NULL, NULL, 0), ATTN_OK);
    attn_tensor_free(&t);
}

static void write_weights(const char *path, float poison)
{
    attn_mha_config cfg = attn_mha_default_config(4, 2);
    attn_mha *m = NULL;
    assert_int_equal(attn_mha_create(&m, &cfg), ATTN_OK);
    assert_int_equal(attn_mha_init(m, 3), ATTN_OK);
    size_t n = 0;
    float *p = attn_mha_params(m, &n);
    p[n / 2] = poison;
    assert_int_equal(attn_mha_save_safetensors(m, path), ATTN_OK);
    attn_mha_free(m);
}

static void test_overflow_and_nan(void **state)
{
    (void)state;
    const char *big = write_tmp("big.csv", "token,a,b\nx,3e38,1\ny,3e38,-1\n");
    expect(run_cmd("'%s' explain --embeddings '%s'", attn_bin(), big), 2,
           "big.csv: the attention overflows float32 (NaN in 'output'");
    expect(run_cmd("'%s' explain --embeddings '%s' --json", attn_bin(), big), 2, "overflows float32");
    expect(run_cmd("'%s' demo --temperature 1e-45", attn_bin()), 2,
           "--scale/--temperature: the attention overflows float32");
    /* A plain walkthrough of big but harmless values still works. */
    run_result r = run_cmd("'%s' explain --embeddings '%s'", attn_bin(),
                           write_tmp("fine.csv", "token,a\nx,1e18\ny,-1e18\n"));
    assert_int_equal(r.status, 0);
    run_result_free(&r);

    const char *w = tmp("w.safetensors"), *wnan = tmp("wnan.safetensors"), *q = tmp("q.safetensors");
    write_weights(w, 0.5f);
    write_weights(wnan, NAN);
    size_t shape[2] = {2, 4};
    float good[8] = {1, 2, 3, 4, 5, 6, 7, 8}, bad[8] = {1, 2, 3, 4, 5, INFINITY, 7, 8};
    write_tensor(q, "q", 2, shape, good);
    const char *out = tmp("o.safetensors");
    expect(run_cmd("'%s' mha --weights '%s' --query '%s' --out '%s'", attn_bin(), wnan, q, out), 2,
           "wnan.safetensors: '");
    expect(run_cmd("'%s' mha --weights '%s' --query '%s' --out '%s'", attn_bin(), wnan, q, out), 2,
           "holds NaN at element");
    write_tensor(q, "q", 2, shape, bad);
    expect(run_cmd("'%s' mha --weights '%s' --query '%s' --out '%s'", attn_bin(), w, q, out), 2,
           "q.safetensors: 'q' holds an infinity at element 5; expected finite numbers");
    assert_int_equal(access(out, F_OK), -1);
    /* -inf in an additive mask is what masks are for; NaN is not. */
    write_tensor(q, "q", 2, shape, good);
    size_t ms[2] = {2, 2};
    float m_inf[4] = {0, -INFINITY, 0, 0}, m_nan[4] = {0, NAN, 0, 0};
    const char *mask = tmp("mask.safetensors");
    write_tensor(mask, "m", 2, ms, m_inf);
    expect_ok(run_cmd("'%s' mha --weights '%s' --query '%s' --attn-mask '%s' --out '%s'", attn_bin(),
                      w, q, mask, out));
    write_tensor(mask, "m", 2, ms, m_nan);
    expect(run_cmd("'%s' mha --weights '%s' --query '%s' --attn-mask '%s' --out '%s'", attn_bin(),
                   w, q, mask, tmp("o2.safetensors")),
           2, "mask.safetensors: 'm' holds NaN at element 1");
}

/* ---- a config too large for memory (defect 9) -------------------------------- */

static void test_config_too_large(void **state)
{
    (void)state;
    const char *data = write_tmp("tiny.txt", "abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc\n"
                                            "abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc\n");
    const char *ck = tmp("tinyck");
    expect_ok(run_cmd("'%s' train --data '%s' --out '%s' --iters 1 --layers 1 --heads 1 "
                      "--width 8 --context 4 --batch 2 --eval-iters 1",
                      attn_bin(), data, ck));
    run_result r;
    /* 4096 layers of width 65536: every size within its limit, 2 PB in all. */
    r = run_cmd("sed -i --follow-symlinks 's/\"layers\":[^,]*/\"layers\": 4096/; s/\"width\":[^,]*/\"width\": 65536/' "
                "'%s/config.json'",
                ck);
    assert_int_equal(r.status, 0);
    run_result_free(&r);
    expect(run_cmd("'%s' generate --model '%s' --tokens 2", attn_bin(), ck), 2,
           "config.json: a model of 4096 layers, width 65536, context 4 and vocabulary 4");
}

/* ---- mha checks the header first (defect 11) ---------------------------------- */

static void test_mha_header_first(void **state)
{
    (void)state;
    if (ATTN_TEST_UNDER_ASAN) skip();
    const char *w = tmp("w11.safetensors"), *q = tmp("q11.safetensors");
    write_weights(w, 0.5f);
    /* 672 MB of F32 with E = 5 (the layer wants 4), and of I64: refused from
     * the header under a 1.2 GB address-space limit that the conversion
     * would not fit in. */
    const size_t L = (size_t)1 << 25;
    char shape[64];
    snprintf(shape, sizeof shape, "[1,%zu,5]", L);
    write_sparse_safetensors(q, "F32", shape, L * 5 * 4);
    expect(run_cmd("ulimit -v 1200000; exec '%s' mha --weights '%s' --query '%s' --out '%s'",
                   attn_bin(), w, q, tmp("o11.safetensors")),
           2, "q11.safetensors: expected embedding dimension 4 (from");
    snprintf(shape, sizeof shape, "[1,%zu,4]", L / 2);
    write_sparse_safetensors(q, "I64", shape, L / 2 * 4 * 8);
    expect(run_cmd("ulimit -v 1200000; exec '%s' mha --weights '%s' --query '%s' --out '%s'",
                   attn_bin(), w, q, tmp("o11.safetensors")),
           2, "query has dtype I64, expected a floating type");
    unlink(q);
}

/* ---- --json is written as it goes (defect 6) ------------------------------------ */

/* Runs attn with args (no shell), stdout to out; its exit status, and its
 * peak resident memory in KiB from wait4. */
static int run_measured(const char *const *args, const char *out, long *max_rss_kb)
{
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = fopen(out, "wb");
        if (!f || dup2(fileno(f), 1) < 0) _exit(126);
        execv(args[0], (char *const *)args);
        _exit(127);
    }
    assert_true(pid > 0);
    int status = 0;
    struct rusage ru;
    assert_int_equal(wait4(pid, &status, 0, &ru), pid);
    *max_rss_kb = ru.ru_maxrss;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_json_streams(void **state)
{
    (void)state;
    if (ATTN_TEST_UNDER_ASAN) skip(); /* its shadow memory is in the figure */
    /* 400 tokens: scores, scaled scores and attention of 400 x 400. As one
     * cJSON tree before the first byte the document took about 55 MB of
     * memory; written as it goes, the trace's 2 MB and the program. */
    enum { T = 400 };
    const char *csv = tmp("t400.csv");
    FILE *f = fopen(csv, "wb");
    assert_non_null(f);
    fputs("token,a,b,c,d\n", f);
    for (int i = 0; i < T; i++)
        fprintf(f, "t%d,%g,%g,%g,%g\n", i, sin(i), cos(i), sin(0.3 * i), cos(0.7 * i));
    fclose(f);
    const char *out = tmp("t400.json");
    const char *args[] = {attn_bin(), "explain", "--embeddings", csv, "--json", NULL};
    long rss = 0;
    assert_int_equal(run_measured(args, out, &rss), 0);
    print_message("explain --json of %d tokens: peak RSS %ld KiB\n", T, rss);
    if (rss > 36 * 1024) fail_msg("explain --json of %d tokens took %ld KiB: not streamed?", T, rss);
    /* and the document is whole */
    size_t n = 0;
    char *doc = NULL;
    assert_int_equal(attn_read_file(out, (size_t)1 << 30, 0, &doc, &n), ATTN_OK);
    cJSON *root = cJSON_ParseWithLength(doc, n);
    free(doc);
    assert_non_null(root);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "tokens")), T);
    const cJSON *att = cJSON_GetObjectItemCaseSensitive(root, "attention");
    assert_int_equal(cJSON_GetArraySize(att), T);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetArrayItem(att, T - 1)), T);
    cJSON_Delete(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wordnet_bounded_lines), cmocka_unit_test(test_csv_limits),
        cmocka_unit_test(test_csv_utf8_and_controls), cmocka_unit_test(test_overflow_and_nan),
        cmocka_unit_test(test_config_too_large),      cmocka_unit_test(test_mha_header_first),
        cmocka_unit_test(test_json_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
