/* cli_hparams.h - a trainer's flags, --help and --config from its
 * hyperparameter table (attn/train_config.h). */
#ifndef ATTN_CLI_HPARAMS_H
#define ATTN_CLI_HPARAMS_H

#include <getopt.h>
#include <stdio.h>

#include "attn/train_config.h"

/* getopt_long values: CLI_HP_OPT + i for entry i, CLI_HP_NO + i for --no-<bool>. */
#define CLI_HP_OPT 5000
#define CLI_HP_NO 5512
#define CLI_HP_MAX 256

/* Appends the table's options to longopts (n used of cap, the terminator
 * not counted); flag names live in names (CLI_HP_MAX * 2 * 40 bytes). */
size_t cli_hp_longopts(const attn_hparams *h, struct option *longopts, size_t n, size_t cap,
                       char (*names)[40]);

/* The --help lines of the table: one heading per section, in table order. */
void cli_hp_help(FILE *f, const attn_hparams *h);

/* A flag collected while parsing (applied after --config). */
typedef struct cli_hp_flag {
    int opt;
    const char *arg;
} cli_hp_flag;

/* The entry of a getopt value, or NULL when it is not a table option. */
const attn_hparam *cli_hp_entry(const attn_hparams *h, int opt);

/* After parsing: when resuming (resume not NULL) refuses --config and every
 * flag not ATTN_HP_RESUMABLE; otherwise reads the --config file (config, may
 * be NULL), then applies the flags in order over it (bad values are usage
 * errors). *iters_given says whether --iters was among them. Returns 0 or
 * the exit status. */
int cli_hp_settle(const char *cmd, const char *usage, const attn_hparams *h, void *const *parts,
                  const cli_hp_flag *flags, size_t n, const char *resume, const char *config,
                  int *iters_given);

#endif
