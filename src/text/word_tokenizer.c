/* word_tokenizer.c - one token per lower-cased word, with [PAD], [CLS] and
 * [UNK]; the vocabulary is the words of the training texts seen at least
 * min_count times. A hash table (open addressing, FNV-1a) maps words to ids. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "attn/fileio.h"
#include "attn/tokenizer.h"

static const char *const specials[3] = {"[PAD]", "[CLS]", "[UNK]"};

typedef struct word_tok {
    attn_tokenizer base;
    size_t n, min_count;
    char **words;    /* n, NUL-terminated (specials included) */
    size_t *lens;
    uint32_t *slots; /* cap entries: id + 1, 0 = empty */
    size_t cap;
} word_tok;

static int is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* The slot of word s (its id + 1 there), or the empty slot where it would go. */
static size_t slot_of(uint32_t *slots, size_t cap, char *const *words, const size_t *lens,
                      const char *s, size_t n)
{
    size_t i = (size_t)fnv(s, n) & (cap - 1);
    while (slots[i]) {
        uint32_t id = slots[i] - 1;
        if (lens[id] == n && memcmp(words[id], s, n) == 0) return i;
        i = (i + 1) & (cap - 1);
    }
    return i;
}

/* Calls fn on each lower-cased word of text (buf holds at least len bytes). */
typedef int (*word_fn)(const char *w, size_t n, void *user);
static int each_word(const char *text, size_t len, char *buf, word_fn fn, void *user)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && !is_word_byte((unsigned char)text[i])) i++;
        size_t n = 0;
        while (i < len && is_word_byte((unsigned char)text[i])) {
            char c = text[i++];
            buf[n++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        }
        if (n && fn(buf, n, user)) return -1;
    }
    return 0;
}

static size_t wt_vocab_size(const attn_tokenizer *t) { return ((const word_tok *)t)->n; }

typedef struct enc_state {
    const word_tok *w;
    uint32_t *ids;
    size_t n;
} enc_state;

static int enc_one(const char *s, size_t n, void *user)
{
    enc_state *e = user;
    const word_tok *w = e->w;
    size_t i = slot_of(w->slots, w->cap, w->words, w->lens, s, n);
    e->ids[e->n++] = w->slots[i] ? w->slots[i] - 1 : ATTN_WORD_UNK;
    return 0;
}

static attn_status wt_encode(const attn_tokenizer *t, const char *text, size_t len,
                             const char *what, uint32_t **ids, size_t *n)
{
    (void)what;
    *ids = NULL, *n = 0;
    enc_state e = {(const word_tok *)t, malloc((len / 2 + 1) * sizeof(uint32_t)), 0};
    char *buf = malloc(len + 1);
    if (!e.ids || !buf) {
        free(e.ids), free(buf);
        return attn_error(ATTN_E_NOMEM, "out of memory encoding %zu bytes", len);
    }
    each_word(text, len, buf, enc_one, &e);
    free(buf);
    *ids = e.ids, *n = e.n;
    return ATTN_OK;
}

static attn_status wt_token_bytes(const attn_tokenizer *t, uint32_t id, const char **bytes,
                                  size_t *len)
{
    const word_tok *w = (const word_tok *)t;
    if (id >= w->n)
        return attn_error(ATTN_E_INVALID, "token id %u is outside the vocabulary of %zu", id, w->n);
    *bytes = w->words[id], *len = w->lens[id];
    return ATTN_OK;
}

static attn_status wt_save(const attn_tokenizer *t, const char *path)
{
    const word_tok *w = (const word_tok *)t;
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    attn_status st = root && arr ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    if (!st) {
        cJSON_AddStringToObject(root, "type", "word");
        cJSON_AddNumberToObject(root, "min_count", (double)w->min_count);
        cJSON_AddItemToObject(root, "tokens", arr);
        arr = NULL;
        cJSON *tokens = cJSON_GetObjectItemCaseSensitive(root, "tokens");
        for (size_t i = 0; i < w->n && !st; i++) {
            cJSON *s = cJSON_CreateString(w->words[i]);
            if (!s) st = attn_error(ATTN_E_NOMEM, "out of memory");
            else cJSON_AddItemToArray(tokens, s);
        }
    }
    char *text = st ? NULL : cJSON_PrintUnformatted(root);
    if (!st && !text) st = attn_error(ATTN_E_NOMEM, "out of memory");
    attn_atomic_file af;
    if (!st) st = attn_atomic_open(&af, path);
    if (!st) {
        fputs(text, af.f);
        fputc('\n', af.f);
        st = attn_atomic_commit(&af);
    }
    free(text);
    cJSON_Delete(root), cJSON_Delete(arr);
    return st;
}

static void wt_destroy(attn_tokenizer *t)
{
    word_tok *w = (word_tok *)t;
    if (!w) return;
    for (size_t i = 0; w->words && i < w->n; i++) free(w->words[i]);
    free(w->words), free(w->lens), free(w->slots), free(w);
}

static const attn_tokenizer_vtable word_vt = {"word", wt_vocab_size, wt_encode, wt_token_bytes,
                                              wt_save, wt_destroy};

/* A tokenizer holding `n` words (taken over, also on failure); duplicates are errors. */
static attn_status make(attn_tokenizer **out, char **words, size_t n, size_t min_count,
                        const char *what)
{
    word_tok *w = calloc(1, sizeof *w);
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    if (w) {
        w->base.vt = &word_vt, w->words = words, w->n = n, w->min_count = min_count;
        w->lens = malloc(n * sizeof *w->lens);
        w->slots = calloc(cap, sizeof *w->slots);
        w->cap = cap;
    }
    if (!w || !w->lens || !w->slots) {
        if (w) wt_destroy(&w->base);
        else {
            for (size_t i = 0; i < n; i++) free(words[i]);
            free(words);
        }
        return attn_error(ATTN_E_NOMEM, "out of memory for a vocabulary of %zu words", n);
    }
    for (size_t i = 0; i < n; i++) {
        w->lens[i] = strlen(words[i]);
        size_t s = slot_of(w->slots, cap, w->words, w->lens, words[i], w->lens[i]);
        if (w->slots[s]) {
            attn_status st = attn_error(ATTN_E_FORMAT, "%s: the token '%s' appears twice", what, words[i]);
            wt_destroy(&w->base);
            return st;
        }
        w->slots[s] = (uint32_t)i + 1;
    }
    *out = &w->base;
    return ATTN_OK;
}

/* ---- building from texts ---------------------------------------------------------- */

typedef struct counter {
    char **words;
    size_t *lens, *counts, n, cap_words;
    uint32_t *slots;
    size_t cap;
    int oom;
} counter;

static int grow_slots(counter *c)
{
    size_t cap = c->cap * 2;
    uint32_t *s = calloc(cap, sizeof *s);
    if (!s) return -1;
    for (size_t i = 0; i < c->n; i++) s[slot_of(s, cap, c->words, c->lens, c->words[i], c->lens[i])] = (uint32_t)i + 1;
    free(c->slots);
    c->slots = s, c->cap = cap;
    return 0;
}

static int count_one(const char *s, size_t n, void *user)
{
    counter *c = user;
    size_t i = slot_of(c->slots, c->cap, c->words, c->lens, s, n);
    if (c->slots[i]) {
        c->counts[c->slots[i] - 1]++;
        return 0;
    }
    if (c->n == c->cap_words) {
        size_t nc = c->cap_words ? 2 * c->cap_words : 1024;
        char **w = realloc(c->words, nc * sizeof *w);
        if (w) c->words = w;
        size_t *l = realloc(c->lens, nc * sizeof *l);
        if (l) c->lens = l;
        size_t *k = realloc(c->counts, nc * sizeof *k);
        if (k) c->counts = k;
        if (!w || !l || !k) return c->oom = 1, -1;
        c->cap_words = nc;
    }
    char *d = malloc(n + 1);
    if (!d) return c->oom = 1, -1;
    memcpy(d, s, n);
    d[n] = 0;
    c->words[c->n] = d, c->lens[c->n] = n, c->counts[c->n] = 1;
    c->slots[i] = (uint32_t)++c->n;
    if (2 * c->n > c->cap && grow_slots(c)) return c->oom = 1, -1;
    return 0;
}

static const counter *sort_ctx;
static int by_count(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const counter *c = sort_ctx;
    if (c->counts[i] != c->counts[j]) return c->counts[i] > c->counts[j] ? -1 : 1;
    return strcmp(c->words[i], c->words[j]);
}

attn_status attn_word_tokenizer_build(attn_tokenizer **out, const char *const *texts, size_t n,
                                      size_t min_count)
{
    if (!out || (!texts && n)) return attn_error(ATTN_E_INVALID, "attn_word_tokenizer_build: NULL");
    *out = NULL;
    counter c;
    memset(&c, 0, sizeof c);
    c.cap = 1024;
    c.slots = calloc(c.cap, sizeof *c.slots);
    size_t maxlen = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(texts[i]);
        if (l > maxlen) maxlen = l;
    }
    char *buf = malloc(maxlen + 1);
    attn_status st = c.slots && buf ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < n; i++)
        if (each_word(texts[i], strlen(texts[i]), buf, count_one, &c))
            st = attn_error(ATTN_E_NOMEM, "out of memory counting words");
    size_t *order = st ? NULL : malloc((c.n + 1) * sizeof *order);
    char **words = st ? NULL : malloc((c.n + 3) * sizeof *words);
    if (!st && (!order || !words)) st = attn_error(ATTN_E_NOMEM, "out of memory");
    size_t kept = 0;
    if (!st) {
        for (size_t i = 0; i < c.n; i++)
            if (c.counts[i] >= min_count) order[kept++] = i;
        sort_ctx = &c; /* qsort has no context argument; not reentrant across threads */
        qsort(order, kept, sizeof *order, by_count);
        for (size_t i = 0; i < 3; i++) words[i] = strdup(specials[i]);
        for (size_t i = 0; i < kept; i++) words[3 + i] = c.words[order[i]], c.words[order[i]] = NULL;
        if (!words[0] || !words[1] || !words[2]) st = attn_error(ATTN_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < c.n; i++) free(c.words[i]);
    free(c.words), free(c.lens), free(c.counts), free(c.slots), free(buf), free(order);
    if (st) {
        if (words)
            for (size_t i = 0; i < 3; i++) free(words[i]);
        if (words)
            for (size_t i = 0; i < kept; i++) free(words[3 + i]);
        free(words);
        return st;
    }
    return make(out, words, kept + 3, min_count, "vocabulary");
}

attn_status attn_word_tokenizer_from_json(attn_tokenizer **out, const void *json_root,
                                          const char *path)
{
    const cJSON *root = json_root;
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(root, "tokens");
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(root, "min_count");
    if (!cJSON_IsArray(tokens))
        return attn_error(ATTN_E_FORMAT, "%s: \"tokens\" must be an array of strings", path);
    size_t n = (size_t)cJSON_GetArraySize(tokens);
    if (n < 3 || n > ((size_t)1 << 24))
        return attn_error(ATTN_E_FORMAT, "%s: %zu tokens: need [PAD], [CLS], [UNK] and at most 2^24", path, n);
    char **words = calloc(n, sizeof *words);
    if (!words) return attn_error(ATTN_E_NOMEM, "out of memory");
    size_t i = 0;
    const cJSON *it;
    attn_status st = ATTN_OK;
    cJSON_ArrayForEach(it, tokens)
    {
        const char *s = cJSON_GetStringValue(it);
        if (!s || !s[0]) st = attn_error(ATTN_E_FORMAT, "%s: token %zu is not a non-empty string", path, i);
        else if (i < 3 && strcmp(s, specials[i]))
            st = attn_error(ATTN_E_FORMAT, "%s: token %zu must be %s, found '%s'", path, i, specials[i], s);
        else if (!(words[i] = strdup(s))) st = attn_error(ATTN_E_NOMEM, "out of memory");
        if (st) break;
        i++;
    }
    if (st) {
        for (size_t k = 0; k < n; k++) free(words[k]);
        free(words);
        return st;
    }
    /* A number past 2^53 would not convert to size_t (undefined behaviour:
     * found by fuzz_vocab). */
    if (cJSON_IsNumber(mc) && !(mc->valuedouble <= 9007199254740992.0)) {
        for (size_t k = 0; k < n; k++) free(words[k]);
        free(words);
        return attn_error(ATTN_E_FORMAT, "%s: \"min_count\" must be a whole number below 2^53", path);
    }
    size_t min_count = cJSON_IsNumber(mc) && mc->valuedouble >= 0 ? (size_t)mc->valuedouble : 1;
    return make(out, words, n, min_count, path);
}
