/* cmd_explain.c - `attn explain`: the walkthrough on the user's embeddings. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "attn/mha_io.h"
#include "cli.h"
#include "cmd_explain.h"

static const char usage[] =
    "usage: attn explain --embeddings FILE.csv [--compare B.csv] [options]\n"
    "       attn explain --embeddings FILE.csv --weights W.safetensors [--num-heads H]\n"
    "                    [--causal] [--temperature T] [--scale S | --no-scale] [--json]\n"
    "                    [--color WHEN] [--precision N] [--html FILE] [--svg DIR] [--csv DIR] [--xlsx FILE]\n"
    "       attn explain --model DIR --text TEXT [--layer L] [--head H]\n"
    "                    [--compare-text TEXT] [--json] [--html FILE] [--svg DIR] [--csv DIR]\n"
    "                    [--xlsx FILE (with --layer and --head)]\n"
    "\n"
    "Self-attention step by step (Q = K = V = X) on your own embeddings. With\n"
    "--weights, a multi-head layer (an nn.MultiheadAttention state_dict) instead:\n"
    "Q, K, V of each head, each head's attention, the concatenation and W_O\n"
    "(--scale, --no-scale and --temperature act on every head's scores).\n"
    "CSV: a header 'token,<dim>,<dim>,...' then one row per token, e.g.\n"
    "    token,animal,tech\n"
    "    cat,2.0,0.0\n"
    "    mouse,1.5,1.5\n"
    "\n"
    "options:\n"
    "  --embeddings FILE    the input sequence, one token per row (required)\n"
    "  --compare FILE       a second input with the same dimensions, shown beside\n"
    "                       the first; tokens in both get their outputs compared\n"
    "  --weights FILE       a multi-head attention layer's weights (safetensors)\n"
    "  --num-heads H        its number of heads (unless the file records it)\n"
    "  --model DIR          a GPT: a checkpoint of 'attn train' or a GPT-2 folder in\n"
    "                       Hugging Face's layout (config.json, model.safetensors,\n"
    "                       vocab.json + merges.txt); every layer's and head's\n"
    "                       attention on --text (tables: per layer, the key each\n"
    "                       query weights most in each head; one head's map with\n"
    "                       --layer and --head)\n"
    "  --text TEXT          the text the model reads (at most its context in tokens)\n"
    "  --layer L, --head H  show only that layer / head (counted from 0)\n"
    "  --compare-text TEXT  a second text: for each token both share, the cosine\n"
    "                       similarity of its hidden state in the two contexts after\n"
    "                       every layer, and the key each head weights most\n"
    "  With --model: --json prints {\"tokens\", \"ids\", \"layers\": [{\"heads\":\n"
    "  [{\"attention\": T x T}]}]} (and \"shared_tokens\" with --compare-text);\n"
    "  --html is a layer x head grid of thumbnails, click one for the full map;\n"
    "  --svg and --csv write one file per map; --xlsx one head of one layer with\n"
    "  live formulas from the layer's input (LN_1's output) to that head's share\n"
    "  of the attention output.\n" CLI_ATTENTION_USAGE
    CLI_EXPORT_USAGE;

/* The tokens joined by spaces: the sequence as text. */
static char *join_tokens(const attn_embeddings *e)
{
    size_t n = 1;
    for (size_t i = 0; i < e->n_tokens; i++) n += strlen(e->tokens[i]) + 1;
    char *s = malloc(n), *p = s;
    if (!s) return NULL;
    for (size_t i = 0; i < e->n_tokens; i++) {
        size_t len = strlen(e->tokens[i]);
        if (i) *p++ = ' ';
        memcpy(p, e->tokens[i], len);
        p += len;
    }
    *p = '\0';
    return s;
}

/* Both inputs must name the same dimensions in the same order. */
static attn_status same_dims(const attn_embeddings *a, const char *pa, const attn_embeddings *b,
                             const char *pb)
{
    if (a->n_dims != b->n_dims)
        return attn_error(ATTN_E_FORMAT, "%s:1:%zu: %zu dimension%s, but %s has %zu", pb,
                          (a->n_dims < b->n_dims ? a->n_dims : b->n_dims) + 2, b->n_dims,
                          b->n_dims == 1 ? "" : "s", pa, a->n_dims);
    for (size_t j = 0; j < a->n_dims; j++)
        if (strcmp(a->dims[j], b->dims[j]) != 0)
            return attn_error(ATTN_E_FORMAT, "%s:1:%zu: dimension '%s', but %s has '%s' there",
                              pb, j + 2, b->dims[j], pa, a->dims[j]);
    return ATTN_OK;
}

/* The walkthrough of a multi-head layer on the embeddings. */
static int explain_layer(const char *path_x, const char *path_w, size_t heads,
                         const cli_attention_opts *o, const cli_export_opts *ex)
{
    attn_embeddings x = {0};
    attn_safetensors *w = NULL;
    attn_mha *m = NULL;
    attn_trace *t = NULL;
    char *text = NULL;
    attn_mha_config cfg;
    attn_status st = attn_embeddings_read_csv(&x, path_x);
    if (!st) st = attn_safetensors_open(&w, path_w);
    if (!st) st = attn_mha_config_from_safetensors(&cfg, w, NULL, heads);
    if (!st) st = attn_mha_create(&m, &cfg);
    if (!st) st = attn_mha_load_safetensors(m, w, NULL);
    if (!st) cfg = *attn_mha_get_config(m);
    if (!st && cfg.embed_dim != x.n_dims)
        st = attn_error(ATTN_E_FORMAT,
                        "%s: %zu dimensions, but the layer in %s expects embed_dim %zu", path_x,
                        x.n_dims, path_w, cfg.embed_dim);
    if (!st && (cfg.kdim != x.n_dims || cfg.vdim != x.n_dims))
        st = attn_error(ATTN_E_FORMAT,
                        "%s: explain runs self-attention on these %zu dimensions, but the "
                        "layer in %s takes keys of width kdim %zu and values of width vdim %zu "
                        "(it needs kdim = vdim = embed_dim)",
                        path_x, x.n_dims, path_w, cfg.kdim, cfg.vdim);
    if (!st) st = attn_trace_create(&t);
    if (!st) st = attn_mha_self_attention(NULL, m, &x, &o->sdpa, t);
    if (!st) st = attn_trace_check_output(t, path_x);
    if (!st && !(text = join_tokens(&x))) st = attn_error(ATTN_E_NOMEM, "out of memory");
    int rc;
    if (st) {
        rc = cli_fail("explain", st);
        goto done;
    }
    if (cli_export_any(ex)) {
        const attn_trace *tt[1] = {t};
        const char *cap[1] = {path_x};
        attn_doc doc = {"attn explain", 1, tt, cap, cfg.num_heads};
        st = cli_export_run(ex, &doc);
        if (!st && o->json) st = attn_json_mha_walkthrough(stdout, t, text, cfg.num_heads);
    } else if (o->json) {
        st = attn_json_mha_walkthrough(stdout, t, text, cfg.num_heads);
    } else {
        printf("attn explain: multi-head attention of %s on %s\n"
               "(%zu tokens, E = %zu, %zu heads of d_k = %zu and d_v = %zu, output width %zu%s%s%s)\n\n",
               path_w, path_x, x.n_tokens, cfg.embed_dim, cfg.num_heads, cfg.head_dim,
               cfg.v_head_dim, cfg.out_dim, cfg.bias ? ", biases" : ", no biases",
               cfg.add_bias_kv ? ", bias_k/bias_v" : "", o->sdpa.causal ? ", causal" : "");
        st = attn_text_mha_walkthrough(stdout, t, cfg.num_heads, &o->text);
    }
    rc = st ? cli_fail("explain", st) : cli_finish_stdout("explain");
done:
    free(text);
    attn_trace_free(t);
    attn_mha_free(m);
    attn_safetensors_close(w);
    attn_embeddings_free(&x);
    return rc;
}

/* --model: the checks of the arguments, then the run (cmd_explain_model.c). */
static int explain_model_main(explain_model_args *ma, const cli_attention_opts *o,
                              const cli_export_opts *ex, int other_inputs)
{
    cli_attention_opts plain;
    cli_attention_defaults(&plain);
    if (other_inputs)
        return cli_usage_error("explain", usage, "--model reads a text: no --embeddings, --compare, --weights or --num-heads");
    if (o->sdpa.scale_mode != plain.sdpa.scale_mode || o->sdpa.temperature != plain.sdpa.temperature ||
        o->sdpa.causal != plain.sdpa.causal)
        return cli_usage_error("explain", usage, "--scale, --no-scale, --temperature and --causal apply to "
                                                 "--embeddings; a model attends as it was trained");
    if (!ma->text) return cli_usage_error("explain", usage, "--model needs --text TEXT");
    if (!ma->text[0]) return cli_usage_error("explain", usage, "--text: expected a non-empty text");
    if (ma->compare && !ma->compare[0])
        return cli_usage_error("explain", usage, "--compare-text: expected a non-empty text");
    if (ex->xlsx && (ma->layer < 0 || ma->head < 0))
        return cli_usage_error("explain", usage, "--xlsx with --model needs --layer L and --head H "
                                                 "(one head's workbook)");
    attn_status pre = cli_export_check(ex);
    if (pre) return cli_fail("explain", pre);
    ma->html = ex->html, ma->svg = ex->svg, ma->csv = ex->csv, ma->xlsx = ex->xlsx;
    return explain_model(ma, o);
}

/* The walkthrough of self-attention on the embeddings of path_a (and the
 * comparison with path_b's), as text, JSON or exported files. The exit status. */
static int explain_walkthrough(const char *path_a, const char *path_b, const cli_attention_opts *o,
                               const cli_export_opts *ex)
{
    int rc = CLI_OK;
    attn_embeddings a = {0}, b = {0};
    attn_trace *ta = NULL, *tb = NULL;
    char *text_a = NULL, *text_b = NULL;
    /* Everything is read and computed before anything is printed, so that bad
     * input leaves stdout empty. */
    attn_status st = attn_embeddings_read_csv(&a, path_a);
    if (!st && path_b) st = attn_embeddings_read_csv(&b, path_b);
    if (!st && path_b) st = same_dims(&a, path_a, &b, path_b);
    if (!st) st = attn_trace_create(&ta);
    if (!st) st = attn_self_attention(NULL, &a, &o->sdpa, ta);
    if (!st) st = attn_trace_check_output(ta, path_a);
    if (!st && path_b) st = attn_trace_create(&tb);
    if (!st && path_b) st = attn_self_attention(NULL, &b, &o->sdpa, tb);
    if (!st && path_b) st = attn_trace_check_output(tb, path_b);
    if (!st && (!(text_a = join_tokens(&a)) || (path_b && !(text_b = join_tokens(&b)))))
        st = attn_error(ATTN_E_NOMEM, "out of memory");
    if (st) {
        rc = cli_fail("explain", st);
        goto done;
    }

    if (cli_export_any(ex)) {
        const attn_trace *tt[2] = {ta, tb};
        const char *cap[2] = {path_a, path_b};
        attn_doc doc = {"attn explain", tb ? 2 : 1, tt, cap, 0};
        st = cli_export_run(ex, &doc);
        if (!st && o->json) st = attn_json_walkthrough(stdout, ta, text_a, tb, text_b);
    } else if (o->json) {
        st = attn_json_walkthrough(stdout, ta, text_a, tb, text_b);
    } else {
        char scale[128];
        cli_describe_scale(scale, sizeof scale, &o->sdpa, a.n_dims);
        printf("attn explain: self-attention on %s (%zu tokens, d = %zu; Q = K = V = X, %s)\n\n",
               path_a, a.n_tokens, a.n_dims, scale);
        st = attn_text_walkthrough(stdout, ta, &o->text);
        if (!st && tb) {
            printf("\n== Compared with %s (%zu tokens) ==\n\n", path_b, b.n_tokens);
            st = attn_text_walkthrough(stdout, tb, &o->text);
            const attn_trace *pair[2] = {ta, tb};
            const char *captions[2] = {path_a, path_b};
            int shared = 0;
            for (size_t i = 0; !st && i < a.n_tokens; i++) {
                if (attn_embeddings_find(&a, a.tokens[i]) != (long)i) continue; /* once each */
                if (attn_embeddings_find(&b, a.tokens[i]) < 0) continue;
                char shown[256];
                attn_text_escape(shown, sizeof shown, a.tokens[i]);
                printf("\n== \"%s\" in both ==\n\n", shown);
                st = attn_text_token_comparison(stdout, a.tokens[i], pair, captions, 2, &o->text);
                shared = 1;
            }
            if (!st && !shared) printf("\nNo token appears in both inputs.\n");
        }
    }
    if (st) rc = cli_fail("explain", st);
    else rc = cli_finish_stdout("explain");
done:
    free(text_a);
    free(text_b);
    attn_trace_free(ta);
    attn_trace_free(tb);
    attn_embeddings_free(&a);
    attn_embeddings_free(&b);
    return rc;
}

int cmd_explain(int argc, char **argv)
{
    enum { OPT_EMBEDDINGS = 2000, OPT_COMPARE, OPT_WEIGHTS, OPT_HEADS, OPT_MODEL, OPT_TEXT,
           OPT_COMPARE_TEXT, OPT_LAYER, OPT_HEAD };
    static const struct option longopts[] = {
        {"embeddings", required_argument, 0, OPT_EMBEDDINGS},
        {"compare", required_argument, 0, OPT_COMPARE},
        {"weights", required_argument, 0, OPT_WEIGHTS},
        {"num-heads", required_argument, 0, OPT_HEADS},
        {"model", required_argument, 0, OPT_MODEL},
        {"text", required_argument, 0, OPT_TEXT},
        {"compare-text", required_argument, 0, OPT_COMPARE_TEXT},
        {"layer", required_argument, 0, OPT_LAYER},
        {"head", required_argument, 0, OPT_HEAD},
        CLI_EXPORT_LONG_OPTIONS,
        CLI_ATTENTION_LONG_OPTIONS,
        {0, 0, 0, 0}};
    cli_attention_opts o;
    cli_attention_defaults(&o);
    const char *path_a = NULL, *path_b = NULL, *path_w = NULL;
    int c, heads = 0;
    cli_export_opts ex = {0};
    explain_model_args ma = {NULL, NULL, NULL, -1, -1, NULL, NULL, NULL, NULL};
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage, stdout);
            return cli_finish_stdout("explain");
        }
        if (c == '?' || c == ':') return cli_bad_option("explain", usage, c, argv);
        if (c == OPT_EMBEDDINGS) path_a = optarg;
        else if (c == OPT_COMPARE) path_b = optarg;
        else if (c == OPT_WEIGHTS) path_w = optarg;
        else if (c == OPT_MODEL) ma.dir = optarg;
        else if (c == OPT_TEXT) ma.text = optarg;
        else if (c == OPT_COMPARE_TEXT) ma.compare = optarg;
        else if (cli_export_option(c, optarg, &ex)) continue;
        else if (c == OPT_LAYER || c == OPT_HEAD) {
            int v;
            if (cli_parse_int(optarg, 0, 1 << 20, &v))
                return cli_usage_error("explain", usage, "--%s: expected an integer >= 0, found '%s'",
                                       c == OPT_LAYER ? "layer" : "head", optarg);
            *(c == OPT_LAYER ? &ma.layer : &ma.head) = v;
        } else if (c == OPT_HEADS) {
            if (cli_parse_int(optarg, 1, 1 << 20, &heads))
                return cli_usage_error("explain", usage,
                                       "--num-heads: expected an integer > 0, found '%s'", optarg);
        } else {
            if (cli_attention_option("explain", usage, c, optarg, &o) < 0) return CLI_BAD_INPUT;
        }
    }
    if (optind < argc)
        return cli_usage_error("explain", usage, "unexpected argument '%s'", argv[optind]);
    if (ma.dir) return explain_model_main(&ma, &o, &ex, path_a || path_b || path_w || heads);
    if (ma.text || ma.compare || ma.layer >= 0 || ma.head >= 0)
        return cli_usage_error("explain", usage, "--text, --compare-text, --layer and --head need --model DIR");
    if (!path_a) return cli_usage_error("explain", usage, "missing --embeddings FILE.csv");
    if (path_w && path_b)
        return cli_usage_error("explain", usage, "--compare works on the plain walkthrough, not with --weights");
    if (!path_w && heads) return cli_usage_error("explain", usage, "--num-heads needs --weights");
    attn_status pre = cli_export_check(&ex); /* before any work */
    const char *inputs[3] = {path_a, path_b, path_w};
    if (!pre) pre = cli_export_check_inputs(&ex, inputs, 3);
    if (pre) return cli_fail("explain", pre);
    if (path_w) return explain_layer(path_a, path_w, (size_t)heads, &o, &ex);
    return explain_walkthrough(path_a, path_b, &o, &ex);
}
