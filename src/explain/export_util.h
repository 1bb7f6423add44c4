/* export_util.h - what the file exporters share (internal). */
#ifndef ATTN_EXPORT_UTIL_H
#define ATTN_EXPORT_UTIL_H

#include <stddef.h>
#include <stdio.h>

#include "attn/explain_model.h"
#include "attn/export.h"
#include "attn/fileio.h"
#include "attn/tensor.h"

/* buf (>= 32 bytes) = the shortest decimal (6 to 9 significant digits) that
 * reads back as the same float, so 0.25 and 0.333333343 are shown rather
 * than 17 digits; v must be finite. */
void export_shortest_float(char *buf, float v);

/* A directory of outputs written all-or-nothing. */
typedef struct export_dir {
    char *dir;
    int created;     /* we made the directory: rollback removes it */
    char **files;    /* files committed so far */
    size_t n, cap;
} export_dir;

/* Checks `dir` and creates it if missing. */
attn_status export_dir_open(export_dir *d, const char *dir);
/* Opens <dir>/<name> for an atomic write. */
attn_status export_dir_begin(export_dir *d, const char *name, attn_atomic_file *af);
/* Commits the file and remembers it for a rollback. */
attn_status export_dir_commit(export_dir *d, attn_atomic_file *af);
/* Removes every committed file (and the directory if we created it). */
void export_dir_rollback(export_dir *d);
void export_dir_close(export_dir *d);

/* One 2-D matrix of a document, with its labels (either may be NULL or
 * shorter than the matrix: fall back to the index) and a file stem. */
typedef struct export_matrix {
    size_t seq;                  /* which trace */
    const char *caption;         /* that trace's caption */
    const char *entry;           /* trace entry name, e.g. "head0.attention" */
    const attn_tensor *t;
    const char *row_axis, *col_axis;
    const char *const *rows;
    size_t n_rows;
    const char *const *cols;
    size_t n_cols;
    char stem[256];              /* "head0-attention", or "s1-head0-attention" */
} export_matrix;

typedef attn_status (*export_matrix_fn)(const export_matrix *m, void *user);

/* Calls fn for every 2-D entry of every trace, in recording order. */
attn_status export_each_matrix(const attn_doc *doc, export_matrix_fn fn, void *user);

/* Calls fn for every map a model view shows (attn/explain_model.h), as
 * "layer<l>.head<h>.attention" with the query and key labels. */
attn_status export_each_model_map(const attn_model_view *v, export_matrix_fn fn, void *user);

/* Checks the document: 1 or 2 traces, each with "embeddings" and "output". */
attn_status export_check_doc(const attn_doc *doc);

#endif
