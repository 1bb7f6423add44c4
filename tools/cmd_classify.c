/* cmd_classify.c - `attn classify`: the top classes of texts with a trained
 * encoder, and (--explain) what the pooled vector attended to. */
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "attn/classify.h"
#include "attn/explain.h"
#include "attn/fileio.h"
#include "attn/selfattn.h"
#include "cli.h"
#include "cmd_classify.h"

static const char usage[] =
    "usage: attn classify --model DIR [--text TEXT] [options]\n"
    "\n"
    "Prints the most probable classes of TEXT (or of each line of stdin) with a\n"
    "classifier trained by 'attn train --task classify' (its best weights). A\n"
    "text without words is refused (exit 2); words the model never saw are\n"
    "counted on stderr, since the answer then rests on the others alone.\n"
    "\n"
    "options:\n"
    "  --model DIR          a checkpoint directory (required)\n"
    "  --text TEXT          the text to classify (default: each line of stdin,\n"
    "                       at most 1 MiB a line)\n"
    "  --top N              how many classes to print (3)\n"
    "  --json               one JSON object per text: text, words, unknown (words\n"
    "                       not in the model's vocabulary) and the top classes\n"
    "  --explain            also show, for every layer and head, the attention of\n"
    "                       the pooled vector over the tokens: the [CLS] row, or\n"
    "                       with mean pooling the mean of the tokens' rows\n"
    "  --color WHEN         shade the tables: auto (default), always, never\n"
    "  --precision N        digits after the decimal point, 0..9 (3)\n"
    "  With --text, the last layer's attention as files (every head, every step):\n" CLI_EXPORT_USAGE
    "  -h, --help           show this help\n";

/* A text is a sentence or a paragraph; a longer line is not one. */
#define LINE_LIMIT ((size_t)1 << 20)

typedef struct job {
    attn_encoder *e;
    const attn_tokenizer *tok;
    const attn_cls_info *info;
    size_t top;
    int explain, json;
    attn_text_opts text;
    float *probs;
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

/* Per layer and head, the pooled vector's attention over the tokens, as the
 * traced run of the encoder recorded it. */
static attn_status explain(const job *j, attn_trace *tr)
{
    return attn_text_matrix(stdout, tr, "pooled_attention",
                            j->info->model.pooling == ATTN_POOL_CLS
                                ? "  Attention of [CLS] (the pooled token) over the tokens, per layer and head"
                                : "  Attention of the pooled vector (the mean of the tokens' rows), per layer and head",
                            &j->text);
}

/* The last layer as a multi-head walkthrough document for the exporters,
 * from the traced run (tr, its tokens labelled). */
static attn_status export_last_layer(const job *j, const attn_trace *run, const char *text)
{
    const attn_encoder_config *c = &j->info->model;
    attn_trace *tr = NULL;
    attn_status st = attn_trace_create(&tr);
    if (!st) st = attn_encoder_layer_trace(j->e, run, c->layers - 1, tr);
    if (!st) {
        const attn_trace *traces[1] = {tr};
        const char *captions[1] = {text};
        attn_doc doc = {"attn classify: the last encoder layer", 1, traces, captions, c->heads};
        st = cli_export_run(j->exp, &doc);
    }
    attn_trace_free(tr);
    return st;
}

/* A JSON string (text is UTF-8 from the user or the vocabulary). */
static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

/* The top classes, most probable first (indexes into probs). */
static void top_classes(const job *j, size_t *order, size_t top)
{
    const size_t K = j->info->model.classes;
    for (size_t r = 0; r < top; r++) {
        size_t best = K;
        for (size_t k = 0; k < K; k++) {
            int used = 0;
            for (size_t q = 0; q < r; q++) used |= order[q] == k;
            if (!used && (best == K || j->probs[k] > j->probs[best])) best = k;
        }
        order[r] = best;
    }
}

static attn_status classify_one(const job *j, const char *text, int show_text)
{
    uint32_t *ids = NULL;
    size_t n = 0;
    const int traced = j->explain || cli_export_any(j->exp);
    attn_trace *tr = NULL;
    attn_status st = traced ? attn_trace_create(&tr) : ATTN_OK;
    attn_op_ctx ctx = {tr, NULL};
    if (!st) st = attn_cls_predict(j->e, j->tok, text, j->probs, &ids, &n, traced ? &ctx : NULL);
    if (st) {
        attn_trace_free(tr);
        return st;
    }
    /* ids: [CLS] then the words (truncated to the context). */
    size_t unknown = 0;
    for (size_t i = 1; i < n; i++) unknown += ids[i] == ATTN_WORD_UNK;
    if (n <= 1) {
        attn_trace_free(tr);
        free(ids);
        return attn_error(ATTN_E_INVALID, "the text has no words to classify");
    }
    const size_t words = n - 1, K = j->info->model.classes, top = j->top < K ? j->top : K;
    size_t *order = malloc(top * sizeof *order);
    if (!order) {
        attn_trace_free(tr);
        free(ids);
        return attn_error(ATTN_E_NOMEM, "out of memory");
    }
    top_classes(j, order, top);
    if (unknown)
        fprintf(stderr, "attn classify: %zu of %zu word%s unknown to the model%s\n", unknown, words,
                words == 1 ? "" : "s",
                unknown == words ? ": the answer rests on nothing but the model's bias" : "");
    if (j->json) {
        printf("{\"text\": ");
        json_string(text);
        printf(", \"words\": %zu, \"unknown\": %zu, \"top\": [", words, unknown);
        for (size_t r = 0; r < top; r++) {
            printf("%s{\"label\": ", r ? ", " : "");
            json_string(j->info->labels[order[r]]);
            printf(", \"p\": %.9g}", (double)j->probs[order[r]]);
        }
        printf("]}\n");
    } else {
        if (show_text) printf("%s\n", text);
        for (size_t r = 0; r < top; r++)
            printf("  %-24s %.*f\n", j->info->labels[order[r]], j->text.precision, (double)j->probs[order[r]]);
    }
    free(order);
    char **tokens = NULL;
    if (traced && !(st = token_labels(j, ids, n, &tokens))) {
        st = attn_trace_set_labels(tr, "token", n, (const char *const *)tokens);
        if (!st && j->explain) {
            printf("\n");
            st = explain(j, tr);
        }
        if (!st && cli_export_any(j->exp)) st = export_last_layer(j, tr, text);
    }
    free_labels(tokens, tokens ? n : 0);
    attn_trace_free(tr);
    free(ids);
    return st;
}

/* The model's files are inputs: a file export onto one of them (through a
 * link, too) is refused before any work. */
static attn_status check_not_model(const cli_export_opts *exp, const char *dir)
{
    static const char *const names[] = {"config.json", "vocab.json", "model.safetensors",
                                        "best.safetensors", "optim.safetensors"};
    enum { N = sizeof names / sizeof *names };
    char *paths[N] = {0};
    attn_status st = ATTN_OK;
    for (size_t i = 0; !st && i < N; i++) {
        size_t n = strlen(dir) + strlen(names[i]) + 2;
        if (!(paths[i] = malloc(n))) st = attn_error(ATTN_E_NOMEM, "out of memory");
        else snprintf(paths[i], n, "%s/%s", dir, names[i]);
    }
    if (!st) st = cli_export_check_inputs(exp, (const char *const *)paths, N);
    for (size_t i = 0; i < N; i++) free(paths[i]);
    return st;
}

int cmd_classify(int argc, char **argv)
{
    enum { O_MODEL = 8000, O_TEXT, O_TOP, O_EXPLAIN, O_COLOR, O_PRECISION, O_JSON };
    static const struct option longopts[] = {
        {"model", required_argument, 0, O_MODEL}, {"text", required_argument, 0, O_TEXT},
        {"top", required_argument, 0, O_TOP}, {"explain", no_argument, 0, O_EXPLAIN}, {"json", no_argument, 0, O_JSON},
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
        case O_JSON: j.json = 1; break;
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
    if (j.json && (j.explain || cli_export_any(&exp)))
        return cli_usage_error("classify", usage, "--json prints the classes only: not with --explain or files");
    cli_default_sigpipe(); /* `attn classify | head`: quiet, as other filters */
    if (cli_export_any(&exp) && !text)
        return cli_usage_error("classify", usage, "--html, --svg, --csv and --xlsx need --text");
    attn_status st = cli_export_check(&exp);
    if (!st) st = check_not_model(&exp, dir);
    if (st) return cli_fail("classify", st);
    attn_cls_info info;
    attn_tokenizer *tok = NULL;
    st = attn_cls_model_load(dir, 1, &info, &j.e, &tok);
    if (st) return cli_fail("classify", st);
    j.tok = tok, j.info = &info;
    j.probs = malloc(info.model.classes * sizeof *j.probs);
    if (!j.probs) st = attn_error(ATTN_E_NOMEM, "out of memory");
    if (!st && text) {
        st = classify_one(&j, text, 0);
    } else if (!st) {
        char *line = NULL;
        size_t cap = 0, got = 0;
        int first = 1, eof = 0;
        for (size_t no = 1; !st; no++) {
            st = attn_read_line(stdin, "stdin", no, LINE_LIMIT, &line, &cap, &got, &eof);
            if (st || eof) break;
            while (got > 0 && line[got - 1] == '\r') line[--got] = 0;
            if (!got) continue;
            if (!first && !j.json) printf("\n");
            first = 0;
            st = classify_one(&j, line, 1);
        }
        free(line);
    }
    free(j.probs);
    attn_encoder_free(j.e);
    attn_tokenizer_free(tok);
    attn_cls_info_free(&info);
    if (st) return cli_fail("classify", st);
    return cli_finish_stdout("classify");
}
