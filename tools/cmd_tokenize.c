/* cmd_tokenize.c - `attn tokenize` (GPT-2 BPE: encode, decode, train) and
 * `attn bench tokenize`. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attn/export.h"
#include "attn/fileio.h"
#include "attn/tokenizer.h"
#include "cli.h"
#include "cmd_gpt.h"
#include "cmd_tokenize.h"

static const char usage[] =
    "usage: attn tokenize --gpt2 DIR [--decode] [--special] < INPUT\n"
    "       attn tokenize --train FILE --vocab-size V --out DIR\n"
    "\n"
    "GPT-2's byte-level BPE. DIR holds encoder.json and vocab.bpe (or Hugging\n"
    "Face's vocab.json and merges.txt). Reads stdin and prints its token ids,\n"
    "separated by single spaces, with one final newline; --decode reads ids\n"
    "(separated by any white space) and prints exactly the bytes they stand for.\n"
    "Any bytes encode; decode(encode(x)) is x. stdin is read whole first, at most\n"
    "256 MiB.\n"
    "--train learns a byte-level BPE of V tokens with the same pre-tokenizer on a\n"
    "text and writes DIR/encoder.json and DIR/vocab.bpe; 'attn train --tokenizer\n"
    "DIR' then trains a GPT on its tokens.\n"
    "\n"
    "options:\n"
    "  --gpt2 DIR        the tokenizer files\n"
    "  --decode          ids to bytes instead of text to ids\n"
    "  --special         \"<|endoftext|>\" in the text is its one token (id 50256\n"
    "                    in GPT-2); otherwise it is ordinary text\n"
    "  --train FILE      learn a vocabulary from this text\n"
    "  --vocab-size V    tokens to learn, >= 257: the 256 bytes, the merges and\n"
    "                    <|endoftext|>\n"
    "  --out DIR         where --train writes (created if needed)\n"
    "  -h, --help        show this help\n";

/* stdin is read whole before anything is written (no partial output), so it
 * is bounded: 256 MiB of text is about 60 M GPT-2 tokens. */
#define STDIN_LIMIT ((size_t)256 << 20)

/* Whitespace-separated decimal ids. */
static attn_status parse_ids(const char *s, size_t len, uint32_t **ids, size_t *n)
{
    size_t cap = len / 2 + 1, k = 0, i = 0;
    uint32_t *out = malloc(cap * sizeof *out);
    if (!out) return attn_error(ATTN_E_NOMEM, "out of memory");
    while (i < len) {
        while (i < len && strchr(" \t\r\n\v\f", s[i]) && s[i]) i++;
        if (i == len) break;
        size_t start = i;
        uint64_t v = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9' && v <= UINT32_MAX) v = v * 10 + (uint64_t)(s[i++] - '0');
        if (i == start || v > UINT32_MAX || (i < len && !strchr(" \t\r\n\v\f", s[i])) || (i < len && !s[i])) {
            size_t e = start;
            while (e < len && e - start < 20 && s[e] && !strchr(" \t\r\n\v\f", s[e])) e++;
            free(out);
            return attn_error(ATTN_E_FORMAT, "stdin: byte %zu: expected a token id (a number >= 0), found '%.*s'",
                              start, (int)(e - start), s + start);
        }
        out[k++] = (uint32_t)v;
    }
    *ids = out, *n = k;
    return ATTN_OK;
}

static int run_codec(const char *dir, int decode, int special)
{
    attn_tokenizer *tok = NULL;
    char *in = NULL, *out = NULL;
    uint32_t *ids = NULL;
    size_t len = 0, n = 0, out_len = 0;
    attn_status st = attn_bpe_tokenizer_load(&tok, dir);
    if (!st && special) st = attn_bpe_set_special(tok, 1);
    if (!st) st = attn_read_stream(stdin, "stdin", STDIN_LIMIT, 0, &in, &len);
    if (!st && decode) {
        st = parse_ids(in, len, &ids, &n);
        if (!st) st = attn_tokenizer_decode(tok, ids, n, "stdin", &out, &out_len);
    } else if (!st) {
        st = attn_tokenizer_encode(tok, in, len, "stdin", &ids, &n);
        /* at most 10 digits and a space per id */
        if (!st && !(out = malloc(11 * n + 2))) st = attn_error(ATTN_E_NOMEM, "out of memory");
        for (size_t i = 0; !st && i < n; i++) out_len += (size_t)sprintf(out + out_len, i ? " %u" : "%u", (unsigned)ids[i]);
        if (!st) out[out_len++] = '\n';
    }
    /* Everything is known before the first byte is written. */
    if (!st) fwrite(out, 1, out_len, stdout);
    free(in), free(out), free(ids);
    attn_tokenizer_free(tok);
    return st ? cli_fail("tokenize", st) : cli_finish_stdout("tokenize");
}

static void train_progress(size_t done, size_t total, void *user)
{
    if (*(int *)user && (done % 64 == 0 || done == total)) {
        printf("\rattn tokenize: merge %zu of %zu", done, total);
        fflush(stdout);
    }
}

static int run_train(const char *file, size_t vocab, const char *dir)
{
    char *text = NULL;
    size_t len = 0;
    attn_tokenizer *tok = NULL;
    attn_status st = attn_export_check_dir(dir);
    if (!st && mkdir(dir, 0777) != 0 && errno != EEXIST)
        st = attn_error(ATTN_E_IO, "%s: cannot create the directory: %s", dir, strerror(errno));
    if (!st) st = attn_read_file(file, CLI_TEXT_LIMIT, ATTN_READ_TEXT, &text, &len);
    int tty = isatty(fileno(stdout));
    if (!st) st = attn_bpe_train(&tok, text, len, file, vocab, train_progress, &tty);
    if (tty) printf("\n");
    if (!st) st = attn_bpe_tokenizer_save_dir(tok, dir);
    if (!st)
        printf("attn tokenize: %zu tokens (256 bytes, %zu merges, <|endoftext|>) learnt from %s; "
               "wrote %s/encoder.json and %s/vocab.bpe\n",
               attn_tokenizer_vocab_size(tok), attn_tokenizer_vocab_size(tok) - 257, file, dir, dir);
    free(text);
    attn_tokenizer_free(tok);
    return st ? cli_fail("tokenize", st) : cli_finish_stdout("tokenize");
}

int cmd_tokenize(int argc, char **argv)
{
    enum { O_GPT2 = 6000, O_DECODE, O_SPECIAL, O_TRAIN, O_VOCAB, O_OUT };
    static const struct option longopts[] = {
        {"gpt2", required_argument, 0, O_GPT2}, {"decode", no_argument, 0, O_DECODE},
        {"special", no_argument, 0, O_SPECIAL}, {"train", required_argument, 0, O_TRAIN},
        {"vocab-size", required_argument, 0, O_VOCAB}, {"out", required_argument, 0, O_OUT},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *dir = NULL, *train = NULL, *out = NULL;
    int decode = 0, special = 0, vocab = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(usage, stdout); return cli_finish_stdout("tokenize");
        case O_GPT2: dir = optarg; break;
        case O_DECODE: decode = 1; break;
        case O_SPECIAL: special = 1; break;
        case O_TRAIN: train = optarg; break;
        case O_OUT: out = optarg; break;
        case O_VOCAB:
            if (cli_parse_int(optarg, 257, 1 << 24, &vocab))
                return cli_usage_error("tokenize", usage, "--vocab-size: expected an integer from 257 to 16777216, found '%s'", optarg);
            break;
        default: return cli_bad_option("tokenize", usage, c, argv);
        }
    }
    if (optind < argc) return cli_usage_error("tokenize", usage, "unexpected argument '%s'", argv[optind]);
    if (train) {
        if (dir || decode || special)
            return cli_usage_error("tokenize", usage, "--train does not go with --gpt2, --decode or --special");
        if (!vocab) return cli_usage_error("tokenize", usage, "--train needs --vocab-size V");
        if (!out) return cli_usage_error("tokenize", usage, "--train needs --out DIR");
        return run_train(train, (size_t)vocab, out);
    }
    if (vocab || out) return cli_usage_error("tokenize", usage, "--vocab-size and --out go with --train");
    if (!dir) return cli_usage_error("tokenize", usage, "missing --gpt2 DIR (or --train FILE)");
    if (decode && special) return cli_usage_error("tokenize", usage, "--special is for encoding; decoding gives every token's bytes");
    return run_codec(dir, decode, special);
}

/* ---- attn bench tokenize ---------------------------------------------------------- */

static const char bench_usage[] =
    "usage: attn bench tokenize --data FILE [--gpt2 DIR] [--vocab-size V] [--reps N] [--json]\n"
    "\n"
    "Encodes FILE (e.g. tiny Shakespeare) with GPT-2's byte-level BPE on one\n"
    "thread and reports MB/s: the first pass (from an empty cache of split\n"
    "words) and the best of N more passes over the same text (warm cache), and\n"
    "decoding. Times are the thread's CPU time (steady while other programs\n"
    "run). Without --gpt2, a BPE of V tokens (default 1024) is first learnt\n"
    "from FILE.\n"
    "\n"
    "options:\n"
    "  --data FILE       the text\n"
    "  --gpt2 DIR        encoder.json + vocab.bpe (or vocab.json + merges.txt)\n"
    "  --vocab-size V    without --gpt2: the vocabulary to learn (1024)\n"
    "  --reps N          warm passes (5)\n"
    "  --json            one JSON object\n"
    "  -h, --help        show this help\n";

/* The thread's CPU time: one thread's work, steady on a shared machine. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static attn_status time_encode(const attn_tokenizer *tok, const char *text, size_t len, double *sec,
                               uint32_t **ids, size_t *n)
{
    free(*ids), *ids = NULL;
    double t0 = now_s();
    attn_status st = attn_tokenizer_encode(tok, text, len, "text", ids, n);
    *sec = now_s() - t0;
    return st;
}

int cmd_bench_tokenize(int argc, char **argv)
{
    enum { O_DATA = 6100, O_GPT2, O_VOCAB, O_REPS, O_JSON };
    static const struct option longopts[] = {
        {"data", required_argument, 0, O_DATA}, {"gpt2", required_argument, 0, O_GPT2},
        {"vocab-size", required_argument, 0, O_VOCAB}, {"reps", required_argument, 0, O_REPS},
        {"json", no_argument, 0, O_JSON}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *data = NULL, *dir = NULL;
    int vocab = 1024, reps = 5, json = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(bench_usage, stdout); return cli_finish_stdout("bench");
        case O_DATA: data = optarg; break;
        case O_GPT2: dir = optarg; break;
        case O_JSON: json = 1; break;
        case O_VOCAB:
            if (cli_parse_int(optarg, 257, 1 << 24, &vocab))
                return cli_usage_error("bench", bench_usage, "--vocab-size: expected 257..16777216, found '%s'", optarg);
            break;
        case O_REPS:
            if (cli_parse_int(optarg, 1, 1000, &reps))
                return cli_usage_error("bench", bench_usage, "--reps: expected 1..1000, found '%s'", optarg);
            break;
        default: return cli_bad_option("bench", bench_usage, c, argv);
        }
    }
    if (optind < argc) return cli_usage_error("bench", bench_usage, "unexpected argument '%s'", argv[optind]);
    if (!data) return cli_usage_error("bench", bench_usage, "missing --data FILE");
    char *text = NULL, *back = NULL;
    size_t len = 0, n = 0, back_len = 0;
    uint32_t *ids = NULL;
    attn_tokenizer *tok = NULL;
    double load = 0, cold = 0, warm = 1e30, dec = 1e30, t;
    attn_status st = attn_read_file(data, CLI_TEXT_LIMIT, ATTN_READ_TEXT, &text, &len);
    if (!st) {
        double t0 = now_s();
        st = dir ? attn_bpe_tokenizer_load(&tok, dir) : attn_bpe_train(&tok, text, len, data, (size_t)vocab, NULL, NULL);
        load = now_s() - t0;
    }
    if (!st) st = time_encode(tok, text, len, &cold, &ids, &n);
    for (int r = 0; !st && r < reps; r++) {
        st = time_encode(tok, text, len, &t, &ids, &n);
        if (t < warm) warm = t;
    }
    for (int r = 0; !st && r < reps; r++) {
        free(back), back = NULL;
        double t0 = now_s();
        st = attn_tokenizer_decode(tok, ids, n, "ids", &back, &back_len);
        if ((t = now_s() - t0) < dec) dec = t;
    }
    if (!st && (back_len != len || memcmp(back, text, len)))
        st = attn_error(ATTN_E_INTERNAL, "%s: decoding the ids does not give the text back", data);
    int rc;
    if (st) {
        rc = cli_fail("bench", st);
    } else {
        const double mb = (double)len / 1e6;
        if (json)
            printf("{\"data\": \"%s\", \"bytes\": %zu, \"tokens\": %zu, \"vocab_size\": %zu, "
                   "\"gpt2\": %s, \"threads\": 1, \"load_s\": %.4f, \"encode_cold_mb_s\": %.2f, "
                   "\"encode_warm_mb_s\": %.2f, \"decode_mb_s\": %.1f}\n",
                   data, len, n, attn_tokenizer_vocab_size(tok), dir ? "true" : "false", load,
                   mb / cold, mb / warm, mb / dec);
        else
            printf("attn bench tokenize: %s, %.2f MB, %zu tokens (vocabulary %zu, %s), one thread, CPU time\n"
                   "  %s %.3f s\n  encode, first pass (empty cache)  %8.2f MB/s\n"
                   "  encode, best of %d warm passes    %8.2f MB/s\n  decode, best of %d              %8.1f MB/s\n",
                   data, mb, n, attn_tokenizer_vocab_size(tok), dir ? dir : "learnt from the text",
                   dir ? "load" : "learn", load, mb / cold, reps, mb / warm, reps, mb / dec);
        rc = cli_finish_stdout("bench");
    }
    free(text), free(back), free(ids);
    attn_tokenizer_free(tok);
    return rc;
}
