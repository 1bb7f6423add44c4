/* export_csv.c - one CSV file per matrix, with its labels. */
#include <math.h>
#include <string.h>

#include "export_util.h"

/* A label as a CSV cell: quoted when it holds a comma, quote or newline. */
static void cell(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void label(FILE *f, const char *const *labels, size_t n, size_t i)
{
    if (labels && i < n) cell(f, labels[i]);
    else fprintf(f, "%zu", i);
}

static attn_status write_matrix(const export_matrix *m, void *user)
{
    export_dir *d = user;
    char name[300];
    snprintf(name, sizeof name, "%s.csv", m->stem);
    attn_atomic_file af;
    attn_status st = export_dir_begin(d, name, &af);
    if (st) return st;
    FILE *f = af.f;
    const size_t r = m->t->shape[0], c = m->t->shape[1];
    /* Header: the row axis, then the column labels. */
    cell(f, m->row_axis ? m->row_axis : "row");
    for (size_t j = 0; j < c; j++) {
        fputc(',', f);
        label(f, m->cols, m->n_cols, j);
    }
    fputc('\n', f);
    for (size_t i = 0; i < r; i++) {
        label(f, m->rows, m->n_rows, i);
        for (size_t j = 0; j < c; j++) {
            float v = m->t->data[i * c + j];
            if (isinf(v)) fputs(v < 0 ? ",-inf" : ",inf", f);
            else fprintf(f, ",%.9g", (double)v); /* float32 round-trips */
        }
        fputc('\n', f);
    }
    return export_dir_commit(d, &af);
}

attn_status attn_export_csv(const attn_doc *doc, const char *dir)
{
    attn_status st = export_check_doc(doc);
    if (st) return st;
    export_dir d;
    if ((st = export_dir_open(&d, dir))) return st;
    st = export_each_matrix(doc, write_matrix, &d);
    if (st) export_dir_rollback(&d);
    export_dir_close(&d);
    return st;
}

attn_status attn_export_model_csv(const attn_model_view *v, const char *dir)
{
    attn_status st = attn_model_view_check(v);
    if (st) return st;
    export_dir d;
    if ((st = export_dir_open(&d, dir))) return st;
    st = export_each_model_map(v, write_matrix, &d);
    if (st) export_dir_rollback(&d);
    export_dir_close(&d);
    return st;
}
