/* bpe_internal.h - what the byte-level BPE files share (src/text/bpe*.c). */
#ifndef ATTN_TEXT_BPE_INTERNAL_H
#define ATTN_TEXT_BPE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "attn/status.h"
#include "attn/tokenizer.h"

/* GPT-2's pre-tokenizer: cuts text into the pieces BPE then splits. */
typedef struct bpe_pretok bpe_pretok;
attn_status bpe_pretok_create(bpe_pretok **p);
void bpe_pretok_free(bpe_pretok *p);
/* Calls fn(piece, n, user) for each piece of text[0..len) in order; the
 * pieces cover the text exactly. An error from fn stops the run and is
 * returned. Not reentrant for one p (it owns the match data). */
typedef attn_status (*bpe_piece_fn)(const char *piece, size_t n, void *user);
attn_status bpe_pretok_run(bpe_pretok *p, const char *text, size_t len, bpe_piece_fn fn,
                           void *user);

/* GPT-2's map of the 256 bytes to printable code points (bytes_to_unicode):
 * the printable Latin-1 bytes map to themselves, the others to U+0100... in
 * byte order. byte_rank gives the order of the bytes by their code point
 * (GPT-2's ids 0..255). */
uint32_t bpe_byte_to_cp(unsigned char b);
int bpe_cp_to_byte(uint32_t cp); /* -1 when cp is not in the map */
unsigned char bpe_byte_by_rank(unsigned r);

/* The tokenizer (bpe.c encodes, bpe_load.c reads and writes). */
typedef struct bpe_pair {
    uint64_t key; /* left << 32 | right; UINT64_MAX: empty */
    uint32_t rank, id;
} bpe_pair;
typedef struct bpe_cache bpe_cache;

typedef struct bpe_tok {
    attn_tokenizer base;
    size_t n;               /* tokens */
    char *bytes;            /* token i is bytes[off[i]..off[i+1]) */
    size_t *off;            /* n + 1 offsets */
    uint32_t byte_id[256];  /* the token of each single byte */
    uint32_t (*merges)[3];  /* left, right, result; in rank order */
    size_t n_merges;
    bpe_pair *pairs;        /* open addressing over the merges */
    size_t pair_cap;
    uint32_t special_id;    /* "<|endoftext|>" when has_special */
    int has_special, use_special;
    bpe_pretok *pre;
    bpe_cache *cache;       /* split words; mutable through a const tokenizer
                               (not thread-safe: one tokenizer per thread) */
} bpe_tok;

attn_status bpe_tok_new(bpe_tok **out); /* empty, with its pre-tokenizer and cache */
void bpe_tok_free(bpe_tok *b);
void bpe_cache_free(bpe_cache *c);
/* Builds pairs from merges; a repeated pair is an error naming file. */
attn_status bpe_merges_index(bpe_tok *b, const char *file);
/* Token bytes -> id over b's tokens (which may grow between calls). */
typedef struct bpe_idmap {
    uint32_t *slot; /* id + 1; 0: empty */
    size_t cap, used;
    const bpe_tok *b;
} bpe_idmap;
attn_status bpe_idmap_add(bpe_idmap *m, uint32_t id);
long bpe_idmap_find(const bpe_idmap *m, const char *s, size_t n); /* -1: absent */

/* bpe_save.c: the tokenizer's save (attn's one JSON file), and a token
 * vocabulary ({"token": id, ...}) or merge r ("left right"; JSON-escaped when
 * json) written to f; bpe_load.c writes GPT-2's files with them. */
attn_status bpe_save_json(const attn_tokenizer *t, const char *path);
void bpe_put_vocab(FILE *f, const bpe_tok *b);
void bpe_put_merge(FILE *f, const bpe_tok *b, size_t r, int json);

#endif
