/* cmd_classify.c - `attn classify`: the top classes of texts with a trained
 * encoder, and (--explain) what the pooled vector attended to. */
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "attn/classify.h"
#include "attn/explain.h"
#include "attn/selfattn.h"
#include "cli.h"
#include "cmd_classify.h"

static const char usage[] =
    "usage: attn classify --model DIR [--text TEXT] [options]\n"
    "\n"
    "Prints the most probable classes of TEXT (or of each line of stdin) with a\n"
    "classifier trained by 'attn train --task classify' (its best weights).\n"
    "\n"
    "options:\n"
    "  --model DIR          a checkpoint directory (required)\n"
    "  --text TEXT          the text to classify (default: each line of stdin)\n"
    "  --top N              how many classes to print (3)\n"
    "  --explain            also show, for every layer and head, the attention of\n"
    "                       the pooled vector over the tokens: the [CLS] row, or\n"
    "                       with mean pooling the mean of the tokens' rows\n"
    "  --color WHEN         shade the tables: auto (default), always, never\n"
    "  --precision N        digits after the decimal point, 0..9 (3)\n"
    "  With --text, the last layer's attention as files (every head, every step):\n" CLI_EXPORT_USAGE
    "  -h, --help           show this help\n";

typedef struct job {
    attn_encoder *e;
    const attn_tokenizer *tok;
    const attn_cls_info *info;
    size_t top;
    int explain;
    attn_text_opts text;
    float *probs, **weights;
    const cli_export_opts *exp;
} job;

static attn_status token_labels(const job *j, const uint32_t *ids, size_t n, char ***out)
{
    char **l = calloc(n, sizeof *l);
    if (!l) return attn_error(ATTN_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *b;
        size_t len;
        attn_status st = attn_tokenizer_token_bytes(j->tok, ids[i], &b, &len);
        if (!st && !(l[i] = malloc(len + 1))) st = attn_error(ATTN_E_NOMEM, "out of memory");
        if (st) {
            for (size_t k = 0; k < i; k++) free(l[k]);
            free(l);
            return st;
        }
        memcpy(l[i], b, len), l[i][len] = 0;
    }
    *out = l;
    return ATTN_OK;
}

static void free_labels(char **l, size_t n)
{
    for (size_t i = 0; l && i < n; i++) free(l[i]);
    free(l);
}

/* Per layer and head, the pooled vector's attention over the tokens. */
static attn_status explain(const job *j, char **tokens, size_t n)
{
    const attn_encoder_config *c = &j->info->model;
    const size_t L = c->layers, H = c->heads;
    float *rows = calloc(L * H * n, sizeof *rows);
    char **names = calloc(L * H, sizeof *names);
    attn_trace *tr = NULL;
    attn_status st = rows && names ? attn_trace_create(&tr) : attn_error(ATTN_E_NOMEM, "out of memory");
    for (size_t l = 0; !st && l < L; l++)
        for (size_t h = 0; h < H; h++) {
            const float *a = j->weights[l] + h * n * n; /* (n, n) of head h */
            float *r = rows + (l * H + h) * n;
            if (c->pooling == ATTN_POOL_CLS) memcpy(r, a, n * sizeof *r);
            else
                for (size_t q = 0; q < n; q++)
                    for (size_t k = 0; k < n; k++) r[k] += a[q * n + k] / (float)n;
            if (!(names[l * H + h] = malloc(64))) st = attn_error(ATTN_E_NOMEM, "out of memory");
            else snprintf(names[l * H + h], 64, "layer %zu head %zu", l, h);
        }
    size_t shape[2] = {L * H, n};
    if (!st) st = attn_trace_set_labels(tr, "head", L * H, (const char *const *)names);
    if (!st) st = attn_trace_set_labels(tr, "token", n, (const char *const *)tokens);
    if (!st) st = attn_trace_record(tr, NULL, "pooled_attention", rows, 2, shape, "head", "token");
    if (!st)
        st = attn_text_matrix(stdout, tr, "pooled_attention",
                              c->pooling == ATTN_POOL_CLS
                                  ? "  Attention of [CLS] (the pooled token) over the tokens, per layer and head"
                                  : "  Attention of the pooled vector (the mean of the tokens' rows), per layer and head",
                              &j->text);
    attn_trace_free(tr);
    free_labels(names, L * H);
    free(rows);
    return st;
}

/* The last layer as a multi-head walkthrough document for the exporters. */
static attn_status export_last_layer(const job *j, char **tokens, size_t n, const char *text)
{
    const attn_encoder_config *c = &j->info->model;
    const size_t C = c->width;
    attn_embeddings x;
    memset(&x, 0, sizeof x);
    x.n_tokens = n, x.n_dims = C, x.tokens = tokens;
    x.dims = calloc(C, sizeof *x.dims);
    x.data = malloc(n * C * sizeof *x.data);
    attn_trace *tr = NULL;
    attn_status st = x.dims && x.data ? attn_trace_create(&tr) : attn_error(ATTN_E_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < C; i++)
        if (!(x.dims[i] = malloc(24))) st = attn_error(ATTN_E_NOMEM, "out of memory");
        else snprintf(x.dims[i], 24, "d%zu", i);
    if (!st) memcpy(x.data, attn_encoder_attn_input(j->e, c->layers - 1), n * C * sizeof *x.data);
    if (!st) st = attn_mha_self_attention(NULL, attn_encoder_mha(j->e, c->layers - 1), &x, ATTN_CAUSAL_NONE, tr);
    if (!st) {
        const attn_trace *traces[1] = {tr};
        const char *captions[1] = {text};
        attn_doc doc = {"attn classify: the last encoder layer", 1, traces, captions, c->heads};
        st = cli_export_run(j->exp, &doc);
    }
    attn_trace_free(tr);
    free_labels(x.dims, x.dims ? C : 0);
    free(x.data);
    return st;
}

static attn_status classify_one(const job *j, const char *text, int show_text)
{
    uint32_t *ids = NULL;
    size_t n = 0;
    attn_status st = attn_cls_predict(j->e, j->tok, text, j->probs, &ids, &n, j->explain || cli_export_any(j->exp) ? j->weights : NULL);
    if (st) return st;
    const size_t K = j->info->model.classes;
    if (show_text) printf("%s\n", text);
    uint8_t *used = calloc(K, 1);
    for (size_t r = 0; used && r < j->top && r < K; r++) {
        size_t best = K;
        for (size_t k = 0; k < K; k++)
            if (!used[k] && (best == K || j->probs[k] > j->probs[best])) best = k;
        used[best] = 1;
        printf("  %-24s %.*f\n", j->info->labels[best], j->text.precision, (double)j->probs[best]);
    }
    free(used);
    char **tokens = NULL;
    if ((j->explain || cli_export_any(j->exp)) && !(st = token_labels(j, ids, n, &tokens))) {
        if (j->explain) {
            printf("\n");
            st = explain(j, tokens, n);
        }
        if (!st && cli_export_any(j->exp)) st = export_last_layer(j, tokens, n, text);
    }
    free_labels(tokens, tokens ? n : 0);
    free(ids);
    return st;
}

int cmd_classify(int argc, char **argv)
{
    enum { O_MODEL = 8000, O_TEXT, O_TOP, O_EXPLAIN, O_COLOR, O_PRECISION };
    static const struct option longopts[] = {
        {"model", required_argument, 0, O_MODEL}, {"text", required_argument, 0, O_TEXT},
        {"top", required_argument, 0, O_TOP}, {"explain", no_argument, 0, O_EXPLAIN},
        {"color", required_argument, 0, O_COLOR}, {"colour", required_argument, 0, O_COLOR},
        {"precision", required_argument, 0, O_PRECISION}, CLI_EXPORT_LONG_OPTIONS,
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *dir = NULL, *text = NULL;
    cli_export_opts exp = {0};
    job j;
    memset(&j, 0, sizeof j);
    j.top = 3, j.text.precision = 3, j.text.color = cli_color_mode("auto"), j.exp = &exp;
    int c, v;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (cli_export_option(c, optarg, &exp)) continue;
        switch (c) {
        case 'h': fputs(usage, stdout); return cli_finish_stdout("classify");
        case O_MODEL: dir = optarg; break;
        case O_TEXT: text = optarg; break;
        case O_TOP:
            if (cli_parse_int(optarg, 1, INT_MAX, &v))
                return cli_usage_error("classify", usage, "--top: expected an integer >= 1, found '%s'", optarg);
            j.top = (size_t)v;
            break;
        case O_EXPLAIN: j.explain = 1; break;
        case O_COLOR:
            if ((j.text.color = cli_color_mode(optarg)) < 0)
                return cli_usage_error("classify", usage, "--color: expected auto, always or never, found '%s'", optarg);
            break;
        case O_PRECISION:
            if (cli_parse_int(optarg, 0, 9, &j.text.precision))
                return cli_usage_error("classify", usage, "--precision: expected an integer 0..9, found '%s'", optarg);
            break;
        default: return cli_bad_option("classify", usage, c, argv);
        }
    }
    if (optind < argc) return cli_usage_error("classify", usage, "unexpected argument '%s'", argv[optind]);
    if (!dir) return cli_usage_error("classify", usage, "missing --model DIR");
    cli_default_sigpipe(); /* `attn classify | head`: quiet, as other filters */
    if (cli_export_any(&exp) && !text)
        return cli_usage_error("classify", usage, "--html, --svg, --csv and --xlsx need --text");
    attn_status st = cli_export_check(&exp);
    if (st) return cli_fail("classify", st);
    attn_cls_info info;
    attn_tokenizer *tok = NULL;
    st = attn_cls_model_load(dir, 1, &info, &j.e, &tok);
    if (st) return cli_fail("classify", st);
    j.tok = tok, j.info = &info;
    const size_t L = info.model.layers, T = info.model.context, H = info.model.heads;
    j.probs = malloc(info.model.classes * sizeof *j.probs);
    j.weights = calloc(L, sizeof *j.weights);
    if (!j.probs || !j.weights) st = attn_error(ATTN_E_NOMEM, "out of memory");
    for (size_t l = 0; !st && l < L; l++)
        if (!(j.weights[l] = malloc(H * T * T * sizeof(float)))) st = attn_error(ATTN_E_NOMEM, "out of memory");
    if (!st && text) {
        st = classify_one(&j, text, 0);
    } else if (!st) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t got;
        int first = 1;
        while (!st && (got = getline(&line, &cap, stdin)) >= 0) {
            while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
            if (!got) continue;
            if (!first) printf("\n");
            first = 0;
            st = classify_one(&j, line, 1);
        }
        free(line);
    }
    for (size_t l = 0; j.weights && l < L; l++) free(j.weights[l]);
    free(j.weights), free(j.probs);
    attn_encoder_free(j.e);
    attn_tokenizer_free(tok);
    attn_cls_info_free(&info);
    if (st) return cli_fail("classify", st);
    return cli_finish_stdout("classify");
}
