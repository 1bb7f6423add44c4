/* attn.c - the command-line tool: a table of subcommands. No math here. */
#include <stdio.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "cli.h"
#include "cmd_bench.h"
#include "cmd_classify.h"
#include "cmd_gpt.h"
#include "cmd_plot.h"
#include "cmd_tokenize.h"
#include "omp_env.h"

typedef struct command {
    const char *name;
    cli_command_fn fn;
    const char *summary;
} command;

static const command commands[] = {
    {"demo", cmd_demo, "self-attention step by step on the built-in cat/keyboard/mouse example"},
    {"explain", cmd_explain, "the same walkthrough on your own embeddings (CSV) or layer, or every head of a GPT"},
    {"mha", cmd_mha, "multi-head attention on safetensors inputs, as PyTorch computes it"},
    {"bench", cmd_bench, "time the fused attention and GEMM kernels against the reference"},
    {"train", cmd_train, "train a small GPT on text, or an encoder classifier (--task classify)"},
    {"generate", cmd_generate, "generate text with a trained GPT (KV cache)"},
    {"tokenize", cmd_tokenize, "GPT-2 byte-level BPE: text to ids and back, or learn one"},
    {"convert", cmd_convert, "write a trained GPT as a Hugging Face GPT-2 folder"},
    {"data", cmd_data, "build a labelled data set (WordNet noun supersenses)"},
    {"plot", cmd_plot, "draw training logs (JSON lines) on one chart, as SVG or HTML"},
    {"classify", cmd_classify, "classify text with a trained encoder (top classes, attention)"},
};

/* glibc gives blocks above its mmap threshold (128 KiB, raised as such
 * blocks are freed) back to the system on free and trims the heap's top past
 * 2x it, so a training step that allocates and frees its activations and the
 * GEMMs' packed operands (0.1-2 MB each) faulted in fresh zeroed pages every
 * step: about 100 page faults and 5 % of a classifier step's time. The CLI
 * owns its process, so it keeps such blocks in the heap and the heap's pages
 * mapped (the library itself never changes process-wide settings). */
static void keep_freed_memory(void)
{
#ifdef __GLIBC__
    (void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
    (void)mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

static void usage(FILE *f)
{
    fprintf(f, "usage: attn <command> [options]\n\n"
               "Transformer self-attention in C, every number visible.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'attn <command> --help' describes a command's options.\n"
               "  -h, --help     show this help\n"
               "  --version      print the version\n");
}

int main(int argc, char **argv)
{
    cli_omp_env(argv);
    keep_freed_memory();
    if (argc < 2) {
        usage(stderr);
        return CLI_BAD_INPUT;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return cli_finish_stdout("help");
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        const char *mpi = attn_mpi_version();
        printf("attn %s\n", attn_version());
        printf("mpi: %s\n", mpi ? mpi : "no (built without MPI: no distributed training, no ring attention)");
        return cli_finish_stdout("version");
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(name, commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "attn: unknown command '%s'\n"
                    "usage: attn <command> [options]  (the commands: attn --help)\n", name);
    return CLI_BAD_INPUT;
}
