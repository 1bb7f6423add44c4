/* cls_internal.h - the classifier trainer's layout, shared by cls_train.c
 * and cls_checkpoint.c. cls_train.c calls cls_checkpoint.c, never the other
 * way (scripts/check_floors.sh): the checkpoint reads and writes a trainer's
 * fields, the trainer (create, resume, run) drives it. */
#ifndef ATTN_CLS_INTERNAL_H
#define ATTN_CLS_INTERNAL_H

#include "attn/classify.h"

#define CLS_FORMAT "attn-encoder"

/* A training step's batch is computed in this many parts (cls_train.c's
 * step_parts): two measured fastest on two threads (docs/classify.md). */
#define CLS_PARTS 2

struct attn_cls_trainer {
    attn_cls_info info;
    attn_encoder *e;
    /* a step's parts after the first (cls_train.c's step_parts), made on first use */
    attn_encoder *part[CLS_PARTS - 1];
    attn_tokenizer *tok;
    attn_adamw *opt;
    attn_cls_split split[3];
    attn_cls_tokens data[3];
    uint32_t *x, *y, *pred;
    size_t *lens, *order, *batch_start;
    uint64_t *keys;
    size_t epoch_ready; /* the epoch whose batches are planned in order/batch_start */
    char *best_from;    /* the checkpoint directory holding best.safetensors */
    /* data parallel (attn_cls_trainer_set_dist, cls_dist.c) when has_dist */
    attn_train_dist dist;
    int has_dist;
    uint8_t *dist_mark;       /* (V) */
    uint32_t *dist_rows;      /* the last step's wte rows, of the whole batch */
    size_t dist_n_rows;
    float *dist_buf;          /* their gradients packed for the sum */
    double *dist_sum;         /* evaluation: loss and predictions summed */
    attn_param_ref *dist_refs; /* the parameters, wte's as the packed rows */
};

attn_status cls_prepare(attn_cls_trainer *t, const char *data_dir, int build);
attn_status cls_make_optimizer(attn_cls_trainer *t);
/* Writes config.json, vocab.json, model.safetensors, optim.safetensors and,
 * with best, best.safetensors (all or nothing; without best the best weights
 * of the last save are carried over). */
attn_status cls_checkpoint_save(attn_cls_trainer *t, const char *dir, int best);
/* For a resume: reads dir's committed state into t (config, vocabulary, an
 * encoder with the latest weights, best_from = dir) and gives that state's
 * optim.safetensors path (the caller frees it; the file may be missing). */
attn_status cls_checkpoint_read(attn_cls_trainer *t, const char *dir, char **optim_path);
/* AdamW moments into t->opt (made by cls_make_optimizer), at t->info.step. */
attn_status cls_checkpoint_read_optim(attn_cls_trainer *t, const char *optim_path);
/* dir's best weights (best.safetensors at info.best_step) into t->e. */
attn_status cls_checkpoint_read_best(attn_cls_trainer *t, const char *dir);
/* Names a new run (info.run) from its configuration and its three splits. */
attn_status cls_checkpoint_name_run(attn_cls_trainer *t);

/* Data parallel (cls_dist.c); without attn_cls_trainer_set_dist each is
 * the single process's way: all rows, no sums, the encoder's own rows. */
void cls_dist_free(attn_cls_trainer *t);
/* This rank's examples [lo, hi) of a batch of nb. */
void cls_dist_rows(const attn_cls_trainer *t, size_t nb, size_t *lo, size_t *hi);
attn_status cls_dist_sum(attn_cls_trainer *t, double *v, size_t n);
/* *halt: this rank wants to stop; on return, whether any rank does. */
attn_status cls_dist_halt(attn_cls_trainer *t, int *halt);
/* Zeroes the wte gradient rows of the last step (after attn_encoder_zero_grad). */
void cls_dist_zero_rows(attn_cls_trainer *t);
/* After the backward on this rank's slice of the batch in x (nb, T): the
 * gradients and *loss summed over the ranks; *rows the wte rows to update. */
attn_status cls_dist_reduce(attn_cls_trainer *t, size_t nb, size_t T, double *loss,
                            const uint32_t **rows, size_t *n_rows);
/* Evaluation: each rank's predictions (t->pred, 0 where not its) and *loss summed. */
attn_status cls_dist_predictions(attn_cls_trainer *t, size_t n, double *loss);
/* Every rank learns whether rank 0's `st` failed ("rank 0 could not <what>"). */
attn_status cls_dist_agree(attn_cls_trainer *t, attn_status st, const char *what);
/* cls_checkpoint_save on rank 0 alone; every rank learns the outcome. */
attn_status cls_dist_save(attn_cls_trainer *t, const char *dir, int best);
/* Rank 0's weights on every rank. */
attn_status cls_dist_from_rank0(attn_cls_trainer *t);

#endif
