/* attn/checkpoint.h - the checkpoint directories of both models (nn floor):
 * what they hold, saving, loading and the one-writer lock; and the parameter
 * and optimizer files they share.
 *
 * A GPT checkpoint directory DIR (attn/train.h) holds
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
 *
 * A classifier's (attn/classify.h) holds
 *   config.json        {"format": "attn-encoder", "version": 1, "step": N, "run": ...,
 *                       "model": {...}, "train": {...}, "classify": {...},
 *                       "labels": [...], "best": {"step", "accuracy", "f1", "bad_evals"}}
 *   model.safetensors  the latest weights
 *   best.safetensors   the weights of the best validation accuracy
 *   vocab.json         the word tokenizer
 *   optim.safetensors  AdamW moments
 * in the same committed-state layout.
 */
#ifndef ATTN_CHECKPOINT_H
#define ATTN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>
#include "attn/encoder.h"
#include "attn/gpt.h"
#include "attn/optim.h"
#include "attn/params.h"
#include "attn/rng.h"
#include "attn/status.h"
#include "attn/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- a GPT's checkpoint ----------------------------------------------------------- */

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
/* ---- a classifier's checkpoint ------------------------------------------------------ */

/* The classifier's own options ("classify" in config.json). */
typedef struct attn_cls_opts {
    size_t epochs;    /* sets iters = epochs · steps per epoch when > 0 */
    size_t patience;  /* stop after this many evaluations without a better
                         validation accuracy (0: never) */
    size_t min_count; /* vocabulary: words seen at least this often in train */
    float dropout;    /* training dropout (attn_encoder_set_dropout), [0, 1) */
    float label_smoothing; /* of the training loss, [0, 1) (validation: none) */
} attn_cls_opts;

/* What a classifier run's directory holds (and its trainer knows). */
typedef struct attn_cls_info {
    attn_encoder_config model;
    attn_train_config train;
    attn_cls_opts opts;
    size_t step, steps_per_epoch;
    size_t best_step;        /* 0: none yet */
    double best_accuracy, best_f1;
    size_t bad_evals;        /* evaluations since the best */
    size_t n_train, n_valid, n_test;
    double mean_words;       /* words per training text */
    char **labels;
    size_t n_labels;
    char run[17];            /* the run's name (as attn_checkpoint's) */
} attn_cls_info;

/* Loads dir (config.json, vocab.json and best.safetensors, or model.safetensors
 * when there is no best) for batches of max_batch. */
attn_status attn_cls_model_load(const char *dir, size_t max_batch, attn_cls_info *info,
                                attn_encoder **e, attn_tokenizer **tok);
void attn_cls_info_free(attn_cls_info *info);
#ifdef __cplusplus
}
#endif
#endif
