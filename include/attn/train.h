/* attn/train.h - training a GPT: AdamW, gradient clipping, the learning-rate
 * schedule, batches, checkpoints, and the training loop.
 *
 * The loop reports progress through a callback and never prints. A
 * checkpoint directory DIR holds
 *   config.json        {"format": "attn-gpt", "version": 1, "step": N,
 *                       "run": "<16 hex digits>", "model": {...}, "train": {...}}
 *   model.safetensors  every parameter by name (attn/gpt.h), F32
 *   vocab.json         the tokenizer (attn/tokenizer.h)
 *   optim.safetensors  AdamW moments "m.<name>", "v.<name>"; metadata step,
 *                      the batch sampler's RNG state
 * as links into DIR/.steps/current/, the state of the last save: a save writes
 * a new state directory beside the last one and then atomically replaces the
 * `current` link, so a crash at any moment leaves the last complete checkpoint
 * or the new one, never a mix. Each file records the run and step it belongs
 * to, and loading checks they agree. Directories written before this layout
 * (the files directly in DIR) still load.
 */
#ifndef ATTN_TRAIN_H
#define ATTN_TRAIN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include "attn/gpt.h"
#include "attn/rng.h"
#include "attn/status.h"
#include "attn/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- AdamW (torch.optim.AdamW) and clipping -------------------------------- */

typedef struct attn_adamw_config {
    float beta1, beta2, eps, weight_decay; /* decay only where attn_param_ref.decay */
} attn_adamw_config;

typedef struct attn_adamw attn_adamw;
/* Moments for the n parameters (zero); the refs must outlive the optimizer. */
attn_status attn_adamw_create(attn_adamw **o, const attn_param_ref *params, size_t n,
                              const attn_adamw_config *c);
void attn_adamw_free(attn_adamw *o);
/* One step at learning rate lr, exactly as torch.optim.AdamW (decoupled
 * decay p *= 1 - lr·wd, bias-corrected moments). */
attn_status attn_adamw_step(attn_adamw *o, float lr);
size_t attn_adamw_steps(const attn_adamw *o);
void attn_adamw_set_steps(attn_adamw *o, size_t steps);
/* First and second moment of parameter i (numel floats each). */
void attn_adamw_moments(attn_adamw *o, size_t i, float **m, float **v);

/* Row-sparse parameters (opt-in, for embedding tables whose gradient is zero
 * outside the rows a batch used). Parameter i, of rank 2 (rows, cols), gets
 * the distinct rows, in ascending order, whose gradient may be nonzero
 * (n_rows of them; copied); from then on each step updates only those rows,
 * until the next call (rows NULL: dense again). Semantics are lazy Adam, as
 * torch.optim.SparseAdam: a touched row's moments and weights take the
 * AdamW update of its gradient with the bias correction of the global step
 * count; rows not touched keep moments and weights unchanged (where dense
 * AdamW would keep moving them with the decaying first moment). Weight
 * decay, when the parameter has it, applies to touched rows only. With every
 * row touched a step equals the dense step bit for bit. */
attn_status attn_adamw_set_rows(attn_adamw *o, size_t i, const uint32_t *rows, size_t n_rows);
/* attn_clip_grad_norm over the optimizer's parameters, reading only the
 * given rows of row-sparse ones; the same result when the other rows'
 * gradients are zero (the rows are summed in the same order). */
double attn_adamw_clip_grad_norm(attn_adamw *o, float max_norm);

/* Global L2 norm of all gradients (in double); when above max_norm (> 0)
 * scales them by max_norm / (norm + 1e-6), as torch's clip_grad_norm_. */
double attn_clip_grad_norm(const attn_param_ref *params, size_t n, float max_norm);

/* ---- configuration ------------------------------------------------------------ */

typedef struct attn_train_config {
    size_t batch, iters, warmup, decay_iters, accum, eval_every, eval_iters, checkpoint_every;
    float lr, min_lr, beta1, beta2, eps, weight_decay, grad_clip, val_fraction;
    uint64_t seed;
} attn_train_config;

/* nanoGPT's shakespeare_char choices where they apply: batch 12, 2000
 * iterations, warmup 100, lr 1e-3 → 1e-4 (cosine to decay_iters = iters),
 * AdamW betas (0.9, 0.99), eps 1e-8, weight decay 0.1, clip 1.0, accum 1,
 * evaluation every 250 steps over 20 batches, 10 % validation, seed 1337. */
attn_train_config attn_train_defaults(void);
attn_gpt_config attn_gpt_defaults(void); /* 4 layers, 4 heads, width 128, context 64, no bias */
attn_status attn_train_config_check(const attn_train_config *t);

/* Learning rate at step it (0-based): linear warm-up over `warmup` steps
 * (lr·(it+1)/(warmup+1)), cosine decay to min_lr at decay_iters (0 = iters),
 * then min_lr. */
double attn_lr_at(const attn_train_config *t, size_t it);

/* Reads configuration keys from a JSON object text (a --config file or a
 * checkpoint's config.json "model"/"train" objects flattened). Known keys:
 * layers heads width context bias vocab_size | batch iters warmup
 * decay_iters accum eval_every eval_iters checkpoint_every lr min_lr beta1
 * beta2 eps weight_decay grad_clip val_fraction seed. Unknown keys, wrong
 * types and negative or fractional counts are errors naming `what` and the
 * key. Only keys present are written. */
attn_status attn_train_config_from_json(const char *text, const char *what, attn_gpt_config *m,
                                        attn_train_config *t);

/* ---- data ----------------------------------------------------------------------- */

/* B rows of T+1 consecutive tokens from tokens[0..n) at uniformly random
 * offsets (n > T): x = the first T, y = the next T. */
attn_status attn_sample_batch(uint32_t *x, uint32_t *y, const uint32_t *tokens, size_t n,
                              size_t batch, size_t seq, attn_rng *rng);

/* ---- checkpoints --------------------------------------------------------------- */

typedef struct attn_checkpoint {
    attn_gpt_config model;
    attn_train_config train;
    size_t step;
    attn_rng rng;           /* the batch sampler's state */
    int has_optim;          /* optim.safetensors present */
    char run[17];           /* the run's name: 16 hex digits, a hash of its configuration
                               and text ("" in checkpoints from before it was recorded) */
} attn_checkpoint;

/* Reads dir/config.json and dir/vocab.json, creates the model for max_batch
 * rows (0: the checkpoint's batch) and loads dir/model.safetensors: every
 * tensor must be present with the configured shape, and no other. The
 * optimizer state is loaded when `opt` is given (it must have been created
 * for this model). */
attn_status attn_checkpoint_load(const char *dir, size_t max_batch, attn_checkpoint *info,
                                 attn_gpt **g, attn_tokenizer **tok);
/* ... and fills info->rng from it. */
attn_status attn_checkpoint_load_optim(const char *dir, attn_checkpoint *info, attn_gpt *g,
                                       attn_adamw *opt);
/* Loads parameters by name from a safetensors file; strict: no other tensor
 * may be present (checkpoints); not strict: others are ignored (fixtures). */
attn_status attn_gpt_load_safetensors(attn_gpt *g, const char *path, int strict);
/* Writes the four files (optimizer only when opt is given). */
attn_status attn_checkpoint_save(const char *dir, const attn_checkpoint *info, attn_gpt *g,
                                 const attn_tokenizer *tok, attn_adamw *opt);
/* One writer per checkpoint directory (of any model): an exclusive lock on
 * dir, held until the process ends (the kernel drops it then, kill -9
 * included). ATTN_E_INVALID when another process holds it; ATTN_OK when this
 * one does or dir holds no checkpoint yet (its first save locks it). Saves
 * and attn_trainer_run take it too; a caller may take it earlier, before
 * any work. */
attn_status attn_checkpoint_lock(const char *dir);

/* ---- checkpoint files shared by every model ---------------------------------------
 * `format` names the model ("attn-gpt", "attn-encoder") and goes into each
 * file's metadata with the step; readers check both, so files of another
 * model or another step are never mixed. (Checkpoints record and check the
 * run too; these calls neither write nor check it.) */

/* Parameters by name (F32), metadata format and step. */
attn_status attn_params_write(const char *path, const char *format, size_t step,
                              const attn_param_ref *p, size_t n);
/* Loads every parameter (shapes checked); strict: no other tensor may be there. */
attn_status attn_params_read(const char *path, const char *format, size_t step,
                             const attn_param_ref *p, size_t n, int strict);
/* AdamW moments "m.<name>", "v.<name>", its step count and an RNG state. */
attn_status attn_optim_write(const char *path, const char *format, size_t step,
                             const attn_param_ref *p, size_t n, attn_adamw *opt,
                             const attn_rng *rng);
attn_status attn_optim_read(const char *path, const char *format, size_t step,
                            const attn_param_ref *p, size_t n, attn_adamw *opt, attn_rng *rng);
/* The training configuration as a compact JSON object (malloc'd text), the
 * keys attn_train_config_from_json reads. */
attn_status attn_train_config_to_json(const attn_train_config *t, char **json);

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
