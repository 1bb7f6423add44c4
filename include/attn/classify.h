/* attn/classify.h - text classification: labelled data, metrics, baselines
 * (majority class, bag-of-words logistic regression) and a bidirectional
 * Transformer encoder with its trainer.
 *
 * The encoder (PyTorch-style parameter names):
 *   x_0   = drop(wte[ids] + wpe[positions])                    (B, T, C)
 *   x_l+½ = x_l + drop(MHA(LN_1(x_l), key_padding_mask))       each block l
 *   x_l+1 = x_l+½ + drop(c_proj(GELU_tanh(c_fc(LN_2(x_l+½)))))
 * (drop: dropout when training, attn_encoder_set_dropout; else the identity)
 *   h     = LN_f(x_L);  pooled = h[:, 0] ([CLS]) or the mean of h over the
 *           tokens that are not padding;  logits = head(pooled)  (B, K)
 * Token 0 of every example is [CLS]; padding ([PAD]) is masked as keys, so
 * padding never changes another token's output. Parameters: wte.weight (V, C),
 * wpe.weight (T, C), h.<l>.ln_1.weight [.bias], h.<l>.attn.in_proj_weight
 * (3C, C) [in_proj_bias], h.<l>.attn.out_proj.weight [.bias],
 * h.<l>.ln_2.weight [.bias], h.<l>.mlp.c_fc.weight (4C, C) [.bias],
 * h.<l>.mlp.c_proj.weight (C, 4C) [.bias], ln_f.weight [.bias],
 * head.weight (K, C), head.bias (K).
 */
#ifndef ATTN_CLASSIFY_H
#define ATTN_CLASSIFY_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include "attn/cls_data.h"
#include "attn/gpt.h"
#include "attn/mha.h"
#include "attn/status.h"
#include "attn/tokenizer.h"
#include "attn/trace.h"
#include "attn/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Token ids per example: [CLS] then the words (truncated to `context`). */
typedef struct attn_cls_tokens {
    size_t n;
    uint32_t *ids;   /* all examples' ids, one after another */
    size_t *offset;  /* n + 1 */
    uint32_t *label; /* n (a copy) */
    size_t words;    /* words before truncation, summed */
} attn_cls_tokens;

attn_status attn_cls_tokenize(attn_cls_tokens *t, const attn_cls_split *s,
                              const attn_tokenizer *tok, size_t context);
void attn_cls_tokens_free(attn_cls_tokens *t);

/* ---- metrics -------------------------------------------------------------------- */

typedef struct attn_cls_metrics {
    double accuracy;
    double macro_f1; /* mean over classes present in gold or predictions */
    double loss;     /* mean cross-entropy where known, NAN otherwise */
    size_t n;
} attn_cls_metrics;

/* confusion (k, k) may be NULL: confusion[gold * k + pred] counts. */
void attn_cls_score(attn_cls_metrics *m, const uint32_t *pred, const uint32_t *gold, size_t n,
                    size_t k, size_t *confusion);
/* F1 of each class from a confusion matrix (k, k) as attn_cls_score fills it:
 * f1[c] = 2·tp / (2·tp + fp + fn), 0 for a class absent from gold and
 * predictions (macro-F1 is the mean over the classes present). f1: (k) */
void attn_cls_f1_per_class(double *f1, const size_t *confusion, size_t k);

/* ---- baselines ------------------------------------------------------------------- */

/* The most frequent label of train (the lowest index on ties). */
uint32_t attn_majority_class(const uint32_t *labels, size_t n, size_t k);

typedef struct attn_bow_opts {
    size_t epochs;   /* passes over train; the best on validation is kept (10) */
    float lr;        /* AdaGrad learning rate (0.2) */
    float l2;        /* L2 penalty per example (1e-6) */
    uint64_t seed;
} attn_bow_opts;
attn_bow_opts attn_bow_defaults(void);

/* Multinomial logistic regression on binary bag-of-words features (the
 * tokenizer's ids; [PAD] and [CLS] ignored), trained by AdaGrad SGD. */
typedef struct attn_bow {
    size_t vocab, classes;
    float *w; /* (vocab, classes) */
    float *b; /* (classes) */
} attn_bow;

attn_status attn_bow_train(attn_bow *m, const attn_cls_tokens *train, const attn_cls_tokens *valid,
                           size_t vocab, size_t classes, const attn_bow_opts *o);
void attn_bow_free(attn_bow *m);
/* Class scores (logits) of one example: out (classes). */
void attn_bow_logits(const attn_bow *m, const uint32_t *ids, size_t n, float *out);
/* Predictions for every example of t: pred (t->n). */
void attn_bow_predict(const attn_bow *m, const attn_cls_tokens *t, uint32_t *pred);

/* ---- the encoder --------------------------------------------------------------- */

typedef enum attn_pooling { ATTN_POOL_MEAN = 0, ATTN_POOL_CLS = 1 } attn_pooling;

typedef struct attn_encoder_config {
    size_t vocab_size, context, layers, heads, width, classes;
    int bias;
    attn_pooling pooling;
} attn_encoder_config;

attn_status attn_encoder_config_check(const attn_encoder_config *c);

typedef struct attn_encoder attn_encoder;

attn_status attn_encoder_create(attn_encoder **e, const attn_encoder_config *c, size_t max_batch);
void attn_encoder_free(attn_encoder *e);
const attn_encoder_config *attn_encoder_get_config(const attn_encoder *e);
/* Weights N(0, 0.02) (residual projections N(0, 0.02/√(2·layers))), biases 0,
 * layer norms 1, the head N(0, 0.02); deterministic for a seed. */
attn_status attn_encoder_init(attn_encoder *e, uint64_t seed);
size_t attn_encoder_param_count(const attn_encoder *e);
const attn_param_ref *attn_encoder_params(const attn_encoder *e);
size_t attn_encoder_num_params(const attn_encoder *e);
/* Zeroes every gradient; wte.weight's only in the rows touched since the
 * last call (the whole table on the first call), the rest being zero. */
void attn_encoder_zero_grad(attn_encoder *e);
/* The rows of wte.weight whose gradient may be nonzero (the token ids of the
 * backwards since attn_encoder_zero_grad), distinct and ascending: *n of
 * them, valid until the next backward or zero_grad. For a row-sparse
 * optimizer (attn_adamw_set_rows); wte.weight is parameter 0 and has no
 * weight decay. */
const uint32_t *attn_encoder_grad_rows(attn_encoder *e, size_t *n);

/* Forward over ids (B, T): row b holds lens[b] tokens (1..T; the first is
 * [CLS]) then padding. With labels (B) also the mean cross-entropy into
 * *loss and what the backward needs. ctx (may be NULL): with a trace, the
 * run records what attn_gpt_forward does (under ctx->prefix: "embed",
 * "layer<l>.head<h>.attention" (T, T) and the rest of each block,
 * "ln_f.output"), then "pooled" (B, C), "logits" (B, K) and
 * "pooled_attention" (layers·heads, lens[0]): per layer and head what the
 * pooled vector attended to (the [CLS] row, or the mean of the token rows);
 * "batch<b>." in front of the per-example names when B > 1. The caller
 * labels the "token" axis. */
attn_status attn_encoder_forward(attn_encoder *e, const uint32_t *ids, const size_t *lens,
                                 const uint32_t *labels, size_t batch, size_t seq, double *loss,
                                 const attn_op_ctx *ctx);
const float *attn_encoder_logits(const attn_encoder *e); /* (B, K) of the last forward */
/* Dropout of the following forwards and their backwards (training): p in
 * [0, 1) on x_0 and on each block's attention and MLP outputs before the
 * residual adds (inverted: kept values scaled by 1/(1-p)), with masks a
 * function of key (attn_dropout_key of the seed and step), the site and the
 * element only. p = 0, the state after create: none (evaluation). */
attn_status attn_encoder_set_dropout(attn_encoder *e, float p, uint64_t key);
/* The following forwards' example 0 is example row0 of a whole batch of the
 * same padded length (data parallel: a rank's slice); the masks are those of
 * the whole batch's elements, so every slicing drops the same. 0 after create. */
attn_status attn_encoder_set_dropout_row(attn_encoder *e, size_t row0);
/* The loss of the following forwards with labels: (1−ε)·cross-entropy + ε·
 * the mean over classes of −log p (torch's label_smoothing), ε in [0, 1);
 * 0, the state after create: the cross-entropy. */
attn_status attn_encoder_set_label_smoothing(attn_encoder *e, float eps);
/* The input of block l's attention (LN_1 output) of the last forward: (B, T, C). */
const float *attn_encoder_attn_input(const attn_encoder *e, size_t layer);
attn_mha *attn_encoder_mha(attn_encoder *e, size_t layer);
/* Layer `layer`'s attention in a traced forward of one example (`run`, its
 * "token" axis labelled) as a multi-head walkthrough trace for the exporters
 * (attn_mha_self_attention's names: the layer's weights, its input as
 * "embeddings", each head's entries, "concat", "output"), copied into `out`;
 * nothing is recomputed. */
attn_status attn_encoder_layer_trace(attn_encoder *e, const attn_trace *run, size_t layer,
                                     attn_trace *out);
/* Backward of loss_scale · loss of the last forward with labels. */
attn_status attn_encoder_backward(attn_encoder *e, float loss_scale);

/* ---- training ----------------------------------------------------------------------- */

typedef struct attn_cls_opts {
    size_t epochs;    /* sets iters = epochs · steps per epoch when > 0 */
    size_t patience;  /* stop after this many evaluations without a better
                         validation accuracy (0: never) */
    size_t min_count; /* vocabulary: words seen at least this often in train */
    float dropout;    /* training dropout (attn_encoder_set_dropout), [0, 1) */
    float label_smoothing; /* of the training loss, [0, 1) (validation: none) */
} attn_cls_opts;

typedef struct attn_cls_event {
    attn_train_event base;      /* val_loss: validation cross-entropy */
    double val_accuracy, val_f1; /* when base.evaluated */
    int improved;               /* a new best (its weights were saved) */
    size_t epoch;               /* epochs begun, from 1 */
} attn_cls_event;

typedef int (*attn_cls_progress_fn)(const attn_cls_event *e, void *user);

typedef struct attn_cls_trainer attn_cls_trainer;

/* A new run on data_dir/{train,valid,test}.tsv: labels and vocabulary from
 * train; m->vocab_size and m->classes are set from them. */
attn_status attn_cls_trainer_create(attn_cls_trainer **t, const attn_encoder_config *m,
                                    const attn_train_config *c, const attn_cls_opts *o,
                                    const char *data_dir);
/* Continues the run saved in dir on the same data; iters > 0 replaces the total. */
attn_status attn_cls_trainer_resume(attn_cls_trainer **t, const char *dir, const char *data_dir,
                                    size_t iters);
void attn_cls_trainer_free(attn_cls_trainer *t);

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
    char run[17];            /* the run's name (attn/train.h's checkpoints) */
} attn_cls_info;

const attn_cls_info *attn_cls_trainer_info(const attn_cls_trainer *t);
attn_encoder *attn_cls_trainer_model(attn_cls_trainer *t);
const attn_tokenizer *attn_cls_trainer_tokenizer(const attn_cls_trainer *t);

/* Trains until iters, stop_at, *stop, the callback, or early stopping;
 * checkpoints to out_dir every checkpoint_every steps, at each new best and
 * at the end. *stopped: 1 interrupted, 2 early stopping, 0 otherwise. */
attn_status attn_cls_trainer_run(attn_cls_trainer *t, const char *out_dir, size_t stop_at,
                                 const volatile sig_atomic_t *stop, attn_cls_progress_fn cb,
                                 void *user, int *stopped);

/* Data-parallel training (attn/dist.h fills d; see attn_train_dist in
 * attn/train.h): rank r of K computes on examples [r·n/K, (r+1)·n/K) of
 * every batch of n that one process would draw (--batch is the global
 * batch), padded to the whole batch's length, with the whole batch's
 * dropout masks; gradients (the embedding's as the rows the whole batch
 * used), losses and evaluation predictions are summed over the ranks, and
 * clipping and AdamW run identically on every rank. Only rank 0 writes
 * checkpoints (every rank learns whether that worked); the best weights
 * come from rank 0 (attn_cls_trainer_load_best). */
attn_status attn_cls_trainer_set_dist(attn_cls_trainer *t, const attn_train_dist *d);
/* A hash of the configuration, step, run and tokenized data: the ranks of
 * one data-parallel run must agree on it. */
uint64_t attn_cls_trainer_fingerprint(const attn_cls_trainer *t);

typedef enum attn_cls_which { ATTN_CLS_TRAIN = 0, ATTN_CLS_VALID = 1, ATTN_CLS_TEST = 2 } attn_cls_which;
/* Scores the current weights on a split; confusion (K, K) may be NULL. */
attn_status attn_cls_trainer_evaluate(attn_cls_trainer *t, attn_cls_which which,
                                      attn_cls_metrics *m, size_t *confusion);
/* Loads the best weights (out_dir/best.safetensors) into the model. */
attn_status attn_cls_trainer_load_best(attn_cls_trainer *t, const char *out_dir);
/* The baselines on a split, with the trainer's tokenizer and labels. */
attn_status attn_cls_trainer_baselines(attn_cls_trainer *t, attn_cls_which which,
                                       attn_cls_metrics *majority, attn_cls_metrics *bow,
                                       const attn_bow_opts *o);

/* ---- a trained classifier ----------------------------------------------------------- */

/* Loads dir (config.json, vocab.json and best.safetensors, or model.safetensors
 * when there is no best) for batches of max_batch. */
attn_status attn_cls_model_load(const char *dir, size_t max_batch, attn_cls_info *info,
                                attn_encoder **e, attn_tokenizer **tok);
void attn_cls_info_free(attn_cls_info *info);
/* Class probabilities of one text: probs (K); ids/n (may be NULL) receive its
 * token ids ([CLS] first, truncated to the context; free them); ctx as for
 * attn_encoder_forward with B = 1 and T = *n (at most the context). */
attn_status attn_cls_predict(attn_encoder *e, const attn_tokenizer *tok, const char *text,
                             float *probs, uint32_t **ids, size_t *n, const attn_op_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
