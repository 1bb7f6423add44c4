/* test_support.h - helpers shared by the tests. */
#ifndef ATTN_TEST_SUPPORT_H
#define ATTN_TEST_SUPPORT_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* Fails the test unless |a - b| <= atol + rtol * |b| for every element;
 * the message names the first bad index and both values. */
void assert_close_f32(const float *a, const float *b, size_t n, double atol, double rtol,
                      const char *what);

/* The result of running a command: exit status and captured output. */
typedef struct run_result {
    int status;    /* exit status, or -1 if it did not exit normally */
    char *out;     /* stdout, NUL-terminated */
    char *err;     /* stderr, NUL-terminated */
} run_result;

/* Runs `sh -c cmd`, capturing stdout and stderr. */
run_result run_cmd(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
void run_result_free(run_result *r);
/* Runs the n (at most 16) commands at the same time, each by `sh -c` with its
 * own output; r[i] is command i's result once all have ended. For commands
 * that mostly wait (timeouts, start-up of other processes). */
void run_cmds(size_t n, const char *const *cmds, run_result *r);
/* Starts argv (argv[0] a path) in the background, stdout and stderr to
 * /dev/null; returns its process id (for waitpid and kill). */
int start_quiet(const char *const *argv);
/* start_quiet with stderr to the file err_path (replaced; NULL: /dev/null),
 * for a test to quote when the command fails. */
int start_quiet_err(const char *const *argv, const char *err_path);
/* Bad input as the CLI reports it: exit 2 and one line on stderr that starts
 * with cmd ("attn train:") and holds needle; fails the test otherwise. Frees r. */
void expect_bad_input(run_result *r, const char *cmd, const char *needle);

/* 1 when built with AddressSanitizer, which cannot run under an
 * address-space limit (ulimit -v): such checks are skipped. */
#if defined(__SANITIZE_ADDRESS__)
#define ATTN_TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ATTN_TEST_UNDER_ASAN 1
#endif
#endif
#ifndef ATTN_TEST_UNDER_ASAN
#define ATTN_TEST_UNDER_ASAN 0
#endif

/* A safetensors file of one tensor "x" of `dtype` and `shape` (JSON, e.g.
 * "[1,16777216,1024]") whose `bytes` of data are a hole: a huge tensor
 * that costs no disk. */
void write_sparse_safetensors(const char *path, const char *dtype, const char *shape, size_t bytes);

/* Path of the attn binary (ATTN_BIN), and a fresh temporary directory. */
const char *attn_bin(void);
const char *test_tmpdir(void);

/* Writes `text` to <tmpdir>/<name>; returns the full path (static buffer ring). */
const char *write_tmp(const char *name, const char *text);

/* A tiny labelled data set, "label<TAB>text" lines: n texts of 3 classes
 * (noun.animal, noun.artifact, noun.food) drawn from seed, into path. */
void write_labelled_split(const char *path, size_t n, unsigned seed);

/* A tiny training text (60 short lines) in the temporary directory, and a
 * tiny labelled data set (train.tsv 48, valid.tsv 12, test.tsv 12 texts) in
 * <tmpdir>/data; each returns its path (static). */
const char *write_tiny_text(void);
const char *write_tiny_labelled(void);
/* The same with n[0], n[1], n[2] texts in <tmpdir>/<name> (seeds 1, 2, 3
 * plus `seed`); returns its path (static: a ring of 4). */
const char *write_labelled_dir(const char *name, const size_t n[3], unsigned seed);

/* Number of lines in s (a final line without newline counts). */
size_t count_lines(const char *s);

/* obj[key] as a rows x cols matrix of numbers (checked: fails the test
 * otherwise); the values row by row in a malloc'd array. */
struct cJSON;
double *matrix_of(const char *what, const struct cJSON *obj, const char *key, size_t rows,
                  size_t cols);

/* The demo's two sentences run through attn_self_attention, as a document
 * for the exporters (attn/export.h). */
#include "attn/attn.h"
#include "attn/export.h"
#include "attn/safetensors.h"
typedef struct demo_doc {
    attn_embeddings vocab, x[2];
    attn_trace *t[2];
    const char *texts[2];
    attn_doc doc;
} demo_doc;
void build_demo(demo_doc *d);
void release_demo(demo_doc *d);

/* PyTorch fixture files (safetensors): a tensor by name, failing the test
 * with the file's path when it is missing; a metadata value as a size. */
attn_tensor fixture_tensor(attn_safetensors *st, const char *path, const char *name);
size_t fixture_meta_size(attn_safetensors *st, const char *key);

/* assert_close_f32's criterion as a value (1: every element passes), and
 * the largest |a - b|, for tests that report or expect a failure. */
int all_close_f32(const float *a, const float *b, size_t n, double atol, double rtol);
double max_abs_diff_f32(const float *a, const float *b, size_t n);

/* n floats of NaN (checked allocation): a buffer an op must write whole. */
float *test_nan_buffer(size_t n);
/* g[i] += t[i] for i < n, then free(t). */
void test_add_free(float *g, float *t, size_t n);

#endif
