/* json_model.c - a model's attention maps as JSON, written as it goes: a
 * 1,024-token text through GPT-2 holds 144 maps of a million cells, which a
 * document tree would hold in memory several times over. */
#include "attn/explain_model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "export_util.h"
#include "model_view.h"

/* The shortest decimal that reads back as the same float; null when not finite. */
static void number(FILE *f, float v)
{
    if (!isfinite(v)) {
        fputs("null", f);
        return;
    }
    if (v == 0.0f) {
        fputc('0', f);
        return;
    }
    char buf[32];
    export_shortest_float(buf, v);
    fputs(buf, f);
}

/* s as a JSON string (cJSON escapes it). */
static attn_status string(FILE *f, const char *s)
{
    cJSON *j = cJSON_CreateString(s);
    char *txt = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!txt) return attn_error(ATTN_E_NOMEM, "out of memory");
    fputs(txt, f);
    cJSON_free(txt);
    return ATTN_OK;
}

static attn_status strings(FILE *f, const char *const *s, size_t n)
{
    fputc('[', f);
    for (size_t i = 0; i < n; i++) {
        if (i) fputs(", ", f);
        attn_status st = string(f, s[i]);
        if (st) return st;
    }
    fputc(']', f);
    return ATTN_OK;
}

static void ids(FILE *f, const uint32_t *id, size_t n)
{
    fputc('[', f);
    for (size_t i = 0; i < n; i++) fprintf(f, i ? ", %u" : "%u", (unsigned)id[i]);
    fputc(']', f);
}

static void map(FILE *f, const attn_tensor *t)
{
    const size_t T = t->shape[0];
    fputc('[', f);
    for (size_t i = 0; i < T; i++) {
        fputs(i ? ",\n      [" : "\n      [", f);
        for (size_t j = 0; j < T; j++) {
            if (j) fputc(',', f);
            number(f, t->data[i * T + j]);
        }
        fputc(']', f);
    }
    fputc(']', f);
}

static attn_status layers(FILE *f, const attn_model_view *v)
{
    size_t l0, l1, h0, h1;
    model_view_range(v, &l0, &l1, &h0, &h1);
    fputs(",\n  \"layers\": [", f);
    for (size_t l = l0; l < l1; l++) {
        fputs(l > l0 ? ",\n    {" : "\n    {", f);
        if (v->layer >= 0) fprintf(f, "\"layer\": %zu, ", l);
        fputs("\"heads\": [", f);
        for (size_t h = h0; h < h1; h++) {
            fputs(h > h0 ? ",\n     {" : "\n     {", f);
            if (v->head >= 0) fprintf(f, "\"head\": %zu, ", h);
            fputs("\"attention\": ", f);
            map(f, model_view_map(v->trace, l, h));
            fputc('}', f);
            if (ferror(f)) return attn_error(ATTN_E_IO, "cannot write the JSON");
        }
        fputs("]}", f);
    }
    fputs("]", f);
    return ATTN_OK;
}

/* Per layer, per head, the key token that row `q` of the map weights most. */
static attn_status attends_to(FILE *f, const attn_model_view *v, const attn_trace *t, size_t q)
{
    size_t n = 0;
    const char *const *tok = attn_trace_labels(t, "token", &n);
    fputc('[', f);
    for (size_t l = 0; l < v->layers; l++) {
        fputs(l ? ", [" : "[", f);
        for (size_t h = 0; h < v->heads; h++) {
            if (h) fputs(", ", f);
            attn_status st = string(f, tok[model_view_top_key(model_view_map(t, l, h), q)]);
            if (st) return st;
        }
        fputc(']', f);
    }
    fputc(']', f);
    return ATTN_OK;
}

static attn_status shared(FILE *f, const attn_model_view *v)
{
    size_t S = 0, n_cmp = 0;
    const char *const *names = attn_trace_labels(v->trace, "shared_token", &S);
    const attn_tensor *cos = attn_trace_get(v->trace, "compare.cosine");
    const attn_tensor *pos = attn_trace_get(v->trace, "compare.positions");
    const char *const *ctok = attn_trace_labels(v->compare, "token", &n_cmp);
    attn_status st;
    fputs(",\n  \"compare\": {\"tokens\": ", f);
    if ((st = strings(f, ctok, n_cmp))) return st;
    fputs(", \"ids\": ", f);
    ids(f, v->compare_ids, v->compare_n);
    fputs("},\n  \"shared_tokens\": [", f);
    for (size_t s = 0; cos && pos && s < S; s++) {
        const size_t pa = (size_t)pos->data[2 * s], pb = (size_t)pos->data[2 * s + 1];
        fputs(s ? ",\n    {\"token\": " : "\n    {\"token\": ", f);
        if ((st = string(f, names[s]))) return st;
        fprintf(f, ", \"position\": %zu, \"compare_position\": %zu, \"cosine_by_layer\": [", pa, pb);
        for (size_t l = 0; l < v->layers; l++) {
            if (l) fputs(", ", f);
            number(f, cos->data[s * v->layers + l]);
        }
        fputs("],\n     \"attends_to\": ", f);
        if ((st = attends_to(f, v, v->trace, pa))) return st;
        fputs(",\n     \"compare_attends_to\": ", f);
        if ((st = attends_to(f, v, v->compare, pb))) return st;
        fputc('}', f);
    }
    fputs("]", f);
    return ATTN_OK;
}

attn_status attn_json_model(FILE *f, const attn_model_view *v)
{
    attn_status st = attn_model_view_check(v);
    if (st) return st;
    size_t n = 0;
    const char *const *tok = attn_trace_labels(v->trace, "token", &n);
    fputs("{\"tokens\": ", f);
    if ((st = strings(f, tok, n))) return st;
    fputs(",\n  \"ids\": ", f);
    ids(f, v->ids, v->n_tokens);
    if (v->layer >= 0) fprintf(f, ",\n  \"layer\": %ld", v->layer);
    if (v->head >= 0) fprintf(f, ",\n  \"head\": %ld", v->head);
    if (!st) st = layers(f, v);
    if (!st && v->compare) st = shared(f, v);
    if (!st) fputs("}\n", f);
    if (!st && ferror(f)) st = attn_error(ATTN_E_IO, "cannot write the JSON");
    return st;
}
