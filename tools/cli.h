/* cli.h - what the subcommands share: option parsing helpers and exits. */
#ifndef ATTN_CLI_H
#define ATTN_CLI_H

#include <signal.h>
#include <stdio.h>

#include "attn/attn.h"
#include "attn/export.h"
#include "attn/train.h"

/* Exit statuses: bad input or usage 2, internal failure (memory, output) 1. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_BAD_INPUT = 2 };

typedef int (*cli_command_fn)(int argc, char **argv);

/* Prints "attn <cmd>: <message>" on stderr. */
void cli_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Prints the library's last error for `st` and returns the exit status it
 * maps to: bad input (format, invalid, io, not found) 2, otherwise 1. */
int cli_fail(const char *cmd, attn_status st);

/* Prints "attn <cmd>: <message>" and one line, the first line of `usage`
 * and where the full help is, on stderr; returns 2. */
int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* A trainer's --out DIR: refuses (exit 2, the message naming --resume and
 * --force) a directory that already holds a checkpoint, unless force or it
 * is the run being resumed, and one another run is writing
 * (attn_checkpoint_lock, taken here by rank 0). Returns CLI_OK when training
 * may write there. */
int cli_check_out_dir(const char *cmd, const char *out, const char *resume, int force);

/* Reports getopt_long's '?' or ':' result for argv as a usage error. */
int cli_bad_option(const char *cmd, const char *usage, int opt, char **argv);

/* Strict number parsing: the whole string, finite. 0 on success. */
int cli_parse_float(const char *s, float *out);
int cli_parse_int(const char *s, int lo, int hi, int *out);
int cli_parse_double(const char *s, double lo, double hi, double *out);

/* Colour choice: "auto" (stdout is a TTY, NO_COLOR unset, TERM not dumb),
 * "always", "never". Returns -1 for anything else. */
int cli_color_mode(const char *arg);

/* Flushes stdout; 1 (and a message) if writing failed. */
int cli_finish_stdout(const char *cmd);

/* The attention options shared by demo and explain. */
typedef struct cli_attention_opts {
    attn_sdpa_params sdpa;
    attn_text_opts text;
    int json;
    int color_set;
} cli_attention_opts;

void cli_attention_defaults(cli_attention_opts *o);

/* Handles one shared option (long-option value `opt` with argument `arg`).
 * Returns 1 if handled, 0 if not a shared option, -1 on a bad value (already
 * reported as a usage error). */
int cli_attention_option(const char *cmd, const char *usage, int opt, const char *arg,
                         cli_attention_opts *o);

/* getopt_long entries and usage text for the shared options. */
#define CLI_OPT_NO_SCALE 1000
#define CLI_OPT_SCALE 1001
#define CLI_OPT_TEMPERATURE 1002
#define CLI_OPT_CAUSAL 1003
#define CLI_OPT_JSON 1004
#define CLI_OPT_COLOR 1005
#define CLI_OPT_PRECISION 1006
#define CLI_ATTENTION_LONG_OPTIONS                                                          \
    {"no-scale", no_argument, 0, CLI_OPT_NO_SCALE},                                         \
        {"scale", required_argument, 0, CLI_OPT_SCALE},                                     \
        {"temperature", required_argument, 0, CLI_OPT_TEMPERATURE},                         \
        {"causal", no_argument, 0, CLI_OPT_CAUSAL}, {"json", no_argument, 0, CLI_OPT_JSON}, \
        {"color", required_argument, 0, CLI_OPT_COLOR},                                     \
        {"colour", required_argument, 0, CLI_OPT_COLOR},                                    \
        {"precision", required_argument, 0, CLI_OPT_PRECISION}, {"help", no_argument, 0, 'h'}
#define CLI_ATTENTION_USAGE                                                                  \
    "  --no-scale           use the raw scores (no division by sqrt(d))\n"                   \
    "  --scale X            multiply the scores by X instead of 1/sqrt(d)\n"                 \
    "  --temperature T      divide the scaled scores by T > 0 (default 1)\n"                 \
    "  --causal             each token attends only to itself and earlier tokens\n"          \
    "  --json               print one JSON document instead of tables\n"                     \
    "  --color WHEN         shade the tables: auto (default), always, never;\n"              \
    "                       auto means on a terminal and NO_COLOR unset\n"                   \
    "  --precision N        digits after the decimal point, 0..9 (default 3)\n"              \
    "  -h, --help           show this help\n"

/* File outputs shared by demo and explain: --html, --svg, --csv, --xlsx. */
typedef struct cli_export_opts {
    const char *html, *svg, *csv, *xlsx;
} cli_export_opts;

#define CLI_OPT_HTML 1100
#define CLI_OPT_SVG 1101
#define CLI_OPT_CSV 1102
#define CLI_OPT_XLSX 1103
#define CLI_EXPORT_LONG_OPTIONS                                                      \
    {"html", required_argument, 0, CLI_OPT_HTML}, {"svg", required_argument, 0, CLI_OPT_SVG}, \
        {"csv", required_argument, 0, CLI_OPT_CSV}, {"xlsx", required_argument, 0, CLI_OPT_XLSX}
#define CLI_EXPORT_USAGE                                                                  \
    "  --html FILE          an interactive page (one offline file): heatmaps of every\n"  \
    "                       step, hover for how each number is made\n"                    \
    "  --svg DIR            one labelled vector heatmap per matrix\n"                     \
    "  --csv DIR            one CSV per matrix, with token labels\n"                      \
    "  --xlsx FILE          a workbook whose cells are live formulas (edit an\n"          \
    "                       embedding and everything downstream recomputes)\n"            \
    "  With --html, --svg, --csv or --xlsx, stdout lists the files written.\n"

/* Handles one export option: 1 if it was one, 0 if not. */
int cli_export_option(int opt, const char *arg, cli_export_opts *e);
/* Any output asked for? */
int cli_export_any(const cli_export_opts *e);
/* Checks every output path before any work (ATTN_E_IO naming the path). */
attn_status cli_export_check(const cli_export_opts *e);
/* Refuses a file output that is one of the inputs (attn_check_not_input). */
attn_status cli_export_check_inputs(const cli_export_opts *e, const char *const *inputs, size_t n);
/* Writes every output asked for, listing them on stdout. */
attn_status cli_export_run(const cli_export_opts *e, const attn_doc *doc);

/* A one-line description of the scaling in effect, e.g. "scale 1/√4 = 0.5". */
void cli_describe_scale(char *buf, size_t n, const attn_sdpa_params *p, size_t d);

/* Stopping a training run: SIGINT (Ctrl-C), SIGTERM (kill, timeout,
 * systemd, Slurm) and, when stdin is not a terminal and it is not ignored,
 * SIGHUP only set cli_interrupted (to the signal's number), which the
 * trainer polls between steps to write a checkpoint and stop; a second one
 * ends the process at once (the last checkpoint is complete: saves are
 * atomic). */
extern volatile sig_atomic_t cli_interrupted;
typedef struct cli_signals {
    struct sigaction old[3];
    int hup;
} cli_signals;
void cli_catch_stop_signals(cli_signals *saved);
void cli_restore_stop_signals(const cli_signals *saved);

/* For commands whose output is a stream (generate, classify): a reader that
 * goes away (`attn generate | head`) ends the process quietly by SIGPIPE
 * (status 141 in the shell), as other filters, even when the parent left
 * SIGPIPE ignored. */
void cli_default_sigpipe(void);

/* "1m05s" or "2h03m": a remaining time for progress lines. */
void cli_format_eta(char *buf, size_t n, double seconds);

/* Where a trainer's progress goes: an optional JSON log, and stdout (one
 * live line on a terminal, a plain line every log_every steps otherwise).
 * With a unit (e.g. "texts"), the line shows that many items per step
 * (per_step) as a rate averaged over the last CLI_RATE_WINDOW steps instead of
 * the step's own tokens/s: steps of length-bucketed batches differ several
 * fold in time, and a rate that jumps with them cannot be read. */
#define CLI_RATE_WINDOW 50
typedef struct cli_progress {
    FILE *json;
    int tty;
    size_t log_every, first_step;
    const char *unit;
    double per_step;
    struct cli_curves *curves; /* curves.svg in the checkpoint directory (may be NULL) */
    double win_ms[CLI_RATE_WINDOW];
    size_t win_n, win_at;
} cli_progress;

/* The human-readable progress line; eval_text (may be "") is shown after
 * the loss, e.g. "  val 1.9114". */
void cli_progress_line(cli_progress *p, const attn_train_event *e, const char *eval_text);

int cmd_demo(int argc, char **argv);
int cmd_mha(int argc, char **argv);
int cmd_explain(int argc, char **argv);

/* The most bytes of a text file the CLI reads (the data, a --config); read
 * with attn_read_file(..., ATTN_READ_TEXT, ...): a NUL byte (U+0000 would
 * make a vocabulary no reader can load; /dev/zero) is refused with its
 * position. */
#define CLI_TEXT_LIMIT (((size_t)1 << 31) - 2)

#endif
