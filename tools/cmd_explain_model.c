/* cmd_explain_model.c - `attn explain --model DIR --text ...`: every layer's
 * and head's attention of a GPT on a text. The library runs the model and
 * compares the runs (attn/gpt_explain.h); the renderers draw the trace
 * (attn/explain_model.h); here only arguments, loading and the order of
 * things. */
#include <stdlib.h>
#include <string.h>

#include "attn/export.h"
#include "attn/gpt_explain.h"
#include "cli.h"
#include "cmd_explain.h"
#include "cmd_gpt.h"

/* One text through the model: ids, labels and the traced run. */
typedef struct run {
    uint32_t *ids;
    size_t n;
    char **labels;
    attn_trace *trace;
} run;

static void run_free(run *r)
{
    free(r->ids);
    attn_tokenizer_labels_free(r->labels, r->n);
    attn_trace_free(r->trace);
}

/* The maps, and the hidden states and their comparison for --compare-text,
 * are all the views read: at 1,024 tokens the rest of the intermediates are
 * gigabytes. --xlsx rebuilds a layer from its inputs, so it keeps everything. */
static attn_status keep_needed(attn_trace *t, const explain_model_args *a)
{
    if (a->xlsx) return ATTN_OK;
    const char *pat[] = {"layer*.head*.attention", "compare.*", "layer*.resid"};
    return attn_trace_set_filter(t, a->compare ? 3 : 2, pat);
}

/* hf: a Hugging Face folder, whose limit is config.json's n_positions; an
 * attn checkpoint's is the context it was trained with. */
static attn_status run_text(attn_gpt *g, const attn_tokenizer *tok, const char *text,
                            const char *what, int hf, const explain_model_args *a, run *r)
{
    const attn_gpt_config *c = attn_gpt_get_config(g);
    attn_status st = attn_tokenizer_encode(tok, text, strlen(text), what, &r->ids, &r->n);
    if (!st && r->n == 0) st = attn_error(ATTN_E_INVALID, "%s: no tokens (expected a non-empty text)", what);
    if (!st && r->n > c->context)
        st = attn_error(ATTN_E_INVALID, "%s: %zu tokens, but the model has %zu positions (%s)", what,
                        r->n, c->context,
                        hf ? "n_positions in config.json" : "its context: attn train --context");
    if (!st) st = attn_tokenizer_labels(tok, r->ids, r->n, &r->labels);
    if (!st) st = attn_trace_create(&r->trace);
    if (!st) st = keep_needed(r->trace, a);
    if (!st) st = attn_gpt_trace_text(g, r->ids, r->n, (const char *const *)r->labels, r->trace);
    return st;
}

/* --xlsx: one head of one layer as a layer workbook (attn_gpt_head_trace). */
static attn_status export_xlsx(const attn_gpt *g, const explain_model_args *a, const run *r)
{
    attn_trace *ht = NULL;
    attn_status st = attn_trace_create(&ht);
    if (!st) st = attn_gpt_head_trace(g, r->trace, (size_t)a->layer, (size_t)a->head, ht);
    char caption[600];
    snprintf(caption, sizeof caption, "%s, layer %ld head %ld", a->dir, a->layer, a->head);
    const attn_trace *tt[1] = {ht};
    const char *cap[1] = {caption};
    attn_doc doc = {"attn explain --model", 1, tt, cap, 1};
    if (!st) st = attn_export_xlsx(&doc, a->xlsx);
    if (!st)
        printf("wrote %s (workbook of live formulas: layer %ld head %ld, from the layer's input)\n",
               a->xlsx, a->layer, a->head);
    attn_trace_free(ht);
    return st;
}

static attn_status render(const attn_gpt *g, const explain_model_args *a, const attn_model_view *v,
                          const run *r, const cli_attention_opts *o)
{
    attn_status st = ATTN_OK;
    int files = a->html || a->svg || a->csv || a->xlsx;
    if (a->html && !(st = attn_export_model_html(v, a->html)))
        printf("wrote %s (interactive page: open it in a browser)\n", a->html);
    if (!st && a->xlsx) st = export_xlsx(g, a, r);
    if (!st && a->svg && !(st = attn_export_model_svg(v, a->svg)))
        printf("wrote %s/ (one SVG heatmap per map)\n", a->svg);
    if (!st && a->csv && !(st = attn_export_model_csv(v, a->csv)))
        printf("wrote %s/ (one CSV per map)\n", a->csv);
    if (!st && o->json) return attn_json_model(stdout, v);
    if (st || files) return st;
    const attn_gpt_config *c = attn_gpt_get_config(g);
    printf("attn explain: %s on %zu tokens (layers: %zu, heads: %zu, width %zu)\n", a->dir, v->n_tokens,
           c->layers, c->heads, c->width);
    if (v->compare) printf("compared with %zu tokens of --compare-text\n", v->compare_n);
    fputc('\n', stdout);
    return attn_text_model(stdout, v, &o->text);
}

/* Range checks of --layer / --head against the model. */
static attn_status check_filters(const explain_model_args *a, const attn_gpt_config *c)
{
    if (a->layer >= (long)c->layers)
        return attn_error(ATTN_E_INVALID, "--layer %ld: the model has %zu layer%s (expected 0..%zu)",
                          a->layer, c->layers, c->layers == 1 ? "" : "s", c->layers - 1);
    if (a->head >= (long)c->heads)
        return attn_error(ATTN_E_INVALID, "--head %ld: the model has %zu head%s (expected 0..%zu)",
                          a->head, c->heads, c->heads == 1 ? "" : "s", c->heads - 1);
    return ATTN_OK;
}

int explain_model(const explain_model_args *a, const cli_attention_opts *o)
{
    attn_gpt *g = NULL;
    attn_tokenizer *tok = NULL;
    run ra = {0}, rb = {0};
    int hf;
    /* Everything is computed before anything is written. */
    attn_status st = gpt_cli_load_model(a->dir, &g, &tok, &hf);
    if (!st) st = check_filters(a, attn_gpt_get_config(g));
    if (!st) st = run_text(g, tok, a->text, "--text", hf, a, &ra);
    if (!st && a->compare) st = run_text(g, tok, a->compare, "--compare-text", hf, a, &rb);
    const size_t layers = g ? attn_gpt_get_config(g)->layers : 0;
    if (!st && a->compare) st = attn_gpt_compare_hidden(ra.trace, rb.trace, layers);
    int rc;
    if (!st) {
        attn_model_view v = {a->dir, ra.trace, ra.ids, ra.n, layers, attn_gpt_get_config(g)->heads,
                             a->layer, a->head, rb.trace, rb.ids, rb.n};
        st = render(g, a, &v, &ra, o);
    }
    rc = st ? cli_fail("explain", st) : cli_finish_stdout("explain");
    run_free(&ra);
    run_free(&rb);
    attn_tokenizer_free(tok);
    attn_gpt_free(g);
    return rc;
}
