/* attn/train.h - training a GPT (nn floor): its configuration from JSON,
 * batches, and the training loop. The optimizer, the training configuration
 * and the schedule are in attn/optim.h, checkpoints in attn/checkpoint.h
 * (both included here).
 *
 * The loop reports progress through a callback and never prints.
 */
#ifndef ATTN_TRAIN_H
#define ATTN_TRAIN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include "attn/checkpoint.h"
#include "attn/gpt.h"
#include "attn/optim.h"
#include "attn/params.h"
#include "attn/rng.h"
#include "attn/status.h"
#include "attn/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- configuration ------------------------------------------------------------ */

/* Reads configuration keys from a JSON object text (a --config file or a
 * checkpoint's config.json "model"/"train" objects flattened). Known keys:
 * layers heads width context bias vocab_size | batch iters warmup
 * decay_iters accum eval_every eval_iters checkpoint_every lr min_lr beta1
 * beta2 eps weight_decay grad_clip val_fraction seed. Unknown keys, wrong
 * types and negative or fractional counts are errors naming `what` and the
 * key. Only keys present are written. */
attn_status attn_train_config_from_json(const char *text, const char *what, attn_gpt_config *m,
                                        attn_train_config *t);

/* The training configuration as a compact JSON object (malloc'd text), the
 * keys attn_train_config_from_json reads. */
attn_status attn_train_config_to_json(const attn_train_config *t, char **json);

/* ---- data ----------------------------------------------------------------------- */

/* B rows of T+1 consecutive tokens from tokens[0..n) at uniformly random
 * offsets (n > T): x = the first T, y = the next T. */
attn_status attn_sample_batch(uint32_t *x, uint32_t *y, const uint32_t *tokens, size_t n,
                              size_t batch, size_t seq, attn_rng *rng);

/* ---- the training loop ------------------------------------------------------------ */

typedef struct attn_train_event {
    size_t step, iters;         /* steps done, of iters */
    double train_loss;          /* mean over the step's micro-batches */
    double val_loss, eval_train_loss; /* when evaluated (NAN otherwise) */
    int evaluated, checkpointed;
    double lr, grad_norm;
    double ms_per_iter;         /* this step */
    double tokens_per_s;        /* this step */
    double elapsed_s;           /* since this run started */
} attn_train_event;

/* Return nonzero to stop (a checkpoint is written, as for *stop). */
typedef int (*attn_train_progress_fn)(const attn_train_event *e, void *user);

typedef struct attn_trainer attn_trainer;

/* A new run on `text` (named `what` in messages), encoded with tok (the
 * trainer takes it over, also on failure); m->vocab_size is set from it. The
 * first (1 - val_fraction) of the tokens trains, the rest validates; both
 * parts need more than context tokens. */
attn_status attn_trainer_create(attn_trainer **t, const attn_gpt_config *m,
                                const attn_train_config *c, attn_tokenizer *tok, const char *text,
                                size_t len, const char *what);
/* Continues the run saved in dir (model, optimizer, sampler state) on the
 * same text, encoded with the checkpoint's vocabulary; iters (when > 0)
 * replaces the stored total. */
attn_status attn_trainer_resume(attn_trainer **t, const char *dir, const char *text, size_t len,
                                const char *what, size_t iters);
attn_tokenizer *attn_trainer_tokenizer(attn_trainer *t); /* owned by the trainer */
const attn_checkpoint *attn_trainer_info(const attn_trainer *t);
attn_gpt *attn_trainer_model(attn_trainer *t);
void attn_trainer_free(attn_trainer *t); /* frees the tokenizer too */

/* Trains until iters (or stop_at > 0 steps, or *stop becomes nonzero, or the
 * callback asks), writing a checkpoint to out_dir every checkpoint_every
 * steps and when it ends. *stopped (may be NULL) says whether it ended early. */
attn_status attn_trainer_run(attn_trainer *t, const char *out_dir, size_t stop_at,
                             const volatile sig_atomic_t *stop, attn_train_progress_fn cb,
                             void *user, int *stopped);

/* Data-parallel training (attn/dist.h fills this; the trainer itself knows
 * no MPI). With it, rank r of K takes rows [r·B/K, (r+1)·B/K) of every batch
 * of B rows that one process would draw (B = --batch, the global batch, a
 * multiple of K), scales its gradients by 1/K, and `sum_grads` sums them over
 * the ranks before clipping and the optimizer step (identical on every
 * rank); losses, evaluation included, go through `sum`. Only rank 0 writes
 * checkpoints; a failure to write stops every rank. */
typedef struct attn_train_dist {
    int rank, ranks;
    attn_status (*sum_grads)(void *user, const attn_param_ref *p, size_t n);
    attn_status (*sum)(void *user, double *v, size_t n); /* in place, over the ranks */
    void *user;
    /* Optional (NULL: unused). grads_ready: these gradients are final (the
     * backward of the step's last micro-batch is past them): their sum may
     * start now, overlapping the rest of the backward; sum_grads then
     * completes it. release: the trainer is freed. */
    attn_status (*grads_ready)(void *user, const attn_param_ref *p, size_t n);
    void (*release)(void *user);
} attn_train_dist;
/* ATTN_E_INVALID when the batch is not a multiple of d->ranks. */
attn_status attn_trainer_set_dist(attn_trainer *t, const attn_train_dist *d);

/* Mean loss over eval_iters batches of the train or validation part, drawn
 * with an RNG seeded from (seed, step): the same at the same step. With
 * eval_iters 0, over the whole part instead: every non-overlapping window of
 * context tokens, in order (no sampling noise; the train part takes a while). */
attn_status attn_trainer_evaluate(attn_trainer *t, int val, double *loss);

#ifdef __cplusplus
}
#endif
#endif
