/* cmd_generate.c - `attn generate`: text from a trained GPT, streamed. */
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attn/gpt_hf.h"
#include "attn/train.h"
#include "cli.h"
#include "cmd_gpt.h"

static const char usage[] =
    "usage: attn generate --model DIR [--prompt TEXT] [--tokens N] [options]\n"
    "\n"
    "Continues the prompt with a model trained by 'attn train', or a GPT-2 folder\n"
    "in Hugging Face's layout (config.json, model.safetensors and the tokenizer\n"
    "files vocab.json + merges.txt or encoder.json + vocab.bpe), printing each\n"
    "token as it comes (on a terminal; into a pipe or a file, line by line).\n"
    "The prompt is processed in one pass into a KV cache; then each new token\n"
    "attends to the cached keys and values.\n"
    "\n"
    "options:\n"
    "  --model DIR          a checkpoint directory (required)\n"
    "  --prompt TEXT        the start (default: a newline); every character must\n"
    "                       be in the model's vocabulary\n"
    "  --tokens N           how many tokens to generate (256)\n"
    "  --temperature T      0 = greedy, higher = more random (0.8)\n"
    "  --top-k K            sample among the K most likely tokens (0 = all)\n"
    "  --top-p P            sample among the most likely tokens holding P of the\n"
    "                       probability, 0 < P <= 1 (1 = all)\n"
    "  --seed N             sampling seed (1337)\n"
    "  --no-cache           recompute the whole window for every token (slow; for\n"
    "                       comparison)\n"
    "  --stats              print tokens/s and ms/token on stderr at the end\n"
    "  -h, --help           show this help\n";

typedef struct stream {
    const attn_tokenizer *tok;
    attn_status st;
    size_t count;
    int tty; /* flush every token; else at newlines (a write per token would
                cost more than a cached step) */
} stream;

static int on_token(uint32_t id, void *user)
{
    stream *s = user;
    const char *bytes;
    size_t len;
    if ((s->st = attn_tokenizer_token_bytes(s->tok, id, &bytes, &len))) return 1;
    fwrite(bytes, 1, len, stdout);
    if (s->tty || memchr(bytes, '\n', len)) fflush(stdout);
    s->count++;
    return ferror(stdout) ? 1 : 0;
}

/* 1 if dir holds a file called name. */
static int has_file(const char *dir, const char *name)
{
    char path[4096];
    return (size_t)snprintf(path, sizeof path, "%s/%s", dir, name) < sizeof path &&
           access(path, F_OK) == 0;
}

/* A GPT-2 folder: the weights and the tokenizer files beside them. A folder
 * of weights alone is told which files it lacks and where they come from. */
static attn_status load_hf(const char *dir, attn_gpt **g, attn_tokenizer **tok)
{
    attn_status st = attn_gpt_hf_load(g, dir, 1);
    if (!st && !has_file(dir, "encoder.json") && !has_file(dir, "vocab.json"))
        st = attn_error(ATTN_E_IO,
                        "%s: no tokenizer beside the weights: expected GPT-2's tokenizer files "
                        "encoder.json and vocab.bpe (or vocab.json and merges.txt): GPT-2's own, or "
                        "those 'attn tokenize --train' writes (as for 'attn train --tokenizer')",
                        dir);
    if (!st) st = attn_bpe_tokenizer_load(tok, dir);
    if (!st && attn_tokenizer_vocab_size(*tok) > attn_gpt_get_config(*g)->vocab_size)
        st = attn_error(ATTN_E_FORMAT, "%s: the tokenizer has %zu tokens, the model only %zu (vocab_size)",
                        dir, attn_tokenizer_vocab_size(*tok), attn_gpt_get_config(*g)->vocab_size);
    return st;
}

attn_status gpt_cli_load_model(const char *dir, attn_gpt **g, attn_tokenizer **tok, int *hf)
{
    attn_checkpoint info;
    *hf = attn_gpt_hf_is_dir(dir);
    return *hf ? load_hf(dir, g, tok) : attn_checkpoint_load(dir, 1, &info, g, tok);
}

/* The prompt's token ids (malloc'd); without a prompt a newline when the
 * vocabulary has one, else token 0, and *prompt becomes NULL (nothing to echo). */
static attn_status encode_prompt(const attn_gpt *g, const attn_tokenizer *tok, int hf,
                                 const char **prompt, uint32_t **ids, size_t *n)
{
    attn_status st = ATTN_OK;
    if (*prompt && (*prompt)[0]) {
        st = attn_tokenizer_encode(tok, *prompt, strlen(*prompt), "prompt", ids, n);
        /* GPT-2's positions end at n_positions; attn's own models restart
         * their window instead (attn_gpt_generate). */
        if (!st && hf && *n > attn_gpt_get_config(g)->context)
            st = attn_error(ATTN_E_INVALID, "prompt: %zu tokens, but the model has %zu positions (n_positions)",
                            *n, attn_gpt_get_config(g)->context);
    } else { /* a newline when the vocabulary has one, else token 0 */
        if (attn_tokenizer_encode(tok, "\n", 1, "prompt", ids, n)) {
            attn_clear_error();
            free(*ids);
            *ids = calloc(1, sizeof **ids), *n = 1;
            if (!*ids) st = attn_error(ATTN_E_NOMEM, "out of memory");
        }
        *prompt = NULL;
    }
    return st;
}

int cmd_generate(int argc, char **argv)
{
    enum { O_MODEL = 5000, O_PROMPT, O_TOKENS, O_TEMP, O_TOPK, O_TOPP, O_SEED, O_NO_CACHE, O_STATS };
    static const struct option longopts[] = {
        {"model", required_argument, 0, O_MODEL}, {"prompt", required_argument, 0, O_PROMPT},
        {"tokens", required_argument, 0, O_TOKENS}, {"temperature", required_argument, 0, O_TEMP},
        {"top-k", required_argument, 0, O_TOPK}, {"top-p", required_argument, 0, O_TOPP},
        {"seed", required_argument, 0, O_SEED}, {"no-cache", no_argument, 0, O_NO_CACHE},
        {"stats", no_argument, 0, O_STATS}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *dir = NULL, *prompt = NULL;
    attn_generate_opts go;
    memset(&go, 0, sizeof go);
    go.max_new = 256, go.sample.temperature = 0.8f, go.sample.top_p = 1.0f, go.seed = 1337;
    go.use_cache = 1;
    int c, v, stats = 0;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(usage, stdout); return cli_finish_stdout("generate");
        case O_MODEL: dir = optarg; break;
        case O_PROMPT: prompt = optarg; break;
        case O_TOKENS:
            if (cli_parse_int(optarg, 0, INT_MAX, &v))
                return cli_usage_error("generate", usage, "--tokens: expected an integer >= 0, found '%s'", optarg);
            go.max_new = (size_t)v;
            break;
        case O_TEMP:
            if (cli_parse_float(optarg, &go.sample.temperature) || go.sample.temperature < 0)
                return cli_usage_error("generate", usage, "--temperature: expected a number >= 0, found '%s'", optarg);
            break;
        case O_TOPK:
            if (cli_parse_int(optarg, 0, INT_MAX, &v))
                return cli_usage_error("generate", usage, "--top-k: expected an integer >= 0, found '%s'", optarg);
            go.sample.top_k = (size_t)v;
            break;
        case O_TOPP:
            if (cli_parse_float(optarg, &go.sample.top_p) || !(go.sample.top_p > 0) || go.sample.top_p > 1)
                return cli_usage_error("generate", usage, "--top-p: expected a number in (0, 1], found '%s'", optarg);
            break;
        case O_SEED:
            if (cli_parse_int(optarg, 0, INT_MAX, &v))
                return cli_usage_error("generate", usage, "--seed: expected an integer >= 0, found '%s'", optarg);
            go.seed = (uint64_t)v;
            break;
        case O_NO_CACHE: go.use_cache = 0; break;
        case O_STATS: stats = 1; break;
        default: return cli_bad_option("generate", usage, c, argv);
        }
    }
    if (optind < argc) return cli_usage_error("generate", usage, "unexpected argument '%s'", argv[optind]);
    if (!dir) return cli_usage_error("generate", usage, "missing --model DIR");
    cli_default_sigpipe(); /* `attn generate | head`: quiet, as other filters */

    attn_gpt *g = NULL;
    attn_tokenizer *tok = NULL;
    int hf;
    attn_status st = gpt_cli_load_model(dir, &g, &tok, &hf);
    uint32_t *ids = NULL;
    size_t n = 0;
    if (!st) st = encode_prompt(g, tok, hf, &prompt, &ids, &n);
    if (st) {
        free(ids);
        attn_gpt_free(g);
        attn_tokenizer_free(tok);
        return cli_fail("generate", st);
    }
    if (prompt) fputs(prompt, stdout);
    fflush(stdout);
    stream s = {tok, ATTN_OK, 0, isatty(fileno(stdout))};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = attn_gpt_generate(g, ids, n, &go, on_token, &s);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!st) st = s.st;
    printf("\n");
    int rc = st ? cli_fail("generate", st) : cli_finish_stdout("generate");
    if (!st && stats) {
        double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        fprintf(stderr, "attn generate: %zu tokens in %.3f s (%.1f tokens/s, %.3f ms/token, %s)\n",
                s.count, sec, (double)s.count / (sec > 0 ? sec : 1e-9),
                s.count ? 1e3 * sec / (double)s.count : 0.0, go.use_cache ? "KV cache" : "no cache");
    }
    free(ids);
    attn_gpt_free(g);
    attn_tokenizer_free(tok);
    return rc;
}
