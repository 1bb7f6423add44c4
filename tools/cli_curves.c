/* cli_curves.c - curves.svg of a training run (cli_curves.h). */
#include "cli_curves.h"

#include <sys/stat.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/plot.h"
#include "cli.h"

int cli_curves_init(cli_curves *c, const char *dir, const char *title, int classify, int log_y)
{
    memset(c, 0, sizeof *c);
    size_t n = strlen(dir) + sizeof "/curves.svg";
    if (!(c->path = malloc(n)) || !(c->dir = strdup(dir))) {
        free(c->path), c->path = NULL;
        return -1;
    }
    snprintf(c->path, n, "%s/curves.svg", dir);
    c->title = title, c->classify = classify, c->log_y = log_y;
    return 0;
}

void cli_curves_free(cli_curves *c)
{
    free(c->dir), free(c->path), free(c->step), free(c->loss), free(c->lr);
    free(c->eval_step), free(c->val), free(c->acc), free(c->f1);
    memset(c, 0, sizeof *c);
}

/* Grows the k arrays to hold one more value; -1 when out of memory. */
static int grow(double **a, size_t k, size_t n, size_t *cap)
{
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 256;
    for (size_t i = 0; i < k; i++) {
        double *p = realloc(a[i], nc * sizeof *p);
        if (!p) return -1;
        a[i] = p;
    }
    *cap = nc;
    return 0;
}

static void draw(cli_curves *c)
{
    /* The first checkpoint creates the directory (a run that fails before
     * leaves nothing behind): until then there is nowhere to draw. */
    struct stat sb;
    if (stat(c->dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return;
    attn_plot_series loss[4] = {
        {"training loss (each step)", c->step, c->loss, c->n, 0, 0},
        {"validation loss", c->eval_step, c->val, c->n_eval, 0, 0},
        {"learning rate", c->step, c->lr, c->n, 1, 1}};
    attn_plot_series score[2] = {{"validation accuracy", c->eval_step, c->acc, c->n_eval, 0, 0},
                                 {"validation macro-F1", c->eval_step, c->f1, c->n_eval, 0, 1}};
    attn_plot plots[2] = {{c->title, "step", "cross-entropy loss", "learning rate", c->log_y, loss, 3},
                          {"validation accuracy and macro-F1", "step", "score (0 to 1)", NULL, 0, score, 2}};
    attn_status st = attn_plot_write(plots, c->classify ? 2 : 1, c->path, 0);
    if (st && !c->warned) {
        fprintf(stderr, "attn train: warning: %s (training goes on)\n", attn_last_error());
        c->warned = 1;
    }
}

void cli_curves_finish(cli_curves *c)
{
    if (c->path && c->n) draw(c);
}

void cli_curves_add(cli_curves *c, const attn_train_event *e, double acc, double f1)
{
    if (!c->path) return;
    double *a[3] = {c->step, c->loss, c->lr};
    if (grow(a, 3, c->n, &c->cap)) goto oom;
    c->step = a[0], c->loss = a[1], c->lr = a[2];
    c->step[c->n] = (double)e->step, c->loss[c->n] = e->train_loss, c->lr[c->n++] = e->lr;
    if (!e->evaluated) {
        if (e->checkpointed) draw(c);
        return;
    }
    double *b[4] = {c->eval_step, c->val, c->acc, c->f1};
    if (grow(b, 4, c->n_eval, &c->cap_eval)) goto oom;
    c->eval_step = b[0], c->val = b[1], c->acc = b[2], c->f1 = b[3];
    c->eval_step[c->n_eval] = (double)e->step, c->val[c->n_eval] = e->val_loss;
    c->acc[c->n_eval] = acc, c->f1[c->n_eval++] = f1;
    draw(c);
    return;
oom:
    if (!c->warned) fprintf(stderr, "attn train: warning: out of memory for curves.svg (training goes on)\n");
    c->warned = 1;
}
