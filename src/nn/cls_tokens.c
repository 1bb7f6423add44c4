/* cls_tokens.c - the token ids of labelled text ([CLS] then the words), for
 * the classifier. In nn, not io: it needs a tokenizer (text), and formats
 * use core only. */
#include <stdlib.h>
#include <string.h>

#include "attn/classify.h"

void attn_cls_tokens_free(attn_cls_tokens *t)
{
    if (!t) return;
    free(t->ids), free(t->offset), free(t->label);
    memset(t, 0, sizeof *t);
}

attn_status attn_cls_tokenize(attn_cls_tokens *t, const attn_cls_split *s,
                              const attn_tokenizer *tok, size_t context)
{
    if (!t || !s || !tok || context < 2) return attn_error(ATTN_E_INVALID, "attn_cls_tokenize: bad argument");
    memset(t, 0, sizeof *t);
    t->offset = malloc((s->n + 1) * sizeof *t->offset);
    t->label = malloc((s->n + 1) * sizeof *t->label);
    size_t cap = s->n * 8 + 16;
    t->ids = malloc(cap * sizeof *t->ids);
    if (!t->offset || !t->label || !t->ids) {
        attn_cls_tokens_free(t);
        return attn_error(ATTN_E_NOMEM, "out of memory");
    }
    attn_status st = ATTN_OK;
    size_t at = 0;
    for (size_t i = 0; i < s->n && !st; i++) {
        uint32_t *ids = NULL;
        size_t n = 0;
        st = attn_tokenizer_encode(tok, s->text[i], strlen(s->text[i]), "text", &ids, &n);
        if (st) break;
        t->words += n;
        if (n > context - 1) n = context - 1;
        if (at + n + 1 > cap) {
            while (at + n + 1 > cap) cap *= 2;
            uint32_t *nb = realloc(t->ids, cap * sizeof *nb);
            if (!nb) st = attn_error(ATTN_E_NOMEM, "out of memory");
            else t->ids = nb;
        }
        if (!st) {
            t->offset[i] = at;
            t->ids[at++] = ATTN_WORD_CLS;
            memcpy(t->ids + at, ids, n * sizeof *ids);
            at += n;
            t->label[i] = s->label[i];
        }
        free(ids);
    }
    if (st) {
        attn_cls_tokens_free(t);
        return st;
    }
    t->n = s->n;
    t->offset[s->n] = at;
    return ATTN_OK;
}
