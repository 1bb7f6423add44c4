/* bpe_save.c - writing a byte-level BPE tokenizer: tokens spelt in GPT-2's
 * byte characters, attn's one-file JSON form (the tokenizer's save, which
 * bpe.c's vtable names) and the pieces bpe_load.c writes GPT-2's two files
 * with. Apart from bpe_load.c so that bpe.c (the vtable) and the reader do
 * not call each other. */
#include <stdio.h>

#include "attn/fileio.h"
#include "bpe_internal.h"
#include "utf8.h"

/* A token in byte characters; in JSON, '"' and '\' escaped (every other byte
 * character is printable). */
static void put_token(FILE *f, const bpe_tok *b, size_t id, int json)
{
    for (size_t i = b->off[id]; i < b->off[id + 1]; i++) {
        char u[5];
        uint32_t cp = bpe_byte_to_cp((unsigned char)b->bytes[i]);
        if (json && (cp == '"' || cp == '\\')) fputc('\\', f);
        utf8_put(cp, u);
        fputs(u, f);
    }
}

void bpe_put_vocab(FILE *f, const bpe_tok *b)
{
    fputc('{', f);
    for (size_t i = 0; i < b->n; i++) {
        fputs(i ? ", \"" : "\"", f);
        put_token(f, b, i, 1);
        fprintf(f, "\": %zu", i);
    }
    fputc('}', f);
}

void bpe_put_merge(FILE *f, const bpe_tok *b, size_t r, int json)
{
    put_token(f, b, b->merges[r][0], json);
    fputc(' ', f);
    put_token(f, b, b->merges[r][1], json);
}

attn_status bpe_save_json(const attn_tokenizer *t, const char *path)
{
    const bpe_tok *b = (const bpe_tok *)t;
    attn_atomic_file af;
    attn_status st = attn_atomic_open(&af, path);
    if (st) return st;
    fputs("{\"type\": \"bpe\", \"vocab\": ", af.f);
    bpe_put_vocab(af.f, b);
    fputs(", \"merges\": [", af.f);
    for (size_t r = 0; r < b->n_merges; r++) {
        fputs(r ? ", \"" : "\"", af.f);
        bpe_put_merge(af.f, b, r, 1);
        fputc('"', af.f);
    }
    fputs("]}\n", af.f);
    return attn_atomic_commit(&af);
}
