/* cmd_explain.h - `attn explain` on a model (cmd_explain_model.c). */
#ifndef ATTN_CMD_EXPLAIN_H
#define ATTN_CMD_EXPLAIN_H

#include "attn/explain_model.h"
#include "cli.h"

typedef struct explain_model_args {
    const char *dir, *text, *compare; /* --model, --text, --compare-text (or NULL) */
    long layer, head;                 /* -1: all */
    const char *html, *svg, *csv, *xlsx;
} explain_model_args;

/* Runs the model on the text(s) and renders; returns the exit status. */
int explain_model(const explain_model_args *a, const cli_attention_opts *o);

#endif
