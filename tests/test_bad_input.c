/* test_bad_input.c - a catalogue of bad input across every command and format.
 *
 * One table: each row runs the real `attn` (ATTN_BIN) on one bad input and
 * states the exit status and a fragment of the one-line message on stderr.
 * Every row also checks that stdout is empty, that the program did not die
 * of a signal, that the output it was asked to write does not exist, and
 * that no temporary file (".<name>.tmp-*") is left behind. In the arguments
 * '@' stands for the test's scratch directory, where setup() writes the
 * files named below (bad CSV, safetensors, configs, texts, checkpoints).
 *
 * Limits are part of the table: a 64 GiB tensor (a sparse file) refused from
 * its header, CSV lines of 100 MB (written at test time), and runs under an
 * address-space limit (ulimit -v, so setrlimit(RLIMIT_AS) in the child) that
 * cannot get their memory: a clean error, never a crash. Those rows are
 * skipped under AddressSanitizer, which cannot run under such a limit.
 */
#include "test_support.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attn/attn.h"
#include "attn/mha.h"
#include "attn/mha_io.h"

typedef struct bad_case {
    const char *args;   /* after "attn"; '@' is the scratch directory */
    int status;         /* expected exit status */
    const char *msg;    /* a fragment of stderr */
    const char *absent; /* an output that must not exist afterwards, or NULL */
    long limit_kb;      /* > 0: run under `ulimit -v limit_kb` */
} bad_case;

/* clang-format off */
static const bad_case cases[] = {
    /* the program and its commands */
    {"frobnicate", 2, "unknown command", NULL, 0},
    {"explain --frobnicate", 2, "--frobnicate", NULL, 0},
    {"explain --embeddings @/good.csv extra", 2, "unexpected argument 'extra'", NULL, 0},
    /* explain: the CSV reader */
    {"explain", 2, "missing --embeddings", NULL, 0},
    {"explain --embeddings @/missing.csv", 2, "missing.csv: cannot open", NULL, 0},
    {"explain --embeddings @", 2, "is a directory", NULL, 0},
    {"explain --embeddings @/empty.csv", 2, "empty.csv:1:1: the file is empty", NULL, 0},
    {"explain --embeddings @/notoken.csv", 2, "expected 'token' as the first header cell", NULL, 0},
    {"explain --embeddings @/nodims.csv", 2, "the header has no dimensions", NULL, 0},
    {"explain --embeddings @/emptydim.csv", 2, "emptydim.csv:1:3: empty dimension name", NULL, 0},
    {"explain --embeddings @/dupdim.csv", 2, "dupdim.csv:1:3: duplicate dimension name 'a' (also column 2)", NULL, 0},
    {"explain --embeddings @/cells.csv", 2, "cells.csv:3:3: expected 3 cells (token and 2 dimensions), found 2", NULL, 0},
    {"explain --embeddings @/word.csv", 2, "word.csv:2:2: expected a number for dimension 'a', found 'abc'", NULL, 0},
    {"explain --embeddings @/emptycell.csv", 2, "found an empty cell", NULL, 0},
    {"explain --embeddings @/nan.csv", 2, "expected a finite number for dimension 'a', found 'nan'", NULL, 0},
    {"explain --embeddings @/range.csv", 2, "1e39 for dimension 'a' is outside the float32 range", NULL, 0},
    {"explain --embeddings @/unterminated.csv", 2, "unterminated quoted cell", NULL, 0},
    {"explain --embeddings @/innerquote.csv", 2, "a quote inside an unquoted cell", NULL, 0},
    {"explain --embeddings @/afterquote.csv", 2, "expected ',' or end of line after a quoted cell", NULL, 0},
    {"explain --embeddings @/nul.csv", 2, "nul.csv:2:3: unexpected NUL byte", NULL, 0},
    {"explain --embeddings @/latin1.csv", 2, "latin1.csv:2:1: not valid UTF-8 (byte 0xe9", NULL, 0},
    {"explain --embeddings @/emptytoken.csv", 2, "emptytoken.csv:2:1: empty token", NULL, 0},
    {"explain --embeddings @/header.csv", 2, "header.csv:2:1: no token rows after the header", NULL, 0},
    {"explain --embeddings @/rows.csv", 2, "more than 4096 token rows (the limit)", NULL, 0},
    {"explain --embeddings /dev/zero", 2, "/dev/zero:1:1: unexpected NUL byte", NULL, 0},
    {"explain --embeddings @/wide100mb.csv", 2, "wide100mb.csv:1:65538: more than 65537 cells", NULL, 0},
    {"explain --embeddings @/cell8mb.csv", 2, "cell8mb.csv:2:1: no token rows after the header", NULL, 0},
    {"explain --embeddings @/huge.csv", 2, "huge.csv: the attention overflows float32", NULL, 0},
    {"explain --embeddings @/good.csv --compare @/otherdims.csv", 2, "otherdims.csv:1:3: dimension 'c', but", NULL, 0},
    /* explain: options and outputs */
    {"explain --embeddings @/good.csv --precision 12", 2, "--precision", NULL, 0},
    {"explain --embeddings @/good.csv --temperature 0", 2, "--temperature", NULL, 0},
    {"explain --embeddings @/good.csv --temperature 1e-45", 2, "the attention overflows float32", NULL, 0},
    {"explain --embeddings @/good.csv --scale x", 2, "--scale", NULL, 0},
    {"explain --embeddings @/good.csv --color sometimes", 2, "--color", NULL, 0},
    {"explain --embeddings @/good.csv --html @/nodir/x.html", 2, "directory '@/nodir' does not exist", "@/nodir", 0},
    {"explain --embeddings @/good.csv --html @/good.csv", 2, "the output is the same file as the input", NULL, 0},
    {"explain --embeddings @/good.csv --xlsx @/good.csv", 2, "the output is the same file as the input", NULL, 0},
    {"explain --embeddings @/good.csv --svg @/good.csv", 2, "exists and is not a directory", NULL, 0},
    {"explain --embeddings @/good.csv --csv @/a-file/sub", 2, "is not a directory", "@/a-file/sub", 0},
    {"explain --embeddings @/bad.csv --html @/out1.html", 2, "bad.csv", "@/out1.html", 0},
    {"explain --embeddings @/good.csv --html @/dangling", 2, "a symbolic link to a missing file", NULL, 0},
    {"explain --embeddings @/good.csv --weights @/missing.safetensors", 2, "missing.safetensors: cannot open", NULL, 0},
    {"explain --embeddings @/good.csv --weights @/good.csv", 2, "good.csv", NULL, 0},
    {"explain --embeddings @/good.csv --weights @/w6.safetensors", 2, "but the layer in", NULL, 0},
    {"explain --embeddings @/good.csv --num-heads 2", 2, "--num-heads needs --weights", NULL, 0},
    {"explain --embeddings @/good.csv --weights @/w.safetensors --compare @/good.csv", 2, "--compare works on the plain walkthrough", NULL, 0},
    /* demo */
    {"demo --epochs 5", 2, "--epochs needs --learn", NULL, 0},
    {"demo --learn --json", 2, "--json is not available", NULL, 0},
    {"demo --seed -1", 2, "--seed", NULL, 0},
    {"demo --html @/nodir/d.html", 2, "does not exist", "@/nodir", 0},
    {"demo --temperature 1e-45", 2, "the attention overflows float32", NULL, 0},
    {"demo --learn --svg @/svg", 2, "not available with it", "@/svg", 0},
    /* mha: arguments */
    {"mha --query @/q.safetensors --out @/o.safetensors", 2, "missing --weights", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --out @/o.safetensors", 2, "missing --query", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/q.safetensors", 2, "missing --out", NULL, 0},
    {"mha --weights @/w.safetensors --query @/q.safetensors --key @/q.safetensors --out @/o.safetensors", 2, "--key and --value go together", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/q.safetensors --num-heads 0 --out @/o.safetensors", 2, "--num-heads", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/q.safetensors --out @/q.safetensors", 2, "the output is the same file as the input", NULL, 0},
    {"mha --weights @/w.safetensors --query @/q.safetensors --out @/w.safetensors", 2, "the output is the same file as the input", NULL, 0},
    {"mha --weights @/w.safetensors --query @/q.safetensors --out @/nodir/o.safetensors", 2, "does not exist", "@/nodir", 0},
    /* mha: the safetensors reader */
    {"mha --weights @/empty.csv --query @/q.safetensors --out @/o.safetensors", 2, "empty.csv", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/st_hugelen.safetensors --out @/o.safetensors", 2, "st_hugelen.safetensors", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/st_notjson.safetensors --out @/o.safetensors", 2, "st_notjson.safetensors", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/st_dtype.safetensors --out @/o.safetensors", 2, "F33", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/st_short.safetensors --out @/o.safetensors", 2, "needs 32", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/st_overlap.safetensors --out @/o.safetensors", 2, "st_overlap.safetensors", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/st_overflow.safetensors --out @/o.safetensors", 2, "st_overflow.safetensors", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/st_two.safetensors --out @/o.safetensors", 2, "expected exactly one tensor, found 2", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/st_i64.safetensors --out @/o.safetensors", 2, "query has dtype I64, expected a floating type", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/st_4d.safetensors --out @/o.safetensors", 2, "should be unbatched 2-D (L, E) or batched 3-D", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/q5.safetensors --out @/o.safetensors", 2, "expected embedding dimension 4", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/st_zero.safetensors --out @/o.safetensors", 2, "every dimension must be > 0", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/qnan.safetensors --out @/o.safetensors", 2, "holds NaN at element 3", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/qinf.safetensors --out @/o.safetensors", 2, "holds an infinity at element 0", "@/o.safetensors", 0},
    {"mha --weights @/wnan.safetensors --query @/q.safetensors --out @/o.safetensors", 2, "holds NaN", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/q.safetensors --attn-mask @/q.safetensors --out @/o.safetensors", 2, "attn_mask has shape [2, 4], expected [2, 2]", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/q.safetensors --attn-mask @/m_i32.safetensors --out @/o.safetensors", 2, "only bool (BOOL, U8) and floating masks", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/q.safetensors --key-padding-mask @/q.safetensors --out @/o.safetensors", 2, "expecting key_padding_mask shape of [2] (S)", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/q.safetensors --key @/q3.safetensors --value @/q3.safetensors --out @/o.safetensors", 2, "expected key to be 2-D too", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/q1.safetensors --key @/q1.safetensors --value @/q2b.safetensors --out @/o.safetensors", 2, "must share N = 1 and S", "@/o.safetensors", 0},
    {"mha --weights @/w.safetensors --query @/st_64g.safetensors --out @/o.safetensors", 2, "found 1024", "@/o.safetensors", 0},
    /* 8192 tokens: attention weights of 512 MB under 120 MB (OpenBLAS's pool once spun here after the message) */
    {"mha --weights @/w.safetensors --query @/q8k.safetensors --out @/o.safetensors", 1, "cannot allocate", "@/o.safetensors", 120000},
    /* train: the text and its options */
    {"train --out @/ck", 2, "missing --data", "@/ck", 0},
    {"train --data @/missing.txt --out @/ck", 2, "missing.txt: cannot open", NULL, 0},
    {"train --data @ --out @/ck", 2, "is a directory", NULL, 0},
    {"train --data @/empty.csv --out @/ck", 2, "empty.csv: the file is empty", NULL, 0},
    {"train --data @/nul.txt --out @/ck", 2, "nul.txt:1:4: unexpected NUL byte", NULL, 0},
    {"train --data /dev/zero --out @/ck", 2, "/dev/zero:1:1: unexpected NUL byte", NULL, 0},
    {"train --data @/latin1.txt --out @/ck", 2, "latin1.txt:1:4: not valid UTF-8", NULL, 0},
    {"train --data @/text.txt --out @/ck --iters 0", 2, "--iters: expected an integer >= 1, found '0'", NULL, 0},
    {"train --data @/text.txt --out @/ck --width 7 --heads 2", 2, "7", NULL, 0},
    {"train --data @/text.txt --out @/ck --lr abc", 2, "--lr: expected a number > 0, found 'abc'", NULL, 0},
    {"train --data @/text.txt --out @/ck --config @/notjson.json", 2, "notjson.json: not a JSON object", NULL, 0},
    {"train --data @/text.txt --out @/ck --config @/unknownkey.json", 2, "frobs", NULL, 0},
    {"train --data @/text.txt --out @/ck --config @/badtype.json", 2, "layers", NULL, 0},
    {"train --data @/text.txt --out @/ck --json-log @/text.txt", 2, "the output is the same file as the input", NULL, 0},
    {"train --data @/text.txt --resume @/missing-ck", 2, "missing-ck", NULL, 0},
    {"train --data @/text.txt --resume @/gpt --config @/unknownkey.json", 2, "--config cannot be changed when resuming", NULL, 0},
    {"train --data @/text.txt --out @/good.csv", 2, "exists and is not a directory", NULL, 0},
    {"train --data @/text.txt --out @/ck --width 4096 --layers 64 --context 8 --iters 1", 1, "cannot allocate an arena", NULL, 400000},
    {"train --data @/text.txt --out @/ck2 --width 1024 --layers 8 --context 8 --iters 1", 1, "cannot allocate an arena of", NULL, 300000},
    /* train --task classify: the TSV reader */
    {"train --task classify --data @/nodata --out @/ck", 2, "train.tsv", NULL, 0},
    {"train --task classify --data @/tsv_notab --out @/ck", 2, "train.tsv:2: no tab between the label and the text", NULL, 0},
    {"train --task classify --data @/tsv_nolabel --out @/ck", 2, "train.tsv:1: the label is empty", NULL, 0},
    {"train --task classify --data @/tsv_ctrl --out @/ck", 2, "train.tsv:1:2: a control character (0x1b) in the label", NULL, 0},
    {"train --task classify --data @/tsv_nul --out @/ck", 2, "train.tsv:1: a NUL byte in the line", NULL, 0},
    /* generate and classify: checkpoints */
    {"generate --model @/missing-ck", 2, "missing-ck", NULL, 0},
    {"generate --model @/gpt_notjson", 2, "config.json: not a JSON object", NULL, 0},
    {"generate --model @/gpt_huge", 2, "does not fit in memory", NULL, 0},
    {"generate --model @/gpt --tokens 99999999999999999999", 2, "--tokens", NULL, 0},
    {"generate --model @/gpt --prompt Q", 2, "Q", NULL, 0},
    /* explain --model: a text through a GPT (context 8, 1 layer, 1 head) */
    {"explain --model @/gpt --text 'the cat sat on' --html @/m.html", 2, "--text: 14 tokens, but the model has 8 positions", "@/m.html", 0},
    {"explain --model @/gpt --text the --compare-text 'the cat sat on'", 2, "--compare-text: 14 tokens, but the model has 8 positions (its context: attn train --context)", NULL, 0},
    {"explain --model @/gpt --text the --layer 1", 2, "--layer 1: the model has 1 layer (expected 0..0)", NULL, 0},
    {"explain --model @/gpt --text the --head 2 --csv @/mcsv", 2, "--head 2: the model has 1 head (expected 0..0)", "@/mcsv", 0},
    {"explain --model @/gpt --text ''", 2, "--text: expected a non-empty text", NULL, 0},
    {"explain --model @/gpt --text the --compare-text Q", 2, "--compare-text:1:1: character 'Q'", NULL, 0},
    {"explain --model @/hf_notok --text abc --html @/m.html", 2, "expected GPT-2's tokenizer files encoder.json and vocab.bpe", "@/m.html", 0},
    {"explain --model @/hf_notok --text abc", 2, "hf_notok: no tokenizer beside the weights: expected GPT-2's tokenizer files encoder.json and vocab.bpe (or vocab.json and merges.txt): GPT-2's own, or those 'attn tokenize --train' writes (as for 'attn train --tokenizer')", NULL, 0},
    {"generate --model @/hf_notok", 2, "no tokenizer beside the weights", NULL, 0},
    {"explain --model @/gpt --text the --xlsx @/m.xlsx", 2, "--xlsx with --model needs --layer L and --head H", "@/m.xlsx", 0},
    {"explain --model @/gpt --text the --temperature 2", 2, "apply to --embeddings", NULL, 0},
    {"explain --text the", 2, "need --model DIR", NULL, 0},
    {"explain --model @/gpt", 2, "--model needs --text TEXT", NULL, 0},
    {"classify --model @/missing-ck --text a", 2, "missing-ck", NULL, 0},
    {"classify --model @/gpt --text a", 2, "not a classifier checkpoint", NULL, 0},
    {"classify --model @/cls --text cat --html @/cls/best.safetensors", 2, "the output is the same file as the input", NULL, 0},
    {"classify --model @/cls --text cat --xlsx @/cls/config.json", 2, "the output is the same file as the input", NULL, 0},
    {"classify --model @/cls --text cat --html @/cls/.steps/current/vocab.json", 2, "the output is the same file as the input", NULL, 0},
    {"classify --model @/cls --text cat --svg @/cls/model.safetensors", 2, "exists and is not a directory", NULL, 0},
    {"classify --model @/cls --text cat --html @/nodir/c.html", 2, "does not exist", "@/nodir", 0},
    /* what is read is bounded before it is allocated */
    {"classify --model @/cls < @/longline.txt", 2, "stdin:1: a line longer than 1048576 bytes", NULL, 0},
    {"train --data @/text.txt --init @/bpe --out @/ck_init", 2, "bpe/config.json: cannot open", "@/ck_init", 0},
    {"tokenize --gpt2 @/bpe < /dev/zero", 2, "stdin: more than the limit of 268435456 bytes", NULL, 0},
    {"generate --model @/gpt_bigvocab --tokens 2", 2, "vocab.json: 73400320 bytes, more than the limit of 67108864", NULL, 0},
    /* data wordnet */
    {"data", 2, "missing the data set name", NULL, 0},
    {"data imagenet --out @/wn", 2, "unknown data set 'imagenet'", "@/wn", 0},
    {"data wordnet", 2, "missing --out", NULL, 0},
    {"data wordnet --source @/missing.noun --out @/wn", 2, "missing.noun: cannot read: No such file or directory", NULL, 0},
    {"data wordnet --source /dev/zero --out @/wn", 2, "/dev/zero:1: a NUL byte in the line", NULL, 0},
    {"data wordnet --source @/bad.noun --out @/wn", 2, "bad.noun:1: expected an 8-digit synset offset", NULL, 0},
    {"data wordnet --source @/verb.noun --out @/wn", 2, "lexicographer file 31 is not a noun file", NULL, 0},
    {"data wordnet --source @/long.noun --out @/wn", 2, "long.noun:1: a line longer than 1048576 bytes", NULL, 0},
};
/* clang-format on */

/* ---- the scratch files ---------------------------------------------------- */

static char dir[600];

static const char *at(const char *name)
{
    static char buf[8][700];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

static void put(const char *name, const void *data, size_t n)
{
    FILE *f = fopen(at(name), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void put_s(const char *name, const char *text) { put(name, text, strlen(text)); }

/* A safetensors file from its header JSON and data (`pad` to 8 bytes). */
static void put_st(const char *name, const char *header, const void *data, size_t n)
{
    char hdr[1024];
    size_t h = (size_t)snprintf(hdr, sizeof hdr, "%s", header);
    while (h % 8) hdr[h++] = ' ';
    unsigned char *buf = malloc(8 + h + n);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, hdr, h);
    if (n) memcpy(buf + 8 + h, data, n);
    put(name, buf, 8 + h + n);
    free(buf);
}

static void put_f32(const char *name, const char *shape, const float *v, size_t n)
{
    char hdr[256];
    snprintf(hdr, sizeof hdr, "{\"x\":{\"dtype\":\"F32\",\"shape\":%s,\"data_offsets\":[0,%zu]}}",
             shape, n * 4);
    put_st(name, hdr, v, n * 4);
}

static void run_ok(const char *cmd)
{
    run_result r = run_cmd("%s", cmd);
    if (r.status != 0) fail_msg("setup '%s': status %d: %s", cmd, r.status, r.err);
    run_result_free(&r);
}

static void setup_csv(void)
{
    put_s("good.csv", "token,a,b\ncat,1,0\nmouse,0.5,0.5\n");
    put_s("bad.csv", "token,a,b\ncat,1\n");
    put_s("empty.csv", "");
    put_s("notoken.csv", "word,a\nx,1\n");
    put_s("nodims.csv", "token\nx\n");
    put_s("emptydim.csv", "token,a,,b\nx,1,2,3\n");
    put_s("dupdim.csv", "token,a,a\nx,1,2\n");
    put_s("cells.csv", "token,a,b\nx,1,2\ny,1\n");
    put_s("word.csv", "token,a\nx,abc\n");
    put_s("emptycell.csv", "token,a\nx,\n");
    put_s("nan.csv", "token,a\nx,nan\n");
    put_s("range.csv", "token,a\nx,1e39\n");
    put_s("unterminated.csv", "token,a\n\"x,1\n");
    put_s("innerquote.csv", "token,a\nx\"y,1\n");
    put_s("afterquote.csv", "token,a\n\"x\"y,1\n");
    put("nul.csv", "token,a\nx,\0\n", 12);
    put_s("latin1.csv", "token,a\ncaf\xe9,1\n");
    put_s("emptytoken.csv", "token,a\n,1\n");
    put_s("header.csv", "token,a\n");
    put_s("huge.csv", "token,a\nx,3e38\ny,3e38\n");
    put_s("otherdims.csv", "token,a,c\nx,1,2\n");
    FILE *f = fopen(at("rows.csv"), "wb");
    assert_non_null(f);
    fputs("token,a\n", f);
    for (int i = 0; i < 4097; i++) fprintf(f, "t%d,1\n", i);
    fclose(f);
    /* Lines of 100 MB, made here rather than kept in the repository. */
    const size_t big = (size_t)100 << 20;
    char *line = malloc(big + 16);
    assert_non_null(line);
    memcpy(line, "token", 5);
    for (size_t i = 5; i + 1 < big; i += 2) line[i] = ',', line[i + 1] = 'a';
    line[big - 1] = '\n';
    put("wide100mb.csv", line, big);
    /* One cell of 8 MB (a name, then no rows). */
    const size_t cell = (size_t)8 << 20;
    memcpy(line, "token,", 6);
    memset(line + 6, 'a', cell - 7);
    line[cell - 1] = '\n';
    put("cell8mb.csv", line, cell);
    free(line);
}

static void setup_safetensors(void)
{
    float q[8] = {1, 2, 3, 4, 5, 6, 7, 8}, q5[10] = {0}, nan8[8] = {1, 2, 3, 0, 5, 6, 7, 8};
    nan8[3] = 0.0f / 0.0f;
    float inf8[8] = {1e38f * 10.0f, 2, 3, 4, 5, 6, 7, 8};
    put_f32("q.safetensors", "[2,4]", q, 8);
    put_f32("q1.safetensors", "[1,2,4]", q, 8);
    put_f32("q3.safetensors", "[1,2,4]", q, 8);
    float q16[16] = {0};
    put_f32("q2b.safetensors", "[2,2,4]", q16, 16);

    put_f32("q5.safetensors", "[2,5]", q5, 10);
    put_f32("qnan.safetensors", "[2,4]", nan8, 8);
    put_f32("qinf.safetensors", "[2,4]", inf8, 8);
    put_f32("st_4d.safetensors", "[1,1,2,4]", q, 8);
    put_f32("st_zero.safetensors", "[0,4]", q, 0);
    put_st("st_notjson.safetensors", "not json at all", NULL, 0);
    put_st("st_dtype.safetensors", "{\"x\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", q, 8);
    put_st("st_short.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,16]}}", q, 16);
    put_st("st_overlap.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", q, 12);
    put_st("st_overflow.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,16],"
           "\"data_offsets\":[0,8]}}", q, 8);
    put_st("st_two.safetensors", "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", q, 16);
    put_st("st_i64.safetensors", "{\"x\":{\"dtype\":\"I64\",\"shape\":[2,4],\"data_offsets\":[0,64]}}", NULL, 0);
    int32_t m[4] = {0, 1, 0, 0};
    put_st("m_i32.safetensors", "{\"x\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", m, 16);
    unsigned char hugelen[16] = {0, 0, 0, 0, 0, 0, 0, 0x80, '{', '}'};
    put("st_hugelen.safetensors", hugelen, sizeof hugelen);
    /* I64 data: 64 bytes of zeros appended by hand. */
    FILE *f = fopen(at("st_i64.safetensors"), "ab");
    assert_non_null(f);
    for (int i = 0; i < 64; i++) fputc(0, f);
    fclose(f);
    /* A 64 GiB tensor: a sparse file, refused from its header (E = 1024). */
    write_sparse_safetensors(at("st_64g.safetensors"), "F32", "[1,16777216,1024]", (size_t)1 << 36);
    write_sparse_safetensors(at("q8k.safetensors"), "F32", "[8192,4]", (size_t)8192 * 4 * 4);
}

static void setup_models(void)
{
    /* Weights (E = 4, H = 2 recorded in the file), one with a NaN, one of E = 6. */
    attn_mha_config cfg = attn_mha_default_config(4, 2);
    for (int k = 0; k < 3; k++) {
        if (k == 2) cfg = attn_mha_default_config(6, 2);
        attn_mha *m = NULL;
        assert_int_equal(attn_mha_create(&m, &cfg), ATTN_OK);
        assert_int_equal(attn_mha_init(m, 5), ATTN_OK);
        size_t n;
        if (k == 1) attn_mha_params(m, &n)[1] = 0.0f / 0.0f;
        const char *names[3] = {"w.safetensors", "wnan.safetensors", "w6.safetensors"};
        assert_int_equal(attn_mha_save_safetensors(m, at(names[k])), ATTN_OK);
        attn_mha_free(m);
    }
    /* A tiny trained GPT, and copies of it made bad. */
    put_s("text.txt", "the cat sat on the mat and the mouse ran under the cat and the mat\n"
                      "the mouse and the cat sat on the mat; the dog ran after the mouse\n");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' train --data '%s' --out '%s' --iters 1 --layers 1 --heads 1 "
             "--width 8 --context 8 --batch 2 --eval-iters 1", attn_bin(), at("text.txt"), at("gpt"));
    run_ok(cmd);
    /* A tiny trained classifier (its files are the inputs of classify). */
    snprintf(cmd, sizeof cmd, "'%s' train --task classify --data '%s' --out '%s' --iters 2 --layers 1 "
             "--heads 1 --width 8 --context 6 --batch 8 --min-count 1 --no-baselines",
             attn_bin(), write_tiny_labelled(), at("cls"));
    run_ok(cmd);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && cp -r '%s' '%s' && echo '[1' > '%s/config.json' && "
             "sed -i --follow-symlinks 's/\"layers\":[^,]*/\"layers\": 4096/; s/\"width\":[^,]*/\"width\": 65536/' "
             "'%s/config.json'", at("gpt"), at("gpt_notjson"), at("gpt"), at("gpt_huge"),
             at("gpt_notjson"), at("gpt_huge"));
    run_ok(cmd);
    /* a vocabulary past its 64 MiB bound, a GPT-2 tokenizer, a 2 MiB line */
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && truncate -s 70M '%s/vocab.json' && "
             "'%s' tokenize --train '%s' --vocab-size 260 --out '%s' >/dev/null && "
             "head -c 2097152 /dev/zero | tr '\\0' a > '%s'", at("gpt"), at("gpt_bigvocab"),
             at("gpt_bigvocab"), attn_bin(), at("text.txt"), at("bpe"), at("longline.txt"));
    run_ok(cmd);
    /* a GPT-2 folder without its tokenizer files */
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/hf/f32/config.json' '%s/hf/f32/model.safetensors' '%s'/",
             at("hf_notok"), ATTN_TEST_FIXTURES, ATTN_TEST_FIXTURES, at("hf_notok"));
    run_ok(cmd);
    put("nul.txt", "abc\0def\n", 8);
    put_s("latin1.txt", "caf\xe9\n");
    put_s("notjson.json", "[1, 2");
    put_s("unknownkey.json", "{\"frobs\": 3}");
    put_s("badtype.json", "{\"layers\": \"two\"}");
}

static void setup_tsv_wordnet(void)
{
    const char *dirs[4] = {"tsv_notab", "tsv_nolabel", "tsv_ctrl", "tsv_nul"};
    const char *train[4] = {"a\tx\nno tab here\n", "\tx\n", "a\x1b\tx\n", "a\tx\0y\n"};
    const size_t len[4] = {15, 3, 5, 7};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(mkdir(at(dirs[i]), 0755), 0);
        char name[100];
        snprintf(name, sizeof name, "%s/train.tsv", dirs[i]);
        put(name, train[i], len[i]);
        snprintf(name, sizeof name, "%s/valid.tsv", dirs[i]);
        put_s(name, "a\tx\n");
        snprintf(name, sizeof name, "%s/test.tsv", dirs[i]);
        put_s(name, "a\tx\n");
    }
    assert_int_equal(mkdir(at("nodata"), 0755), 0);
    put_s("bad.noun", "hello world\n");
    put_s("verb.noun", "00001740 31 n 01 entity 0 000 | x\n");
    char *line = malloc((size_t)2 << 20);
    assert_non_null(line);
    memset(line, '0', (size_t)2 << 20);
    put("long.noun", line, (size_t)2 << 20);
    free(line);
    put_s("a-file", "x");
    assert_int_equal(symlink("nowhere/x.html", at("dangling")), 0);
}

/* ---- the run --------------------------------------------------------------- */

/* s with every '@' replaced by the scratch directory. */
static void expand(char *out, size_t n, const char *s)
{
    size_t k = 0;
    for (; *s && k + 1 < n; s++) {
        if (*s == '@') k += (size_t)snprintf(out + k, n - k, "%s", dir);
        else out[k++] = *s;
    }
    out[k < n ? k : n - 1] = '\0';
}

/* A temporary file of an atomic write left behind anywhere in the scratch
 * directory (one level deep is where outputs go). */
static int leftover_tmp(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.' && strstr(e->d_name, ".tmp-")) found = 1;
    }
    closedir(d);
    return found;
}

static void test_catalogue(void **state)
{
    (void)state;
    size_t n = sizeof cases / sizeof *cases, failed = 0, skipped = 0;
    assert_true(n >= 80);
    for (size_t i = 0; i < n; i++) {
        const bad_case *c = &cases[i];
        if (c->limit_kb > 0 && ATTN_TEST_UNDER_ASAN) {
            skipped++;
            continue;
        }
        char args[2048], msg[1024], absent[1024];
        expand(args, sizeof args, c->args);
        expand(msg, sizeof msg, c->msg);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        /* under a memory limit, a hang is a failure too (status 137); without
         * the pools' variables the suite sets, so that attn sets them and
         * executes itself again under the limit (tools/omp_env.c) */
        run_result r = c->limit_kb ? run_cmd("ulimit -v %ld; exec env -u OMP_WAIT_POLICY -u OPENBLAS_NUM_THREADS "
                                             "timeout -s KILL 120 '%s' %s", c->limit_kb,
                                             attn_bin(), args)
                                   : run_cmd("'%s' %s", attn_bin(), args);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (getenv("ATTN_TEST_VERBOSE")) print_message("case %zu: %.2f s\n", i, secs);
        const char *why = NULL;
        if (r.status < 0) why = "died of a signal";
        else if (r.status != c->status) why = "wrong exit status";
        else if (!strstr(r.err, msg)) why = "message lacks the fragment";
        else if (r.out[0]) why = "stdout is not empty";
        else if (c->absent && (expand(absent, sizeof absent, c->absent), access(absent, F_OK) == 0))
            why = "an output was left behind";
        else if (leftover_tmp(dir)) why = "a temporary file was left behind";
        if (why) {
            failed++;
            print_error("case %zu: attn %s\n  %s: status %d (want %d), want '%s'\n  stderr: %.400s\n"
                        "  stdout: %.200s\n",
                        i, args, why, r.status, c->status, msg, r.err, r.out);
        }
        run_result_free(&r);
    }
    print_message("%zu bad inputs, %zu skipped under AddressSanitizer\n", n, skipped);
    if (failed) fail_msg("%zu of %zu cases failed", failed, n);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/cat", test_tmpdir());
    if (mkdir(dir, 0755) != 0) return -1;
    setup_csv();
    setup_safetensors();
    setup_models();
    setup_tsv_wordnet();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_catalogue)};
    return cmocka_run_group_tests(tests, setup, NULL);
}
