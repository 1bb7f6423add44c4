/* cmd_demo.c - `attn demo`: the article's example, every step shown. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: attn demo [options]\n"
    "\n"
    "Self-attention step by step on the built-in example: \"mouse\" has one input\n"
    "vector, both animal and tech; next to \"cat\" its output becomes animal-like,\n"
    "next to \"keyboard\" tech-like. Needs no file.\n"
    "\n"
    "options:\n" CLI_ATTENTION_USAGE;

#define N_SENTENCES 2

int cmd_demo(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_ATTENTION_LONG_OPTIONS, {0, 0, 0, 0}};
    cli_attention_opts o;
    cli_attention_defaults(&o);
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage, stdout);
            return cli_finish_stdout("demo");
        }
        if (c == '?' || c == ':') return cli_bad_option("demo", usage, c, argv);
        if (cli_attention_option("demo", usage, c, optarg, &o) < 0) return CLI_BAD_INPUT;
    }
    if (optind < argc) return cli_usage_error("demo", usage, "unexpected argument '%s'", argv[optind]);

    int rc = CLI_OK;
    attn_embeddings vocab = {0}, x[N_SENTENCES] = {{0}};
    attn_trace *traces[N_SENTENCES] = {0};
    const char *texts[N_SENTENCES];
    attn_status st = attn_seed_vocabulary(&vocab);
    for (size_t i = 0; !st && i < N_SENTENCES; i++) {
        texts[i] = attn_seed_sentence(i);
        st = attn_embeddings_lookup(&x[i], &vocab, texts[i]);
        if (!st) st = attn_trace_create(&traces[i]);
        if (!st) st = attn_self_attention(NULL, &x[i], &o.sdpa, traces[i]);
    }
    if (st) {
        rc = cli_fail("demo", st);
        goto done;
    }

    const attn_trace *const *ct = (const attn_trace *const *)traces;
    if (o.json) {
        st = attn_json_walkthroughs(stdout, ct, texts, N_SENTENCES);
    } else {
        char scale[128];
        cli_describe_scale(scale, sizeof scale, &o.sdpa, vocab.n_dims);
        const char *focus = attn_seed_focus_word();
        printf("attn demo: self-attention, step by step\n\n"
               "Two sentences share the word \"%s\", whose input vector is the same in both:\n"
               "as much animal as tech, so on its own it is ambiguous. Self-attention with\n"
               "Q = K = V = X (no learned weights), d = %zu, %s.\n",
               focus, vocab.n_dims, scale);
        for (size_t i = 0; !st && i < N_SENTENCES; i++) {
            printf("\n== Sentence %zu: \"%s\" ==\n\n", i + 1, texts[i]);
            st = attn_text_walkthrough(stdout, traces[i], &o.text);
        }
        if (!st) {
            printf("\n== The point: one input vector, two meanings ==\n\n");
            st = attn_text_token_comparison(stdout, focus, ct, texts, N_SENTENCES, &o.text);
        }
        if (!st) putchar('\n');
        for (size_t i = 0; !st && i < N_SENTENCES; i++) {
            char dom[128];
            long row = attn_embeddings_find(&x[i], focus);
            if (row >= 0 && attn_dominant_dimension(traces[i], "output", (size_t)row, dom, sizeof dom))
                printf("In \"%s\" the output of \"%s\" is mostly %s.\n", texts[i], focus, dom);
        }
        if (!st)
            printf("The embedding table did not change; only how each token mixes in its "
                   "context did.\n");
    }
    if (st) rc = cli_fail("demo", st);
    else rc = cli_finish_stdout("demo");
done:
    for (size_t i = 0; i < N_SENTENCES; i++) {
        attn_trace_free(traces[i]);
        attn_embeddings_free(&x[i]);
    }
    attn_embeddings_free(&vocab);
    return rc;
}
