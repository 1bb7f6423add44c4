/* text.c - trace entries as aligned terminal tables, optionally shaded. */
#include "attn/explain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CELL_MAX 48

static attn_text_opts resolve(const attn_text_opts *o)
{
    attn_text_opts r = {0, 3};
    if (o) r = *o;
    if (r.precision < 0 || r.precision > 9) r.precision = 3;
    return r;
}

/* A control character (C0, DEL, or C1 as UTF-8 C2 80..9F) in a token or label
 * would reach the terminal raw (an escape sequence could clear the screen):
 * it is shown as \xNN instead. Returns the bytes it spans, 0 if none. */
static size_t control_at(const unsigned char *s)
{
    if (*s < 0x20 || *s == 0x7f) return 1;
    if (s[0] == 0xC2 && s[1] >= 0x80 && s[1] <= 0x9F) return 2;
    return 0;
}

size_t attn_text_escape(char *buf, size_t n, const char *s)
{
    size_t len = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t k = control_at(p);
        char one[16];
        size_t m;
        if (k) m = (size_t)snprintf(one, sizeof one, "\\x%02x", k == 2 ? p[1] : p[0]);
        else one[0] = (char)*p, m = 1, k = 1;
        for (size_t i = 0; i < m; i++, len++)
            if (len + 1 < n) buf[len] = one[i];
        p += k;
    }
    if (n) buf[len < n ? len : n - 1] = '\0';
    return len;
}

/* Display width of a label: one column per code point, 4 per escaped
 * control character. */
static size_t display_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t k = control_at(p);
        if (k) w += 4, p += k;
        else w += (*p & 0xC0) != 0x80, p++;
    }
    return w;
}

/* A label as display_width measures it. */
static void put_label(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t k = control_at(p);
        if (k) fprintf(f, "\\x%02x", k == 2 ? p[1] : p[0]), p += k;
        else fputc(*p++, f);
    }
}

static void format_value(char *buf, size_t n, float v, int precision)
{
    if (isnan(v)) snprintf(buf, n, "nan");
    else if (isinf(v)) snprintf(buf, n, v < 0 ? "-inf" : "inf");
    else {
        /* Avoid "-0.000": a value that rounds to zero prints as zero. */
        double d = v;
        if (fabs(d) < 0.5 * pow(10.0, -precision)) d = 0.0;
        snprintf(buf, n, "%.*f", precision, d);
    }
}

/* ANSI 256-colour background for v in a matrix spanning [lo, hi]: a white to
 * blue ramp for non-negative matrices; red for negative values when the
 * matrix holds both signs; grey for -inf (masked). */
static void shade(FILE *f, float v, float lo, float hi)
{
    if (isnan(v)) {
        fputs("\x1b[48;5;201m\x1b[38;5;16m", f);
        return;
    }
    if (isinf(v)) {
        fputs("\x1b[48;5;250m\x1b[38;5;16m", f);
        return;
    }
    double t;
    int neg = 0;
    if (lo < 0 && hi > 0) {
        double m = fmax(-lo, hi);
        t = fabs(v) / m;
        neg = v < 0;
    } else if (hi > lo) {
        t = lo >= 0 ? (v - lo) / (hi - lo) : (hi - v) / (hi - lo);
        neg = hi <= 0;
    } else {
        t = 0.5;
    }
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    int a = 5 - (int)lround(5 * t), b = 5 - (int)lround(4 * t);
    int code = neg ? 16 + 36 * 5 + 6 * a + a : 16 + 36 * a + 6 * b + 5;
    fprintf(f, "\x1b[48;5;%dm\x1b[38;5;%dm", code, t > 0.55 ? 231 : 16);
}

static void pad(FILE *f, size_t n)
{
    for (size_t i = 0; i < n; i++) fputc(' ', f);
}

/* Finite min and max of a tensor (0, 0 if none is finite). */
static void finite_range(const attn_tensor *t, float *lo, float *hi)
{
    int any = 0;
    *lo = *hi = 0;
    for (size_t i = 0; i < t->numel; i++) {
        float v = t->data[i];
        if (!isfinite(v)) continue;
        if (!any || v < *lo) *lo = v;
        if (!any || v > *hi) *hi = v;
        any = 1;
    }
}

/* A table: row labels on the left, column labels on top, each column as wide
 * as its widest cell; `extra` (may be NULL) adds one text column per row. */
static attn_status table(FILE *f, const attn_tensor *t, const char *const *rows, size_t nrows,
                         const char *const *cols, size_t ncols, const char *const *extra,
                         const char *extra_title, const attn_text_opts *o)
{
    const size_t r = t->ndim == 2 ? t->shape[0] : 1, c = t->ndim == 2 ? t->shape[1] : t->numel;
    size_t *w = calloc(c ? c : 1, sizeof *w);
    if (!w) return attn_error(ATTN_E_NOMEM, "cannot allocate a table");
    char cell[CELL_MAX];
    size_t lw = 0;
    for (size_t i = 0; i < r; i++) {
        size_t len = i < nrows ? display_width(rows[i]) : (size_t)snprintf(cell, sizeof cell, "%zu", i);
        if (len > lw) lw = len;
    }
    for (size_t j = 0; j < c; j++) {
        w[j] = j < ncols ? display_width(cols[j]) : (size_t)snprintf(cell, sizeof cell, "%zu", j);
        for (size_t i = 0; i < r; i++) {
            format_value(cell, sizeof cell, t->data[i * c + j], o->precision);
            if (strlen(cell) > w[j]) w[j] = strlen(cell);
        }
    }
    float lo, hi;
    finite_range(t, &lo, &hi);

    pad(f, lw + 2);
    for (size_t j = 0; j < c; j++) {
        const char *name = j < ncols ? cols[j] : NULL;
        if (!name) snprintf(cell, sizeof cell, "%zu", j), name = cell;
        pad(f, w[j] - display_width(name) + 2);
        put_label(f, name);
    }
    if (extra) fprintf(f, "   %s", extra_title ? extra_title : "");
    fputc('\n', f);
    for (size_t i = 0; i < r; i++) {
        const char *name = i < nrows ? rows[i] : NULL;
        if (!name) snprintf(cell, sizeof cell, "%zu", i), name = cell;
        fputs("  ", f);
        put_label(f, name);
        pad(f, lw - display_width(name));
        for (size_t j = 0; j < c; j++) {
            float v = t->data[i * c + j];
            format_value(cell, sizeof cell, v, o->precision);
            pad(f, 1);
            if (o->color) shade(f, v, lo, hi);
            pad(f, w[j] - strlen(cell) + 1);
            fputs(cell, f);
            if (o->color) fputs("\x1b[0m", f);
        }
        if (extra) fputs("   ", f), put_label(f, extra[i]);
        fputc('\n', f);
    }
    free(w);
    return ferror(f) ? attn_error(ATTN_E_IO, "cannot write the table") : ATTN_OK;
}

attn_status attn_text_matrix(FILE *f, const attn_trace *trace, const char *name,
                             const char *title, const attn_text_opts *opts)
{
    attn_text_opts o = resolve(opts);
    attn_trace_entry e = {0};
    const attn_tensor *t = attn_trace_get(trace, name);
    if (!f || !t) return attn_error(ATTN_E_NOTFOUND, "trace has no entry '%s'", name ? name : "");
    for (size_t i = 0; i < attn_trace_count(trace); i++) {
        attn_trace_entry_at(trace, i, &e);
        if (e.tensor == t) break;
    }
    size_t nr = 0, nc = 0;
    const char *const *rows = attn_trace_labels(trace, e.row_axis, &nr);
    const char *const *cols = attn_trace_labels(trace, e.col_axis, &nc);
    if (title) fprintf(f, "%s\n", title);
    return table(f, t, rows, nr, cols, nc, NULL, NULL, &o);
}

static float scalar(const attn_trace *t, const char *name, float fallback)
{
    const attn_tensor *s = attn_trace_get(t, name);
    return s && s->numel == 1 ? s->data[0] : fallback;
}

attn_status attn_text_walkthrough(FILE *f, const attn_trace *trace, const attn_text_opts *opts)
{
    const attn_tensor *x = attn_trace_get(trace, "embeddings");
    if (!f || !x || x->ndim != 2)
        return attn_error(ATTN_E_NOTFOUND, "trace has no 2-D 'embeddings' entry");
    char title[256], num[CELL_MAX];
    attn_status st;
    snprintf(title, sizeof title, "  Embeddings X  (%zu tokens x %zu dimensions; Q = K = V = X)",
             x->shape[0], x->shape[1]);
    if ((st = attn_text_matrix(f, trace, "embeddings", title, opts))) return st;
    fputc('\n', f);
    if ((st = attn_text_matrix(f, trace, "scores",
                               "  Step 1. Scores = X · Xᵀ  (dot product of every pair of tokens)",
                               opts)))
        return st;
    fputc('\n', f);
    float scale = scalar(trace, "scale", 1.0f), temp = scalar(trace, "temperature", 1.0f);
    snprintf(num, sizeof num, "%.6g", (double)scale);
    if (temp == 1.0f)
        snprintf(title, sizeof title, "  Step 2. Scaled scores = Scores × %s", num);
    else
        snprintf(title, sizeof title, "  Step 2. Scaled scores = Scores × %s / temperature %g",
                 num, (double)temp);
    if ((st = attn_text_matrix(f, trace, "scaled", title, opts))) return st;
    fputc('\n', f);
    if (attn_trace_get(trace, "mask")) {
        if ((st = attn_text_matrix(f, trace, "mask",
                                   "  Mask (added to the scaled scores; -inf = may not attend)",
                                   opts)))
            return st;
        fputc('\n', f);
    }
    if ((st = attn_text_matrix(f, trace, "attention",
                               "  Step 3. Attention = softmax of each row  (row i: how much "
                               "token i looks at each token; rows sum to 1)",
                               opts)))
        return st;
    fputc('\n', f);
    if ((st = attn_text_matrix(f, trace, "output",
                               "  Step 4. Output = Attention · V  (each row a weighted average "
                               "of the value vectors)",
                               opts)))
        return st;
    return ferror(f) ? attn_error(ATTN_E_IO, "cannot write the walkthrough") : ATTN_OK;
}

int attn_dominant_dimension(const attn_trace *trace, const char *entry, size_t row, char *buf,
                            size_t bufsize)
{
    attn_trace_entry e = {0};
    const attn_tensor *t = attn_trace_get(trace, entry);
    if (!t || t->ndim != 2 || row >= t->shape[0] || !buf || !bufsize) return 0;
    for (size_t i = 0; i < attn_trace_count(trace); i++) {
        attn_trace_entry_at(trace, i, &e);
        if (e.tensor == t) break;
    }
    size_t nc = 0;
    const char *const *cols = attn_trace_labels(trace, e.col_axis, &nc);
    const float *v = t->data + row * t->shape[1];
    size_t best = 0, second = (size_t)-1;
    for (size_t j = 1; j < t->shape[1]; j++) {
        if (v[j] > v[best]) second = best, best = j;
        else if (second == (size_t)-1 || v[j] > v[second]) second = j;
    }
    char a[CELL_MAX], b[CELL_MAX];
    snprintf(a, sizeof a, "%zu", best);
    const char *na = best < nc ? cols[best] : a;
    /* Equal within float rounding of the larger: a tie, the word is ambiguous. */
    if (second != (size_t)-1 && fabsf(v[best] - v[second]) <= 1e-6f * fmaxf(1.0f, fabsf(v[best]))) {
        snprintf(b, sizeof b, "%zu", second);
        const char *nb = second < nc ? cols[second] : b;
        snprintf(buf, bufsize, "%s = %s", best < second ? na : nb, best < second ? nb : na);
    } else {
        snprintf(buf, bufsize, "%s", na);
    }
    return 1;
}

static long find_label(const attn_trace *t, const char *axis, const char *token)
{
    size_t n = 0;
    const char *const *labels = attn_trace_labels(t, axis, &n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(labels[i], token) == 0) return (long)i;
    return -1;
}

/* Copies row `token` of `entry` (rows labelled by `axis`) into dst[0..d). */
static attn_status token_row(const attn_trace *t, const char *entry, const char *axis,
                             const char *token, size_t d, const char *caption, float *dst,
                             long *row_out)
{
    long row = find_label(t, axis, token);
    const attn_tensor *m = attn_trace_get(t, entry);
    if (row < 0 || !m || m->ndim != 2 || m->shape[1] != d)
        return attn_error(ATTN_E_NOTFOUND, "'%s' is not in %s", token,
                          caption ? caption : "the trace");
    memcpy(dst, m->data + (size_t)row * d, d * sizeof(float));
    *row_out = row;
    return ATTN_OK;
}

attn_status attn_text_token_comparison(FILE *f, const char *token,
                                       const attn_trace *const *traces,
                                       const char *const *captions, size_t n,
                                       const attn_text_opts *opts)
{
    attn_text_opts o = resolve(opts);
    if (!f || !token || !traces || !n)
        return attn_error(ATTN_E_INVALID, "attn_text_token_comparison: NULL argument");
    const attn_tensor *x0 = attn_trace_get(traces[0], "embeddings");
    if (!x0 || x0->ndim != 2) return attn_error(ATTN_E_NOTFOUND, "trace has no 'embeddings'");
    /* Rows: the token's input (once, or once per trace where it differs),
     * then its output in each trace, each with its dominant dimension. */
    const size_t d = x0->shape[1], cap = 2 * n;
    enum { LABEL = 160, DOM = 2 * CELL_MAX + 8 };
    attn_tensor rows = {0};
    size_t shape[2] = {cap, d}, nrows = 0;
    attn_status st = attn_tensor_create(&rows, 2, shape);
    char *labels = calloc(cap, LABEL), *dominant = calloc(cap, DOM);
    const char **lp = calloc(cap, sizeof(char *)), **dp = calloc(cap, sizeof(char *));
    if (st || !labels || !dominant || !lp || !dp) {
        st = st ? st : attn_error(ATTN_E_NOMEM, "cannot allocate a comparison");
        goto done;
    }
    int same_input = 1;
    for (size_t pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < n; k++) {
            const char *cap_k = captions ? captions[k] : "";
            float *dst = rows.data + nrows * d;
            long row;
            if (pass == 0) {
                st = token_row(traces[k], "embeddings", "token", token, d, cap_k, dst, &row);
                if (st) goto done;
                if (k > 0 && memcmp(dst, rows.data, d * sizeof(float)) == 0) continue;
                if (k > 0) same_input = 0;
                snprintf(labels + nrows * LABEL, LABEL, "input in \"%.120s\"", cap_k);
            } else {
                st = token_row(traces[k], "output", "query", token, d, cap_k, dst, &row);
                if (st) goto done;
                snprintf(labels + nrows * LABEL, LABEL, "output in \"%.120s\"", cap_k);
            }
            attn_dominant_dimension(traces[k], pass ? "output" : "embeddings", (size_t)row,
                                    dominant + nrows * DOM, DOM);
            nrows++;
        }
    }
    if (same_input) snprintf(labels, LABEL, n > 1 ? "input (the same in all)" : "input");
    for (size_t i = 0; i < nrows; i++) lp[i] = labels + i * LABEL, dp[i] = dominant + i * DOM;
    rows.shape[0] = nrows;
    rows.numel = nrows * d;
    size_t nd = 0;
    const char *const *dims = attn_trace_labels(traces[0], "dim", &nd);
    st = table(f, &rows, lp, nrows, dims, nd, dp, "dominant", &o);
done:
    free(labels);
    free(dominant);
    free(lp);
    free(dp);
    attn_tensor_free(&rows);
    return st;
}

attn_status attn_text_mha_walkthrough(FILE *f, const attn_trace *trace, size_t num_heads,
                                      const attn_text_opts *opts)
{
    const attn_tensor *x = attn_trace_get(trace, "embeddings");
    if (!f || !x || x->ndim != 2)
        return attn_error(ATTN_E_NOTFOUND, "trace has no 2-D 'embeddings' entry");
    char title[256], name[64];
    attn_status st;
    snprintf(title, sizeof title, "  Embeddings X  (%zu tokens x %zu dimensions; query = key = value = X)",
             x->shape[0], x->shape[1]);
    if ((st = attn_text_matrix(f, trace, "embeddings", title, opts))) return st;
    static const struct {
        const char *entry, *title;
    } steps[] = {
        {"q", "Q = X · W_Qᵀ + b_Q  (this head's slice of the query projection)"},
        {"k", "K = X · W_Kᵀ + b_K"},
        {"v", "V = X · W_Vᵀ + b_V"},
        {"scores", "Scores = Q · Kᵀ"},
        {"scaled", NULL},
        {"mask", "Mask (added to the scaled scores; -inf = may not attend)"},
        {"attention", "Attention = softmax of each row"},
        {"output", "Head output = Attention · V"},
    };
    for (size_t h = 0; h < num_heads; h++) {
        snprintf(name, sizeof name, "head%zu.q", h);
        const attn_tensor *q = attn_trace_get(trace, name);
        snprintf(name, sizeof name, "head%zu.v", h);
        const attn_tensor *v = attn_trace_get(trace, name);
        if (!q || !v) return attn_error(ATTN_E_NOTFOUND, "trace has no head %zu", h);
        fprintf(f, "\n== Head %zu of %zu  (d_k = %zu, d_v = %zu) ==\n", h + 1, num_heads,
                q->shape[1], v->shape[1]);
        for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
            snprintf(name, sizeof name, "head%zu.%s", h, steps[i].entry);
            if (!attn_trace_get(trace, name)) continue; /* e.g. no mask */
            if (steps[i].title) {
                snprintf(title, sizeof title, "\n  %s", steps[i].title);
            } else {
                char sc[64];
                snprintf(name, sizeof name, "head%zu.scale", h);
                const attn_tensor *s = attn_trace_get(trace, name);
                snprintf(sc, sizeof sc, "%.6g", s ? (double)s->data[0] : 1.0);
                snprintf(title, sizeof title, "\n  Scaled scores = Scores × %s  (1/√d_k)", sc);
                snprintf(name, sizeof name, "head%zu.%s", h, steps[i].entry);
            }
            if ((st = attn_text_matrix(f, trace, name, title, opts))) return st;
        }
    }
    const attn_tensor *cc = attn_trace_get(trace, "concat");
    const attn_tensor *o = attn_trace_get(trace, "output");
    if (!cc || !o) return attn_error(ATTN_E_NOTFOUND, "trace has no 'concat' or 'output'");
    snprintf(title, sizeof title,
             "\n== Concatenation of the %zu head outputs  (%zu tokens x %zu) ==", num_heads,
             cc->shape[0], cc->shape[1]);
    if ((st = attn_text_matrix(f, trace, "concat", title, opts))) return st;
    snprintf(title, sizeof title, "\n== Output = Concat · W_Oᵀ + b_O  (%zu tokens x %zu) ==",
             o->shape[0], o->shape[1]);
    if ((st = attn_text_matrix(f, trace, "output", title, opts))) return st;
    return ferror(f) ? attn_error(ATTN_E_IO, "cannot write the walkthrough") : ATTN_OK;
}
