/* attn/optim.h - optimizing a model's parameters (nn floor): AdamW
 * (torch.optim.AdamW, with a row-sparse mode for embedding tables), gradient
 * clipping, and the training configuration with its learning-rate schedule,
 * shared by every trainer (attn/train.h, attn/classify.h).
 */
#ifndef ATTN_OPTIM_H
#define ATTN_OPTIM_H

#include <stddef.h>
#include <stdint.h>
#include "attn/params.h"
#include "attn/status.h"

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

/* ---- the training configuration and the schedule ------------------------------ */

typedef struct attn_train_config {
    size_t batch, iters, warmup, decay_iters, accum, eval_every, eval_iters, checkpoint_every;
    float lr, min_lr, beta1, beta2, eps, weight_decay, grad_clip, val_fraction;
    uint64_t seed;
    int precision; /* the GEMMs' while training: 0 fp32, 1 bf16 (attn_precision, attn/ops.h) */
} attn_train_config;

/* nanoGPT's shakespeare_char choices where they apply: batch 12, 2000
 * iterations, warmup 100, lr 1e-3 → 1e-4 (cosine to decay_iters = iters),
 * AdamW betas (0.9, 0.99), eps 1e-8, weight decay 0.1, clip 1.0, accum 1,
 * evaluation every 250 steps over 20 batches, 10 % validation, seed 1337. */
attn_train_config attn_train_defaults(void);
attn_status attn_train_config_check(const attn_train_config *t);

/* Learning rate at step it (0-based): linear warm-up over `warmup` steps
 * (lr·(it+1)/(warmup+1)), cosine decay to min_lr at decay_iters (0 = iters),
 * then min_lr. */
double attn_lr_at(const attn_train_config *t, size_t it);

#ifdef __cplusplus
}
#endif
#endif
