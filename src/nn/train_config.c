/* train_config.c - trainers' hyperparameters: the shortest float text. */
#include "attn/train_config.h"

#include <stdio.h>
#include <stdlib.h>

char *attn_float_shortest(char *buf, size_t n, float v)
{
    /* 9 significant digits always round-trip a float; most values need fewer. */
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v && (float)strtod(buf, NULL) == v) break;
    }
    return buf;
}
