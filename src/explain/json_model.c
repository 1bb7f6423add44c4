/* json_model.c - a model's attention maps as JSON, written as it goes: a
 * 1,024-token text through GPT-2 holds 144 maps of a million cells, which a
 * document tree would hold in memory several times over. */
#include "attn/explain_model.h"

#include "json_writer.h"
#include "model_view.h"

/* s's strings as an array, ", " between them. */
static void strings(jw *w, const char *const *s, size_t n)
{
    fputc('[', w->f);
    for (size_t i = 0; i < n; i++) {
        if (i) fputs(", ", w->f);
        jw_quoted(w, s[i]);
    }
    fputc(']', w->f);
}

static void ids(jw *w, const uint32_t *id, size_t n)
{
    fputc('[', w->f);
    for (size_t i = 0; i < n; i++) fprintf(w->f, i ? ", %u" : "%u", (unsigned)id[i]);
    fputc(']', w->f);
}

static void map(jw *w, const attn_tensor *t)
{
    const size_t T = t->shape[0];
    fputc('[', w->f);
    for (size_t i = 0; i < T; i++) {
        fputs(i ? ",\n      [" : "\n      [", w->f);
        for (size_t j = 0; j < T; j++) {
            if (j) fputc(',', w->f);
            jw_float(w, t->data[i * T + j]);
        }
        fputc(']', w->f);
    }
    fputc(']', w->f);
}

static attn_status layers(jw *w, const attn_model_view *v)
{
    FILE *f = w->f;
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
            map(w, model_view_map(v->trace, l, h));
            fputc('}', f);
            if (ferror(f)) return jw_status(w); /* a full disk: stop at once */
        }
        fputs("]}", f);
    }
    fputs("]", f);
    return ATTN_OK;
}

/* Per layer, per head, the key token that row `q` of the map weights most. */
static void attends_to(jw *w, const attn_model_view *v, const attn_trace *t, size_t q)
{
    size_t n = 0;
    const char *const *tok = attn_trace_labels(t, "token", &n);
    fputc('[', w->f);
    for (size_t l = 0; l < v->layers; l++) {
        fputs(l ? ", [" : "[", w->f);
        for (size_t h = 0; h < v->heads; h++) {
            if (h) fputs(", ", w->f);
            jw_quoted(w, tok[model_view_top_key(model_view_map(t, l, h), q)]);
        }
        fputc(']', w->f);
    }
    fputc(']', w->f);
}

static void shared(jw *w, const attn_model_view *v)
{
    FILE *f = w->f;
    size_t S = 0, n_cmp = 0;
    const char *const *names = attn_trace_labels(v->trace, "shared_token", &S);
    const attn_tensor *cos = attn_trace_get(v->trace, "compare.cosine");
    const attn_tensor *pos = attn_trace_get(v->trace, "compare.positions");
    const char *const *ctok = attn_trace_labels(v->compare, "token", &n_cmp);
    fputs(",\n  \"compare\": {\"tokens\": ", f);
    strings(w, ctok, n_cmp);
    fputs(", \"ids\": ", f);
    ids(w, v->compare_ids, v->compare_n);
    fputs("},\n  \"shared_tokens\": [", f);
    for (size_t s = 0; cos && pos && s < S; s++) {
        const size_t pa = (size_t)pos->data[2 * s], pb = (size_t)pos->data[2 * s + 1];
        fputs(s ? ",\n    {\"token\": " : "\n    {\"token\": ", f);
        jw_quoted(w, names[s]);
        fprintf(f, ", \"position\": %zu, \"compare_position\": %zu, \"cosine_by_layer\": [", pa, pb);
        for (size_t l = 0; l < v->layers; l++) {
            if (l) fputs(", ", f);
            jw_float(w, cos->data[s * v->layers + l]);
        }
        fputs("],\n     \"attends_to\": ", f);
        attends_to(w, v, v->trace, pa);
        fputs(",\n     \"compare_attends_to\": ", f);
        attends_to(w, v, v->compare, pb);
        fputc('}', f);
    }
    fputs("]", f);
}

/* The layout is this file's own (a map's rows one per line); the strings and
 * numbers are json_writer.h's. */
attn_status attn_json_model(FILE *f, const attn_model_view *v)
{
    attn_status st = attn_model_view_check(v);
    if (st) return st;
    jw w;
    jw_init(&w, f);
    size_t n = 0;
    const char *const *tok = attn_trace_labels(v->trace, "token", &n);
    fputs("{\"tokens\": ", f);
    strings(&w, tok, n);
    fputs(",\n  \"ids\": ", f);
    ids(&w, v->ids, v->n_tokens);
    if (v->layer >= 0) fprintf(f, ",\n  \"layer\": %ld", v->layer);
    if (v->head >= 0) fprintf(f, ",\n  \"head\": %ld", v->head);
    st = layers(&w, v);
    if (!st && v->compare) shared(&w, v);
    if (!st) fputs("}\n", f);
    return st ? st : jw_status(&w);
}
