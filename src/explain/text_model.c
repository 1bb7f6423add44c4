/* text_model.c - a model's run as terminal tables. */
#include <stdio.h>
#include <string.h>

#include "attn/explain_model.h"
#include "model_view.h"

#define CELL_TOKEN 12 /* characters of a token shown in a summary cell */

/* The token as a terminal label, control characters escaped, cut to `max`
 * characters (UTF-8 aware) with "…" when longer. */
static void label(char *buf, size_t n, const char *tok, size_t max)
{
    char esc[256];
    attn_text_escape(esc, sizeof esc, tok);
    size_t chars = 0, i = 0;
    for (; esc[i]; i++) {
        if (((unsigned char)esc[i] & 0xC0) == 0x80) continue;
        if (chars++ == max) break;
    }
    if (esc[i]) snprintf(buf, n, "%.*s…", (int)i, esc);
    else snprintf(buf, n, "%s", esc);
    for (char *p = buf; *p; p++)
        if (*p == ' ') *p = '_'; /* a leading space is GPT-2's word start: keep it visible */
}

/* Pads s to w display characters. */
static void cell(FILE *f, const char *s, size_t w)
{
    size_t chars = 0;
    for (const char *p = s; *p; p++) chars += ((unsigned char)*p & 0xC0) != 0x80;
    fputs(s, f);
    for (; chars < w; chars++) fputc(' ', f);
}

/* Per query, per head: the key it weights most and the weight. */
static void layer_summary(FILE *f, const attn_model_view *v, size_t l, size_t h0, size_t h1,
                          const attn_text_opts *o)
{
    const char *const *tok = attn_trace_labels(v->trace, "token", &(size_t){0});
    const int prec = o && o->precision >= 0 && o->precision <= 9 ? o->precision : 3;
    const size_t w = CELL_TOKEN + 4 + (size_t)prec;
    char buf[512], val[32];
    fprintf(f, "== layer %zu: the key each query weights most, per head ==\n", l);
    cell(f, "query", CELL_TOKEN + 2);
    for (size_t h = h0; h < h1; h++) {
        snprintf(buf, sizeof buf, "head %zu", h);
        cell(f, buf, w);
    }
    fputc('\n', f);
    for (size_t q = 0; q < v->n_tokens; q++) {
        label(buf, sizeof buf, tok[q], CELL_TOKEN);
        cell(f, buf, CELL_TOKEN + 2);
        for (size_t h = h0; h < h1; h++) {
            const attn_tensor *m = model_view_map(v->trace, l, h);
            const size_t k = model_view_top_key(m, q);
            label(buf, sizeof buf, tok[k], CELL_TOKEN);
            snprintf(val, sizeof val, " %.*f", prec, (double)m->data[q * v->n_tokens + k]);
            strncat(buf, val, sizeof buf - strlen(buf) - 1);
            cell(f, buf, w);
        }
        fputc('\n', f);
    }
    fputc('\n', f);
}

/* Per shared token: the cosine after each layer and, per head, the keys
 * its query weights most in both texts. */
static void comparison(FILE *f, const attn_model_view *v, const attn_text_opts *o)
{
    size_t S = 0;
    const char *const *names = attn_trace_labels(v->trace, "shared_token", &S);
    const attn_tensor *cos = attn_trace_get(v->trace, "compare.cosine");
    const attn_tensor *pos = attn_trace_get(v->trace, "compare.positions");
    const char *const *ta = attn_trace_labels(v->trace, "token", &(size_t){0});
    const char *const *tb = attn_trace_labels(v->compare, "token", &(size_t){0});
    const int prec = o && o->precision >= 0 && o->precision <= 9 ? o->precision : 3;
    if (!S || !cos || !pos) {
        fputs("No token appears in both texts.\n", f);
        return;
    }
    char buf[512];
    for (size_t s = 0; s < S; s++) {
        const size_t pa = (size_t)pos->data[2 * s], pb = (size_t)pos->data[2 * s + 1];
        label(buf, sizeof buf, names[s], 40);
        fprintf(f, "== \"%s\" (token %zu of the text, %zu of the compared text) ==\n", buf, pa, pb);
        fprintf(f, "layer  cosine   the key each head weights most: in the text | in the compared text\n");
        for (size_t l = 0; l < v->layers; l++) {
            fprintf(f, "%5zu  %6.*f ", l, prec, (double)cos->data[s * v->layers + l]);
            for (int side = 0; side < 2; side++) {
                fputs(side ? " |" : "", f);
                for (size_t h = 0; h < v->heads; h++) {
                    const attn_trace *t = side ? v->compare : v->trace;
                    const size_t k = model_view_top_key(model_view_map(t, l, h), side ? pb : pa);
                    label(buf, sizeof buf, (side ? tb : ta)[k], CELL_TOKEN);
                    fprintf(f, " %s", buf);
                }
            }
            fputc('\n', f);
        }
        fputc('\n', f);
    }
}

attn_status attn_text_model(FILE *f, const attn_model_view *v, const attn_text_opts *o)
{
    attn_status st = attn_model_view_check(v);
    if (st) return st;
    size_t l0, l1, h0, h1;
    model_view_range(v, &l0, &l1, &h0, &h1);
    if (v->compare) comparison(f, v, o);
    else if (v->layer >= 0 && v->head >= 0) {
        char name[64], title[96];
        snprintf(name, sizeof name, "layer%ld.head%ld.attention", v->layer, v->head);
        snprintf(title, sizeof title, "== layer %ld, head %ld: attention (rows: queries, columns: keys) ==",
                 v->layer, v->head);
        st = attn_text_matrix(f, v->trace, name, title, o);
    } else
        for (size_t l = l0; l < l1; l++) layer_summary(f, v, l, h0, h1, o);
    if (!st && ferror(f)) st = attn_error(ATTN_E_IO, "cannot write to the output");
    return st;
}
