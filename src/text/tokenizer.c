/* tokenizer.c - the tokenizer interface: dispatch and loading by "type". */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/fileio.h"
#include "attn/tokenizer.h"
#include "utf8.h"

attn_status attn_char_tokenizer_from_json(attn_tokenizer **out, const void *json_root,
                                          const char *path);
attn_status attn_word_tokenizer_from_json(attn_tokenizer **out, const void *json_root,
                                          const char *path);
attn_status attn_bpe_tokenizer_from_json(attn_tokenizer **out, const void *json_root,
                                         const char *path);

attn_status attn_tokenizer_encode(const attn_tokenizer *t, const char *text, size_t len,
                                  const char *what, uint32_t **ids, size_t *n)
{
    if (!t || !text || !ids || !n) return attn_error(ATTN_E_INVALID, "attn_tokenizer_encode: NULL");
    return t->vt->encode(t, text, len, what ? what : "text", ids, n);
}

attn_status attn_tokenizer_token_bytes(const attn_tokenizer *t, uint32_t id, const char **bytes,
                                       size_t *len)
{
    if (!t || !bytes || !len) return attn_error(ATTN_E_INVALID, "attn_tokenizer_token_bytes: NULL");
    return t->vt->token_bytes(t, id, bytes, len);
}

attn_status attn_tokenizer_save(const attn_tokenizer *t, const char *path)
{
    if (!t || !path) return attn_error(ATTN_E_INVALID, "attn_tokenizer_save: NULL");
    return t->vt->save(t, path);
}

attn_status attn_tokenizer_decode(const attn_tokenizer *t, const uint32_t *ids, size_t n,
                                  const char *what, char **bytes, size_t *len)
{
    if (!t || (!ids && n) || !bytes || !len) return attn_error(ATTN_E_INVALID, "attn_tokenizer_decode: NULL");
    *bytes = NULL, *len = 0;
    size_t total = 0, vocab = attn_tokenizer_vocab_size(t);
    const char *b;
    size_t k;
    for (size_t i = 0; i < n; i++) { /* sizes first: nothing is built from a bad list */
        if (ids[i] >= vocab)
            return attn_error(ATTN_E_FORMAT, "%s: id %u (number %zu) is out of range: the vocabulary has %zu tokens",
                              what ? what : "ids", (unsigned)ids[i], i + 1, vocab);
        attn_status st = t->vt->token_bytes(t, ids[i], &b, &k);
        if (st) return st;
        total += k;
    }
    char *out = malloc(total + 1);
    if (!out) return attn_error(ATTN_E_NOMEM, "out of memory for %zu bytes", total);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        t->vt->token_bytes(t, ids[i], &b, &k);
        memcpy(out + at, b, k), at += k;
    }
    out[at] = 0;
    *bytes = out, *len = at;
    return ATTN_OK;
}

void attn_tokenizer_free(attn_tokenizer *t)
{
    if (t) t->vt->destroy(t);
}

attn_status attn_tokenizer_load(attn_tokenizer **out, const char *path)
{
    if (!out || !path) return attn_error(ATTN_E_INVALID, "attn_tokenizer_load: NULL");
    *out = NULL;
    /* A vocabulary of a million tokens is a few MB: bound what is read. */
    char *buf = NULL;
    size_t len = 0;
    attn_status st = attn_read_file(path, (size_t)64 << 20, 0, &buf, &len);
    cJSON *root = NULL;
    if (!st) {
        root = cJSON_ParseWithLength(buf, len);
        if (!cJSON_IsObject(root)) st = attn_error(ATTN_E_FORMAT, "%s: not a JSON object", path);
    }
    if (!st) {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "type"));
        if (type && strcmp(type, "char") == 0) st = attn_char_tokenizer_from_json(out, root, path);
        else if (type && strcmp(type, "word") == 0) st = attn_word_tokenizer_from_json(out, root, path);
        else if (type && strcmp(type, "bpe") == 0) st = attn_bpe_tokenizer_from_json(out, root, path);
        else
            st = attn_error(ATTN_E_FORMAT, "%s: unknown tokenizer type '%s' (known: char, word, bpe)", path,
                            type ? type : "(missing)");
    }
    cJSON_Delete(root);
    free(buf);
    return st;
}

void attn_tokenizer_labels_free(char **labels, size_t n)
{
    for (size_t i = 0; labels && i < n; i++) free(labels[i]);
    free(labels);
}

/* bytes as valid UTF-8, U+FFFD for each byte that is not (3 bytes out for 1 in at most). */
static char *valid_utf8(const char *bytes, size_t len)
{
    char *s = malloc(3 * len + 1), *p = s;
    if (!s) return NULL;
    const unsigned char *b = (const unsigned char *)bytes;
    for (size_t i = 0; i < len;) {
        size_t at = i;
        uint32_t cp;
        if (b[i] && !utf8_next(b, len, &i, &cp)) {
            memcpy(p, bytes + at, i - at);
            p += i - at;
        } else {
            memcpy(p, "\xEF\xBF\xBD", 3);
            p += 3, i++;
        }
    }
    *p = '\0';
    return s;
}

attn_status attn_tokenizer_labels(const attn_tokenizer *t, const uint32_t *ids, size_t n,
                                  char ***labels)
{
    *labels = NULL;
    char **out = calloc(n ? n : 1, sizeof *out);
    if (!out) return attn_error(ATTN_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *bytes;
        size_t len;
        attn_status st = attn_tokenizer_token_bytes(t, ids[i], &bytes, &len);
        if (!st && !(out[i] = valid_utf8(bytes, len))) st = attn_error(ATTN_E_NOMEM, "out of memory");
        if (st) {
            attn_tokenizer_labels_free(out, n);
            return st;
        }
    }
    *labels = out;
    return ATTN_OK;
}
