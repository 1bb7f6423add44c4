/* json.c - walkthrough traces as JSON documents (cJSON). */
#include "attn/explain.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A float as the shortest decimal that reads back as the same float, so the
 * JSON shows 0.25 and 0.333333343, not 0.33333334326744080. Non-finite values
 * (which JSON lacks) become null. */
static cJSON *number(float v)
{
    if (!isfinite(v)) return cJSON_CreateNull();
    char buf[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
        if ((float)strtod(buf, NULL) == v) break;
    }
    return cJSON_CreateNumber(strtod(buf, NULL));
}

static cJSON *matrix(const attn_tensor *t)
{
    cJSON *rows = cJSON_CreateArray();
    if (!rows || !t || t->ndim != 2) return rows;
    for (size_t i = 0; i < t->shape[0]; i++) {
        cJSON *row = cJSON_CreateArray();
        if (!row) break;
        cJSON_AddItemToArray(rows, row);
        for (size_t j = 0; j < t->shape[1]; j++)
            cJSON_AddItemToArray(row, number(t->data[i * t->shape[1] + j]));
    }
    return rows;
}

static cJSON *vector(const float *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) cJSON_AddItemToArray(a, number(v[i]));
    return a;
}

static cJSON *strings(const char *const *s, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(s[i]));
    return a;
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

/* Adds text, tokens and every step of one trace to `obj`. */
static void add_walkthrough(cJSON *obj, const attn_trace *t, const char *text)
{
    size_t n = 0;
    const char *const *tokens = attn_trace_labels(t, "token", &n);
    cJSON_AddItemToObject(obj, "text", cJSON_CreateString(text ? text : ""));
    cJSON_AddItemToObject(obj, "tokens", strings(tokens, n));
    for (size_t i = 0; i < sizeof step_keys / sizeof *step_keys; i++)
        cJSON_AddItemToObject(obj, step_keys[i], matrix(attn_trace_get(t, step_keys[i])));
}

static cJSON *dims_of(const attn_trace *t)
{
    size_t n = 0;
    const char *const *dims = attn_trace_labels(t, "dim", &n);
    return strings(dims, n);
}

/* Prints and frees `root`. cJSON reports allocation failure as NULL
 * anywhere in the tree; the print then fails as a whole, caught here. */
static attn_status emit(FILE *f, cJSON *root)
{
    char *s = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!s) return attn_error(ATTN_E_NOMEM, "cannot build the JSON document");
    int bad = fputs(s, f) < 0 || fputc('\n', f) == EOF;
    free(s);
    return bad ? attn_error(ATTN_E_IO, "cannot write the JSON document") : ATTN_OK;
}

attn_status attn_json_walkthroughs(FILE *f, const attn_trace *const *traces,
                                   const char *const *texts, size_t n)
{
    if (!f || !traces || !n) return attn_error(ATTN_E_INVALID, "attn_json_walkthroughs: no traces");
    for (size_t i = 0; i < n; i++) {
        attn_status st = check_trace(traces[i]);
        if (st) return st;
    }
    cJSON *root = cJSON_CreateObject();
    if (root) {
        cJSON_AddItemToObject(root, "dims", dims_of(traces[0]));
        cJSON *list = cJSON_AddArrayToObject(root, "sentences");
        for (size_t i = 0; list && i < n; i++) {
            cJSON *s = cJSON_CreateObject();
            if (!s) break;
            cJSON_AddItemToArray(list, s);
            add_walkthrough(s, traces[i], texts ? texts[i] : NULL);
        }
    }
    return emit(f, root);
}

attn_status attn_json_walkthrough(FILE *f, const attn_trace *trace, const char *text,
                                  const attn_trace *compare, const char *compare_text)
{
    if (!f || !trace) return attn_error(ATTN_E_INVALID, "attn_json_walkthrough: no trace");
    attn_status st = check_trace(trace);
    if (!st && compare) st = check_trace(compare);
    if (st) return st;
    cJSON *root = cJSON_CreateObject();
    if (!root) return emit(f, root);
    cJSON_AddItemToObject(root, "dims", dims_of(trace));
    add_walkthrough(root, trace, text);
    if (compare) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToObject(root, "compare", c);
        if (c) add_walkthrough(c, compare, compare_text);
        /* Tokens present in both, in the first input's order, each once. */
        cJSON *shared = cJSON_AddArrayToObject(root, "shared_tokens");
        size_t na = 0, nb = 0;
        const char *const *ta = attn_trace_labels(trace, "token", &na);
        const char *const *tb = attn_trace_labels(compare, "token", &nb);
        const attn_tensor *oa = attn_trace_get(trace, "output");
        const attn_tensor *ob = attn_trace_get(compare, "output");
        for (size_t i = 0; shared && i < na; i++) {
            int seen = 0;
            for (size_t k = 0; k < i && !seen; k++) seen = strcmp(ta[k], ta[i]) == 0;
            size_t j = 0;
            while (j < nb && strcmp(tb[j], ta[i]) != 0) j++;
            if (seen || j == nb) continue;
            cJSON *item = cJSON_CreateObject();
            if (!item) break;
            cJSON_AddItemToArray(shared, item);
            cJSON_AddItemToObject(item, "token", cJSON_CreateString(ta[i]));
            cJSON_AddItemToObject(item, "output", vector(oa->data + i * oa->shape[1], oa->shape[1]));
            cJSON_AddItemToObject(item, "compare_output",
                                  vector(ob->data + j * ob->shape[1], ob->shape[1]));
        }
    }
    return emit(f, root);
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
    cJSON *root = cJSON_CreateObject();
    if (root) {
        size_t n = 0;
        const char *const *tokens = attn_trace_labels(trace, "token", &n);
        cJSON_AddItemToObject(root, "dims", dims_of(trace));
        cJSON_AddItemToObject(root, "text", cJSON_CreateString(text ? text : ""));
        cJSON_AddItemToObject(root, "tokens", strings(tokens, n));
        cJSON_AddItemToObject(root, "embeddings", matrix(attn_trace_get(trace, "embeddings")));
        cJSON *heads = cJSON_AddArrayToObject(root, "heads");
        for (size_t h = 0; heads && h < num_heads; h++) {
            cJSON *o = cJSON_CreateObject();
            if (!o) break;
            cJSON_AddItemToArray(heads, o);
            for (size_t i = 0; i < sizeof head_keys / sizeof *head_keys; i++) {
                snprintf(name, sizeof name, "head%zu.%s", h, head_keys[i]);
                cJSON_AddItemToObject(o, head_keys[i], matrix(attn_trace_get(trace, name)));
            }
        }
        cJSON_AddItemToObject(root, "concat", matrix(attn_trace_get(trace, "concat")));
        cJSON_AddItemToObject(root, "output", matrix(attn_trace_get(trace, "output")));
    }
    return emit(f, root);
}
