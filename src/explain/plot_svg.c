/* plot_svg.c - line charts and a confusion heatmap as standalone SVG
 * (attn/plot.h). */
#include "attn/plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/fileio.h"

enum { W = 760, H = 440, ML = 72, MT = 44, MB = 56 };
static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                      "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};

/* XML text: & < > " escaped. */
static void esc(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

typedef struct axis {
    double lo, hi;
    int log;
} axis;

/* The range of the chosen series (side -1: x of all; 0 left y; 1 right y). */
static int range(const attn_plot *p, int side, int log, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    for (size_t s = 0; s < p->n_series; s++) {
        const attn_plot_series *q = &p->series[s];
        if (side >= 0 && q->right != side) continue;
        for (size_t i = 0; i < q->n; i++) {
            double v = side < 0 ? q->x[i] : q->y[i];
            if (!isfinite(q->y[i]) || !isfinite(v) || (log && v <= 0)) continue;
            *lo = fmin(*lo, v), *hi = fmax(*hi, v);
        }
    }
    if (!(*lo <= *hi)) return 0;
    if (*lo == *hi) *lo -= log ? *lo / 2 : 0.5, *hi += log ? *hi : 0.5;
    return 1;
}

/* A step of 1, 2 or 5 times a power of ten giving about 5 ticks. */
static double nice_step(double span)
{
    double raw = span / 5, mag = pow(10, floor(log10(raw))), r = raw / mag;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
}

static double to_px(const axis *a, double v, double px0, double px1)
{
    double t = a->log ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo)) : (v - a->lo) / (a->hi - a->lo);
    return px0 + t * (px1 - px0);
}

/* Ticks and labels of a vertical axis at x = at (text anchored by side). */
static void y_ticks(FILE *f, const axis *a, int right, int x0, int x1)
{
    const int at = right ? x1 : x0;
    double v, step = a->log ? 0 : nice_step(a->hi - a->lo);
    double first = a->log ? pow(10, floor(log10(a->lo))) : ceil(a->lo / step) * step;
    int n = 0;
    for (v = first; v <= a->hi * (1 + 1e-9) && n < 60; n++) {
        if (v >= a->lo * (1 - 1e-9)) {
            double y = to_px(a, v, H - MB, MT);
            if (!right) fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>\n", x0, x1, y, y);
            fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"%s\" class=\"tick\">%.4g</text>\n",
                    right ? at + 6 : at - 6, y + 4, right ? "start" : "end", v);
        }
        if (a->log) {
            /* 1, 2, 5 per decade when the range is narrow, else decades */
            double d = pow(10, floor(log10(v) + 1e-9)), m = v / d;
            v = a->hi / a->lo > 1000 ? d * 10 : m < 1.5 ? 2 * d : m < 3.5 ? 5 * d : 10 * d;
        } else {
            v = first + (n + 1) * step;
        }
    }
}

static void series(FILE *f, const attn_plot_series *q, const axis *ax, const axis *ay, int x1, const char *color)
{
    fprintf(f, "<polyline class=\"series\" data-name=\"");
    esc(f, q->name);
    fprintf(f, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\"%s data-x=\"", color,
            q->dashed ? " stroke-dasharray=\"6 4\"" : "");
    size_t used = 0;
    for (size_t i = 0; i < q->n; i++)
        if (isfinite(q->y[i]) && !(ay->log && q->y[i] <= 0)) fprintf(f, "%s%.9g", used++ ? " " : "", q->x[i]);
    fprintf(f, "\" data-y=\"");
    used = 0;
    for (size_t i = 0; i < q->n; i++)
        if (isfinite(q->y[i]) && !(ay->log && q->y[i] <= 0)) fprintf(f, "%s%.9g", used++ ? " " : "", q->y[i]);
    fprintf(f, "\" points=\"");
    used = 0;
    for (size_t i = 0; i < q->n; i++)
        if (isfinite(q->y[i]) && !(ay->log && q->y[i] <= 0))
            fprintf(f, "%s%.1f,%.1f", used++ ? " " : "", to_px(ax, q->x[i], ML, x1), to_px(ay, q->y[i], H - MB, MT));
    fprintf(f, "\"/>\n");
    if (used == 1) /* one point: a dot, or nothing would show */
        for (size_t i = 0; i < q->n; i++)
            if (isfinite(q->y[i]) && !(ay->log && q->y[i] <= 0))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", to_px(ax, q->x[i], ML, x1),
                        to_px(ay, q->y[i], H - MB, MT), color);
}

static void chart(FILE *f, const attn_plot *p, int y0)
{
    const int two = p->y2label != NULL, x1 = W - (two ? 76 : 24);
    axis ax = {0, 1, 0}, ay = {0, 1, p->log_y}, ay2 = {0, 1, 0};
    if (!range(p, -1, 0, &ax.lo, &ax.hi)) ax.lo = 0, ax.hi = 1;
    if (!range(p, 0, p->log_y, &ay.lo, &ay.hi)) ay.lo = p->log_y ? 0.1 : 0, ay.hi = 1;
    if (two && !range(p, 1, 0, &ay2.lo, &ay2.hi)) ay2.lo = 0, ay2.hi = 1;
    if (!p->log_y) { /* a little air above and below the lines */
        double pad = (ay.hi - ay.lo) * 0.05;
        ay.lo -= pad, ay.hi += pad;
    }
    if (two) ay2.hi += (ay2.hi - ay2.lo) * 0.05, ay2.lo -= (ay2.hi - ay2.lo) * 0.05;
    fprintf(f, "<svg x=\"0\" y=\"%d\" width=\"%d\" height=\"%d\" class=\"chart\">\n", y0, W, H);
    fprintf(f, "<text x=\"%d\" y=\"24\" class=\"title\">", ML);
    esc(f, p->title);
    fprintf(f, "</text>\n");
    y_ticks(f, &ay, 0, ML, x1);
    if (two) y_ticks(f, &ay2, 1, ML, x1);
    double step = nice_step(ax.hi - ax.lo);
    for (double v = ceil(ax.lo / step) * step; v <= ax.hi + step * 1e-9; v += step) {
        double x = to_px(&ax, v, ML, x1);
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" class=\"grid\"/>\n", x, x, MT, H - MB);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" class=\"tick\">%.6g</text>\n", x, H - MB + 16, v);
    }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" class=\"axis\"/>\n", ML, MT, x1 - ML,
            H - MB - MT);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"label\">", (ML + x1) / 2, H - 14);
    esc(f, p->xlabel);
    fprintf(f, "</text>\n<text transform=\"translate(18 %d) rotate(-90)\" text-anchor=\"middle\" class=\"label\">",
            (MT + H - MB) / 2);
    esc(f, p->ylabel);
    if (p->log_y) fputs(" (log scale)", f);
    fprintf(f, "</text>\n");
    if (two) {
        fprintf(f, "<text transform=\"translate(%d %d) rotate(90)\" text-anchor=\"middle\" class=\"label\">", W - 14,
                (MT + H - MB) / 2);
        esc(f, p->y2label);
        fprintf(f, "</text>\n");
    }
    for (size_t s = 0; s < p->n_series; s++)
        series(f, &p->series[s], &ax, p->series[s].right ? &ay2 : &ay, x1, palette[s % 8]);
    /* the legend, top right inside the frame */
    int lx = x1 - 238, ly = MT + 8;
    fprintf(f, "<g class=\"legend\"><rect x=\"%d\" y=\"%d\" width=\"230\" height=\"%zu\" fill=\"white\" "
               "fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n",
            lx, ly, 8 + 18 * p->n_series);
    for (size_t s = 0; s < p->n_series; s++) {
        int y = ly + 16 + 18 * (int)s;
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2.5\"%s/>", lx + 8,
                lx + 34, y - 4, y - 4, palette[s % 8], p->series[s].dashed ? " stroke-dasharray=\"6 4\"" : "");
        fprintf(f, "<text x=\"%d\" y=\"%d\">", lx + 40, y);
        esc(f, p->series[s].name);
        if (two) fputs(p->series[s].right ? " (right)" : "", f);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</g>\n</svg>\n");
}

static void charts(FILE *f, const attn_plot *p, size_t n)
{
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%zu\" viewBox=\"0 0 %d %zu\" "
               "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n",
            W, H * n, W, H * n);
    fprintf(f, "<style>.grid{stroke:#e4e4e4}.tick{fill:#444}.axis{stroke:#333}.label{fill:#222;font-size:13px}"
               ".title{font-size:15px;font-weight:bold}</style>\n<rect width=\"%d\" height=\"%zu\" fill=\"white\"/>\n",
            W, H * n);
    for (size_t i = 0; i < n; i++) chart(f, &p[i], H * (int)i);
    fprintf(f, "</svg>\n");
}

static attn_status plots_svg(const attn_plot *p, size_t n, char **svg)
{
    for (size_t i = 0; i < n; i++)
        if (!p || !svg || (p[i].n_series && !p[i].series)) return attn_error(ATTN_E_INVALID, "attn_plot_svg: NULL");
    size_t len = 0;
    *svg = NULL;
    FILE *f = open_memstream(svg, &len);
    if (!f) return attn_error(ATTN_E_NOMEM, "out of memory");
    charts(f, p, n);
    if (fclose(f) != 0) {
        free(*svg), *svg = NULL;
        return attn_error(ATTN_E_NOMEM, "out of memory");
    }
    return ATTN_OK;
}

static attn_status write_text(const char *path, const char *text, int html, const char *title)
{
    attn_atomic_file af;
    attn_status st = attn_atomic_open(&af, path);
    if (st) return st;
    if (html) {
        fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>", af.f);
        esc(af.f, title);
        fputs("</title></head>\n<body style=\"margin:16px;background:#fafafa\">\n", af.f);
    }
    fputs(text, af.f);
    if (html) fputs("</body></html>\n", af.f);
    return attn_atomic_commit(&af);
}

attn_status attn_plot_svg(const attn_plot *p, char **svg) { return plots_svg(p, 1, svg); }

attn_status attn_plot_write(const attn_plot *p, size_t n, const char *path, int html)
{
    char *svg = NULL;
    if (!n || !path) return attn_error(ATTN_E_INVALID, "attn_plot_write: no chart");
    attn_status st = plots_svg(p, n, &svg);
    if (!st) st = write_text(path, svg, html, p->title);
    free(svg);
    return st;
}

attn_status attn_confusion_svg_write(const char *path, const char *title, const char *const *labels,
                                     size_t k, const size_t *counts)
{
    if (!path || !labels || !counts || !k) return attn_error(ATTN_E_INVALID, "attn_confusion_svg_write: NULL");
    size_t name = 0;
    for (size_t i = 0; i < k; i++) name = strlen(labels[i]) > name ? strlen(labels[i]) : name;
    const int cell = k > 20 ? 26 : 34, left = 20 + 7 * (int)(name < 40 ? name : 40), top = 40 + 7 * (int)(name < 40 ? name : 40);
    int w = left + cell * (int)k + 20;
    const int h = top + cell * (int)k + 40, tw = 20 + 9 * (int)(title ? strlen(title) : 0);
    w = w > tw ? w : tw;
    char *svg = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&svg, &len);
    if (!f) return attn_error(ATTN_E_NOMEM, "out of memory");
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"11\">\n"
               "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"14\" "
               "font-weight=\"bold\">",
            w, h, w, h, w, h);
    esc(f, title);
    fprintf(f, "</text>\n<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">predicted</text>\n", left + cell * (int)k / 2,
            top + cell * (int)k + 28);
    for (size_t i = 0; i < k; i++) {
        int c = left + cell * (int)i + cell / 2, r = top + cell * (int)i + cell / 2;
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" class=\"row\">", left - 6, r + 4);
        esc(f, labels[i]);
        fprintf(f, "</text>\n<text transform=\"translate(%d %d) rotate(-60)\" class=\"col\">", c + 4, top - 6);
        esc(f, labels[i]);
        fprintf(f, "</text>\n");
    }
    for (size_t i = 0; i < k; i++) {
        size_t total = 0;
        for (size_t j = 0; j < k; j++) total += counts[i * k + j];
        for (size_t j = 0; j < k; j++) {
            double share = total ? (double)counts[i * k + j] / (double)total : 0;
            /* white to blue (right answers on the diagonal) or to red */
            int g = (int)(255 - 180 * share), b = i == j ? 255 : (int)(255 - 180 * share);
            int r = i == j ? (int)(255 - 200 * share) : 255;
            fprintf(f, "<rect class=\"cell\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,%d)\" "
                       "stroke=\"#ddd\" data-count=\"%zu\"><title>",
                    left + cell * (int)j, top + cell * (int)i, cell, cell, r, g, b, counts[i * k + j]);
            esc(f, labels[i]);
            fputs(" predicted as ", f);
            esc(f, labels[j]);
            fprintf(f, ": %zu of %zu</title></rect>\n", counts[i * k + j], total);
            if (counts[i * k + j])
                fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"%s\">%zu</text>\n",
                        left + cell * (int)j + cell / 2, top + cell * (int)i + cell / 2 + 4,
                        share > 0.6 ? "white" : "#222", counts[i * k + j]);
        }
    }
    fprintf(f, "<text transform=\"translate(12 %d) rotate(-90)\" text-anchor=\"middle\">true class</text>\n</svg>\n",
            top + cell * (int)k / 2);
    attn_status st = fclose(f) == 0 ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    if (!st) st = write_text(path, svg, 0, title);
    free(svg);
    return st;
}
