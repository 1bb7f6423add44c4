/* cmd_gpt.h - the GPT subcommands and what they share. */
#ifndef ATTN_CMD_GPT_H
#define ATTN_CMD_GPT_H

#include <stddef.h>
#include "attn/gpt.h"
#include "attn/status.h"
#include "attn/tokenizer.h"

int cmd_train(int argc, char **argv);
int cmd_generate(int argc, char **argv);

/* A model directory as `attn generate --model` reads it: Hugging Face's
 * GPT-2 layout (*hf = 1) with GPT-2's tokenizer files beside the weights, or
 * a checkpoint of 'attn train' with its tokenizer. One sequence at a time. */
attn_status gpt_cli_load_model(const char *dir, attn_gpt **g, attn_tokenizer **tok, int *hf);

#endif
