/* json_writer.h - the one streaming JSON writer of the explain documents
 * (json.c's walkthroughs, json_model.c's model maps) (internal).
 *
 * A document is written as it goes, never held as a tree: memory stays that
 * of what it shows. Strings are escaped by cJSON; numbers are the shortest
 * decimal that reads back as the same float. The structured calls
 * (jw_begin, jw_open_*, jw_string, jw_number, ...) lay a document out as
 * cJSON_Print does, byte for byte (an object's members on their own lines,
 * indented by tabs; arrays on one line, ", " between elements; each number
 * printed by cJSON); jw_quoted and jw_float write one value where a caller
 * lays its document out itself. A string that cannot be printed, and a
 * document nested past JW_MAX_DEPTH, are remembered and reported by jw_end /
 * jw_status with a failed write. */
#ifndef ATTN_JSON_WRITER_H
#define ATTN_JSON_WRITER_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "attn/tensor.h"

#define JW_MAX_DEPTH 8

typedef struct jw {
    FILE *f;
    cJSON *num;                  /* one number node, reused for every number */
    int depth;                   /* open objects and arrays */
    int items[JW_MAX_DEPTH + 1]; /* members or elements so far, per level */
    int nomem;                   /* a string could not be printed */
    int toodeep;                 /* opened past JW_MAX_DEPTH (a caller's bug) */
} jw;

/* A writer of single values (jw_quoted, jw_float) on f. */
void jw_init(jw *w, FILE *f);
/* A string not printed or a failed write so far, as an error. */
attn_status jw_status(const jw *w);

/* One value, no separator: s as a JSON string; v as the shortest decimal,
 * null when not finite (JSON has no infinity). */
void jw_quoted(jw *w, const char *s);
void jw_float(jw *w, float v);

/* Starts a cJSON_Print-style document: its root object open. */
attn_status jw_begin(jw *w, FILE *f);
/* Closes the root object and the line; jw_status. */
attn_status jw_end(jw *w);
/* Members of the open object (key: the member's name) or elements of the
 * open array (key NULL). */
void jw_open_object(jw *w, const char *key);
void jw_open_array(jw *w, const char *key);
void jw_close_object(jw *w);
void jw_close_array(jw *w);
void jw_string(jw *w, const char *key, const char *s);
void jw_number(jw *w, float v);
/* A matrix (rows, cols) as an array of rows; anything else as []. */
void jw_matrix(jw *w, const char *key, const attn_tensor *t);
void jw_vector(jw *w, const char *key, const float *v, size_t n);
void jw_strings(jw *w, const char *key, const char *const *s, size_t n);

#endif
