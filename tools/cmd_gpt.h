/* cmd_gpt.h - the GPT subcommands and what they share. */
#ifndef ATTN_CMD_GPT_H
#define ATTN_CMD_GPT_H

#include <stddef.h>
#include "attn/status.h"

int cmd_train(int argc, char **argv);
int cmd_generate(int argc, char **argv);

#endif
