/* attn/plot.h - pictures of training: line charts of series against the step
 * (losses, learning rate on a second axis, accuracy) and a confusion matrix
 * heatmap, as standalone SVG that any browser shows.
 *
 * Every series is drawn as one <polyline class="series" data-name="NAME"
 * data-x="..." data-y="..."> whose data attributes hold the plotted values
 * (%.9g), so tests and scripts can check a picture against its log. */
#ifndef ATTN_PLOT_H
#define ATTN_PLOT_H

#include <stddef.h>
#include "attn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_plot_series {
    const char *name;       /* the legend's text */
    const double *x, *y;    /* n points; non-finite y are skipped */
    size_t n;
    int right;              /* 1: on the right axis (learning rate, accuracy) */
    int dashed;
} attn_plot_series;

typedef struct attn_plot {
    const char *title;
    const char *xlabel, *ylabel, *y2label; /* y2label: the right axis (NULL: none) */
    int log_y;                             /* the left axis in log scale */
    const attn_plot_series *series;
    size_t n_series;
} attn_plot;

/* The chart as SVG text (malloc'd). */
attn_status attn_plot_svg(const attn_plot *p, char **svg);
/* Writes n charts, one under the other, to path atomically (a temporary
 * file, then rename); with html, as an HTML page around the SVG. */
attn_status attn_plot_write(const attn_plot *p, size_t n, const char *path, int html);

/* A K x K confusion matrix (rows: true class, columns: predicted; counts
 * row-major) as an SVG heatmap, each row shaded by its share, with the class
 * names on both axes and the count in every cell; written atomically. */
attn_status attn_confusion_svg_write(const char *path, const char *title, const char *const *labels,
                                     size_t k, const size_t *counts);

#ifdef __cplusplus
}
#endif
#endif
