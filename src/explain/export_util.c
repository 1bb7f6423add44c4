/* export_util.c - all-or-nothing output directories; walking a document. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "export_util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* dirname of path into buf ("." when none). */
static void parent_of(const char *path, char *buf, size_t n)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--; /* "out/" is "out" */
    const char *slash = NULL;
    for (size_t i = 0; i < len; i++)
        if (path[i] == '/') slash = path + i;
    if (!slash) snprintf(buf, n, ".");
    else if (slash == path) snprintf(buf, n, "/");
    else snprintf(buf, n, "%.*s", (int)(slash - path), path);
}

static attn_status writable_dir(const char *path, const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return attn_error(ATTN_E_IO, "%s: directory '%s' does not exist", path, dir);
    if (!S_ISDIR(sb.st_mode))
        return attn_error(ATTN_E_IO, "%s: '%s' is not a directory", path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return attn_error(ATTN_E_IO, "%s: directory '%s' is not writable", path, dir);
    return ATTN_OK;
}

attn_status attn_export_check_file(const char *path)
{
    struct stat sb;
    if (!path || !*path) return attn_error(ATTN_E_IO, "empty output path");
    int exists = stat(path, &sb) == 0;
    if (exists && S_ISDIR(sb.st_mode))
        return attn_error(ATTN_E_IO, "%s: is a directory, expected a file path", path);
    /* A device or FIFO is written in place (attn_atomic_open): it only has
     * to be writable itself. */
    if (exists && !S_ISREG(sb.st_mode)) {
        if (access(path, W_OK) != 0)
            return attn_error(ATTN_E_IO, "%s: not writable: %s", path, strerror(errno));
        return ATTN_OK;
    }
    struct stat lsb;
    if (!exists && lstat(path, &lsb) == 0 && S_ISLNK(lsb.st_mode))
        return attn_error(ATTN_E_IO, "%s: a symbolic link to a missing file (not replaced)", path);
    char dir[4096];
    char *real = exists ? realpath(path, NULL) : NULL; /* a link's target is replaced */
    parent_of(real ? real : path, dir, sizeof dir);
    free(real);
    return writable_dir(path, dir);
}

attn_status attn_export_check_dir(const char *dir)
{
    struct stat sb;
    if (!dir || !*dir) return attn_error(ATTN_E_IO, "empty output directory");
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) return attn_error(ATTN_E_IO, "%s: exists and is not a directory", dir);
        return writable_dir(dir, dir);
    }
    char parent[4096];
    parent_of(dir, parent, sizeof parent);
    return writable_dir(dir, parent);
}

attn_status export_dir_open(export_dir *d, const char *dir)
{
    memset(d, 0, sizeof *d);
    attn_status st = attn_export_check_dir(dir);
    if (st) return st;
    if (!(d->dir = malloc(strlen(dir) + 1))) return attn_error(ATTN_E_NOMEM, "out of memory");
    strcpy(d->dir, dir);
    if (mkdir(dir, 0777) == 0) d->created = 1;
    else if (errno != EEXIST) {
        st = attn_error(ATTN_E_IO, "%s: cannot create the directory: %s", dir, strerror(errno));
        export_dir_close(d);
    }
    return st;
}

attn_status export_dir_begin(export_dir *d, const char *name, attn_atomic_file *af)
{
    size_t n = strlen(d->dir) + strlen(name) + 2;
    char *path = malloc(n);
    if (!path) return attn_error(ATTN_E_NOMEM, "out of memory");
    snprintf(path, n, "%s/%s", d->dir, name);
    attn_status st = attn_atomic_open(af, path);
    free(path);
    return st;
}

attn_status export_dir_commit(export_dir *d, attn_atomic_file *af)
{
    char *path = malloc(strlen(af->path) + 1);
    if (!path) {
        attn_atomic_abort(af);
        return attn_error(ATTN_E_NOMEM, "out of memory");
    }
    strcpy(path, af->path);
    attn_status st = attn_atomic_commit(af);
    if (st) {
        free(path);
        return st;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 16;
        char **f = realloc(d->files, cap * sizeof *f);
        if (!f) {
            unlink(path);
            free(path);
            return attn_error(ATTN_E_NOMEM, "out of memory");
        }
        d->files = f, d->cap = cap;
    }
    d->files[d->n++] = path;
    return ATTN_OK;
}

void export_dir_rollback(export_dir *d)
{
    for (size_t i = 0; i < d->n; i++) unlink(d->files[i]);
    if (d->created && d->dir) rmdir(d->dir);
}

void export_dir_close(export_dir *d)
{
    for (size_t i = 0; i < d->n; i++) free(d->files[i]);
    free(d->files);
    free(d->dir);
    memset(d, 0, sizeof *d);
}

attn_status export_check_doc(const attn_doc *doc)
{
    if (!doc || !doc->traces || doc->n < 1 || doc->n > 2)
        return attn_error(ATTN_E_INVALID, "export: a document holds 1 or 2 traces");
    for (size_t i = 0; i < doc->n; i++)
        if (!attn_trace_get(doc->traces[i], "embeddings") || !attn_trace_get(doc->traces[i], "output"))
            return attn_error(ATTN_E_INVALID, "export: trace %zu is not a walkthrough", i + 1);
    return ATTN_OK;
}

attn_status export_each_matrix(const attn_doc *doc, export_matrix_fn fn, void *user)
{
    attn_status st = export_check_doc(doc);
    for (size_t s = 0; !st && s < doc->n; s++) {
        const attn_trace *t = doc->traces[s];
        for (size_t i = 0; !st && i < attn_trace_count(t); i++) {
            attn_trace_entry e;
            if ((st = attn_trace_entry_at(t, i, &e))) break;
            if (e.tensor->ndim != 2) continue;
            export_matrix m;
            memset(&m, 0, sizeof m);
            m.seq = s;
            m.caption = doc->captions ? doc->captions[s] : NULL;
            m.entry = e.name;
            m.t = e.tensor;
            m.row_axis = e.row_axis, m.col_axis = e.col_axis;
            m.rows = attn_trace_labels(t, e.row_axis, &m.n_rows);
            m.cols = attn_trace_labels(t, e.col_axis, &m.n_cols);
            size_t len = doc->n > 1 ? (size_t)snprintf(m.stem, sizeof m.stem, "s%zu-", s + 1) : 0;
            for (const char *p = e.name; *p && len + 1 < sizeof m.stem; p++)
                m.stem[len++] = *p == '.' || *p == '/' ? '-' : *p;
            m.stem[len] = '\0';
            st = fn(&m, user);
        }
    }
    return st;
}

attn_status attn_trace_check_output(const attn_trace *t, const char *what)
{
    for (size_t i = 0; t && i < attn_trace_count(t); i++) {
        attn_trace_entry e;
        attn_status st = attn_trace_entry_at(t, i, &e);
        if (st) return st;
        size_t n = strlen(e.name);
        if (n < 6 || strcmp(e.name + n - 6, "output") || (n > 6 && e.name[n - 7] != '.')) continue;
        for (size_t k = 0; k < e.tensor->numel; k++)
            if (!isfinite(e.tensor->data[k]))
                return attn_error(ATTN_E_FORMAT,
                                  "%s: the attention overflows float32 (%s in '%s', element %zu): "
                                  "the inputs or the scale are too large, or the temperature too "
                                  "small",
                                  what, isnan(e.tensor->data[k]) ? "NaN" : "an infinity", e.name, k);
    }
    return ATTN_OK;
}

void export_shortest_float(char *buf, float v)
{
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, 32, "%.*g", digits, (double)v);
        if ((float)strtod(buf, NULL) == v) break;
    }
}
