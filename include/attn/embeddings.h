/* attn/embeddings.h - token embeddings with named dimensions, and their CSV form.
 *
 * CSV format (UTF-8, comma-separated, optional quotes as in RFC 4180):
 *
 *     token,animal,tech,grammar,sentiment
 *     cat,2.0,0.0,0.2,0.3
 *     mouse,1.5,1.5,0.2,0.0
 *
 * The header's first cell is "token"; the others name the dimensions (unique,
 * non-empty). One row per token, every cell a finite number. Blank lines are
 * skipped. At most ATTN_CSV_MAX_ROWS tokens and ATTN_CSV_MAX_DIMS dimensions;
 * text in UTF-8 (anything else is refused with its line and cell).
 */
#ifndef ATTN_EMBEDDINGS_H
#define ATTN_EMBEDDINGS_H

#include <stddef.h>
#include "attn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_CSV_MAX_ROWS 4096
#define ATTN_CSV_MAX_DIMS 65536

typedef struct attn_embeddings {
    size_t n_tokens;
    size_t n_dims;
    char **tokens;  /* n_tokens strings */
    char **dims;    /* n_dims dimension names */
    float *data;    /* (n_tokens, n_dims) */
} attn_embeddings;

/* Reads a CSV file. Errors name the file, line and column:
 * "emb.csv:3:2: expected a number, found 'abc'". */
attn_status attn_embeddings_read_csv(attn_embeddings *e, const char *path);

/* Parses CSV text held in memory; `name` is used in error messages. */
attn_status attn_embeddings_parse_csv(attn_embeddings *e, const char *text, size_t len,
                                      const char *name);

/* Builds embeddings from arrays (copied). data: (n_tokens, n_dims). */
attn_status attn_embeddings_from_arrays(attn_embeddings *e, size_t n_tokens,
                                        const char *const *tokens, size_t n_dims,
                                        const char *const *dims, const float *data);

/* The rows of `vocab` for each whitespace-separated word of `text`, in order.
 * An unknown word is an error that names it. */
attn_status attn_embeddings_lookup(attn_embeddings *out, const attn_embeddings *vocab,
                                   const char *text);

/* Index of the first row called `token`, or -1. */
long attn_embeddings_find(const attn_embeddings *e, const char *token);

void attn_embeddings_free(attn_embeddings *e);

#ifdef __cplusplus
}
#endif
#endif
