/* embeddings.c - the embeddings table: construction, lookup, release. */
#include "attn/embeddings.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static char *dup_str(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void attn_embeddings_free(attn_embeddings *e)
{
    if (!e) return;
    if (e->tokens)
        for (size_t i = 0; i < e->n_tokens; i++) free(e->tokens[i]);
    if (e->dims)
        for (size_t i = 0; i < e->n_dims; i++) free(e->dims[i]);
    free(e->tokens);
    free(e->dims);
    free(e->data);
    memset(e, 0, sizeof *e);
}

/* Allocates the arrays of an n_tokens x n_dims table (strings left NULL). */
static attn_status alloc_table(attn_embeddings *e, size_t n_tokens, size_t n_dims)
{
    memset(e, 0, sizeof *e);
    if (n_dims && n_tokens > ((size_t)-1) / sizeof(float) / n_dims)
        return attn_error(ATTN_E_NOMEM, "embeddings of %zu x %zu overflow", n_tokens, n_dims);
    e->tokens = calloc(n_tokens ? n_tokens : 1, sizeof(char *));
    e->dims = calloc(n_dims ? n_dims : 1, sizeof(char *));
    e->data = calloc(n_tokens && n_dims ? n_tokens * n_dims : 1, sizeof(float));
    e->n_tokens = n_tokens;
    e->n_dims = n_dims;
    if (!e->tokens || !e->dims || !e->data) {
        attn_embeddings_free(e);
        return attn_error(ATTN_E_NOMEM, "cannot allocate %zu x %zu embeddings", n_tokens, n_dims);
    }
    return ATTN_OK;
}

attn_status attn_embeddings_from_arrays(attn_embeddings *e, size_t n_tokens,
                                        const char *const *tokens, size_t n_dims,
                                        const char *const *dims, const float *data)
{
    if (!e || !tokens || !dims || !data)
        return attn_error(ATTN_E_INVALID, "attn_embeddings_from_arrays: NULL argument");
    if (!n_tokens || !n_dims)
        return attn_error(ATTN_E_INVALID, "embeddings need at least one token and one dimension");
    attn_status st = alloc_table(e, n_tokens, n_dims);
    if (st) return st;
    for (size_t i = 0; i < n_tokens; i++)
        if (!(e->tokens[i] = dup_str(tokens[i], strlen(tokens[i])))) goto nomem;
    for (size_t j = 0; j < n_dims; j++)
        if (!(e->dims[j] = dup_str(dims[j], strlen(dims[j])))) goto nomem;
    for (size_t i = 0; i < n_tokens * n_dims; i++) {
        if (!isfinite(data[i])) {
            attn_embeddings_free(e);
            return attn_error(ATTN_E_INVALID, "embedding of '%s', dimension '%s' is not finite",
                              tokens[i / n_dims], dims[i % n_dims]);
        }
        e->data[i] = data[i];
    }
    return ATTN_OK;
nomem:
    attn_embeddings_free(e);
    return attn_error(ATTN_E_NOMEM, "cannot allocate embedding labels");
}

long attn_embeddings_find(const attn_embeddings *e, const char *token)
{
    if (!e || !token) return -1;
    for (size_t i = 0; i < e->n_tokens; i++)
        if (strcmp(e->tokens[i], token) == 0) return (long)i;
    return -1;
}

attn_status attn_embeddings_lookup(attn_embeddings *out, const attn_embeddings *vocab,
                                   const char *text)
{
    if (!out || !vocab || !text)
        return attn_error(ATTN_E_INVALID, "attn_embeddings_lookup: NULL argument");
    /* Count words first so that the table is allocated once. */
    size_t n = 0;
    for (const char *p = text; *p;) {
        while (*p && isspace((unsigned char)*p)) p++;
        if (!*p) break;
        n++;
        while (*p && !isspace((unsigned char)*p)) p++;
    }
    if (!n) return attn_error(ATTN_E_INVALID, "the text has no words");
    attn_status st = alloc_table(out, n, vocab->n_dims);
    if (st) return st;
    for (size_t j = 0; j < vocab->n_dims; j++)
        if (!(out->dims[j] = dup_str(vocab->dims[j], strlen(vocab->dims[j])))) goto nomem;
    size_t i = 0;
    for (const char *p = text; *p;) {
        while (*p && isspace((unsigned char)*p)) p++;
        if (!*p) break;
        const char *w = p;
        while (*p && !isspace((unsigned char)*p)) p++;
        if (!(out->tokens[i] = dup_str(w, (size_t)(p - w)))) goto nomem;
        long row = attn_embeddings_find(vocab, out->tokens[i]);
        if (row < 0) {
            st = attn_error(ATTN_E_INVALID, "word %zu '%s' is not in the vocabulary", i + 1,
                            out->tokens[i]);
            attn_embeddings_free(out);
            return st;
        }
        memcpy(out->data + i * vocab->n_dims, vocab->data + (size_t)row * vocab->n_dims,
               vocab->n_dims * sizeof(float));
        i++;
    }
    return ATTN_OK;
nomem:
    attn_embeddings_free(out);
    return attn_error(ATTN_E_NOMEM, "cannot allocate embeddings");
}
