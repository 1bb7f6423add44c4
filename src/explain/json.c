/* json.c - walkthrough traces as JSON documents, written as they go.
 *
 * The document is streamed to the file: memory stays that of the trace, not
 * of a tree of every number (4,096 tokens: 5 matrices of 4096² per trace,
 * about 4.6 GB as a cJSON tree). The layout is cJSON_Print's, byte for byte
 * (an object's members on their own lines, indented by tabs; arrays on one
 * line, ", " between elements), and cJSON prints each number and string, so
 * the output is what the tree gave. Everything is checked before the first
 * byte; a failed write is reported at the end. */
#include "attn/explain.h"
#include "export_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 8

typedef struct jw {
    FILE *f;
    cJSON *num;               /* one number node, reused for every number */
    int depth;                /* open objects and arrays */
    int items[MAX_DEPTH + 1]; /* members or elements so far, per level */
    int nomem;                /* a string could not be printed */
} jw;

static void tabs(jw *w, int n)
{
    for (int i = 0; i < n; i++) putc('\t', w->f);
}

/* A string, escaped by cJSON. */
static void quoted(jw *w, const char *s)
{
    cJSON item = {0};
    item.type = cJSON_String | cJSON_IsReference, item.valuestring = (char *)(s ? s : "");
    char *p = cJSON_PrintUnformatted(&item);
    if (p) fputs(p, w->f);
    else w->nomem = 1;
    free(p);
}

/* Before a member of an object (key: its name) or an element of an array
 * (key NULL). */
static void next_item(jw *w, const char *key)
{
    int *n = &w->items[w->depth];
    if (key) {
        fputs(*n ? ",\n" : "", w->f);
        tabs(w, w->depth);
        quoted(w, key);
        fputs(":\t", w->f);
    } else if (*n) {
        fputs(", ", w->f);
    }
    (*n)++;
}

static void open_object(jw *w, const char *key)
{
    next_item(w, key);
    fputs("{\n", w->f);
    w->items[++w->depth] = 0;
}

static void open_array(jw *w, const char *key)
{
    next_item(w, key);
    putc('[', w->f);
    w->items[++w->depth] = 0;
}

static void close_object(jw *w)
{
    if (w->items[w->depth]) putc('\n', w->f);
    tabs(w, w->depth - 1);
    putc('}', w->f);
    w->depth--;
}

static void close_array(jw *w)
{
    putc(']', w->f);
    w->depth--;
}

static void string(jw *w, const char *key, const char *s)
{
    next_item(w, key);
    quoted(w, s);
}

/* A float as the shortest decimal that reads back as the same float, so the
 * JSON shows 0.25 and 0.333333343, not 0.33333334326744080. Non-finite values
 * (which JSON lacks) become null. */
static void number(jw *w, float v)
{
    next_item(w, NULL);
    if (!isfinite(v)) {
        fputs("null", w->f);
        return;
    }
    char buf[32];
    export_shortest_float(buf, v);
    cJSON_SetNumberValue(w->num, strtod(buf, NULL));
    if (cJSON_PrintPreallocated(w->num, buf, (int)sizeof buf, 0)) fputs(buf, w->f);
    else w->nomem = 1;
}

/* A matrix (rows, cols) as an array of rows; anything else as []. */
static void matrix(jw *w, const char *key, const attn_tensor *t)
{
    open_array(w, key);
    for (size_t i = 0; t && t->ndim == 2 && i < t->shape[0]; i++) {
        open_array(w, NULL);
        for (size_t j = 0; j < t->shape[1]; j++) number(w, t->data[i * t->shape[1] + j]);
        close_array(w);
    }
    close_array(w);
}

static void vector(jw *w, const char *key, const float *v, size_t n)
{
    open_array(w, key);
    for (size_t i = 0; i < n; i++) number(w, v[i]);
    close_array(w);
}

static void strings(jw *w, const char *key, const char *const *s, size_t n)
{
    open_array(w, key);
    for (size_t i = 0; i < n; i++) string(w, NULL, s[i]);
    close_array(w);
}

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
    string(w, "text", text ? text : "");
    strings(w, "tokens", tokens, n);
    for (size_t i = 0; i < sizeof step_keys / sizeof *step_keys; i++)
        matrix(w, step_keys[i], attn_trace_get(t, step_keys[i]));
}

static void dims(jw *w, const attn_trace *t)
{
    size_t n = 0;
    const char *const *d = attn_trace_labels(t, "dim", &n);
    strings(w, "dims", d, n);
}

/* Starts the document: its root object open. */
static attn_status begin(jw *w, FILE *f)
{
    memset(w, 0, sizeof *w);
    w->f = f;
    if (!(w->num = cJSON_CreateNumber(0))) return attn_error(ATTN_E_NOMEM, "cannot build the JSON document");
    fputs("{\n", f);
    w->depth = 1;
    return ATTN_OK;
}

/* Closes the root object and the line; reports what went wrong on the way. */
static attn_status end(jw *w)
{
    close_object(w);
    putc('\n', w->f);
    cJSON_Delete(w->num);
    if (w->nomem) return attn_error(ATTN_E_NOMEM, "cannot print the JSON document");
    return ferror(w->f) ? attn_error(ATTN_E_IO, "cannot write the JSON document") : ATTN_OK;
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
    attn_status st = begin(&w, f);
    if (st) return st;
    dims(&w, traces[0]);
    open_array(&w, "sentences");
    for (size_t i = 0; i < n; i++) {
        open_object(&w, NULL);
        walkthrough(&w, traces[i], texts ? texts[i] : NULL);
        close_object(&w);
    }
    close_array(&w);
    return end(&w);
}

/* Tokens present in both, in the first input's order, each once. */
static void shared_tokens(jw *w, const attn_trace *a, const attn_trace *b)
{
    size_t na = 0, nb = 0;
    const char *const *ta = attn_trace_labels(a, "token", &na);
    const char *const *tb = attn_trace_labels(b, "token", &nb);
    const attn_tensor *oa = attn_trace_get(a, "output");
    const attn_tensor *ob = attn_trace_get(b, "output");
    open_array(w, "shared_tokens");
    for (size_t i = 0; i < na; i++) {
        int seen = 0;
        for (size_t k = 0; k < i && !seen; k++) seen = strcmp(ta[k], ta[i]) == 0;
        size_t j = 0;
        while (j < nb && strcmp(tb[j], ta[i]) != 0) j++;
        if (seen || j == nb) continue;
        open_object(w, NULL);
        string(w, "token", ta[i]);
        vector(w, "output", oa->data + i * oa->shape[1], oa->shape[1]);
        vector(w, "compare_output", ob->data + j * ob->shape[1], ob->shape[1]);
        close_object(w);
    }
    close_array(w);
}

attn_status attn_json_walkthrough(FILE *f, const attn_trace *trace, const char *text,
                                  const attn_trace *compare, const char *compare_text)
{
    if (!f || !trace) return attn_error(ATTN_E_INVALID, "attn_json_walkthrough: no trace");
    attn_status st = check_trace(trace);
    if (!st && compare) st = check_trace(compare);
    jw w;
    if (!st) st = begin(&w, f);
    if (st) return st;
    dims(&w, trace);
    walkthrough(&w, trace, text);
    if (compare) {
        open_object(&w, "compare");
        walkthrough(&w, compare, compare_text);
        close_object(&w);
        shared_tokens(&w, trace, compare);
    }
    return end(&w);
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
    attn_status st = begin(&w, f);
    if (st) return st;
    size_t n = 0;
    const char *const *tokens = attn_trace_labels(trace, "token", &n);
    dims(&w, trace);
    string(&w, "text", text ? text : "");
    strings(&w, "tokens", tokens, n);
    matrix(&w, "embeddings", attn_trace_get(trace, "embeddings"));
    open_array(&w, "heads");
    for (size_t h = 0; h < num_heads; h++) {
        open_object(&w, NULL);
        for (size_t i = 0; i < sizeof head_keys / sizeof *head_keys; i++) {
            snprintf(name, sizeof name, "head%zu.%s", h, head_keys[i]);
            matrix(&w, head_keys[i], attn_trace_get(trace, name));
        }
        close_object(&w);
    }
    close_array(&w);
    matrix(&w, "concat", attn_trace_get(trace, "concat"));
    matrix(&w, "output", attn_trace_get(trace, "output"));
    return end(&w);
}
