/* trace.c - named copies of intermediates, plus axis labels. */
#include "attn/trace.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char *name;
    char *row_axis;
    char *col_axis;
    attn_tensor tensor;
} entry;

typedef struct label_set {
    char *axis;
    size_t n;
    char **labels;
} label_set;

struct attn_trace {
    entry *entries;
    size_t n_entries, cap_entries;
    label_set *labels;
    size_t n_labels, cap_labels;
    char **filter; /* glob patterns of the names to record; none: record all */
    size_t n_filter;
};

static char *dup_or_null(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Grows *items (each `size` bytes) so that one more fits. */
static int grow(void **items, size_t *cap, size_t count, size_t size)
{
    if (count < *cap) return 1;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = realloc(*items, ncap * size);
    if (!p) return 0;
    *items = p;
    *cap = ncap;
    return 1;
}

attn_status attn_trace_create(attn_trace **trace)
{
    if (!trace) return attn_error(ATTN_E_INVALID, "attn_trace_create: trace is NULL");
    *trace = calloc(1, sizeof **trace);
    if (!*trace) return attn_error(ATTN_E_NOMEM, "cannot allocate a trace");
    return ATTN_OK;
}

static void free_entry(entry *e)
{
    free(e->name);
    free(e->row_axis);
    free(e->col_axis);
    attn_tensor_free(&e->tensor);
}

static void free_labels(label_set *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->labels[i]);
    free(l->labels);
    free(l->axis);
}

static void free_filter(attn_trace *t)
{
    for (size_t i = 0; i < t->n_filter; i++) free(t->filter[i]);
    free(t->filter);
    t->filter = NULL;
    t->n_filter = 0;
}

void attn_trace_free(attn_trace *t)
{
    if (!t) return;
    free_filter(t);
    for (size_t i = 0; i < t->n_entries; i++) free_entry(&t->entries[i]);
    for (size_t i = 0; i < t->n_labels; i++) free_labels(&t->labels[i]);
    free(t->entries);
    free(t->labels);
    free(t);
}

static entry *find_entry(const attn_trace *t, const char *name)
{
    for (size_t i = 0; i < t->n_entries; i++)
        if (strcmp(t->entries[i].name, name) == 0) return &t->entries[i];
    return NULL;
}

/* '*' matches any run of characters, everything else itself. */
static int glob_match(const char *p, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*p == '*') {
            star = ++p, resume = s;
        } else if (*p == *s) {
            p++, s++;
        } else if (star) {
            p = star, s = ++resume;
        } else {
            return 0;
        }
    }
    while (*p == '*') p++;
    return *p == '\0';
}

static int wanted(const attn_trace *t, const char *name)
{
    if (!t->n_filter) return 1;
    for (size_t i = 0; i < t->n_filter; i++)
        if (glob_match(t->filter[i], name)) return 1;
    return 0;
}

attn_status attn_trace_set_filter(attn_trace *t, size_t n, const char *const *patterns)
{
    if (!t || (n && !patterns))
        return attn_error(ATTN_E_INVALID, "attn_trace_set_filter: NULL argument");
    free_filter(t);
    if (!n) return ATTN_OK;
    t->filter = calloc(n, sizeof *t->filter);
    if (!t->filter) return attn_error(ATTN_E_NOMEM, "cannot allocate a trace filter");
    for (size_t i = 0; i < n; i++) {
        t->filter[i] = dup_or_null(patterns[i] ? patterns[i] : "");
        t->n_filter = i + 1;
        if (!t->filter[i]) {
            free_filter(t);
            return attn_error(ATTN_E_NOMEM, "cannot allocate a trace filter");
        }
    }
    return ATTN_OK;
}

attn_status attn_trace_record(attn_trace *t, const char *prefix, const char *name,
                              const float *data, int ndim, const size_t *shape,
                              const char *row_axis, const char *col_axis)
{
    if (!t || !name || (!data && ndim > 0))
        return attn_error(ATTN_E_INVALID, "attn_trace_record: NULL argument");
    entry e = {0};
    size_t plen = prefix ? strlen(prefix) : 0, nlen = strlen(name);
    e.name = malloc(plen + nlen + 2);
    if (!e.name) return attn_error(ATTN_E_NOMEM, "cannot allocate a trace entry name");
    if (plen) {
        memcpy(e.name, prefix, plen);
        e.name[plen] = '.';
        memcpy(e.name + plen + 1, name, nlen + 1);
    } else {
        memcpy(e.name, name, nlen + 1);
    }
    if (!wanted(t, e.name)) { /* filtered out: not an error, the caller need not know */
        free(e.name);
        return ATTN_OK;
    }
    e.row_axis = dup_or_null(row_axis);
    e.col_axis = dup_or_null(col_axis);
    attn_status st = ATTN_OK;
    if ((row_axis && !e.row_axis) || (col_axis && !e.col_axis))
        st = attn_error(ATTN_E_NOMEM, "cannot allocate trace axis names");
    if (!st) st = attn_tensor_create(&e.tensor, ndim, shape);
    if (st) {
        free_entry(&e);
        return st;
    }
    if (e.tensor.numel) memcpy(e.tensor.data, data, e.tensor.numel * sizeof(float));

    entry *old = find_entry(t, e.name);
    if (old) {
        free_entry(old);
        *old = e;
        return ATTN_OK;
    }
    if (!grow((void **)&t->entries, &t->cap_entries, t->n_entries, sizeof(entry))) {
        free_entry(&e);
        return attn_error(ATTN_E_NOMEM, "cannot grow the trace");
    }
    t->entries[t->n_entries++] = e;
    return ATTN_OK;
}

attn_status attn_trace_set_labels(attn_trace *t, const char *axis, size_t n,
                                  const char *const *labels)
{
    if (!t || !axis || (n && !labels))
        return attn_error(ATTN_E_INVALID, "attn_trace_set_labels: NULL argument");
    label_set l = {0};
    l.axis = dup_or_null(axis);
    l.labels = calloc(n ? n : 1, sizeof(char *));
    if (!l.axis || !l.labels) {
        free_labels(&l);
        return attn_error(ATTN_E_NOMEM, "cannot allocate trace labels");
    }
    for (size_t i = 0; i < n; i++) {
        l.labels[i] = dup_or_null(labels[i] ? labels[i] : "");
        l.n = i + 1;
        if (!l.labels[i]) {
            free_labels(&l);
            return attn_error(ATTN_E_NOMEM, "cannot allocate trace labels");
        }
    }
    for (size_t i = 0; i < t->n_labels; i++) {
        if (strcmp(t->labels[i].axis, axis) == 0) {
            free_labels(&t->labels[i]);
            t->labels[i] = l;
            return ATTN_OK;
        }
    }
    if (!grow((void **)&t->labels, &t->cap_labels, t->n_labels, sizeof(label_set))) {
        free_labels(&l);
        return attn_error(ATTN_E_NOMEM, "cannot grow the trace labels");
    }
    t->labels[t->n_labels++] = l;
    return ATTN_OK;
}

const attn_tensor *attn_trace_get(const attn_trace *t, const char *name)
{
    if (!t || !name) return NULL;
    entry *e = find_entry(t, name);
    return e ? &e->tensor : NULL;
}

const char *const *attn_trace_labels(const attn_trace *t, const char *axis, size_t *n)
{
    if (n) *n = 0;
    if (!t || !axis) return NULL;
    for (size_t i = 0; i < t->n_labels; i++) {
        if (strcmp(t->labels[i].axis, axis) == 0) {
            if (n) *n = t->labels[i].n;
            return (const char *const *)t->labels[i].labels;
        }
    }
    return NULL;
}

size_t attn_trace_count(const attn_trace *t) { return t ? t->n_entries : 0; }

attn_status attn_trace_entry_at(const attn_trace *t, size_t i, attn_trace_entry *out)
{
    if (!t || !out) return attn_error(ATTN_E_INVALID, "attn_trace_entry_at: NULL argument");
    if (i >= t->n_entries)
        return attn_error(ATTN_E_NOTFOUND, "trace entry %zu of %zu", i, t->n_entries);
    const entry *e = &t->entries[i];
    out->name = e->name;
    out->tensor = &e->tensor;
    out->row_axis = e->row_axis;
    out->col_axis = e->col_axis;
    return ATTN_OK;
}
