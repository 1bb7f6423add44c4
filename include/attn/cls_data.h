/* attn/cls_data.h - the classifier's data format: labelled text, one
 * "label<TAB>text" line per example (io floor: core only). */
#ifndef ATTN_CLS_DATA_H
#define ATTN_CLS_DATA_H

#include <stddef.h>
#include <stdint.h>
#include "attn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- labelled text ---------------------------------------------------------- */

typedef struct attn_cls_split {
    size_t n;
    char **text;       /* n texts */
    char **label_name; /* n label strings as in the file */
    uint32_t *label;   /* n, indexes into a label set (attn_cls_split_label) */
    char *storage;
} attn_cls_split;

/* Reads "label<TAB>text" lines (a final line without newline is fine; blank
 * lines are errors). Errors name path:line. */
attn_status attn_cls_split_read(attn_cls_split *s, const char *path);
void attn_cls_split_free(attn_cls_split *s);
/* The sorted distinct labels of s (malloc'd array of malloc'd strings). */
attn_status attn_cls_labels_of(const attn_cls_split *s, char ***labels, size_t *n);
void attn_cls_labels_free(char **labels, size_t n);
/* Fills s->label from the label set; a label outside it is an error naming
 * `what`:line. */
attn_status attn_cls_split_label(attn_cls_split *s, const char *const *labels, size_t n,
                                 const char *what);

#ifdef __cplusplus
}
#endif
#endif
