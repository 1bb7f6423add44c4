/* cmd_demo.c - `attn demo`: the article's example, every step shown. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "attn/sense.h"
#include "cli.h"

static const char usage[] =
    "usage: attn demo [options]\n"
    "\n"
    "Self-attention step by step on the built-in example: \"mouse\" has one input\n"
    "vector, both animal and tech; next to \"cat\" its output becomes animal-like,\n"
    "next to \"keyboard\" tech-like. Needs no file.\n"
    "\n"
    "With --learn: learned projections. On generated sentences in which the\n"
    "sense of \"mouse\" (animal or tech) is decided by its context, W_Q, W_K and\n"
    "W_V are trained by gradient descent until mouse's attention output tells\n"
    "the sense; shows the loss falling, the held-out accuracy and the attention\n"
    "of the two example sentences before and after.\n"
    "\n"
    "options:\n" CLI_ATTENTION_USAGE CLI_EXPORT_USAGE
    "  --learn              learn the projections (see above)\n"
    "  --seed N             seed of --learn's data, initialisation and order (default 1)\n"
    "  --epochs N           training epochs of --learn (default 40)\n";

#define N_SENTENCES 2

static void print_progress(const attn_sense_progress *p, void *user)
{
    (void)user;
    /* Every epoch for short runs, else about ten lines. */
    size_t every = p->epochs <= 20 ? 1 : p->epochs / 10;
    if (p->epoch == 1 || p->epoch % every == 0 || p->epoch == p->epochs)
        printf("  epoch %3zu/%zu   loss %.4f   training accuracy %5.1f%%   held-out %5.1f%%\n",
               p->epoch, p->epochs, p->loss, 100 * p->train_accuracy, 100 * p->test_accuracy);
}

/* The attention of each example sentence under the task's current weights. */
static attn_status show_examples(attn_sense *task, const attn_text_opts *text)
{
    attn_status st = ATTN_OK;
    for (size_t i = 0; !st && i < N_SENTENCES; i++) {
        attn_trace *t = NULL;
        double p[ATTN_SENSE_CLASSES];
        int sense = 0;
        const char *sentence = attn_seed_sentence(i);
        st = attn_trace_create(&t);
        if (!st) st = attn_sense_run(task, sentence, t, p, &sense);
        if (!st) {
            char title[320];
            snprintf(title, sizeof title,
                     "\n  \"%s\": p(%s) = %.3f, p(%s) = %.3f, p(%s) = %.3f: \"%s\" is read "
                     "as %s\n  Attention (row: who looks, column: at whom)",
                     sentence, attn_sense_name(0), p[0], attn_sense_name(1), p[1],
                     attn_sense_name(2), p[2], attn_sense_word(), attn_sense_name(sense));
            st = attn_text_matrix(stdout, t, "head0.attention", title, text);
        }
        attn_trace_free(t);
    }
    return st;
}

static int demo_learn(const cli_attention_opts *o, uint64_t seed, size_t epochs)
{
    attn_sense_opts so = attn_sense_defaults();
    so.seed = seed;
    if (epochs) so.epochs = epochs;
    attn_sense *task = NULL;
    attn_status st = attn_sense_create(&task, &so);
    if (st) return cli_fail("demo", st);
    const attn_mha_config *c = attn_mha_get_config(attn_sense_layer(task));
    printf("attn demo --learn: attention that learns to tell \"%s\" the animal from \"%s\" the "
           "device\n\n"
           "%zu generated sentences such as \"cat and mouse are friends\", \"a mouse near the "
           "usb\"\n"
           "or \"the mouse with a box\" (sense: animal, tech, or unclear next to a plain object);\n"
           "%zu to learn from, %zu held out. Every word has a fixed random embedding (d = %zu);\n"
           "\"%s\" has the same vector in every sentence. One attention head learns\n"
           "W_Q (%zu -> %zu), W_K (%zu -> %zu), W_V (%zu -> %zu: d_v != d) and a read-out of its\n"
           "output at \"%s\" (out_proj, %zu -> 3 logits, softmax over the senses).\n\n"
           "== Before learning (random weights, seed %llu) ==\n",
           attn_sense_word(), attn_sense_word(), attn_sense_count(task, 0) + attn_sense_count(task, 1),
           attn_sense_count(task, 0), attn_sense_count(task, 1), c->embed_dim, attn_sense_word(),
           c->embed_dim, c->head_dim, c->embed_dim, c->head_dim, c->embed_dim, c->v_head_dim,
           attn_sense_word(), c->v_head_dim, (unsigned long long)seed);
    st = show_examples(task, &o->text);
    if (!st) {
        printf("\n== Learning (Adam, learning rate %g, %zu sentences per step) ==\n",
               (double)so.lr, so.batch);
        fflush(stdout);
        st = attn_sense_train(task, print_progress, NULL);
    }
    if (!st) {
        printf("\n== After learning ==\n\n  Held-out accuracy: %.1f%% of %zu sentences never "
               "trained on.\n",
               100 * attn_sense_accuracy(task, 1), attn_sense_count(task, 1));
        st = show_examples(task, &o->text);
    }
    if (!st)
        printf("\nThe input vector of \"%s\" never changed: the learned W_Q and W_K make it look "
               "at the\ncontext word, and W_V carries that word's sense into its output.\n",
               attn_sense_word());
    attn_sense_free(task);
    return st ? cli_fail("demo", st) : cli_finish_stdout("demo");
}

int cmd_demo(int argc, char **argv)
{
    enum { OPT_LEARN = 2100, OPT_SEED, OPT_EPOCHS };
    static const struct option longopts[] = {CLI_ATTENTION_LONG_OPTIONS, CLI_EXPORT_LONG_OPTIONS,
                                             {"learn", no_argument, 0, OPT_LEARN},
                                             {"seed", required_argument, 0, OPT_SEED},
                                             {"epochs", required_argument, 0, OPT_EPOCHS},
                                             {0, 0, 0, 0}};
    cli_attention_opts o;
    cli_attention_defaults(&o);
    int c, learn = 0, seed = 1, epochs = 0;
    cli_export_opts ex = {0};
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage, stdout);
            return cli_finish_stdout("demo");
        }
        if (c == '?' || c == ':') return cli_bad_option("demo", usage, c, argv);
        if (cli_export_option(c, optarg, &ex)) continue;
        if (c == OPT_LEARN) learn = 1;
        else if (c == OPT_SEED) {
            if (cli_parse_int(optarg, 0, 2147483647, &seed))
                return cli_usage_error("demo", usage, "--seed: expected an integer >= 0, found '%s'", optarg);
        } else if (c == OPT_EPOCHS) {
            if (cli_parse_int(optarg, 1, 100000, &epochs))
                return cli_usage_error("demo", usage, "--epochs: expected an integer 1..100000, found '%s'", optarg);
        } else if (cli_attention_option("demo", usage, c, optarg, &o) < 0) return CLI_BAD_INPUT;
    }
    if (optind < argc) return cli_usage_error("demo", usage, "unexpected argument '%s'", argv[optind]);
    if (learn && o.json) return cli_usage_error("demo", usage, "--learn prints tables; --json is not available with it");
    if (!learn && epochs) return cli_usage_error("demo", usage, "--epochs needs --learn");
    if (learn && cli_export_any(&ex))
        return cli_usage_error("demo", usage, "--learn prints tables; --html, --svg, --csv and --xlsx are not available with it");
    if (learn) return demo_learn(&o, (uint64_t)seed, (size_t)epochs);
    attn_status pre = cli_export_check(&ex); /* before any work */
    if (pre) return cli_fail("demo", pre);

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
        if (!st) st = attn_trace_check_output(traces[i], "--scale/--temperature");
    }
    if (st) {
        rc = cli_fail("demo", st);
        goto done;
    }

    const attn_trace *const *ct = (const attn_trace *const *)traces;
    if (cli_export_any(&ex)) {
        attn_doc doc = {"attn demo", N_SENTENCES, ct, texts, 0};
        st = cli_export_run(&ex, &doc);
        if (!st && o.json) st = attn_json_walkthroughs(stdout, ct, texts, N_SENTENCES);
    } else if (o.json) {
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
