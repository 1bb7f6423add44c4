/* attn/params.h - the parameter table of a model (nn floor): one entry per
 * parameter tensor, with its gradient, for optimizers and checkpoints. */
#ifndef ATTN_PARAMS_H
#define ATTN_PARAMS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A parameter tensor of a model's table. `decay` is 1 for matrices (rank 2:
 * embeddings and linear weights), 0 for biases and norms. */
typedef struct attn_param_ref {
    const char *name;
    float *data;
    float *grad;
    size_t numel;
    int ndim;
    size_t shape[2];
    int decay;
} attn_param_ref;

#ifdef __cplusplus
}
#endif
#endif
