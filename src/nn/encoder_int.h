/* encoder_int.h - what the classifier trainer needs of the encoder beyond its
 * public API: a second encoder of the same shape computing part of a batch
 * (cls_train.c's two parts), its weights copied from the first and its
 * gradients added into the first's. */
#ifndef ATTN_ENCODER_INT_H
#define ATTN_ENCODER_INT_H

#include "attn/encoder.h"

/* dst's weights = src's (same configuration): every dense tensor whole and
 * the token embedding's rows that ids (n, padding included) name, the rows
 * a forward of those ids reads. */
void nn_encoder_copy_weights(attn_encoder *dst, const attn_encoder *src, const uint32_t *ids, size_t n);

/* dst's gradients += src's (same configuration), dst's value first in every
 * sum: the dense ones whole, the token embedding's in the rows src's
 * backwards touched, which dst then counts as touched too. */
void nn_encoder_add_grads(attn_encoder *dst, const attn_encoder *src);

#endif
