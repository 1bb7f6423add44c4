/* cmd_classify.h - the encoder-classifier subcommands. */
#ifndef ATTN_CMD_CLASSIFY_H
#define ATTN_CMD_CLASSIFY_H

int cmd_data(int argc, char **argv);
int cmd_classify(int argc, char **argv);
/* `attn train --task classify ...` (argv as given to attn train). */
int cmd_train_classify(int argc, char **argv);

#endif
