/* cmd_bench.h - `attn bench`. */
#ifndef ATTN_CMD_BENCH_H
#define ATTN_CMD_BENCH_H
int cmd_bench(int argc, char **argv);
#endif
