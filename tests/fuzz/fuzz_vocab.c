/* fuzz_vocab.c - vocabulary files (vocab.json of both tokenizers). The input
 * up to its first NUL byte is the file; what follows is text to encode with
 * the loaded tokenizer, whose every token is then turned back into bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attn/tokenizer.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *z = memchr(data, 0, size);
    size_t n = z ? (size_t)(z - data) : size;
    attn_tokenizer *t = NULL;
    if (attn_tokenizer_load(&t, fuzz_write("vocab.json", data, n))) return 0;
    const char *text = z ? (const char *)z + 1 : "";
    size_t len = z ? size - n - 1 : 0;
    uint32_t *ids = NULL;
    size_t k = 0;
    if (!attn_tokenizer_encode(t, text, len, "fuzz text", &ids, &k)) {
        for (size_t i = 0; i < k; i++) {
            const char *b;
            size_t bl;
            (void)attn_tokenizer_token_bytes(t, ids[i], &b, &bl);
        }
        free(ids);
    }
    for (size_t i = 0; i < attn_tokenizer_vocab_size(t) && i < 512; i++) {
        const char *b;
        size_t bl;
        (void)attn_tokenizer_token_bytes(t, (uint32_t)i, &b, &bl);
    }
    attn_tokenizer_free(t);
    return 0;
}
