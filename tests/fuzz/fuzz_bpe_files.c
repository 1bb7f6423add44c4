/* fuzz_bpe_files.c - the GPT-2 tokenizer's files. The input up to its first
 * NUL byte is encoder.json, up to the second vocab.bpe, the rest text that a
 * tokenizer they load must encode and give back byte for byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attn/tokenizer.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *z1 = memchr(data, 0, size);
    if (!z1) return 0;
    const uint8_t *b = z1 + 1, *end = data + size;
    const uint8_t *z2 = memchr(b, 0, (size_t)(end - b));
    const uint8_t *text = z2 ? z2 + 1 : end;
    fuzz_write("encoder.json", data, (size_t)(z1 - data));
    fuzz_write("vocab.bpe", b, (size_t)((z2 ? z2 : end) - b));
    attn_tokenizer *t = NULL;
    if (attn_bpe_tokenizer_load(&t, fuzz_dir())) return 0;
    size_t len = (size_t)(end - text), k = 0;
    uint32_t *ids = NULL;
    if (!attn_tokenizer_encode(t, (const char *)text, len, "fuzz text", &ids, &k)) {
        size_t at = 0;
        for (size_t i = 0; i < k; i++) {
            const char *bytes;
            size_t n;
            if (attn_tokenizer_token_bytes(t, ids[i], &bytes, &n)) abort();
            if (at + n > len || memcmp(text + at, bytes, n)) abort(); /* not a round trip */
            at += n;
        }
        if (at != len) abort();
        free(ids);
    }
    attn_tokenizer_free(t);
    return 0;
}
