/* cmd_tokenize.h - `attn tokenize` and `attn bench tokenize`. */
#ifndef ATTN_CMD_TOKENIZE_H
#define ATTN_CMD_TOKENIZE_H
int cmd_tokenize(int argc, char **argv);
int cmd_bench_tokenize(int argc, char **argv); /* argv[0] is "tokenize" */
#endif
