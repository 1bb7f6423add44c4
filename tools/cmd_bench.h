/* cmd_bench.h - `attn bench`. */
#ifndef ATTN_CMD_BENCH_H
#define ATTN_CMD_BENCH_H
int cmd_bench(int argc, char **argv);
/* `attn bench ring` (tools/cmd_bench_ring.c): argv[0] is "ring". */
int cmd_bench_ring(int argc, char **argv);
/* `attn bench generate` (tools/cmd_bench_generate.c): argv[0] is "generate". */
int cmd_bench_generate(int argc, char **argv);
#endif
