/* cli_dist.h - `mpirun -np K attn train`: the CLI's side of data parallelism
 * (tools/cli_dist.c). Outside mpirun these do nothing. */
#ifndef ATTN_CLI_DIST_H
#define ATTN_CLI_DIST_H

#include <stddef.h>
#include "attn/classify.h"
#include "attn/train.h"

/* Under mpirun: MPI_Init, the start-up agreement on configuration and data,
 * the trainer set up for data parallelism; on ranks other than 0 stdout is
 * silenced (rank 0 alone prints) and *rank says which this is. Outside
 * mpirun *rank = 0 and nothing happens. */
attn_status cli_dist_train_begin(attn_trainer *t, const char *text, size_t len, int *rank);
/* The same for `attn train --task classify`. */
attn_status cli_dist_cls_begin(attn_cls_trainer *t, int *rank);
/* Rank 0 prints the ranks and the communication share of the run; then
 * MPI_Finalize. Nothing outside mpirun. */
void cli_dist_end(double run_s);

#endif
