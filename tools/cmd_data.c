/* cmd_data.c - `attn data wordnet`: a labelled data set from WordNet. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attn/wordnet.h"
#include "cli.h"
#include "cmd_classify.h"

static const char usage[] =
    "usage: attn data wordnet --out DIR [--source FILE]\n"
    "\n"
    "Builds a classification data set from WordNet's nouns (Debian package\n"
    "wordnet-base): one example per noun synset, the text its words and gloss\n"
    "(\"mouse, computer mouse: a hand-operated electronic device ...\"), the label\n"
    "its lexicographer file (noun.animal, noun.artifact, ...: 26 classes). The\n"
    "split is CRC-32 of the synset offset mod 10: 0 test, 1 validation, else train.\n"
    "Writes DIR/train.tsv, DIR/valid.tsv, DIR/test.tsv (label<TAB>text).\n"
    "\n"
    "options:\n"
    "  --out DIR            output directory (created if missing; required)\n"
    "  --source FILE        WordNet's noun data (" ATTN_WORDNET_NOUNS ")\n"
    "  -h, --help           show this help\n";

int cmd_data(int argc, char **argv)
{
    enum { O_OUT = 6000, O_SOURCE };
    static const struct option longopts[] = {{"out", required_argument, 0, O_OUT},
                                             {"source", required_argument, 0, O_SOURCE},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        fputs(usage, stdout);
        return cli_finish_stdout("data");
    }
    if (argc < 2 || argv[1][0] == '-')
        return cli_usage_error("data", usage, "missing the data set name (known: wordnet)");
    if (strcmp(argv[1], "wordnet"))
        return cli_usage_error("data", usage, "unknown data set '%s' (known: wordnet)", argv[1]);
    const char *out = NULL, *source = ATTN_WORDNET_NOUNS;
    int explicit_source = 0;
    int c;
    opterr = 0;
    optind = 1;
    argc--, argv++;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(usage, stdout); return cli_finish_stdout("data");
        case O_OUT: out = optarg; break;
        case O_SOURCE: source = optarg, explicit_source = 1; break;
        default: return cli_bad_option("data", usage, c, argv);
        }
    }
    if (optind < argc) return cli_usage_error("data", usage, "unexpected argument '%s'", argv[optind]);
    if (!out) return cli_usage_error("data", usage, "missing --out DIR");
    attn_status st = ATTN_OK;
    /* "WordNet is not installed" is the library's guess for its default path;
     * a path the user named is reported as that path. */
    FILE *src = explicit_source ? fopen(source, "rb") : NULL;
    if (explicit_source && !src) st = attn_error(ATTN_E_IO, "%s: cannot read: %s", source, strerror(errno));
    if (src) fclose(src);
    if (!st) st = attn_export_check_dir(out);
    int created = 0;
    if (!st && mkdir(out, 0777) == 0) created = 1;
    else if (!st && errno != EEXIST)
        st = attn_error(ATTN_E_IO, "%s: cannot create the directory: %s", out, strerror(errno));
    attn_wordnet_stats s;
    if (!st) st = attn_wordnet_build(source, out, &s);
    if (st && created) rmdir(out); /* a failed run leaves no empty directory behind */
    if (st) return cli_fail("data", st);
    printf("attn data wordnet: %zu synsets in %zu classes from %s\n"
           "  %s/train.tsv  %zu\n  %s/valid.tsv  %zu\n  %s/test.tsv   %zu\n",
           s.synsets, s.classes, source, out, s.split[ATTN_SPLIT_TRAIN], out,
           s.split[ATTN_SPLIT_VALID], out, s.split[ATTN_SPLIT_TEST]);
    return cli_finish_stdout("data");
}
