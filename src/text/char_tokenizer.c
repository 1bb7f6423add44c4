/* char_tokenizer.c - one token per Unicode code point of the training text. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "attn/fileio.h"
#include "attn/tokenizer.h"
#include "utf8.h"

typedef struct char_tok {
    attn_tokenizer base;
    size_t n;
    uint32_t *cp;      /* sorted code points */
    char (*utf8)[5];   /* each as UTF-8, NUL-terminated */
    unsigned char *len;
} char_tok;

static size_t ct_vocab_size(const attn_tokenizer *t) { return ((const char_tok *)t)->n; }

static long find(const char_tok *c, uint32_t cp)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c->cp[mid] < cp) lo = mid + 1;
        else hi = mid;
    }
    return lo < c->n && c->cp[lo] == cp ? (long)lo : -1;
}

/* Line and column (1-based, in characters) of byte offset `at`. */
static void where(const char *text, size_t at, size_t *line, size_t *col)
{
    *line = 1, *col = 1;
    for (size_t i = 0; i < at; i++) {
        if (text[i] == '\n') (*line)++, *col = 1;
        else if (((unsigned char)text[i] & 0xC0) != 0x80) (*col)++;
    }
}

static attn_status ct_encode(const attn_tokenizer *t, const char *text, size_t len,
                             const char *what, uint32_t **ids, size_t *n)
{
    const char_tok *c = (const char_tok *)t;
    *ids = NULL, *n = 0;
    uint32_t *out = malloc((len ? len : 1) * sizeof *out);
    if (!out) return attn_error(ATTN_E_NOMEM, "%s: cannot allocate %zu token ids", what, len);
    size_t i = 0, k = 0;
    while (i < len) {
        size_t at = i, line, col;
        uint32_t cp;
        if (utf8_next((const unsigned char *)text, len, &i, &cp)) {
            where(text, at, &line, &col);
            free(out);
            return attn_error(ATTN_E_FORMAT, "%s:%zu:%zu: not valid UTF-8 (byte 0x%02x)", what,
                              line, col, (unsigned char)text[at]);
        }
        long id = find(c, cp);
        if (id < 0) {
            char u[5];
            utf8_put(cp, u);
            where(text, at, &line, &col);
            free(out);
            if (cp < 0x20 || cp == 0x7F)
                return attn_error(ATTN_E_FORMAT,
                                  "%s:%zu:%zu: character U+%04X is not in the model's vocabulary "
                                  "of %zu characters",
                                  what, line, col, (unsigned)cp, c->n);
            return attn_error(ATTN_E_FORMAT,
                              "%s:%zu:%zu: character '%s' (U+%04X) is not in the model's "
                              "vocabulary of %zu characters",
                              what, line, col, u, (unsigned)cp, c->n);
        }
        out[k++] = (uint32_t)id;
    }
    *ids = out, *n = k;
    return ATTN_OK;
}

static attn_status ct_token_bytes(const attn_tokenizer *t, uint32_t id, const char **bytes,
                                  size_t *len)
{
    const char_tok *c = (const char_tok *)t;
    if (id >= c->n)
        return attn_error(ATTN_E_INVALID, "token %u is not below the vocabulary size %zu",
                          (unsigned)id, c->n);
    *bytes = c->utf8[id], *len = c->len[id];
    return ATTN_OK;
}

static attn_status ct_save(const attn_tokenizer *t, const char *path)
{
    const char_tok *c = (const char_tok *)t;
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    char *text = NULL;
    attn_status st = ATTN_OK;
    if (!root || !arr) st = attn_error(ATTN_E_NOMEM, "%s: out of memory", path);
    if (!st) {
        cJSON_AddItemToObject(root, "vocab", arr), arr = NULL;
        if (!cJSON_AddStringToObject(root, "type", "char")) st = attn_error(ATTN_E_NOMEM, "out of memory");
        cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "vocab");
        for (size_t i = 0; !st && i < c->n; i++) {
            cJSON *s = cJSON_CreateString(c->utf8[i]);
            if (!s || !cJSON_AddItemToArray(v, s)) st = attn_error(ATTN_E_NOMEM, "out of memory");
        }
    }
    if (!st && !(text = cJSON_PrintUnformatted(root))) st = attn_error(ATTN_E_NOMEM, "out of memory");
    attn_atomic_file af;
    if (!st) st = attn_atomic_open(&af, path);
    if (!st) {
        fputs(text, af.f);
        fputc('\n', af.f);
        st = attn_atomic_commit(&af);
    }
    cJSON_Delete(root), cJSON_Delete(arr), free(text);
    return st;
}

static void ct_destroy(attn_tokenizer *t)
{
    char_tok *c = (char_tok *)t;
    if (!c) return;
    free(c->cp), free(c->utf8), free(c->len), free(c);
}

static const attn_tokenizer_vtable char_vt = {"char", ct_vocab_size, ct_encode, ct_token_bytes,
                                              ct_save, ct_destroy};

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* A tokenizer of the sorted, unique code points cp[0..n) (takes cp). */
static attn_status make(attn_tokenizer **out, uint32_t *cp, size_t n)
{
    char_tok *c = calloc(1, sizeof *c);
    if (c) c->utf8 = malloc(n * sizeof *c->utf8), c->len = malloc(n);
    if (!c || !c->utf8 || !c->len) {
        if (c) free(c->utf8), free(c->len), free(c);
        free(cp);
        return attn_error(ATTN_E_NOMEM, "cannot allocate a vocabulary of %zu characters", n);
    }
    c->base.vt = &char_vt;
    c->cp = cp, c->n = n;
    for (size_t i = 0; i < n; i++) c->len[i] = (unsigned char)utf8_put(cp[i], c->utf8[i]);
    *out = &c->base;
    return ATTN_OK;
}

attn_status attn_char_tokenizer_from_text(attn_tokenizer **out, const char *text, size_t len,
                                          const char *what)
{
    if (!out || !text) return attn_error(ATTN_E_INVALID, "attn_char_tokenizer_from_text: NULL");
    *out = NULL;
    if (!len) return attn_error(ATTN_E_FORMAT, "%s: the text is empty", what);
    /* Which code points occur: a bitmap of the 17 planes would be 139 KB;
     * collect, sort, deduplicate instead. */
    uint32_t *cp = malloc(len * sizeof *cp);
    if (!cp) return attn_error(ATTN_E_NOMEM, "%s: out of memory", what);
    size_t i = 0, n = 0;
    unsigned char seen[128] = {0};
    while (i < len) {
        size_t at = i, line, col;
        uint32_t v;
        if (utf8_next((const unsigned char *)text, len, &i, &v)) {
            where(text, at, &line, &col);
            free(cp);
            return attn_error(ATTN_E_FORMAT, "%s:%zu:%zu: not valid UTF-8 (byte 0x%02x)", what,
                              line, col, (unsigned char)text[at]);
        }
        if (v < 128) {
            if (seen[v]) continue;
            seen[v] = 1;
        }
        cp[n++] = v;
    }
    qsort(cp, n, sizeof *cp, cmp_u32);
    size_t u = 0;
    for (size_t k = 0; k < n; k++)
        if (!u || cp[k] != cp[u - 1]) cp[u++] = cp[k];
    return make(out, cp, u);
}

/* Loads {"type": "char", "vocab": ["a", "b", ...]} (parsed by tokenizer.c). */
attn_status attn_char_tokenizer_from_json(attn_tokenizer **out, const void *json_root,
                                          const char *path);
attn_status attn_char_tokenizer_from_json(attn_tokenizer **out, const void *json_root,
                                          const char *path)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive((const cJSON *)json_root, "vocab");
    if (!cJSON_IsArray(v) || !cJSON_GetArraySize(v))
        return attn_error(ATTN_E_FORMAT, "%s: expected \"vocab\", a non-empty array of characters", path);
    size_t n = (size_t)cJSON_GetArraySize(v), k = 0;
    uint32_t *cp = malloc(n * sizeof *cp);
    if (!cp) return attn_error(ATTN_E_NOMEM, "%s: out of memory", path);
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        const char *s = cJSON_GetStringValue(e);
        size_t i = 0, len = s ? strlen(s) : 0;
        uint32_t c;
        if (!s || !len || utf8_next((const unsigned char *)s, len, &i, &c) || i != len ||
            (k && c <= cp[k - 1])) {
            free(cp);
            return attn_error(ATTN_E_FORMAT,
                              "%s: vocab entry %zu must be one character, in increasing order",
                              path, k);
        }
        cp[k++] = c;
    }
    return make(out, cp, n);
}
