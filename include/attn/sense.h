/* attn/sense.h - learning attention that tells a word's sense from context.
 *
 * The article's point made with learned weights: "mouse" has one input
 * embedding, yet after training W_Q, W_K, W_V its attention output tells
 * whether the sentence is about an animal or about a computer. A small set of
 * sentences is generated (templates x context words of either sense), split
 * into training and held-out parts, and a one-head attention layer (d_v != d,
 * out_proj as a linear read-out to one logit per class at the ambiguous word)
 * is trained by gradient descent (Adam) on the cross-entropy of the sense.
 * Three classes: animal, tech, and unclear (the context is a plain object such
 * as "table"), so that both senses must be recognised from their own context
 * words rather than one from the absence of the other.
 */
#ifndef ATTN_SENSE_H
#define ATTN_SENSE_H

#include <stddef.h>
#include <stdint.h>
#include "attn/mha.h"
#include "attn/status.h"
#include "attn/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_sense_opts {
    uint64_t seed;   /* embeddings, split, initialisation and order */
    size_t epochs;   /* passes over the training sentences (default 40) */
    size_t batch;    /* sentences per gradient step (default 8) */
    float lr;        /* Adam learning rate (default 0.02) */
} attn_sense_opts;

attn_sense_opts attn_sense_defaults(void);

typedef struct attn_sense_progress {
    size_t epoch, epochs;
    double loss;          /* mean training cross-entropy of the epoch */
    double train_accuracy;
    double test_accuracy; /* on the held-out sentences */
} attn_sense_progress;

typedef void (*attn_sense_callback)(const attn_sense_progress *p, void *user);

typedef struct attn_sense attn_sense;

attn_status attn_sense_create(attn_sense **task, const attn_sense_opts *opts);
void attn_sense_free(attn_sense *task);

/* Trains for opts.epochs, calling `cb` (may be NULL) after every epoch. */
attn_status attn_sense_train(attn_sense *task, attn_sense_callback cb, void *user);

/* Sentences in each split (0 = training, 1 = held out), and the accuracy of
 * the current weights on a split. */
size_t attn_sense_count(const attn_sense *task, int split);
double attn_sense_accuracy(attn_sense *task, int split);

#define ATTN_SENSE_CLASSES 3

/* The word whose sense is asked ("mouse") and the class names. */
const char *attn_sense_word(void);
const char *attn_sense_name(int sense); /* 0 "animal", 1 "tech", 2 "unclear" */

/* Runs the layer on `text` (words of the vocabulary, containing the word)
 * with a trace (see attn_mha_self_attention); probs[c] (may be NULL)
 * receives the probability of class c; returns the most likely in *sense. */
attn_status attn_sense_run(attn_sense *task, const char *text, attn_trace *trace,
                           double probs[ATTN_SENSE_CLASSES], int *sense);

/* The layer being trained. */
attn_mha *attn_sense_layer(attn_sense *task);

#ifdef __cplusplus
}
#endif
#endif
