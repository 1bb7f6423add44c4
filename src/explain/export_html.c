/* export_html.c - one self-contained interactive page for a document.
 *
 * The page carries the library's numbers as JSON in
 * <script type="application/json" id="attn-data">: small matrices as decimal
 * numbers that read back as the same float32, large ones (and any holding
 * -inf, which JSON cannot spell) as base64 of little-endian float32. The
 * page's own CSS and script (html_page.h) draw them on <canvas>; a Content
 * Security Policy forbids every network access. Nothing here recomputes.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "export_util.h"
#include "html_page.h"
#include "model_view.h"

/* Above this many values a matrix travels as base64 float32: 5.3 bytes a
 * value instead of up to 16, and no decimal parsing in the browser. */
#define HTML_F32_MIN_VALUES 65536

/* A FILE that remembers its first write failure, so the writers stay short
 * and the caller checks once. */
typedef struct sink {
    FILE *f;
    int err;
} sink;

static void put_n(sink *o, const char *s, size_t n)
{
    if (!o->err && n && fwrite(s, 1, n, o->f) != n) o->err = 1;
}

static void put(sink *o, const char *s) { put_n(o, s, strlen(s)); }

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void put_f(sink *o, const char *fmt, ...)
{
    if (o->err) return;
    va_list ap;
    va_start(ap, fmt);
    if (vfprintf(o->f, fmt, ap) < 0) o->err = 1;
    va_end(ap);
}

/* A JSON string that is also safe inside <script>: '<', '>' and '&' are
 * escaped, so no token can close the element or open a comment. */
static void json_str(sink *o, const char *s)
{
    put(o, "\"");
    const char *run = s ? s : "";
    for (const char *p = run; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' && c != 0x7f)
            continue;
        put_n(o, run, (size_t)(p - run));
        char esc[8];
        if (c == '"' || c == '\\') snprintf(esc, sizeof esc, "\\%c", c);
        else snprintf(esc, sizeof esc, "\\u%04x", c);
        put(o, esc);
        run = p + 1;
    }
    put(o, run);
    put(o, "\"");
}

/* HTML text (the <title>). */
static void html_text(sink *o, const char *s)
{
    const char *run = s;
    for (const char *p = s; *p; p++) {
        const char *rep = *p == '&' ? "&amp;" : *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : NULL;
        if (!rep) continue;
        put_n(o, run, (size_t)(p - run));
        put(o, rep);
        run = p + 1;
    }
    put(o, run);
}

/* A finite float as the shortest decimal that reads back as the same float
 * (the browser parses it to a double and rounds to float32, as strtod and a
 * cast do here). */
static void json_float(sink *o, float v)
{
    char buf[32];
    export_shortest_float(buf, v);
    put(o, buf);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of bytes (a multiple of 3 except at the very end). */
static void bytes_base64(sink *o, const unsigned char *in, size_t bytes)
{
    char out[4096 + 4];
    size_t m = 0;
    for (size_t b = 0; b < bytes && !o->err; b += 3) {
        size_t left = bytes - b;
        uint32_t t = (uint32_t)in[b] << 16 | (left > 1 ? (uint32_t)in[b + 1] << 8 : 0) |
                     (left > 2 ? in[b + 2] : 0);
        out[m++] = b64[t >> 18 & 63];
        out[m++] = b64[t >> 12 & 63];
        out[m++] = left > 1 ? b64[t >> 6 & 63] : '=';
        out[m++] = left > 2 ? b64[t & 63] : '=';
        if (m >= 4096) put_n(o, out, m), m = 0;
    }
    put_n(o, out, m);
}

/* Base64 of the values as little-endian float32, whatever the host's order. */
static void f32_base64(sink *o, const float *v, size_t n)
{
    enum { CHUNK = 768 };                /* floats per chunk: 3072 bytes, a multiple of 3 */
    unsigned char in[4 * CHUNK];
    for (size_t i = 0; i < n && !o->err; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;
        for (size_t a = 0; a < k; a++) {
            uint32_t u;
            memcpy(&u, &v[i + a], sizeof u);
            for (int b = 0; b < 4; b++) in[4 * a + (size_t)b] = (unsigned char)(u >> (8 * b));
        }
        bytes_base64(o, in, 4 * k);
    }
}

static void json_matrix(sink *o, const attn_trace_entry *e)
{
    const attn_tensor *t = e->tensor;
    int binary = t->numel > HTML_F32_MIN_VALUES;
    for (size_t i = 0; !binary && i < t->numel; i++) binary = !isfinite(t->data[i]);
    put_f(o, "{\"shape\":[%zu,%zu],\"rows\":", t->shape[0], t->shape[1]);
    json_str(o, e->row_axis);
    put(o, ",\"cols\":");
    json_str(o, e->col_axis);
    if (binary) {
        put(o, ",\"f32\":\"");
        f32_base64(o, t->data, t->numel);
        put(o, "\"}");
        return;
    }
    put(o, ",\"v\":[");
    for (size_t i = 0; i < t->numel; i++) {
        if (i) put(o, ",");
        json_float(o, t->data[i]);
    }
    put(o, "]}");
}

static void json_labels(sink *o, const attn_trace *t, const char *axis)
{
    size_t n = 0;
    const char *const *l = attn_trace_labels(t, axis, &n);
    put(o, "[");
    for (size_t i = 0; l && i < n; i++) {
        if (i) put(o, ",");
        json_str(o, l[i]);
    }
    put(o, "]");
}

/* Labels of every axis the 2-D entries name (a handful: token, query, key,
 * dim, value_dim, head_dim, concat_dim, out_dim). */
static void json_axes(sink *o, const attn_trace *t)
{
    const char *seen[32];
    size_t n_seen = 0;
    put(o, "{");
    for (size_t i = 0; i < attn_trace_count(t); i++) {
        attn_trace_entry e;
        if (attn_trace_entry_at(t, i, &e) || e.tensor->ndim != 2) continue;
        const char *axes[2] = {e.row_axis, e.col_axis};
        for (int a = 0; a < 2; a++) {
            size_t k = 0;
            if (!axes[a]) continue;
            while (k < n_seen && strcmp(seen[k], axes[a]) != 0) k++;
            if (k < n_seen || n_seen == sizeof seen / sizeof *seen) continue;
            seen[n_seen++] = axes[a];
            if (n_seen > 1) put(o, ",");
            json_str(o, axes[a]);
            put(o, ":");
            json_labels(o, t, axes[a]);
        }
    }
    put(o, "}");
}

static void json_sequence(sink *o, const attn_trace *t, const char *caption)
{
    put(o, "{\"caption\":");
    json_str(o, caption);
    put(o, ",\n\"tokens\":");
    json_labels(o, t, "token");
    put(o, ",\n\"dims\":");
    json_labels(o, t, "dim");
    put(o, ",\n\"labels\":");
    json_axes(o, t);
    /* 0-D entries: scale and temperature (per head in a layer). */
    put(o, ",\n\"scalars\":{");
    int first = 1;
    for (size_t i = 0; i < attn_trace_count(t); i++) {
        attn_trace_entry e;
        if (attn_trace_entry_at(t, i, &e) || e.tensor->ndim != 0) continue;
        if (!first) put(o, ",");
        first = 0;
        json_str(o, e.name);
        put(o, ":");
        if (isfinite(e.tensor->data[0])) json_float(o, e.tensor->data[0]);
        else put(o, "null");
    }
    put(o, "},\n\"matrices\":{");
    first = 1;
    for (size_t i = 0; i < attn_trace_count(t); i++) {
        attn_trace_entry e;
        if (attn_trace_entry_at(t, i, &e) || e.tensor->ndim != 2) continue;
        if (!first) put(o, ",\n");
        first = 0;
        json_str(o, e.name);
        put(o, ":");
        json_matrix(o, &e);
    }
    put(o, "}}");
}

/* ---- what the page's script relies on ------------------------------------- */

static attn_status need(const attn_trace *t, size_t seq, const char *name, size_t rows,
                        size_t cols, const attn_tensor **out)
{
    const attn_tensor *m = attn_trace_get(t, name);
    if (!m || m->ndim != 2)
        return attn_error(ATTN_E_INVALID, "html export: sequence %zu has no 2-D '%s' entry",
                          seq + 1, name);
    if ((rows && m->shape[0] != rows) || (cols && m->shape[1] != cols))
        return attn_error(ATTN_E_INVALID,
                          "html export: sequence %zu: '%s' is %zu x %zu, expected %zu x %zu",
                          seq + 1, name, m->shape[0], m->shape[1], rows ? rows : m->shape[0],
                          cols ? cols : m->shape[1]);
    if (out) *out = m;
    return ATTN_OK;
}

/* The steps one attention (plain, or head `p`) needs, with matching shapes:
 * scores, scaled, [mask,] attention [L x S], output [L x dv]. */
static attn_status check_attention(const attn_trace *t, size_t seq, const char *p, size_t l,
                                   size_t s, size_t dv)
{
    static const char *const steps[] = {"scores", "scaled", "attention"};
    char name[64];
    attn_status st = ATTN_OK;
    for (size_t i = 0; !st && i < sizeof steps / sizeof *steps; i++) {
        snprintf(name, sizeof name, "%s%s", p, steps[i]);
        st = need(t, seq, name, l, s, NULL);
    }
    snprintf(name, sizeof name, "%smask", p);
    if (!st && attn_trace_get(t, name)) st = need(t, seq, name, l, s, NULL);
    snprintf(name, sizeof name, "%soutput", p);
    if (!st) st = need(t, seq, name, l, dv, NULL);
    return st;
}

static attn_status check_trace(const attn_doc *doc, size_t seq)
{
    const attn_trace *t = doc->traces[seq];
    const attn_tensor *x = NULL, *w_o = NULL, *q = NULL, *k = NULL, *v = NULL;
    attn_status st = need(t, seq, "embeddings", 0, 0, &x);
    const size_t l = x ? x->shape[0] : 0;
    if (st || !doc->num_heads) return st ? st : check_attention(t, seq, "", l, l, x->shape[1]);
    if (doc->num_heads > 4096)
        return attn_error(ATTN_E_INVALID, "html export: %zu heads is not a layer", doc->num_heads);
    size_t dv = 0;
    for (size_t h = 0; !st && h < doc->num_heads; h++) {
        char p[32], name[64];
        snprintf(p, sizeof p, "head%zu.", h);
        snprintf(name, sizeof name, "%sq", p);
        st = need(t, seq, name, l, 0, &q);
        snprintf(name, sizeof name, "%sk", p);
        if (!st) st = need(t, seq, name, 0, q->shape[1], &k);
        snprintf(name, sizeof name, "%sv", p);
        if (!st) st = need(t, seq, name, k->shape[0], h ? dv : 0, &v);
        if (!st) dv = v->shape[1];
        if (!st) st = check_attention(t, seq, p, l, k->shape[0], dv);
    }
    if (!st) st = need(t, seq, "concat", l, doc->num_heads * dv, NULL);
    if (!st) st = need(t, seq, "w_o", 0, doc->num_heads * dv, &w_o);
    if (!st) st = need(t, seq, "output", l, w_o->shape[0], NULL);
    if (!st && attn_trace_get(t, "b_o")) st = need(t, seq, "b_o", 1, w_o->shape[0], NULL);
    return st;
}

/* Everything up to <body>: the title and the inline stylesheet. */
static void page_head(sink *o, const char *title, const unsigned char *css, size_t css_len)
{
    put(o, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
           /* The page may run its inline script and style, and reach nothing else. */
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
           "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n<title>");
    html_text(o, title);
    put(o, "</title>\n<style>\n");
    put_n(o, (const char *)css, css_len);
    put(o, "</style>\n</head>\n");
}

static void write_page(sink *o, const attn_doc *doc)
{
    const char *title = doc->title && *doc->title ? doc->title : "attn";
    page_head(o, title, attn_html_page_css, attn_html_page_css_len);
    put(o, "<body>\n"
           "<noscript><p>This page draws its heatmaps with JavaScript. The numbers are in the "
           "attn-data element of its source.</p></noscript>\n"
           "<div id=\"app\"></div>\n<div id=\"tip\" role=\"tooltip\"></div>\n"
           "<script type=\"application/json\" id=\"attn-data\">\n{\"format\":\"attn-html-1\",\"title\":");
    json_str(o, title);
    put_f(o, ",\"num_heads\":%zu,\n\"sequences\":[\n", doc->num_heads);
    for (size_t s = 0; s < doc->n && !o->err; s++) {
        if (s) put(o, ",\n");
        json_sequence(o, doc->traces[s], doc->captions ? doc->captions[s] : NULL);
    }
    put(o, "]}\n</script>\n<script>\n");
    put_n(o, (const char *)attn_html_page_js, attn_html_page_js_len);
    put(o, "</script>\n</body>\n</html>\n");
}

attn_status attn_export_html(const attn_doc *doc, const char *path)
{
    /* The path first, before any work on the document. */
    attn_status st = attn_export_check_file(path);
    if (st || (st = export_check_doc(doc))) return st;
    for (size_t s = 0; s < doc->n; s++)
        if ((st = check_trace(doc, s))) return st;
    attn_atomic_file af;
    if ((st = attn_atomic_open(&af, path))) return st;
    sink o = {af.f, 0};
    write_page(&o, doc);
    if (o.err) {
        attn_atomic_abort(&af);
        return attn_error(ATTN_E_IO, "%s: cannot write the page", path);
    }
    return attn_atomic_commit(&af);
}

/* ---- a model's maps: attn explain --model --html ---------------------------------- */

/* Above this many cells in all, maps travel as 8-bit fractions instead of
 * 16-bit: 1,024 tokens x 144 maps is 76 M cells (lower triangles), a 100 MB
 * page at 8 bits. The colours need no more; the hover shows the value to
 * +-0.002 then (the JSON and CSV exports have every float). */
#define HTML_MODEL_16BIT_MAX_CELLS (16u << 20)

/* One map's lower triangle (row i: keys 0..i; the causal model's maps are
 * zero above the diagonal, which the page checks nothing about: `tri` says
 * whether the file holds whole rows instead), as fractions of the largest
 * code, little-endian, in base64. */
static attn_status model_map(sink *o, const attn_tensor *m, int tri, int bits)
{
    const size_t T = m->shape[0], cells = tri ? T * (T + 1) / 2 : T * T, bpc = (size_t)bits / 8;
    unsigned char *buf = malloc(cells * bpc);
    if (!buf) return attn_error(ATTN_E_NOMEM, "out of memory (a %zu x %zu map)", T, T);
    const double top = bits == 16 ? 65535.0 : 255.0;
    size_t k = 0;
    for (size_t i = 0; i < T; i++)
        for (size_t j = 0; j < (tri ? i + 1 : T); j++) {
            double v = (double)m->data[i * T + j];
            v = v > 0 ? (v < 1 ? v : 1) : 0; /* attention weights lie in [0, 1] */
            unsigned u = (unsigned)(v * top + 0.5);
            buf[k++] = (unsigned char)(u & 255);
            if (bits == 16) buf[k++] = (unsigned char)(u >> 8);
        }
    put(o, "\"");
    bytes_base64(o, buf, k);
    put(o, "\"");
    free(buf);
    return ATTN_OK;
}

/* 1 when every map shown is zero above its diagonal. */
static int all_lower(const attn_model_view *v, size_t l0, size_t l1, size_t h0, size_t h1)
{
    const size_t T = v->n_tokens;
    for (size_t l = l0; l < l1; l++)
        for (size_t h = h0; h < h1; h++) {
            const attn_tensor *m = model_view_map(v->trace, l, h);
            for (size_t i = 0; i < T; i++)
                for (size_t j = i + 1; j < T; j++)
                    if (m->data[i * T + j] != 0.0f) return 0;
        }
    return 1;
}

static attn_status write_model_page(sink *o, const attn_model_view *v)
{
    size_t l0, l1, h0, h1, n = 0;
    model_view_range(v, &l0, &l1, &h0, &h1);
    const char *const *tok = attn_trace_labels(v->trace, "token", &n);
    const int tri = all_lower(v, l0, l1, h0, h1);
    const size_t T = v->n_tokens, per = tri ? T * (T + 1) / 2 : T * T;
    const int bits = per * (l1 - l0) * (h1 - h0) <= HTML_MODEL_16BIT_MAX_CELLS ? 16 : 8;
    const char *title = v->title && *v->title ? v->title : "attn explain --model";
    page_head(o, title, attn_html_model_css, attn_html_model_css_len);
    put(o, "<body>\n<noscript><p>This page draws the maps with JavaScript; "
           "they are in the attn-model element of its source.</p></noscript>\n"
           "<div id=\"app\"></div>\n<div id=\"tip\" role=\"tooltip\"></div>\n"
           "<script type=\"application/json\" id=\"attn-model\">\n{\"format\":\"attn-model-html-1\",\"title\":");
    json_str(o, title);
    put_f(o, ",\"n_layers\":%zu,\"n_heads\":%zu,\"bits\":%d,\"tri\":%s,\n\"tokens\":[", v->layers,
          v->heads, bits, tri ? "true" : "false");
    for (size_t i = 0; i < n; i++) {
        if (i) put(o, ",");
        json_str(o, tok[i]);
    }
    put(o, "],\n\"ids\":[");
    for (size_t i = 0; i < T; i++) put_f(o, i ? ",%u" : "%u", (unsigned)v->ids[i]);
    put(o, "],\n\"layers\":[");
    for (size_t l = l0; l < l1; l++) put_f(o, l > l0 ? ",%zu" : "%zu", l);
    put(o, "],\"heads\":[");
    for (size_t h = h0; h < h1; h++) put_f(o, h > h0 ? ",%zu" : "%zu", h);
    put(o, "],\n\"maps\":[");
    attn_status st = ATTN_OK;
    for (size_t l = l0; !st && !o->err && l < l1; l++) {
        put(o, l > l0 ? ",\n[" : "\n[");
        for (size_t h = h0; !st && h < h1; h++) {
            if (h > h0) put(o, ",\n");
            st = model_map(o, model_view_map(v->trace, l, h), tri, bits);
        }
        put(o, "]");
    }
    put(o, "]}\n</script>\n<script>\n");
    put_n(o, (const char *)attn_html_model_js, attn_html_model_js_len);
    put(o, "</script>\n</body>\n</html>\n");
    return st;
}

attn_status attn_export_model_html(const attn_model_view *v, const char *path)
{
    attn_status st = attn_export_check_file(path);
    if (st || (st = attn_model_view_check(v))) return st;
    attn_atomic_file af;
    if ((st = attn_atomic_open(&af, path))) return st;
    sink o = {af.f, 0};
    st = write_model_page(&o, v);
    if (st || o.err) {
        attn_atomic_abort(&af);
        return st ? st : attn_error(ATTN_E_IO, "%s: cannot write the page", path);
    }
    return attn_atomic_commit(&af);
}
