/* export_xlsx.h - the workbook writer behind attn_export_xlsx (internal).
 *
 * A sheet is filled with labelled blocks: a title cell "<Key>: <what>", a
 * header row of column labels below it, then one labelled row per data row;
 * data cell (i, j) of a block whose title is at (r, c) is at
 * (r + 2 + i, c + 1 + j). Blocks sit side by side in bands separated by a
 * blank row, a blank column (or more, for a long title) between blocks.
 *
 * Formulas are built in xl.f (xl_fclear, xl_fcat, xl_fref, xl_frow) and
 * written with their cached result. Every writer is a no-op once xl.st holds
 * an error, so that callers check once at the end. With xl.wb == NULL nothing
 * is written: the calls only count cells (a dry run that sizes the book).
 */
#ifndef ATTN_EXPORT_XLSX_H
#define ATTN_EXPORT_XLSX_H

#include <stddef.h>

#include <xlsxwriter.h>

#include "attn/status.h"
#include "attn/trace.h"

#define XLSX_MAX_COLS 16384
#define XLSX_WIDTH_COLS 512 /* columns whose width follows their labels */

typedef struct xl {
    lxw_workbook *wb;
    attn_status st;
    size_t formulas, constants;
    lxw_format *title, *note, *head, *label, *num, *input, *flag;
    char f[1024]; /* the formula being built */
    size_t flen;
    int overflow;
} xl;

typedef struct sheet {
    xl *x;
    lxw_worksheet *ws;
    char name[32];
    size_t row, col, band_h; /* the band being filled */
    size_t max_col;
    unsigned char width[XLSX_WIDTH_COLS]; /* characters; 0 = the default */
} sheet;

typedef struct block {
    const sheet *sh;
    size_t r, c, rows, cols;
} block;

/* A 2-D trace entry with its labels. */
typedef struct mat {
    const attn_tensor *t;
    const char *const *rl, *const *cl;
    size_t nrl, ncl, rows, cols;
} mat;

static inline double xl_at(const mat *m, size_t i, size_t j)
{
    return (double)m->t->data[i * m->cols + j];
}

/* Records the first error as "export xlsx: <message>". */
void xl_fail(xl *x, attn_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void xl_check(xl *x, lxw_error e);

/* Formats of a new workbook. */
void xl_formats(xl *x);

/* Formulas: clear, append text, a reference to data cell (i, j) of b or a
 * whole data row of b, as seen from sheet `from`. */
void xl_fclear(xl *x);
void xl_fcat(xl *x, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void xl_fref(xl *x, const sheet *from, const block *b, size_t i, size_t j, int absolute);
void xl_frow(xl *x, const sheet *from, const block *b, size_t i);

/* Cells: a label, a constant (counted), the formula in x->f with a cached
 * number v or, when str is not NULL, a cached text (counted). */
void xl_str(sheet *s, size_t r, size_t c, const char *str, lxw_format *fmt);
void xl_num(sheet *s, size_t r, size_t c, double v, lxw_format *fmt);
void xl_formula(sheet *s, size_t r, size_t c, double v, const char *str);

/* A sheet with a note across its top row; its first band starts below. */
void xl_sheet_open(xl *x, sheet *s, const char *name, const char *note);
/* Column widths from the labels; print setup. */
void xl_sheet_finish(sheet *s);
void xl_next_band(sheet *s);

/* A block's frame in the current band: title, column and row labels (NULL or
 * short label lists fall back to the index). */
block xl_place(sheet *s, const char *title, size_t rows, size_t cols, const char *const *rl,
               size_t nrl, const char *const *cl, size_t ncl);
block xl_place_mat(sheet *s, const char *title, const mat *m);
/* Colour scale on a block's numbers: blue-white-red (three) or white-green. */
void xl_colour(const block *b, int three);
/* A block of constants (inputs, weights): blue numbers, coloured. */
block xl_constants(sheet *s, const char *title, const mat *m);

/* Trace entry "<prefix>.<name>" (2-D; rows, cols 0 = any). A missing entry
 * is an error when required, else m->t = NULL. */
void xl_get_mat(xl *x, const attn_trace *t, const char *prefix, const char *name, size_t rows,
                size_t cols, int required, mat *m);
double xl_get_scalar(xl *x, const attn_trace *t, const char *prefix, const char *name);

#endif
