/* cli_support.h - running the attn binary and checking what it did, and the
 * files the CLI tests give it (shared by test_cli*.c, test_gpt_cli.c,
 * test_classify_cli.c). Every check fails the test with the command line and
 * both streams in the message. */
#ifndef ATTN_CLI_SUPPORT_H
#define ATTN_CLI_SUPPORT_H

#include "test_support.h"

#include "attn/safetensors.h"
#include "attn/tensor.h"

#define PATH_LEN 512  /* the size of every path buffer below */
#define ARGS_LEN 4096 /* the size of an argument string */

/* ---- files ------------------------------------------------------------------ */

/* <tmpdir>/<name> into path. */
void tmp_path(char *path, const char *name);
/* <tmpdir>/<name>, created as a directory if needed, into path. */
void tmp_dir(char *path, const char *name);
/* write_tmp(name, text), its path copied into path (write_tmp's is a ring). */
void tmp_file(char *path, const char *name, const char *text);
int file_exists(const char *path);
void write_bytes(const char *path, const void *data, size_t n);
/* The first 4096 bytes of a file, NUL-terminated (to free); NULL if unreadable. */
char *read_text(const char *path);
/* The names in a directory (not . and ..), sorted, one per line (to free). */
char *list_dir(const char *dir);
/* Appends printf-style text to args (ARGS_LEN bytes). */
void append_args(char *args, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- runs ------------------------------------------------------------------- */

void expect_contains(const char *what, const char *hay, const char *needle);
void expect_lacks(const char *what, const char *hay, const char *needle);
void expect_empty(const char *cmd, const char *stream, const char *s);
size_t count_substr(const char *s, const char *needle);

/* Runs `attn ARGS`; the command line into cmd (n bytes). */
run_result run_attn(char *cmd, size_t n, const char *args);
/* Unless ok: formats the message, frees the run's output, fails the test. */
void run_check(int ok, run_result *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Exit status `want`, or the test fails showing both streams. */
void run_status(const char *cmd, run_result *r, int want);
/* `attn ARGS` succeeds: exit 0, nothing on stderr; returns stdout (to free). */
char *run_ok(const char *args);
/* `attn ARGS` prints JSON on success; returns it parsed (to cJSON_Delete). */
struct cJSON *run_json(const char *args);

/* Bad input for `attn ARGS`: exit 2, nothing on stdout, exactly one line on
 * stderr that starts with `prefix` and contains every string of `frags`
 * (NULL-terminated; NULL for none). */
void expect_error_line(const char *args, const char *prefix, const char *const *frags);
/* Bad input for `attn CMD ARGS`: exit 2, nothing on stdout, exactly one line
 * on stderr starting "attn CMD: ", that names `file` (unless NULL) and
 * contains every string of `frags` (NULL-terminated; NULL for none). */
void expect_bad_frags(const char *cmdname, const char *args, const char *file,
                      const char *const *frags);
/* The same with the fragments as NULL-terminated arguments. */
void expect_bad(const char *cmdname, const char *args, const char *file, ...);
/* Usage error for `attn CMD ARGS`: exit 2, nothing on stdout, stderr starts
 * "attn CMD: " and holds "usage: attn CMD"; `mention` (unless NULL) in its
 * first line. */
void expect_usage(const char *cmdname, const char *args, const char *mention);
/* A usage error for any `attn ARGS`: exit 2, nothing on stdout, "usage: attn"
 * on stderr. */
void expect_usage_text(const char *args);

/* ---- scripts of runs ----------------------------------------------------------- */

/* One shell command of a table-driven CLI test, run with sh -c: tables write
 * $B (the attn binary), $T (the temporary directory) and whatever the test
 * exports with setenv, so that each row is a plain literal. */
typedef enum {
    STEP_PREP,   /* setup; its result is not checked */
    STEP_OK,     /* exit 0 */
    STEP_BAD,    /* exit 2, one line on stderr starting `prefix` and holding `needle` */
    STEP_USAGE,  /* exit 2, stderr starting `prefix`, `needle` in its first line, then
                    "usage:" */
    STEP_EXIT2,  /* exit 2 and `needle` on stderr */
    STEP_STDOUT  /* stdout is exactly `needle` */
} step_kind;

typedef struct cli_step {
    step_kind kind;
    const char *cmd;
    const char *prefix, *needle;
} cli_step;

/* Exports B and T, then runs the steps in order. */
void run_steps(const cli_step *steps, size_t n);

/* ---- safetensors files ---------------------------------------------------------- */

/* A safetensors file by hand: the 8-byte little-endian header length, the
 * JSON header padded with spaces to a multiple of 8, then the data. */
void write_st_bytes(const char *path, const char *header, const void *data, size_t dlen);
/* "[d0,d1,...]" of a tensor's shape. */
void shape_json(char *buf, size_t n, const attn_tensor *t);
/* A mask as a one-tensor file of 1-byte dtype (BOOL or U8): nonzero -> 1. */
void write_mask_bytes(const char *path, const char *dtype, const attn_tensor *t);
/* A one-tensor F32 file through the library's writer. */
void write_f32(const char *path, const char *name, const attn_tensor *t);
/* A new owned tensor of ndim of the sizes d0.. with deterministic values in [-1, 1). */
attn_tensor random_tensor(int ndim, size_t d0, size_t d1, size_t d2, size_t d3, uint32_t seed);
void read_tensor(const attn_safetensors *st, const char *name, attn_tensor *t);
attn_safetensors *open_st(const char *path);

#endif
