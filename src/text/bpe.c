/* bpe.c - GPT-2's byte-level BPE: encoding with a cache of split words,
 * decoding to the exact bytes.
 *
 * Tokens are handled as byte strings and merges as pairs of ids, which is
 * the same as encoder.py's merging of strings of byte characters because the
 * byte map is a bijection and every merge's parts and result are tokens
 * (bpe_load.c checks it). A word is split as encoder.py does: repeatedly find
 * the adjacent pair of lowest rank and merge all its occurrences left to
 * right, until no pair has a rank.
 */
#include <stdlib.h>
#include <string.h>

#include "attn/fileio.h"
#include "bpe_internal.h"

/* 64-bit FNV-1a: short words, one pass. */
static uint64_t hash_bytes(const unsigned char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33, x *= 0xff51afd7ed558ccdull, x ^= x >> 33;
    return x;
}

/* ---- token bytes -> id --------------------------------------------------------- */

long bpe_idmap_find(const bpe_idmap *m, const char *s, size_t n)
{
    if (!m->cap) return -1;
    for (size_t at = hash_bytes((const unsigned char *)s, n) & (m->cap - 1);; at = (at + 1) & (m->cap - 1)) {
        uint32_t v = m->slot[at];
        if (!v) return -1;
        const bpe_tok *b = m->b;
        size_t o = b->off[v - 1], k = b->off[v] - o;
        if (k == n && !memcmp(b->bytes + o, s, n)) return (long)(v - 1);
    }
}

static void idmap_place(uint32_t *slot, size_t cap, const bpe_tok *b, uint32_t id)
{
    size_t o = b->off[id];
    size_t at = hash_bytes((const unsigned char *)b->bytes + o, b->off[id + 1] - o) & (cap - 1);
    while (slot[at]) at = (at + 1) & (cap - 1);
    slot[at] = id + 1;
}

attn_status bpe_idmap_add(bpe_idmap *m, uint32_t id)
{
    if (2 * (m->used + 1) > m->cap) {
        size_t nc = m->cap ? 2 * m->cap : 1024;
        uint32_t *ns = calloc(nc, sizeof *ns);
        if (!ns) return attn_error(ATTN_E_NOMEM, "out of memory");
        for (size_t i = 0; i < m->cap; i++)
            if (m->slot[i]) idmap_place(ns, nc, m->b, m->slot[i] - 1);
        free(m->slot);
        m->slot = ns, m->cap = nc;
    }
    idmap_place(m->slot, m->cap, m->b, id);
    m->used++;
    return ATTN_OK;
}

/* ---- the merge table: (left, right) -> (rank, result) ---------------------- */

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n) c *= 2;
    return c;
}

attn_status bpe_merges_index(bpe_tok *b, const char *file)
{
    b->pair_cap = pow2_at_least(2 * b->n_merges + 1);
    b->pairs = malloc(b->pair_cap * sizeof *b->pairs);
    if (!b->pairs) return attn_error(ATTN_E_NOMEM, "out of memory for %zu merges", b->n_merges);
    for (size_t i = 0; i < b->pair_cap; i++) b->pairs[i].key = UINT64_MAX;
    for (size_t r = 0; r < b->n_merges; r++) {
        uint64_t key = (uint64_t)b->merges[r][0] << 32 | b->merges[r][1];
        size_t at = mix64(key) & (b->pair_cap - 1);
        while (b->pairs[at].key != UINT64_MAX && b->pairs[at].key != key) at = (at + 1) & (b->pair_cap - 1);
        if (b->pairs[at].key == key)
            return attn_error(ATTN_E_FORMAT, "%s: merge %zu repeats merge %u", file, r + 1,
                              (unsigned)b->pairs[at].rank + 1);
        b->pairs[at].key = key, b->pairs[at].rank = (uint32_t)r, b->pairs[at].id = b->merges[r][2];
    }
    return ATTN_OK;
}

static const bpe_pair *pair_find(const bpe_tok *b, uint32_t l, uint32_t r)
{
    uint64_t key = (uint64_t)l << 32 | r;
    size_t at = mix64(key) & (b->pair_cap - 1);
    for (;;) {
        const bpe_pair *p = &b->pairs[at];
        if (p->key == key) return p;
        if (p->key == UINT64_MAX) return NULL;
        at = (at + 1) & (b->pair_cap - 1);
    }
}

/* Splits one piece: sym[0..n) holds its byte tokens on entry and its tokens
 * on return; returns their count. */
static size_t bpe_split(const bpe_tok *b, uint32_t *sym, size_t n)
{
    while (n > 1) {
        uint32_t best = UINT32_MAX, l = 0, r = 0, to = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            const bpe_pair *p = pair_find(b, sym[i], sym[i + 1]);
            if (p && p->rank < best) best = p->rank, l = sym[i], r = sym[i + 1], to = p->id;
        }
        if (best == UINT32_MAX) break;
        size_t j = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && sym[i] == l && sym[i + 1] == r) sym[j++] = to, i += 2;
            else sym[j++] = sym[i++];
        }
        n = j;
    }
    return n;
}

/* ---- the cache of split words ------------------------------------------------ */

#define CACHE_MAX_WORD 64              /* longer pieces are rare: split them each time */
#define CACHE_MAX_ENTRIES ((size_t)1 << 20) /* then start over (bounded memory) */

typedef struct cache_entry {
    uint64_t hash;
    uint32_t key_off, ids_off;
    uint8_t key_len, n_ids; /* n_ids 0: empty slot */
} cache_entry;

struct bpe_cache {
    cache_entry *slot;
    size_t cap, used;
    unsigned char *keys;
    size_t keys_len, keys_cap;
    uint32_t *ids;
    size_t ids_len, ids_cap;
};

void bpe_cache_free(bpe_cache *c)
{
    if (!c) return;
    free(c->slot), free(c->keys), free(c->ids), free(c);
}

static void cache_clear(bpe_cache *c)
{
    memset(c->slot, 0, c->cap * sizeof *c->slot);
    c->used = c->keys_len = c->ids_len = 0;
}

static const cache_entry *cache_get(const bpe_cache *c, const unsigned char *s, size_t n, uint64_t h)
{
    if (!c->slot) return NULL;
    for (size_t at = h & (c->cap - 1);; at = (at + 1) & (c->cap - 1)) {
        const cache_entry *e = &c->slot[at];
        if (!e->n_ids) return NULL;
        if (e->hash == h && e->key_len == n && !memcmp(c->keys + e->key_off, s, n)) return e;
    }
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 4096;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, nc * elem);
    if (!q) return -1;
    *p = q, *cap = nc;
    return 0;
}

/* Remembers the split of s[0..n); a failed allocation only skips it. */
static void cache_put(bpe_cache *c, const unsigned char *s, size_t n, uint64_t h,
                      const uint32_t *ids, size_t k)
{
    if (c->used >= CACHE_MAX_ENTRIES) cache_clear(c);
    if (2 * (c->used + 1) > c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 4096;
        cache_entry *ns = calloc(nc, sizeof *ns);
        if (!ns) return;
        for (size_t i = 0; i < c->cap; i++) {
            if (!c->slot[i].n_ids) continue;
            size_t at = c->slot[i].hash & (nc - 1);
            while (ns[at].n_ids) at = (at + 1) & (nc - 1);
            ns[at] = c->slot[i];
        }
        free(c->slot);
        c->slot = ns, c->cap = nc;
    }
    if (grow((void **)&c->keys, &c->keys_cap, c->keys_len + n, 1) ||
        grow((void **)&c->ids, &c->ids_cap, c->ids_len + k, sizeof *c->ids))
        return;
    size_t at = h & (c->cap - 1);
    while (c->slot[at].n_ids) at = (at + 1) & (c->cap - 1);
    cache_entry *e = &c->slot[at];
    e->hash = h, e->key_off = (uint32_t)c->keys_len, e->key_len = (uint8_t)n;
    e->ids_off = (uint32_t)c->ids_len, e->n_ids = (uint8_t)k;
    memcpy(c->keys + c->keys_len, s, n), c->keys_len += n;
    memcpy(c->ids + c->ids_len, ids, k * sizeof *ids), c->ids_len += k;
    c->used++;
}

/* ---- encoding ----------------------------------------------------------------- */

typedef struct enc_ctx {
    const bpe_tok *b;
    uint32_t *out;
    size_t n, cap;
    const char *what;
} enc_ctx;

static attn_status reserve(enc_ctx *e, size_t more)
{
    if (grow((void **)&e->out, &e->cap, e->n + more, sizeof *e->out))
        return attn_error(ATTN_E_NOMEM, "%s: out of memory for %zu token ids", e->what, e->n + more);
    return ATTN_OK;
}

static attn_status encode_piece(const char *piece, size_t n, void *user)
{
    enc_ctx *e = user;
    const bpe_tok *b = e->b;
    const unsigned char *s = (const unsigned char *)piece;
    uint64_t h = 0;
    if (n <= CACHE_MAX_WORD) {
        h = hash_bytes(s, n);
        const cache_entry *c = cache_get(b->cache, s, n, h);
        if (c) {
            attn_status st = reserve(e, c->n_ids);
            if (st) return st;
            memcpy(e->out + e->n, b->cache->ids + c->ids_off, c->n_ids * sizeof *e->out);
            e->n += c->n_ids;
            return ATTN_OK;
        }
    }
    attn_status st = reserve(e, n);
    if (st) return st;
    uint32_t *sym = e->out + e->n; /* split in place: never more tokens than bytes */
    for (size_t i = 0; i < n; i++) sym[i] = b->byte_id[s[i]];
    size_t k = bpe_split(b, sym, n);
    if (n <= CACHE_MAX_WORD) cache_put(b->cache, s, n, h, sym, k);
    e->n += k;
    return ATTN_OK;
}

/* Where the special token next occurs in text[i..len), or len. */
static size_t find_special(const bpe_tok *b, const char *text, size_t i, size_t len)
{
    const char *sp = b->bytes + b->off[b->special_id];
    size_t k = b->off[b->special_id + 1] - b->off[b->special_id];
    for (; i + k <= len; i++) {
        const char *m = memchr(text + i, sp[0], len - i - k + 1);
        if (!m) break;
        i = (size_t)(m - text);
        if (!memcmp(m, sp, k)) return i;
    }
    return len;
}

static attn_status bpe_encode(const attn_tokenizer *t, const char *text, size_t len,
                              const char *what, uint32_t **ids, size_t *n)
{
    const bpe_tok *b = (const bpe_tok *)t;
    enc_ctx e = {b, NULL, 0, 0, what};
    *ids = NULL, *n = 0;
    attn_status st = reserve(&e, len / 4 + 1);
    size_t i = 0;
    while (!st && i < len) {
        /* With special tokens on, each "<|endoftext|>" is one id; the text
         * between is encoded on its own. */
        size_t j = b->use_special ? find_special(b, text, i, len) : len;
        st = bpe_pretok_run(b->pre, text + i, j - i, encode_piece, &e);
        i = j;
        if (!st && i < len) {
            st = reserve(&e, 1);
            if (!st) e.out[e.n++] = b->special_id;
            i += b->off[b->special_id + 1] - b->off[b->special_id];
        }
    }
    if (st) {
        free(e.out);
        return st;
    }
    *ids = e.out, *n = e.n;
    return ATTN_OK;
}

static size_t bpe_vocab_size(const attn_tokenizer *t) { return ((const bpe_tok *)t)->n; }

static attn_status bpe_token_bytes(const attn_tokenizer *t, uint32_t id, const char **bytes,
                                   size_t *len)
{
    const bpe_tok *b = (const bpe_tok *)t;
    if (id >= b->n)
        return attn_error(ATTN_E_INVALID, "token %u is not below the vocabulary size %zu",
                          (unsigned)id, b->n);
    *bytes = b->bytes + b->off[id], *len = b->off[id + 1] - b->off[id];
    return ATTN_OK;
}

static void bpe_destroy(attn_tokenizer *t)
{
    bpe_tok *b = (bpe_tok *)t;
    if (!b) return;
    bpe_pretok_free(b->pre);
    bpe_cache_free(b->cache);
    free(b->bytes), free(b->off), free(b->merges), free(b->pairs), free(b);
}

static const attn_tokenizer_vtable bpe_vt = {"bpe", bpe_vocab_size, bpe_encode, bpe_token_bytes,
                                             bpe_save_json, bpe_destroy};

attn_status bpe_tok_new(bpe_tok **out)
{
    *out = NULL;
    bpe_tok *b = calloc(1, sizeof *b);
    if (!b) return attn_error(ATTN_E_NOMEM, "out of memory");
    b->base.vt = &bpe_vt;
    b->cache = calloc(1, sizeof *b->cache);
    attn_status st = b->cache ? bpe_pretok_create(&b->pre) : attn_error(ATTN_E_NOMEM, "out of memory");
    if (st) {
        bpe_destroy(&b->base);
        return st;
    }
    *out = b;
    return ATTN_OK;
}

void bpe_tok_free(bpe_tok *b) { bpe_destroy(b ? &b->base : NULL); }

attn_status attn_bpe_set_special(attn_tokenizer *t, int on)
{
    if (!t || t->vt != &bpe_vt)
        return attn_error(ATTN_E_INVALID, "attn_bpe_set_special: not a byte-level BPE tokenizer");
    bpe_tok *b = (bpe_tok *)t;
    if (on && !b->has_special)
        return attn_error(ATTN_E_INVALID, "the vocabulary has no <|endoftext|> token");
    b->use_special = on;
    return ATTN_OK;
}

int attn_tokenizer_is_bpe(const attn_tokenizer *t) { return t && t->vt == &bpe_vt; }
