/* cls_internal.h - the classifier trainer's layout, shared by cls_train.c
 * and cls_checkpoint.c. cls_train.c calls cls_checkpoint.c, never the other
 * way (scripts/check_floors.sh): the checkpoint reads and writes a trainer's
 * fields, the trainer (create, resume, run) drives it. */
#ifndef ATTN_CLS_INTERNAL_H
#define ATTN_CLS_INTERNAL_H

#include "attn/classify.h"

#define CLS_FORMAT "attn-encoder"

struct attn_cls_trainer {
    attn_cls_info info;
    attn_encoder *e;
    attn_tokenizer *tok;
    attn_adamw *opt;
    attn_cls_split split[3];
    attn_cls_tokens data[3];
    uint32_t *x, *y, *pred;
    size_t *lens, *order, *batch_start;
    uint64_t *keys;
    size_t epoch_ready; /* the epoch whose batches are planned in order/batch_start */
    char *best_from;    /* the checkpoint directory holding best.safetensors */
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
/* Names a new run (info.run) from its configuration and its three splits. */
attn_status cls_checkpoint_name_run(attn_cls_trainer *t);

#endif
