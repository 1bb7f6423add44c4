/* cls_data.c - labelled text ("label<TAB>text" lines); cls_tokens.c (nn) turns it into token ids. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attn/cls_data.h"
#include "attn/fileio.h"

void attn_cls_split_free(attn_cls_split *s)
{
    if (!s) return;
    free(s->text), free(s->label_name), free(s->label), free(s->storage);
    memset(s, 0, sizeof *s);
}

attn_status attn_cls_split_read(attn_cls_split *s, const char *path)
{
    if (!s || !path) return attn_error(ATTN_E_INVALID, "attn_cls_split_read: NULL");
    memset(s, 0, sizeof *s);
    char *buf;
    size_t len;
    attn_status st = attn_read_text_file(path, (size_t)1 << 31, &buf, &len);
    if (st) return st;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += buf[i] == '\n';
    if (len && buf[len - 1] != '\n') lines++;
    s->storage = buf;
    s->text = malloc((lines + 1) * sizeof *s->text);
    s->label_name = malloc((lines + 1) * sizeof *s->label_name);
    s->label = calloc(lines + 1, sizeof *s->label);
    if (!s->text || !s->label_name || !s->label) {
        attn_cls_split_free(s);
        return attn_error(ATTN_E_NOMEM, "%s: out of memory", path);
    }
    st = ATTN_OK;
    char *p = buf, *end = buf + len;
    size_t line = 0;
    while (p < end && !st) {
        line++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        if (e > p && e[-1] == '\r') e--;
        *e = 0;
        if (memchr(p, 0, (size_t)(e - p)))
            st = attn_error(ATTN_E_FORMAT, "%s:%zu: a NUL byte in the line", path, line);
        char *tab = st ? NULL : strchr(p, '\t');
        if (st) break;
        if (e == p) st = attn_error(ATTN_E_FORMAT, "%s:%zu: an empty line (expected label<TAB>text)", path, line);
        else if (!tab) st = attn_error(ATTN_E_FORMAT, "%s:%zu: no tab between the label and the text", path, line);
        else if (tab == p) st = attn_error(ATTN_E_FORMAT, "%s:%zu: the label is empty", path, line);
        else if (!tab[1]) st = attn_error(ATTN_E_FORMAT, "%s:%zu: the text is empty", path, line);
        if (st) break;
        *tab = 0;
        s->label_name[s->n] = p, s->text[s->n] = tab + 1;
        s->n++;
        p = nl ? nl + 1 : end;
    }
    if (!st && !s->n) st = attn_error(ATTN_E_FORMAT, "%s: no examples", path);
    if (st) attn_cls_split_free(s);
    return st;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void attn_cls_labels_free(char **labels, size_t n)
{
    for (size_t i = 0; labels && i < n; i++) free(labels[i]);
    free(labels);
}

attn_status attn_cls_labels_of(const attn_cls_split *s, char ***labels, size_t *n)
{
    if (!s || !labels || !n) return attn_error(ATTN_E_INVALID, "attn_cls_labels_of: NULL");
    *labels = NULL, *n = 0;
    char **all = malloc((s->n + 1) * sizeof *all);
    if (!all) return attn_error(ATTN_E_NOMEM, "out of memory");
    memcpy(all, s->label_name, s->n * sizeof *all);
    qsort(all, s->n, sizeof *all, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if (!k || strcmp(all[k - 1], all[i])) all[k++] = all[i];
    char **out = calloc(k ? k : 1, sizeof *out);
    attn_status st = out ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < k; i++)
        if (!(out[i] = strdup(all[i]))) st = attn_error(ATTN_E_NOMEM, "out of memory");
    free(all);
    if (st) {
        attn_cls_labels_free(out, k);
        return st;
    }
    *labels = out, *n = k;
    return ATTN_OK;
}

attn_status attn_cls_split_label(attn_cls_split *s, const char *const *labels, size_t n,
                                 const char *what)
{
    if (!s || !labels) return attn_error(ATTN_E_INVALID, "attn_cls_split_label: NULL");
    for (size_t i = 0; i < s->n; i++) {
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (strcmp(labels[mid], s->label_name[i]) < 0) lo = mid + 1;
            else hi = mid;
        }
        if (lo == n || strcmp(labels[lo], s->label_name[i]))
            return attn_error(ATTN_E_FORMAT, "%s:%zu: the label '%s' is not one of the %zu labels of the training data",
                              what, i + 1, s->label_name[i], n);
        s->label[i] = (uint32_t)lo;
    }
    return ATTN_OK;
}
