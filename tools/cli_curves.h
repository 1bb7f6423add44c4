/* cli_curves.h - a trainer's curves.svg: the history of this run's losses,
 * learning rate and (classifier) validation accuracy and macro-F1, drawn
 * into the checkpoint directory at each evaluation. */
#ifndef ATTN_CLI_CURVES_H
#define ATTN_CLI_CURVES_H

#include <stddef.h>

#include "attn/train.h"

typedef struct cli_curves {
    char *dir;    /* DIR, the checkpoint directory */
    char *path;   /* DIR/curves.svg */
    const char *title;
    int classify; /* draw accuracy and macro-F1 too */
    int log_y;    /* the loss axis in log scale (--log-curves) */
    size_t n, cap, n_eval, cap_eval;
    double *step, *loss, *lr;                /* every step */
    double *eval_step, *val, *acc, *f1;      /* every evaluation */
    int warned;
} cli_curves;

/* 0, or -1 (out of memory). */
int cli_curves_init(cli_curves *c, const char *dir, const char *title, int classify, int log_y);
/* Records a step (acc, f1: NAN unless evaluated) and, at an evaluation,
 * rewrites the picture (a failure is reported once on stderr and training
 * goes on: the picture is a view, not the result). */
void cli_curves_add(cli_curves *c, const attn_train_event *e, double acc, double f1);
/* Draws once more after the run (its last checkpoint may have created the
 * directory after the last evaluation). */
void cli_curves_finish(cli_curves *c);
void cli_curves_free(cli_curves *c);

#endif
