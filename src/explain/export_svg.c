/* export_svg.c - one labelled vector heatmap per matrix.
 *
 * Each file is a self-contained SVG 1.1 document: a title (the caption and
 * the step), a subtitle saying what the matrix is and its shape, every row
 * and column label, one <rect> per cell with a <title> tooltip
 * "row × col = value" (above SVG_TOOLTIP_MAX cells: one <path> per colour
 * instead), the value printed in the cells when they are big enough, and a
 * colour legend (gradient bar, min/max/0 ticks, swatches for non-finite
 * cells). Width, height and viewBox are set, so it scales. The colours are those
 * of the terminal renderer (text.c), made continuous: white to blue for
 * matrices without negative values, red for negative values when both signs
 * occur, grey for ±inf (masked), magenta for NaN.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "export_util.h"

/* Per-cell values are printed up to this many columns and rows. */
#define SVG_VALUES_MAX_COLS 24
#define SVG_VALUES_MAX_ROWS 48
/* Per-cell rects with tooltips up to this many cells; above, one path per
 * colour (runs of equal colour merged), so that 512 x 512 stays a few MB. */
#define SVG_TOOLTIP_MAX 65536
/* Stops sampled along the legend's gradient (the ramp is piecewise linear). */
#define SVG_LEGEND_STOPS 11

#define FONT_FAMILY "'DejaVu Sans', 'Helvetica Neue', Helvetica, Arial, sans-serif"
#define INK "#1a1a1a"
#define MUTED "#5c5c5c"

static const double MARGIN = 20, TITLE_FS = 18, SUB_FS = 12, AXIS_FS = 12, VALUE_FS = 11,
                    TICK_FS = 11, BAR_W = 14;

/* ---- text --------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one. */
static size_t utf8_seq(const unsigned char *s)
{
    if (s[0] < 0x80) return 1;
    size_t n;
    unsigned int cp;
    if ((s[0] & 0xE0) == 0xC0) n = 2, cp = s[0] & 0x1Fu;
    else if ((s[0] & 0xF0) == 0xE0) n = 3, cp = s[0] & 0x0Fu;
    else if ((s[0] & 0xF8) == 0xF0) n = 4, cp = s[0] & 0x07u;
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    static const unsigned int min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    if (cp == 0xFFFE || cp == 0xFFFF) return 0; /* not XML characters */
    return n;
}

/* Writes s as XML character data (also fine inside a quoted attribute):
 * the five specials escaped, control characters XML forbids and invalid
 * UTF-8 replaced by U+FFFD, so that any label gives a well-formed file. */
static void xml_text(FILE *f, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    while (*s) {
        switch (*s) {
        case '&': fputs("&amp;", f); s++; continue;
        case '<': fputs("&lt;", f); s++; continue;
        case '>': fputs("&gt;", f); s++; continue;
        case '"': fputs("&quot;", f); s++; continue;
        case '\'': fputs("&apos;", f); s++; continue;
        case '\t': case '\n': case '\r': fputc(' ', f); s++; continue;
        default: break;
        }
        size_t n = *s < 0x20 ? 0 : utf8_seq(s);
        if (n) {
            fwrite(s, 1, n, f);
            s += n;
        } else {
            fputs("\xEF\xBF\xBD", f);
            s++;
        }
    }
}

/* Estimated width in px of s at font size fs (proportional sans, digits and
 * lower case about 0.62 em; generous so that nothing is clipped). */
static double text_width(const char *s, double fs)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80) n++;
    return (double)n * fs * 0.62;
}

/* "-" as a typographic minus, in place (buf must have 2 spare bytes). */
static void typographic_minus(char *buf, size_t n)
{
    size_t len = strlen(buf);
    if (buf[0] != '-' || len + 3 > n) return;
    memmove(buf + 3, buf + 1, len); /* includes the NUL */
    memcpy(buf, "\xE2\x88\x92", 3);
}

/* A cell's value as printed in it: 3 decimals, as in the terminal. */
static void format_cell(char *buf, size_t n, float v)
{
    if (isnan(v)) snprintf(buf, n, "nan");
    else if (isinf(v)) snprintf(buf, n, v < 0 ? "\xE2\x88\x92\xE2\x88\x9E" : "\xE2\x88\x9E");
    else {
        double d = v;
        if (fabs(d) < 0.0005) d = 0.0; /* no "-0.000" */
        if (fabs(d) >= 1e5) snprintf(buf, n, "%.2e", d);
        else snprintf(buf, n, "%.3f", d);
        typographic_minus(buf, n);
    }
}

/* A value in a tooltip or on the legend: `digits` significant digits. */
static void format_exact(char *buf, size_t n, double d, int digits)
{
    if (isnan(d)) snprintf(buf, n, "nan");
    else if (isinf(d)) snprintf(buf, n, d < 0 ? "\xE2\x88\x92\xE2\x88\x9E" : "\xE2\x88\x9E");
    else {
        snprintf(buf, n, "%.*g", digits, d);
        if (strcmp(buf, "-0") == 0) snprintf(buf, n, "0");
        typographic_minus(buf, n);
    }
}

static const char *label_of(const char *const *labels, size_t n, size_t i, char *buf, size_t bn)
{
    if (labels && i < n && labels[i]) return labels[i];
    snprintf(buf, bn, "%zu", i);
    return buf;
}

/* ---- colour --------------------------------------------------------------- */

typedef struct rgb {
    unsigned char r, g, b;
    int light_text; /* a dark cell: write on it in white */
} rgb;

/* The xterm colour cube's channel levels (0, 95, 135, ..., 255) as a
 * continuous function of the level index x in [0, 5]. */
static double cube_level(double x)
{
    if (x <= 0) return 0;
    if (x <= 1) return 95 * x;
    if (x >= 5) return 255;
    return 95 + 40 * (x - 1);
}

static unsigned char channel(double v)
{
    return (unsigned char)lround(v < 0 ? 0 : v > 255 ? 255 : v);
}

static double linear(unsigned char ch)
{
    double v = ch / 255.0;
    return v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
}

/* White text where it contrasts more than near-black (WCAG luminance). */
static int light_text(rgb c)
{
    double l = 0.2126 * linear(c.r) + 0.7152 * linear(c.g) + 0.0722 * linear(c.b);
    return 1.05 / (l + 0.05) > (l + 0.05) / 0.05;
}

/* The colour of v in a matrix spanning [lo, hi]: text.c's shade(), without
 * its rounding to the 6 x 6 x 6 cube. */
static rgb colour_of(float v, float lo, float hi)
{
    rgb c = {0, 0, 0, 0};
    if (isnan(v)) {
        c.r = 255, c.g = 0, c.b = 255;
        return c;
    }
    if (isinf(v)) {
        c.r = c.g = c.b = 188; /* the terminal's grey 250 */
        return c;
    }
    double t;
    int neg = 0;
    if (lo < 0 && hi > 0) {
        double m = fmax(-(double)lo, (double)hi);
        t = fabs((double)v) / m;
        neg = v < 0;
    } else if (hi > lo) {
        t = lo >= 0 ? ((double)v - lo) / ((double)hi - lo) : ((double)hi - v) / ((double)hi - lo);
        neg = hi <= 0;
    } else {
        t = hi == 0 ? 0 : 0.5; /* all zero: white (the terminal shades it mid-blue) */
    }
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    double a = cube_level(5 - 5 * t), b = cube_level(5 - 4 * t);
    if (neg) c.r = 255, c.g = channel(a), c.b = channel(a);
    else c.r = channel(a), c.g = channel(b), c.b = 255;
    c.light_text = light_text(c);
    return c;
}

/* ---- one matrix ------------------------------------------------------------- */

typedef struct svg_ctx {
    export_dir *dir;
    const attn_doc *doc;
} svg_ctx;

typedef struct matrix_stats {
    float lo, hi;        /* finite range (0, 0 when nothing is finite) */
    int any_finite, neg_inf, pos_inf, nan;
    size_t value_chars;  /* widest printed value, in characters */
} matrix_stats;

static matrix_stats stats_of(const attn_tensor *t)
{
    matrix_stats s;
    memset(&s, 0, sizeof s);
    char buf[48];
    for (size_t i = 0; i < t->numel; i++) {
        float v = t->data[i];
        if (isnan(v)) s.nan = 1;
        else if (isinf(v)) *(v < 0 ? &s.neg_inf : &s.pos_inf) = 1;
        else {
            if (!s.any_finite || v < s.lo) s.lo = v;
            if (!s.any_finite || v > s.hi) s.hi = v;
            s.any_finite = 1;
        }
        format_cell(buf, sizeof buf, v);
        size_t n = 0;
        for (const unsigned char *p = (const unsigned char *)buf; *p; p++)
            if ((*p & 0xC0) != 0x80) n++;
        if (n > s.value_chars) s.value_chars = n;
    }
    return s;
}

/* The scalar "<prefix>name" of a trace, or fallback. */
static double trace_scalar(const attn_trace *t, const char *prefix, const char *name,
                           double fallback)
{
    char full[300];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const attn_tensor *s = attn_trace_get(t, full);
    return s && s->numel == 1 ? (double)s->data[0] : fallback;
}

/* What the matrix is, in words, for the subtitle ("" when unknown). */
static void describe(char *buf, size_t n, const svg_ctx *ctx, const export_matrix *m)
{
    const attn_doc *doc = ctx->doc;
    const attn_trace *trace = doc->traces[m->seq];
    const char *dot = strrchr(m->entry, '.');
    const char *leaf = dot ? dot + 1 : m->entry;
    char prefix[200] = "", head[64] = "";
    if (dot) snprintf(prefix, sizeof prefix, "%.*s.", (int)(dot - m->entry), m->entry);
    size_t h;
    int is_head = sscanf(m->entry, "head%zu.", &h) == 1 && dot;
    if (is_head && doc->num_heads) snprintf(head, sizeof head, "Head %zu of %zu · ", h + 1, doc->num_heads);
    else if (is_head) snprintf(head, sizeof head, "Head %zu · ", h + 1);
    const int layer = doc->num_heads > 0;
    char scale[160] = "";
    if (strcmp(leaf, "scaled") == 0) {
        double sc = trace_scalar(trace, prefix, "scale", 1.0);
        double temp = trace_scalar(trace, prefix, "temperature", 1.0);
        char a[32];
        format_exact(a, sizeof a, sc, 6);
        if (temp != 1.0) snprintf(scale, sizeof scale, "Scores × %s / temperature %g", a, temp);
        else snprintf(scale, sizeof scale, "Scores × %s%s", a, layer ? " (1/√d_k)" : "");
    }
    static const struct {
        const char *leaf, *plain, *layer;
    } words[] = {
        {"embeddings", "Embeddings X (Q = K = V = X)", "Embeddings X (query = key = value = X)"},
        {"scores", "Step 1. Scores = X · Xᵀ (dot product of every pair of tokens)", "Scores = Q · Kᵀ"},
        {"scaled", "Step 2. Scaled scores = ", "Scaled scores = "},
        {"mask", "Mask (added to the scaled scores; −∞ = may not attend)",
         "Mask (added to the scaled scores; −∞ = may not attend)"},
        {"attention", "Step 3. Attention = softmax of each row (rows sum to 1)",
         "Attention = softmax of each row (rows sum to 1)"},
        {"output", "Step 4. Output = Attention · V (weighted averages of the value vectors)", NULL},
        {"q", NULL, "Q = X · W_Qᵀ + b_Q"},
        {"k", NULL, "K = X · W_Kᵀ + b_K"},
        {"v", NULL, "V = X · W_Vᵀ + b_V"},
        {"w_q", NULL, "W_Q, this head's slice of the query projection"},
        {"w_k", NULL, "W_K, this head's slice of the key projection"},
        {"w_v", NULL, "W_V, this head's slice of the value projection"},
        {"b_q", NULL, "b_Q, this head's query bias"},
        {"b_k", NULL, "b_K, this head's key bias"},
        {"b_v", NULL, "b_V, this head's value bias"},
        {"concat", NULL, "Concatenation of the head outputs"},
        {"w_o", NULL, "W_O, the output projection"},
        {"b_o", NULL, "b_O, the output bias"},
    };
    const char *w = NULL;
    if (strcmp(leaf, "output") == 0 && layer)
        w = is_head ? "Head output = Attention · V" : "Output = Concat · W_Oᵀ + b_O";
    for (size_t i = 0; !w && i < sizeof words / sizeof *words; i++)
        if (strcmp(leaf, words[i].leaf) == 0) w = layer ? words[i].layer : words[i].plain;
    snprintf(buf, n, "%s%s%s", w ? head : "", w ? w : "", w ? scale : "");
}

/* Sort keys for the cells of a large matrix: colour (24 bits) above the
 * cell's index (40 bits), so that sorting groups colours in reading order. */
#define INDEX_BITS 40
#define INDEX_MASK ((UINT64_C(1) << INDEX_BITS) - 1)

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* One <path> per colour; each subpath a run of cells of that colour in a row. */
static void write_colour_paths(FILE *f, const attn_tensor *t, float lo, float hi, double x0,
                               double y0, double cw, double ch, uint64_t *key)
{
    const size_t c = t->shape[1], n = t->numel;
    for (size_t k = 0; k < n; k++) {
        rgb col = colour_of(t->data[k], lo, hi);
        uint64_t packed = (uint64_t)col.r << 16 | (uint64_t)col.g << 8 | col.b;
        key[k] = packed << INDEX_BITS | (uint64_t)k;
    }
    qsort(key, n, sizeof *key, cmp_u64);
    for (size_t k = 0; k < n;) {
        const uint64_t colour = key[k] >> INDEX_BITS;
        fprintf(f, "<path fill=\"#%06lx\" d=\"", (unsigned long)colour);
        for (size_t runs = 0; k < n && key[k] >> INDEX_BITS == colour; runs++) {
            const size_t idx = (size_t)(key[k] & INDEX_MASK), i = idx / c, j = idx % c;
            size_t run = 1;
            while (k + run < n && key[k + run] >> INDEX_BITS == colour &&
                   (size_t)(key[k + run] & INDEX_MASK) == idx + run && j + run < c)
                run++;
            double w = cw * (double)run;
            fprintf(f, "%sM%g %gh%gv%gh-%gz", runs && runs % 8 == 0 ? "\n" : "", x0 + cw * (double)j,
                    y0 + ch * (double)i, w, ch, w);
            k += run;
        }
        fputs("\"/>\n", f);
    }
}

/* Everything about one matrix's picture that the parts of its SVG share:
 * texts, the colour range, cell and label geometry, legend, size, id. */
typedef struct svg_layout {
    const attn_tensor *t;
    size_t r, c;
    matrix_stats st;
    float lo, hi;
    char caption[512], sub[700], ra_text[200], lo_s[40], hi_s[40], id[300];
    const char *ra, *ca;
    int values, tooltips, angle, constant;
    double cw, ch, lab_fs, title_y, sub_y, axis_y, grid_x, grid_y, grid_w, grid_h;
    double leg_x, bar_h, sw_y, width, height;
    const char *swatches[3];
    rgb swatch_rgb[3];
    size_t n_sw;
} svg_layout;

/* Header texts, colour range and cell size. */
static void layout_cells(svg_layout *L, const svg_ctx *ctx, const export_matrix *m)
{
    const size_t r = L->r, c = L->c;
    /* A constant matrix is shaded as the range from 0 to its value, so that
     * zeros (a mask's allowed cells, fresh biases) stay white. */
    L->lo = L->st.lo, L->hi = L->st.hi;
    if (!(L->hi > L->lo) && L->hi != 0) *(L->hi > 0 ? &L->lo : &L->hi) = 0;

    /* Header text. */
    char what[400];
    if (m->caption && m->caption[0]) snprintf(L->caption, sizeof L->caption, "%s", m->caption);
    else snprintf(L->caption, sizeof L->caption, "sequence %zu", m->seq + 1);
    describe(what, sizeof what, ctx, m);
    L->ra = m->row_axis ? m->row_axis : "row", L->ca = m->col_axis ? m->col_axis : "column";
    snprintf(L->sub, sizeof L->sub, "%s%s%zu %s × %zu %s", what, what[0] ? "  ·  " : "", r, L->ra, c, L->ca);

    /* Cell and label geometry. */
    const size_t big = r > c ? r : c;
    L->values = c <= SVG_VALUES_MAX_COLS && r <= SVG_VALUES_MAX_ROWS;
    if (L->values) {
        L->ch = 28;
        L->cw = fmax(46, ceil((double)L->st.value_chars * VALUE_FS * 0.62) + 12);
        L->lab_fs = 13;
    } else {
        double cell = floor(960.0 / (double)big);
        cell = cell < 3 ? 3 : cell > 24 ? 24 : cell;
        L->cw = L->ch = cell;
        L->lab_fs = fmin(12, fmax(2, floor(cell * 0.8 * 2) / 2));
    }
}

static void svg_layout_of(svg_layout *L, const svg_ctx *ctx, const export_matrix *m, int tooltips)
{
    const attn_tensor *t = L->t = m->t;
    const size_t r = L->r = t->shape[0], c = L->c = t->shape[1];
    L->st = stats_of(t);
    L->tooltips = tooltips;
    layout_cells(L, ctx, m);
    const float lo = L->lo, hi = L->hi;
    const double lab_fs = L->lab_fs;
    char lab[64];
    double row_w = 0, col_w = 0;
    for (size_t i = 0; i < r; i++)
        row_w = fmax(row_w, text_width(label_of(m->rows, m->n_rows, i, lab, sizeof lab), lab_fs));
    for (size_t j = 0; j < c; j++)
        col_w = fmax(col_w, text_width(label_of(m->cols, m->n_cols, j, lab, sizeof lab), lab_fs));
    /* Column labels: level when they fit (value cells widen for them, up
     * to a point); 45° over value cells; 90° over small cells. */
    const double level_w = ceil(col_w) + 12;
    if (L->values && level_w <= 100 && level_w * (double)c <= 960) L->cw = fmax(L->cw, level_w);
    const double cw = L->cw;
    const int angle = L->angle = col_w <= cw - 6 ? 0 : L->values ? 45 : 90;
    const double s45 = sqrt(0.5);
    const double col_h = ceil(angle == 0 ? lab_fs : angle == 45 ? col_w * s45 + lab_fs : col_w);
    const double overhang = angle == 45 ? col_w * s45 - cw / 2 : 0;
    /* The row axis name sits in the corner, above the row labels. */
    snprintf(L->ra_text, sizeof L->ra_text, "%s ↓", L->ra);
    row_w = fmax(row_w, text_width(L->ra_text, AXIS_FS));

    L->title_y = MARGIN + TITLE_FS;
    L->sub_y = L->title_y + 22;
    L->axis_y = L->sub_y + 20 + AXIS_FS;            /* column axis name */
    const double grid_y = L->grid_y = L->axis_y + 8 + col_h + 8;
    const double grid_x = L->grid_x = ceil(MARGIN + row_w + 10);
    const double grid_w = L->grid_w = cw * (double)c, grid_h = L->grid_h = L->ch * (double)r;

    /* Legend: a vertical bar beside the grid, then swatches for non-finite cells. */
    L->leg_x = grid_x + grid_w + 28;
    L->bar_h = grid_h < 64 ? 64 : grid_h > 280 ? 280 : grid_h;
    format_exact(L->lo_s, sizeof L->lo_s, lo, 4);
    format_exact(L->hi_s, sizeof L->hi_s, hi, 4);
    L->constant = !(hi > lo);
    double leg_w = BAR_W + 8 + fmax(text_width(L->lo_s, TICK_FS), text_width(L->hi_s, TICK_FS));
    L->sw_y = grid_y + L->bar_h + 12;
    size_t n_sw = 0;
    if (L->st.neg_inf) L->swatches[n_sw] = "−∞ masked", L->swatch_rgb[n_sw++] = colour_of(-INFINITY, lo, hi);
    if (L->st.pos_inf) L->swatches[n_sw] = "∞", L->swatch_rgb[n_sw++] = colour_of(INFINITY, lo, hi);
    if (L->st.nan) L->swatches[n_sw] = "nan", L->swatch_rgb[n_sw++] = colour_of(NAN, lo, hi);
    L->n_sw = n_sw;
    for (size_t k = 0; k < n_sw; k++)
        leg_w = fmax(leg_w, BAR_W + 8 + text_width(L->swatches[k], TICK_FS));

    double width = L->leg_x + leg_w;
    width = fmax(width, grid_x + grid_w + overhang);
    width = fmax(width, MARGIN + text_width(L->caption, TITLE_FS) + text_width(m->entry, TITLE_FS) + 40);
    width = fmax(width, MARGIN + text_width(L->sub, SUB_FS));
    L->width = ceil(width + MARGIN);
    L->height = ceil(fmax(grid_y + grid_h, L->sw_y + 20.0 * (double)n_sw) + MARGIN);

    /* An id unique among SVGs inlined in one page. */
    size_t k = 0;
    for (const char *p = m->stem; *p && k + 1 < sizeof L->id; p++)
        L->id[k++] = ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-') ? *p : '_';
    L->id[k] = '\0';
}

/* The prologue, gradient, title, subtitle and axis names. */
static void write_svg_head(FILE *f, const svg_ctx *ctx, const export_matrix *m, const svg_layout *L)
{
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%g\" height=\"%g\" "
            "viewBox=\"0 0 %g %g\" font-family=\"" FONT_FAMILY "\">\n",
            L->width, L->height, L->width, L->height);
    fputs("<title>", f);
    xml_text(f, L->caption);
    fputs(" — ", f);
    xml_text(f, m->entry);
    fputs("</title>\n<desc>", f);
    if (ctx->doc->title) {
        xml_text(f, ctx->doc->title);
        fputs(": ", f);
    }
    xml_text(f, L->sub);
    if (!L->tooltips)
        fprintf(f, ". Per-cell tooltips are left out above %d cells; the CSV export has every value.",
                SVG_TOOLTIP_MAX);
    fputs("</desc>\n", f);
    fprintf(f, "<defs><linearGradient id=\"legend-%s\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">", L->id);
    for (int s = 0; s < SVG_LEGEND_STOPS; s++) {
        double u = (double)s / (SVG_LEGEND_STOPS - 1);
        rgb col = colour_of(L->constant ? L->lo : (float)(L->lo + (L->hi - L->lo) * u), L->lo, L->hi);
        fprintf(f, "<stop offset=\"%g\" stop-color=\"#%02x%02x%02x\"/>", u, col.r, col.g, col.b);
    }
    fputs("</linearGradient></defs>\n", f);
    fputs("<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n", f);

    /* Title and subtitle. */
    fprintf(f, "<text x=\"%g\" y=\"%g\" font-size=\"%g\" font-weight=\"bold\" fill=\"" INK "\">",
            MARGIN, L->title_y, TITLE_FS);
    xml_text(f, L->caption);
    fputs(" <tspan font-weight=\"normal\" fill=\"" MUTED "\">— ", f);
    xml_text(f, m->entry);
    fputs("</tspan></text>\n", f);
    fprintf(f, "<text x=\"%g\" y=\"%g\" font-size=\"%g\" fill=\"" MUTED "\">", MARGIN, L->sub_y, SUB_FS);
    xml_text(f, L->sub);
    fputs("</text>\n", f);

    /* Axis names. */
    fprintf(f, "<g font-size=\"%g\" font-style=\"italic\" fill=\"" MUTED "\" text-anchor=\"middle\">\n", AXIS_FS);
    fprintf(f, "<text x=\"%g\" y=\"%g\">", L->grid_x + L->grid_w / 2, L->axis_y);
    xml_text(f, L->ca);
    fputs(" →</text>\n", f);
    fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"end\">", L->grid_x - 8, L->grid_y - 8);
    xml_text(f, L->ra_text);
    fputs("</text>\n</g>\n\n", f);
}

/* Row and column labels. */
static void write_svg_labels(FILE *f, const export_matrix *m, const svg_layout *L)
{
    char lab[64];
    fprintf(f, "<g font-size=\"%g\" fill=\"" INK "\">\n<g text-anchor=\"end\">\n", L->lab_fs);
    for (size_t i = 0; i < L->r; i++) {
        fprintf(f, "<text x=\"%g\" y=\"%g\">", L->grid_x - 8, L->grid_y + L->ch * ((double)i + 0.5) + L->lab_fs * 0.35);
        xml_text(f, label_of(m->rows, m->n_rows, i, lab, sizeof lab));
        fputs("</text>\n", f);
    }
    fprintf(f, "</g>\n<g text-anchor=\"%s\">\n", L->angle ? "start" : "middle");
    for (size_t j = 0; j < L->c; j++) {
        double cx = L->grid_x + L->cw * ((double)j + 0.5);
        if (L->angle == 0) {
            fprintf(f, "<text x=\"%g\" y=\"%g\">", cx, L->grid_y - 8);
        } else {
            double x = L->angle == 45 ? cx + L->lab_fs * 0.2 : cx + L->lab_fs * 0.35, y = L->grid_y - 6;
            fprintf(f, "<text x=\"%g\" y=\"%g\" transform=\"rotate(-%d %g %g)\">", x, y, L->angle, x, y);
        }
        xml_text(f, label_of(m->cols, m->n_cols, j, lab, sizeof lab));
        fputs("</text>\n", f);
    }
    fputs("</g>\n</g>\n", f);
}

static void write_svg_cells(FILE *f, const export_matrix *m, const svg_layout *L, uint64_t *by_colour)
{
    char lab[64], lab2[64], num[64];
    /* Cells: one rect per cell with its tooltip, white gaps between cells
     * that hold values. Without tooltips, one path per colour whose subpaths
     * are the runs of that colour in each row: a third of the size of rects. */
    if (!L->tooltips) {
        fputs("<g shape-rendering=\"crispEdges\">\n", f);
        write_colour_paths(f, L->t, L->lo, L->hi, L->grid_x, L->grid_y, L->cw, L->ch, by_colour);
    } else {
        fputs(L->values ? "<g stroke=\"#ffffff\" stroke-width=\"1\">\n" : "<g>\n", f);
        for (size_t i = 0; i < L->r; i++)
            for (size_t j = 0; j < L->c; j++) {
                float v = L->t->data[i * L->c + j];
                rgb col = colour_of(v, L->lo, L->hi);
                fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"#%02x%02x%02x\"><title>",
                        L->grid_x + L->cw * (double)j, L->grid_y + L->ch * (double)i, L->cw, L->ch, col.r, col.g, col.b);
                xml_text(f, label_of(m->rows, m->n_rows, i, lab, sizeof lab));
                fputs(" × ", f);
                xml_text(f, label_of(m->cols, m->n_cols, j, lab2, sizeof lab2));
                format_exact(num, sizeof num, v, 6);
                fprintf(f, " = %s%s</title></rect>\n", num, isinf(v) && v < 0 ? " (masked)" : "");
            }
    }
    fputs("</g>\n", f);
    /* A hairline frame, so that a grid of white (zero) cells still shows. */
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#c8c8c8\" "
               "stroke-width=\"1\"/>\n",
            L->grid_x, L->grid_y, L->grid_w, L->grid_h);
    if (L->values) {
        fprintf(f, "<g font-size=\"%g\" text-anchor=\"middle\" fill=\"" INK "\" pointer-events=\"none\">\n",
                VALUE_FS);
        for (size_t i = 0; i < L->r; i++)
            for (size_t j = 0; j < L->c; j++) {
                float v = L->t->data[i * L->c + j];
                format_cell(num, sizeof num, v);
                fprintf(f, "<text x=\"%g\" y=\"%g\"%s>%s</text>\n", L->grid_x + L->cw * ((double)j + 0.5),
                        L->grid_y + L->ch * ((double)i + 0.5) + VALUE_FS * 0.36,
                        colour_of(v, L->lo, L->hi).light_text ? " fill=\"#ffffff\"" : "", num);
            }
        fputs("</g>\n", f);
    }
}

static void write_svg_legend(FILE *f, const svg_layout *L)
{
    fprintf(f, "<g class=\"legend\" font-size=\"%g\" fill=\"" INK "\">\n", TICK_FS);
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"url(#legend-%s)\" "
               "stroke=\"#9a9a9a\" stroke-width=\"0.5\"/>\n",
            L->leg_x, L->grid_y, BAR_W, L->bar_h, L->id);
    struct {
        double v;
        const char *s;
    } ticks[3] = {{L->hi, L->hi_s}, {L->lo, L->lo_s}, {0, "0"}};
    size_t n_ticks = L->constant ? 1 : (L->lo < 0 && L->hi > 0) ? 3 : 2;
    for (size_t q = 0; q < n_ticks; q++) {
        double y = L->constant ? L->grid_y + L->bar_h / 2 : L->grid_y + L->bar_h * (L->hi - ticks[q].v) / ((double)L->hi - L->lo);
        if (q == 2 && (y - L->grid_y < 14 || L->grid_y + L->bar_h - y < 14)) continue; /* crowds an end */
        fprintf(f, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"" INK "\" stroke-width=\"1\"/>",
                L->leg_x + BAR_W, y, L->leg_x + BAR_W + 4, y);
        fprintf(f, "<text x=\"%g\" y=\"%g\">%s</text>\n", L->leg_x + BAR_W + 7, y + TICK_FS * 0.35, ticks[q].s);
    }
    for (size_t q = 0; q < L->n_sw; q++) {
        double y = L->sw_y + 20.0 * (double)q;
        fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"#%02x%02x%02x\" "
                   "stroke=\"#9a9a9a\" stroke-width=\"0.5\"/>",
                L->leg_x, y, BAR_W, BAR_W, L->swatch_rgb[q].r, L->swatch_rgb[q].g, L->swatch_rgb[q].b);
        fprintf(f, "<text x=\"%g\" y=\"%g\">%s</text>\n", L->leg_x + BAR_W + 7, y + BAR_W / 2 + TICK_FS * 0.35,
                L->swatches[q]);
    }
    fputs("</g>\n</svg>\n", f);
}

/* The whole SVG of one matrix. Writes only; the caller checks the stream. */
static void write_svg(FILE *f, const svg_ctx *ctx, const export_matrix *m, uint64_t *by_colour)
{
    svg_layout L;
    svg_layout_of(&L, ctx, m, !by_colour);
    write_svg_head(f, ctx, m, &L);
    write_svg_labels(f, m, &L);
    write_svg_cells(f, m, &L, by_colour);
    write_svg_legend(f, &L);
}

static attn_status write_matrix(const export_matrix *m, void *user)
{
    const svg_ctx *ctx = user;
    char name[300];
    snprintf(name, sizeof name, "%s.svg", m->stem);
    uint64_t *by_colour = NULL; /* scratch for a matrix too large for tooltips */
    if (m->t->numel > SVG_TOOLTIP_MAX) {
        if (m->t->numel > INDEX_MASK || !(by_colour = malloc(m->t->numel * sizeof *by_colour)))
            return attn_error(ATTN_E_NOMEM, "%s: cannot sort %zu cells by colour", name, m->t->numel);
    }
    attn_atomic_file af;
    attn_status st = export_dir_begin(ctx->dir, name, &af);
    if (!st) {
        write_svg(af.f, ctx, m, by_colour);
        st = export_dir_commit(ctx->dir, &af); /* checks every write */
    }
    free(by_colour);
    return st;
}

attn_status attn_export_svg(const attn_doc *doc, const char *dir)
{
    attn_status st = export_check_doc(doc);
    if (st) return st;
    export_dir d;
    if ((st = export_dir_open(&d, dir))) return st;
    svg_ctx ctx = {&d, doc};
    st = export_each_matrix(doc, write_matrix, &ctx);
    if (st) export_dir_rollback(&d);
    export_dir_close(&d);
    return st;
}

attn_status attn_export_model_svg(const attn_model_view *v, const char *dir)
{
    attn_status st = attn_model_view_check(v);
    if (st) return st;
    export_dir d;
    if ((st = export_dir_open(&d, dir))) return st;
    const attn_trace *tt[1] = {v->trace};
    const char *cap[1] = {v->title};
    attn_doc doc = {"attn explain --model", 1, tt, cap, v->heads};
    svg_ctx ctx = {&d, &doc};
    st = export_each_model_map(v, write_matrix, &ctx);
    if (st) export_dir_rollback(&d);
    export_dir_close(&d);
    return st;
}
