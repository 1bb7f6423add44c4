/* json.c - walkthrough traces as JSON documents, written as they go.
 *
 * The document is streamed to the file by json_writer.h's writer: memory
 * stays that of the trace, not of a tree of every number (4,096 tokens: 5
 * matrices of 4096² per trace, about 4.6 GB as a cJSON tree), and the layout
 * is cJSON_Print's, byte for byte. Everything is checked before the first
 * byte; a failed write is reported at the end. */
#include "attn/explain.h"

#include <string.h>

#include "json_writer.h"

static const char *const step_keys[] = {"embeddings", "scores", "scaled", "attention", "output"};

static attn_status check_trace(const attn_trace *t)
{
    for (size_t i = 0; i < sizeof step_keys / sizeof *step_keys; i++) {
        const attn_tensor *m = attn_trace_get(t, step_keys[i]);
        if (!m || m->ndim != 2)
            return attn_error(ATTN_E_NOTFOUND, "trace has no 2-D '%s' entry", step_keys[i]);
    }
    return ATTN_OK;
}

/* Text, tokens and every step of one trace, as members of the open object. */
static void walkthrough(jw *w, const attn_trace *t, const char *text)
{
    size_t n = 0;
    const char *const *tokens = attn_trace_labels(t, "token", &n);
    jw_string(w, "text", text ? text : "");
    jw_strings(w, "tokens", tokens, n);
    for (size_t i = 0; i < sizeof step_keys / sizeof *step_keys; i++)
        jw_matrix(w, step_keys[i], attn_trace_get(t, step_keys[i]));
}

static void dims(jw *w, const attn_trace *t)
{
    size_t n = 0;
    const char *const *d = attn_trace_labels(t, "dim", &n);
    jw_strings(w, "dims", d, n);
}

attn_status attn_json_walkthroughs(FILE *f, const attn_trace *const *traces,
                                   const char *const *texts, size_t n)
{
    if (!f || !traces || !n) return attn_error(ATTN_E_INVALID, "attn_json_walkthroughs: no traces");
    for (size_t i = 0; i < n; i++) {
        attn_status st = check_trace(traces[i]);
        if (st) return st;
    }
    jw w;
    attn_status st = jw_begin(&w, f);
    if (st) return st;
    dims(&w, traces[0]);
    jw_open_array(&w, "sentences");
    for (size_t i = 0; i < n; i++) {
        jw_open_object(&w, NULL);
        walkthrough(&w, traces[i], texts ? texts[i] : NULL);
        jw_close_object(&w);
    }
    jw_close_array(&w);
    return jw_end(&w);
}

/* Tokens present in both, in the first input's order, each once. */
static void shared_tokens(jw *w, const attn_trace *a, const attn_trace *b)
{
    size_t na = 0, nb = 0;
    const char *const *ta = attn_trace_labels(a, "token", &na);
    const char *const *tb = attn_trace_labels(b, "token", &nb);
    const attn_tensor *oa = attn_trace_get(a, "output");
    const attn_tensor *ob = attn_trace_get(b, "output");
    jw_open_array(w, "shared_tokens");
    for (size_t i = 0; i < na; i++) {
        int seen = 0;
        for (size_t k = 0; k < i && !seen; k++) seen = strcmp(ta[k], ta[i]) == 0;
        size_t j = 0;
        while (j < nb && strcmp(tb[j], ta[i]) != 0) j++;
        if (seen || j == nb) continue;
        jw_open_object(w, NULL);
        jw_string(w, "token", ta[i]);
        jw_vector(w, "output", oa->data + i * oa->shape[1], oa->shape[1]);
        jw_vector(w, "compare_output", ob->data + j * ob->shape[1], ob->shape[1]);
        jw_close_object(w);
    }
    jw_close_array(w);
}

attn_status attn_json_walkthrough(FILE *f, const attn_trace *trace, const char *text,
                                  const attn_trace *compare, const char *compare_text)
{
    if (!f || !trace) return attn_error(ATTN_E_INVALID, "attn_json_walkthrough: no trace");
    attn_status st = check_trace(trace);
    if (!st && compare) st = check_trace(compare);
    jw w;
    if (!st) st = jw_begin(&w, f);
    if (st) return st;
    dims(&w, trace);
    walkthrough(&w, trace, text);
    if (compare) {
        jw_open_object(&w, "compare");
        walkthrough(&w, compare, compare_text);
        jw_close_object(&w);
        shared_tokens(&w, trace, compare);
    }
    return jw_end(&w);
}

attn_status attn_json_mha_walkthrough(FILE *f, const attn_trace *trace, const char *text,
                                      size_t num_heads)
{
    static const char *const head_keys[] = {"q", "k", "v", "scores", "scaled", "attention",
                                            "output"};
    if (!f || !trace) return attn_error(ATTN_E_INVALID, "attn_json_mha_walkthrough: no trace");
    char name[64];
    const char *top[] = {"embeddings", "concat", "output"};
    for (size_t i = 0; i < 3; i++)
        if (!attn_trace_get(trace, top[i]))
            return attn_error(ATTN_E_NOTFOUND, "trace has no '%s' entry", top[i]);
    for (size_t h = 0; h < num_heads; h++)
        for (size_t i = 0; i < sizeof head_keys / sizeof *head_keys; i++) {
            snprintf(name, sizeof name, "head%zu.%s", h, head_keys[i]);
            if (!attn_trace_get(trace, name))
                return attn_error(ATTN_E_NOTFOUND, "trace has no '%s' entry", name);
        }
    jw w;
    attn_status st = jw_begin(&w, f);
    if (st) return st;
    size_t n = 0;
    const char *const *tokens = attn_trace_labels(trace, "token", &n);
    dims(&w, trace);
    jw_string(&w, "text", text ? text : "");
    jw_strings(&w, "tokens", tokens, n);
    jw_matrix(&w, "embeddings", attn_trace_get(trace, "embeddings"));
    jw_open_array(&w, "heads");
    for (size_t h = 0; h < num_heads; h++) {
        jw_open_object(&w, NULL);
        for (size_t i = 0; i < sizeof head_keys / sizeof *head_keys; i++) {
            snprintf(name, sizeof name, "head%zu.%s", h, head_keys[i]);
            jw_matrix(&w, head_keys[i], attn_trace_get(trace, name));
        }
        jw_close_object(&w);
    }
    jw_close_array(&w);
    jw_matrix(&w, "concat", attn_trace_get(trace, "concat"));
    jw_matrix(&w, "output", attn_trace_get(trace, "output"));
    return jw_end(&w);
}
