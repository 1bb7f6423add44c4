/* json_writer.c - the explain documents' streaming JSON writer (json_writer.h). */
#include "json_writer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "export_util.h"

static void tabs(jw *w, int n)
{
    for (int i = 0; i < n; i++) putc('\t', w->f);
}

void jw_init(jw *w, FILE *f)
{
    memset(w, 0, sizeof *w);
    w->f = f;
}

attn_status jw_status(const jw *w)
{
    if (w->nomem) return attn_error(ATTN_E_NOMEM, "cannot print the JSON document");
    if (w->toodeep)
        return attn_error(ATTN_E_INTERNAL, "the JSON document nests deeper than %d levels", JW_MAX_DEPTH);
    return ferror(w->f) ? attn_error(ATTN_E_IO, "cannot write the JSON document") : ATTN_OK;
}

/* A string, escaped by cJSON. */
void jw_quoted(jw *w, const char *s)
{
    cJSON item = {0};
    item.type = cJSON_String | cJSON_IsReference, item.valuestring = (char *)(s ? s : "");
    char *p = cJSON_PrintUnformatted(&item);
    if (p) fputs(p, w->f);
    else w->nomem = 1;
    free(p);
}

/* The open level's count of items. Levels past JW_MAX_DEPTH share the last
 * slot (the layout past it is wrong, and jw_status says so) rather than
 * write past the array. */
static int *level(jw *w)
{
    return &w->items[w->depth < JW_MAX_DEPTH ? w->depth : JW_MAX_DEPTH];
}

/* One level deeper, for jw_open_*. */
static void descend(jw *w)
{
    if (w->depth >= JW_MAX_DEPTH) w->toodeep = 1;
    w->depth++;
    *level(w) = 0;
}

/* Before a member of an object (key: its name) or an element of an array
 * (key NULL). */
static void next_item(jw *w, const char *key)
{
    int *n = level(w);
    if (key) {
        fputs(*n ? ",\n" : "", w->f);
        tabs(w, w->depth);
        jw_quoted(w, key);
        fputs(":\t", w->f);
    } else if (*n) {
        fputs(", ", w->f);
    }
    (*n)++;
}

void jw_open_object(jw *w, const char *key)
{
    next_item(w, key);
    fputs("{\n", w->f);
    descend(w);
}

void jw_open_array(jw *w, const char *key)
{
    next_item(w, key);
    putc('[', w->f);
    descend(w);
}

void jw_close_object(jw *w)
{
    if (*level(w)) putc('\n', w->f);
    tabs(w, w->depth - 1);
    putc('}', w->f);
    w->depth--;
}

void jw_close_array(jw *w)
{
    putc(']', w->f);
    w->depth--;
}

void jw_string(jw *w, const char *key, const char *s)
{
    next_item(w, key);
    jw_quoted(w, s);
}

/* The shortest decimal that reads back as the same float, so that the JSON
 * shows 0.25 and 0.333333343, not 0.33333334326744080; -0 as 0 (as cJSON
 * prints it), and at once: most of a long text's attention weights are 0. */
void jw_float(jw *w, float v)
{
    char buf[32];
    if (v == 0.0f) {
        putc('0', w->f);
        return;
    }
    if (isfinite(v)) export_shortest_float(buf, v);
    fputs(isfinite(v) ? buf : "null", w->f);
}

/* jw_float's decimal, as cJSON prints that number (an integer as one). */
void jw_number(jw *w, float v)
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
void jw_matrix(jw *w, const char *key, const attn_tensor *t)
{
    jw_open_array(w, key);
    for (size_t i = 0; t && t->ndim == 2 && i < t->shape[0]; i++) {
        jw_open_array(w, NULL);
        for (size_t j = 0; j < t->shape[1]; j++) jw_number(w, t->data[i * t->shape[1] + j]);
        jw_close_array(w);
    }
    jw_close_array(w);
}

void jw_vector(jw *w, const char *key, const float *v, size_t n)
{
    jw_open_array(w, key);
    for (size_t i = 0; i < n; i++) jw_number(w, v[i]);
    jw_close_array(w);
}

void jw_strings(jw *w, const char *key, const char *const *s, size_t n)
{
    jw_open_array(w, key);
    for (size_t i = 0; i < n; i++) jw_string(w, NULL, s[i]);
    jw_close_array(w);
}

/* Starts the document: its root object open. */
attn_status jw_begin(jw *w, FILE *f)
{
    jw_init(w, f);
    if (!(w->num = cJSON_CreateNumber(0))) return attn_error(ATTN_E_NOMEM, "cannot build the JSON document");
    fputs("{\n", f);
    w->depth = 1;
    return ATTN_OK;
}

/* Closes the root object and the line; reports what went wrong on the way. */
attn_status jw_end(jw *w)
{
    jw_close_object(w);
    putc('\n', w->f);
    cJSON_Delete(w->num);
    w->num = NULL;
    return jw_status(w);
}

