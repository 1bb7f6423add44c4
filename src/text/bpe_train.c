/* bpe_train.c - learning a byte-level BPE from a text.
 *
 * The text is cut into pieces by GPT-2's pre-tokenizer and the distinct
 * pieces counted; each piece starts as its bytes. Each step merges, in every
 * piece, the adjacent pair that occurs most often (weighted by the piece's
 * count), so that encoding the text with the learnt ranks replays training.
 * Pair counts are kept in a hash table and updated only in the pieces that
 * contain the merged pair.
 */
#include <stdlib.h>
#include <string.h>

#include "bpe_internal.h"

typedef struct word {
    uint32_t *sym;
    size_t n;
    uint64_t count;
} word;

typedef struct pair_count {
    uint64_t key; /* left << 32 | right; UINT64_MAX: empty */
    int64_t count;
    int banned;   /* its merge would repeat a token */
} pair_count;

typedef struct tokbuf { /* a bpe_tok's arrays while they grow */
    bpe_tok *b;
    size_t tok_cap, bytes_cap;
} tokbuf;

typedef struct trainer {
    tokbuf tok;       /* the tokenizer being learnt */
    bpe_idmap ids;    /* its token bytes -> id */
    tokbuf pieces;    /* the distinct pieces of the text, as "tokens" */
    bpe_idmap piece_ids;
    word *w;          /* w[i]: piece i */
    size_t n_words, cap_words;
    pair_count *pc;
    size_t pc_cap, pc_used;
} trainer;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33, x *= 0xff51afd7ed558ccdull, x ^= x >> 33;
    return x;
}

static pair_count *pc_slot(trainer *t, uint64_t key)
{
    size_t at = mix(key) & (t->pc_cap - 1);
    while (t->pc[at].key != UINT64_MAX && t->pc[at].key != key) at = (at + 1) & (t->pc_cap - 1);
    return &t->pc[at];
}

static attn_status pc_add(trainer *t, uint32_t l, uint32_t r, int64_t d)
{
    if (2 * (t->pc_used + 1) > t->pc_cap) {
        size_t oc = t->pc_cap, nc = oc ? 2 * oc : 4096;
        pair_count *old = t->pc, *np = malloc(nc * sizeof *np);
        if (!np) return attn_error(ATTN_E_NOMEM, "out of memory for pair counts");
        for (size_t i = 0; i < nc; i++) np[i].key = UINT64_MAX;
        t->pc = np, t->pc_cap = nc;
        for (size_t i = 0; i < oc; i++)
            if (old[i].key != UINT64_MAX) *pc_slot(t, old[i].key) = old[i];
        free(old);
    }
    uint64_t key = (uint64_t)l << 32 | r;
    pair_count *p = pc_slot(t, key);
    if (p->key == UINT64_MAX) p->key = key, p->count = 0, p->banned = 0, t->pc_used++;
    p->count += d;
    return ATTN_OK;
}

static attn_status word_pairs(trainer *t, const word *w, int64_t sign)
{
    attn_status st = ATTN_OK;
    for (size_t i = 0; !st && i + 1 < w->n; i++)
        st = pc_add(t, w->sym[i], w->sym[i + 1], sign * (int64_t)w->count);
    return st;
}

/* Appends a token of n bytes. */
static attn_status add_token(tokbuf *tb, const char *s, size_t n)
{
    bpe_tok *b = tb->b;
    size_t used = b->n ? b->off[b->n] : 0;
    if (b->n + 2 > tb->tok_cap) {
        size_t nc = tb->tok_cap ? 2 * tb->tok_cap : 1024;
        size_t *no = realloc(b->off, nc * sizeof *no);
        if (!no) return attn_error(ATTN_E_NOMEM, "out of memory");
        b->off = no, tb->tok_cap = nc;
    }
    if (used + n > tb->bytes_cap) {
        size_t nc = tb->bytes_cap ? 2 * tb->bytes_cap : 4096;
        while (nc < used + n) nc *= 2;
        char *nb = realloc(b->bytes, nc);
        if (!nb) return attn_error(ATTN_E_NOMEM, "out of memory");
        b->bytes = nb, tb->bytes_cap = nc;
    }
    if (!b->n) b->off[0] = 0;
    memcpy(b->bytes + used, s, n);
    b->off[++b->n] = used + n;
    return ATTN_OK;
}

/* The pre-tokenizer's callback: counts the distinct pieces. */
static attn_status count_piece(const char *s, size_t n, void *user)
{
    trainer *t = user;
    long id = bpe_idmap_find(&t->piece_ids, s, n);
    if (id >= 0) {
        t->w[id].count++;
        return ATTN_OK;
    }
    if (t->n_words == t->cap_words) {
        size_t nc = t->cap_words ? 2 * t->cap_words : 1024;
        word *nw = realloc(t->w, nc * sizeof *nw);
        if (!nw) return attn_error(ATTN_E_NOMEM, "out of memory");
        t->w = nw, t->cap_words = nc;
    }
    attn_status st = add_token(&t->pieces, s, n);
    if (st) return st;
    word *w = &t->w[t->n_words++];
    w->sym = NULL, w->n = n, w->count = 1;
    return bpe_idmap_add(&t->piece_ids, (uint32_t)(t->n_words - 1));
}

/* Each piece as its byte tokens (ids in GPT-2's order of the bytes), and
 * the 256 byte tokens themselves. */
static attn_status start_words(trainer *t)
{
    bpe_tok *b = t->tok.b;
    attn_status st = ATTN_OK;
    for (unsigned r = 0; !st && r < 256; r++) {
        char c = (char)bpe_byte_by_rank(r);
        b->byte_id[(unsigned char)c] = r;
        st = add_token(&t->tok, &c, 1);
        if (!st) st = bpe_idmap_add(&t->ids, r);
    }
    const bpe_tok *p = t->pieces.b;
    for (size_t i = 0; !st && i < t->n_words; i++) {
        word *w = &t->w[i];
        if (!(w->sym = malloc(w->n * sizeof *w->sym))) return attn_error(ATTN_E_NOMEM, "out of memory");
        for (size_t k = 0; k < w->n; k++) w->sym[k] = b->byte_id[(unsigned char)p->bytes[p->off[i] + k]];
        st = word_pairs(t, w, 1);
    }
    return st;
}

/* The most frequent pair that may be merged (ties: lower ids); NULL when
 * none occurs twice. */
static pair_count *best_pair(trainer *t)
{
    pair_count *best = NULL;
    for (size_t i = 0; i < t->pc_cap; i++) {
        pair_count *p = &t->pc[i];
        if (p->key == UINT64_MAX || p->banned || p->count < 2) continue;
        if (!best || p->count > best->count || (p->count == best->count && p->key < best->key)) best = p;
    }
    return best;
}

/* Merges l r into id in every word that holds the pair. */
static attn_status apply_merge(trainer *t, uint32_t l, uint32_t r, uint32_t id)
{
    attn_status st = ATTN_OK;
    for (size_t i = 0; !st && i < t->n_words; i++) {
        word *w = &t->w[i];
        size_t k = 0;
        while (k + 1 < w->n && !(w->sym[k] == l && w->sym[k + 1] == r)) k++;
        if (k + 1 >= w->n) continue;
        st = word_pairs(t, w, -1);
        size_t j = 0;
        for (size_t q = 0; q < w->n;) {
            if (q + 1 < w->n && w->sym[q] == l && w->sym[q + 1] == r) w->sym[j++] = id, q += 2;
            else w->sym[j++] = w->sym[q++];
        }
        w->n = j;
        if (!st) st = word_pairs(t, w, 1);
    }
    return st;
}

static const char special[] = "<|endoftext|>";

static attn_status learn(trainer *t, size_t vocab_size, void (*progress)(size_t, size_t, void *),
                         void *user)
{
    bpe_tok *b = t->tok.b;
    size_t total = vocab_size - 257, cap = 0;
    char *buf = NULL;
    attn_status st = ATTN_OK;
    if (!(b->merges = malloc((total + 1) * sizeof *b->merges))) return attn_error(ATTN_E_NOMEM, "out of memory");
    while (!st && b->n + 1 < vocab_size) {
        pair_count *p = best_pair(t);
        if (!p) break;
        uint32_t l = (uint32_t)(p->key >> 32), r = (uint32_t)p->key;
        size_t nl = b->off[l + 1] - b->off[l], nr = b->off[r + 1] - b->off[r];
        if (nl + nr > cap) {
            char *nb = realloc(buf, cap = 2 * (nl + nr));
            if (!nb) {
                st = attn_error(ATTN_E_NOMEM, "out of memory");
                break;
            }
            buf = nb;
        }
        memcpy(buf, b->bytes + b->off[l], nl), memcpy(buf + nl, b->bytes + b->off[r], nr);
        /* Two merges that spell the same token would give encoder.json a
         * repeated key: the later one is not learnt. */
        if (bpe_idmap_find(&t->ids, buf, nl + nr) >= 0 ||
            (nl + nr == sizeof special - 1 && !memcmp(buf, special, nl + nr))) {
            p->banned = 1;
            continue;
        }
        uint32_t id = (uint32_t)b->n;
        st = add_token(&t->tok, buf, nl + nr);
        if (!st) st = bpe_idmap_add(&t->ids, id);
        if (st) break;
        b->merges[b->n_merges][0] = l, b->merges[b->n_merges][1] = r, b->merges[b->n_merges][2] = id;
        b->n_merges++;
        st = apply_merge(t, l, r, id);
        if (progress) progress(b->n_merges, total, user);
    }
    free(buf);
    if (!st) st = add_token(&t->tok, special, sizeof special - 1);
    if (!st) b->special_id = (uint32_t)(b->n - 1), b->has_special = 1;
    return st;
}

attn_status attn_bpe_train(attn_tokenizer **out, const char *text, size_t len, const char *what,
                           size_t vocab_size, void (*progress)(size_t, size_t, void *), void *user)
{
    if (!out || (!text && len)) return attn_error(ATTN_E_INVALID, "attn_bpe_train: NULL");
    *out = NULL;
    what = what ? what : "text";
    if (vocab_size < 257 || vocab_size > ((size_t)1 << 24))
        return attn_error(ATTN_E_INVALID, "vocabulary size %zu: expected 257 (the 256 bytes and "
                                          "<|endoftext|>) to 16777216", vocab_size);
    if (!len) return attn_error(ATTN_E_FORMAT, "%s: the text is empty", what);
    trainer t;
    memset(&t, 0, sizeof t);
    bpe_tok *b = NULL, *pieces = calloc(1, sizeof *pieces);
    attn_status st = pieces ? bpe_tok_new(&b) : attn_error(ATTN_E_NOMEM, "out of memory");
    t.tok.b = b, t.ids.b = b, t.pieces.b = pieces, t.piece_ids.b = pieces;
    if (!st) st = bpe_pretok_run(b->pre, text, len, count_piece, &t);
    if (!st) st = start_words(&t);
    if (!st) st = learn(&t, vocab_size, progress, user);
    if (!st) st = bpe_merges_index(b, what);
    for (size_t i = 0; i < t.n_words; i++) free(t.w[i].sym);
    free(t.w), free(t.pc), free(t.ids.slot), free(t.piece_ids.slot);
    if (pieces) free(pieces->bytes), free(pieces->off), free(pieces);
    if (st) {
        bpe_tok_free(b);
        return st;
    }
    *out = &b->base;
    return ATTN_OK;
}
