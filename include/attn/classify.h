/* attn/classify.h - text classification (nn floor): tokenized examples,
 * metrics, baselines (majority class, bag-of-words logistic regression), and
 * the trainer of the encoder classifier (attn/encoder.h; its checkpoints:
 * attn/checkpoint.h; the data format: attn/cls_data.h).
 */
#ifndef ATTN_CLASSIFY_H
#define ATTN_CLASSIFY_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include "attn/checkpoint.h"
#include "attn/cls_data.h"
#include "attn/encoder.h"
#include "attn/ops.h"
#include "attn/optim.h"
#include "attn/status.h"
#include "attn/tokenizer.h"
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

/* ---- training ----------------------------------------------------------------------- */

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

/* ---- a trained classifier (attn_cls_model_load: attn/checkpoint.h) ---------------- */

/* Class probabilities of one text: probs (K); ids/n (may be NULL) receive its
 * token ids ([CLS] first, truncated to the context; free them); ctx as for
 * attn_encoder_forward with B = 1 and T = *n (at most the context). */
attn_status attn_cls_predict(attn_encoder *e, const attn_tokenizer *tok, const char *text,
                             float *probs, uint32_t **ids, size_t *n, const attn_op_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
