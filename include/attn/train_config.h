/* attn/train_config.h - trainers' hyperparameters described once.
 *
 * Numbers in config files are written as the user gave them: the shortest
 * decimal that reads back to the same float, not the float's exact binary
 * value ("0.001", not "0.0010000000474974513"). */
#ifndef ATTN_TRAIN_CONFIG_H
#define ATTN_TRAIN_CONFIG_H

#include <stddef.h>
#include "attn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The shortest "%.*g" text of v (finite) that strtof and strtod-then-float
 * both read back as v, in buf (n >= 32). Returns buf. */
char *attn_float_shortest(char *buf, size_t n, float v);

#ifdef __cplusplus
}
#endif
#endif
