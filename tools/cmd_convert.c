/* cmd_convert.c - `attn convert --to-hf`: a checkpoint of `attn train` as a
 * GPT-2 folder in Hugging Face's layout. */
#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <sys/stat.h>

#include "attn/export.h"
#include "attn/gpt_hf.h"
#include "attn/train.h"
#include "cli.h"
#include "cmd_tokenize.h"

static const char usage[] =
    "usage: attn convert --to-hf CHECKPOINT --out DIR\n"
    "\n"
    "Writes a model trained by 'attn train' as GPT-2 does in Hugging Face's\n"
    "layout: DIR/config.json and DIR/model.safetensors (Conv1D weights stored\n"
    "(in, out), the head tied to wte, zero biases and \"attn_bias\": false for a\n"
    "model trained without them), and, for a byte-level BPE model (attn train\n"
    "--tokenizer), its encoder.json and vocab.bpe. transformers' GPT2LMHeadModel\n"
    "and 'attn generate --model DIR' read the folder; 'attn train --init DIR'\n"
    "fine-tunes it.\n"
    "\n"
    "options:\n"
    "  --to-hf CHECKPOINT  a checkpoint folder of 'attn train'\n"
    "  --out DIR           the folder to write (created if needed)\n"
    "  -h, --help          show this help\n";

int cmd_convert(int argc, char **argv)
{
    enum { O_TO_HF = 7000, O_OUT };
    static const struct option longopts[] = {{"to-hf", required_argument, 0, O_TO_HF},
                                             {"out", required_argument, 0, O_OUT},
                                             {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *from = NULL, *out = NULL;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(usage, stdout); return cli_finish_stdout("convert");
        case O_TO_HF: from = optarg; break;
        case O_OUT: out = optarg; break;
        default: return cli_bad_option("convert", usage, c, argv);
        }
    }
    if (optind < argc) return cli_usage_error("convert", usage, "unexpected argument '%s'", argv[optind]);
    if (!from || !out) return cli_usage_error("convert", usage, "missing --%s", from ? "out DIR" : "to-hf CHECKPOINT");
    attn_checkpoint info;
    attn_gpt *g = NULL;
    attn_tokenizer *tok = NULL;
    attn_status st = attn_checkpoint_load(from, 1, &info, &g, &tok);
    if (!st) st = attn_export_check_dir(out);
    if (!st && mkdir(out, 0777) != 0 && errno != EEXIST)
        st = attn_error(ATTN_E_IO, "%s: cannot create the directory: %s", out, strerror(errno));
    if (!st) st = attn_gpt_hf_save(g, out);
    const int bpe = attn_tokenizer_is_bpe(tok);
    if (!st && bpe) st = attn_bpe_tokenizer_save_dir(tok, out);
    if (!st)
        printf("attn convert: wrote %s/config.json, %s/model.safetensors%s\n", out, out,
               bpe ? ", encoder.json and vocab.bpe"
                   : " (the character vocabulary has no GPT-2 tokenizer form: weights only)");
    attn_gpt_free(g);
    attn_tokenizer_free(tok);
    return st ? cli_fail("convert", st) : cli_finish_stdout("convert");
}
