/* export_xlsx_writer.c - labelled blocks of cells for the xlsx exporter:
 * formulas, references, bands, colour scales, column widths (see
 * export_xlsx.h). */
#include "export_xlsx.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define XLSX_NOTE_COLS 14   /* the note at the top spans these columns */
#define XLSX_COL_CHARS 9    /* default column width, in characters */

void xl_fail(xl *x, attn_status s, const char *fmt, ...)
{
    if (x->st) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    x->st = attn_error(s, "export xlsx: %s", msg);
}

void xl_check(xl *x, lxw_error e)
{
    if (e == LXW_NO_ERROR || x->st) return;
    xl_fail(x, e == LXW_ERROR_MEMORY_MALLOC_FAILED ? ATTN_E_NOMEM : ATTN_E_INTERNAL,
            "libxlsxwriter: %s", lxw_strerror(e));
}

static lxw_format *format(xl *x, int bold, lxw_color_t fg, lxw_color_t bg, const char *num)
{
    lxw_format *f = x->st ? NULL : workbook_add_format(x->wb);
    if (!f) {
        xl_fail(x, ATTN_E_NOMEM, "out of memory");
        return NULL;
    }
    if (bold) format_set_bold(f);
    if (fg) format_set_font_color(f, fg);
    if (bg) format_set_bg_color(f, bg);
    if (num) format_set_num_format(f, num);
    return f;
}

void xl_formats(xl *x)
{
    x->title = format(x, 1, 0x1F3864, 0, NULL);
    x->note = format(x, 0, 0x404040, 0xF2F2F2, NULL);
    x->head = format(x, 1, 0, 0xD9E1F2, NULL);
    x->label = format(x, 1, 0, 0xD9E1F2, NULL);
    x->num = format(x, 0, 0, 0, "0.000");
    x->input = format(x, 0, 0x0000FF, 0, "0.000"); /* blue: typed in */
    x->flag = format(x, 0, 0x0000FF, 0, "0");
    if (x->st) return;
    format_set_text_wrap(x->note);
    format_set_align(x->note, LXW_ALIGN_VERTICAL_TOP);
    format_set_align(x->head, LXW_ALIGN_CENTER);
}

/* ---- references and formulas -------------------------------------------- */

static void col_name(size_t c, char *buf)
{
    char tmp[8];
    size_t n = 0;
    for (c++; c && n < sizeof tmp; c = (c - 1) / 26) tmp[n++] = (char)('A' + (c - 1) % 26);
    for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
}

void xl_fclear(xl *x) { x->flen = 0, x->f[0] = '\0', x->overflow = 0; }

void xl_fcat(xl *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(x->f + x->flen, sizeof x->f - x->flen, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof x->f - x->flen) x->overflow = 1;
    else x->flen += (size_t)n;
}

static void fsheet(xl *x, const sheet *from, const block *b)
{
    if (b->sh != from) xl_fcat(x, "'%s'!", b->sh->name);
}

static void fcell(xl *x, size_t r, size_t c, int absolute)
{
    char col[8];
    col_name(c, col);
    xl_fcat(x, absolute ? "$%s$%zu" : "%s%zu", col, r + 1);
}

void xl_fref(xl *x, const sheet *from, const block *b, size_t i, size_t j, int absolute)
{
    fsheet(x, from, b);
    fcell(x, b->r + 2 + i, b->c + 1 + j, absolute);
}

void xl_frow(xl *x, const sheet *from, const block *b, size_t i)
{
    fsheet(x, from, b);
    fcell(x, b->r + 2 + i, b->c + 1, 0);
    xl_fcat(x, ":");
    fcell(x, b->r + 2 + i, b->c + b->cols, 0);
}

/* ---- cells ---------------------------------------------------------------- */

static int cell_ok(sheet *s, size_t r, size_t c)
{
    if (s->x->st) return 0;
    if (c >= XLSX_MAX_COLS || r >= LXW_ROW_MAX) {
        xl_fail(s->x, ATTN_E_INVALID, "sheet '%s' would need column %zu or row %zu, beyond what "
                "a workbook holds (%d columns, %d rows)", s->name, c + 1, r + 1, XLSX_MAX_COLS,
                LXW_ROW_MAX);
        return 0;
    }
    if (c + 1 > s->max_col) s->max_col = c + 1;
    return 1;
}

static int finite_ok(sheet *s, size_t r, size_t c, double v)
{
    if (isfinite(v)) return 1;
    char col[8];
    col_name(c, col);
    xl_fail(s->x, ATTN_E_INVALID, "sheet '%s' cell %s%zu would hold a non-finite number (%g)",
            s->name, col, r + 1, v);
    return 0;
}

void xl_str(sheet *s, size_t r, size_t c, const char *str, lxw_format *fmt)
{
    if (!cell_ok(s, r, c) || !s->ws) return;
    xl_check(s->x, worksheet_write_string(s->ws, (lxw_row_t)r, (lxw_col_t)c, str, fmt));
}

void xl_num(sheet *s, size_t r, size_t c, double v, lxw_format *fmt)
{
    if (!cell_ok(s, r, c) || !finite_ok(s, r, c, v)) return;
    s->x->constants++;
    if (s->ws) xl_check(s->x, worksheet_write_number(s->ws, (lxw_row_t)r, (lxw_col_t)c, v, fmt));
}

void xl_formula(sheet *s, size_t r, size_t c, double v, const char *str)
{
    xl *x = s->x;
    if (!cell_ok(s, r, c) || (!str && !finite_ok(s, r, c, v))) return;
    if (x->overflow) {
        xl_fail(x, ATTN_E_INTERNAL, "a formula of sheet '%s' is too long", s->name);
        return;
    }
    x->formulas++;
    if (!s->ws) return;
    lxw_row_t row = (lxw_row_t)r;
    lxw_col_t col = (lxw_col_t)c;
    xl_check(x, str ? worksheet_write_formula_str(s->ws, row, col, x->f, x->num, str)
                    : worksheet_write_formula_num(s->ws, row, col, x->f, x->num, v));
}

/* ---- sheets, bands and blocks ---------------------------------------------- */

void xl_sheet_open(xl *x, sheet *s, const char *name, const char *note)
{
    memset(s, 0, sizeof *s);
    s->x = x;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->row = 2;
    if (x->st || !x->wb) return;
    if (!(s->ws = workbook_add_worksheet(x->wb, s->name))) {
        xl_fail(x, ATTN_E_NOMEM, "cannot add the sheet '%s'", s->name);
        return;
    }
    xl_check(x, worksheet_set_row(s->ws, 0, 64, NULL));
    xl_check(x, worksheet_merge_range(s->ws, 0, 0, 0, XLSX_NOTE_COLS - 1, note, x->note));
    worksheet_set_landscape(s->ws);
    worksheet_fit_to_pages(s->ws, 1, 0); /* printed: one page wide */
}

void xl_sheet_finish(sheet *s)
{
    if (s->x->st || !s->ws) return;
    size_t n = s->max_col < XLSX_WIDTH_COLS ? s->max_col : XLSX_WIDTH_COLS;
    for (size_t c = 0; c < n && !s->x->st; c++)
        xl_check(s->x, worksheet_set_column(s->ws, (lxw_col_t)c, (lxw_col_t)c,
                                            s->width[c] ? s->width[c] : XLSX_COL_CHARS, NULL));
}

void xl_next_band(sheet *s)
{
    if (s->band_h) s->row += s->band_h + 1;
    s->col = 0, s->band_h = 0;
}

/* Characters of a UTF-8 string (code points). */
static size_t chars(const char *str)
{
    size_t n = 0;
    for (; *str; str++) n += ((unsigned char)*str & 0xC0) != 0x80;
    return n;
}

/* Column c is at least wide enough for `text` (bold, with a margin). */
static void fit(sheet *s, size_t c, const char *text)
{
    size_t w = chars(text) * 4 / 3 + 3;
    if (w > 40) w = 40;
    if (c < XLSX_WIDTH_COLS && w > XLSX_COL_CHARS && w > s->width[c])
        s->width[c] = (unsigned char)w;
}

static void label(sheet *s, size_t r, size_t c, const char *const *v, size_t n, size_t i,
                  lxw_format *fmt)
{
    char num[32];
    const char *text = v && i < n && v[i] ? v[i] : num;
    if (text == num) snprintf(num, sizeof num, "%zu", i);
    fit(s, c, text);
    xl_str(s, r, c, text, fmt);
}

block xl_place(sheet *s, const char *title, size_t rows, size_t cols, const char *const *rl,
               size_t nrl, const char *const *cl, size_t ncl)
{
    block b = {s, s->row, s->col, rows, cols};
    xl_str(s, b.r, b.c, title, s->x->title);
    for (size_t j = 0; j < cols; j++) label(s, b.r + 1, b.c + 1 + j, cl, ncl, j, s->x->head);
    for (size_t i = 0; i < rows; i++) label(s, b.r + 2 + i, b.c, rl, nrl, i, s->x->label);
    /* The next block starts after a blank column, or where this title ends. */
    size_t span = (chars(title) * 11 / 10 + XLSX_COL_CHARS) / XLSX_COL_CHARS;
    s->col += (span > cols + 1 ? span : cols + 1) + 1;
    if (rows + 2 > s->band_h) s->band_h = rows + 2;
    return b;
}

block xl_place_mat(sheet *s, const char *title, const mat *m)
{
    return xl_place(s, title, m->rows, m->cols, m->rl, m->nrl, m->cl, m->ncl);
}

void xl_colour(const block *b, int three)
{
    xl *x = b->sh->x;
    if (x->st || !b->sh->ws || !b->rows || !b->cols) return;
    lxw_conditional_format cf;
    memset(&cf, 0, sizeof cf);
    cf.type = three ? LXW_CONDITIONAL_3_COLOR_SCALE : LXW_CONDITIONAL_2_COLOR_SCALE;
    cf.min_rule_type = LXW_CONDITIONAL_RULE_TYPE_MINIMUM;
    cf.max_rule_type = LXW_CONDITIONAL_RULE_TYPE_MAXIMUM;
    cf.min_color = three ? 0x5A8AC6 : 0xFFFFFF;
    cf.max_color = three ? 0xF8696B : 0x63BE7B;
    if (three) {
        cf.mid_rule_type = LXW_CONDITIONAL_RULE_TYPE_PERCENTILE;
        cf.mid_value = 50;
        cf.mid_color = 0xFFFFFF;
    }
    xl_check(x, worksheet_conditional_format_range(
                    b->sh->ws, (lxw_row_t)(b->r + 2), (lxw_col_t)(b->c + 1),
                    (lxw_row_t)(b->r + 1 + b->rows), (lxw_col_t)(b->c + b->cols), &cf));
}

block xl_constants(sheet *s, const char *title, const mat *m)
{
    block b = xl_place_mat(s, title, m);
    for (size_t i = 0; i < m->rows; i++)
        for (size_t j = 0; j < m->cols; j++)
            xl_num(s, b.r + 2 + i, b.c + 1 + j, xl_at(m, i, j), s->x->input);
    xl_colour(&b, 3);
    return b;
}

/* ---- trace entries ------------------------------------------------------------ */

static void full_name(char *buf, size_t n, const char *prefix, const char *name)
{
    snprintf(buf, n, "%s%s%s", prefix ? prefix : "", prefix ? "." : "", name);
}

void xl_get_mat(xl *x, const attn_trace *t, const char *prefix, const char *name, size_t rows,
                size_t cols, int required, mat *m)
{
    memset(m, 0, sizeof *m);
    if (x->st) return;
    char full[128];
    full_name(full, sizeof full, prefix, name);
    for (size_t i = 0; i < attn_trace_count(t); i++) {
        attn_trace_entry e;
        if (attn_trace_entry_at(t, i, &e) || strcmp(e.name, full) != 0) continue;
        const attn_tensor *tt = e.tensor;
        if (tt->ndim != 2 || (rows && tt->shape[0] != rows) || (cols && tt->shape[1] != cols)) {
            xl_fail(x, ATTN_E_INVALID, "trace entry '%s' has %zu x %zu values, expected %zu x %zu",
                    full, tt->ndim == 2 ? tt->shape[0] : tt->numel,
                    tt->ndim == 2 ? tt->shape[1] : (size_t)1, rows ? rows : tt->shape[0],
                    cols ? cols : tt->shape[1]);
            return;
        }
        m->t = tt, m->rows = tt->shape[0], m->cols = tt->shape[1];
        if (e.row_axis) m->rl = attn_trace_labels(t, e.row_axis, &m->nrl);
        if (e.col_axis) m->cl = attn_trace_labels(t, e.col_axis, &m->ncl);
        return;
    }
    if (required) xl_fail(x, ATTN_E_INVALID, "the trace has no entry '%s'", full);
}

double xl_get_scalar(xl *x, const attn_trace *t, const char *prefix, const char *name)
{
    char full[128];
    full_name(full, sizeof full, prefix, name);
    const attn_tensor *s = attn_trace_get(t, full);
    if (!s || s->numel != 1) {
        xl_fail(x, ATTN_E_INVALID, "the trace has no scalar '%s'", full);
        return 1.0;
    }
    return (double)s->data[0];
}
