/* fuzz_bpe_encode.c - GPT-2's byte-level BPE on arbitrary bytes: encoding
 * never fails and decoding gives the bytes back exactly (the documented
 * promise), with and without "<|endoftext|>" as a special token. The
 * tokenizer is trained once on a fixed text with a mixture of scripts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attn/tokenizer.h"

static const char corpus[] =
    "The cat sat on the mat; the mouse ran. It's 2024 -- 3.14 and 42! "
    "Les \xc3\xa9l\xc3\xa8ves \xc3\xa9taient l\xc3\xa0. \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
    "\xf0\x9f\x98\x80 tabs\tand\nnewlines\r\n  spaces   and 'quotes' we've they'll <|endoftext|>";

static attn_tokenizer *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!tok) {
        char big[sizeof corpus * 8];
        for (int i = 0; i < 8; i++) memcpy(big + i * (sizeof corpus - 1), corpus, sizeof corpus - 1);
        if (attn_bpe_train(&tok, big, 8 * (sizeof corpus - 1), "corpus", 400, NULL, NULL)) abort();
    }
    int special = size && (data[0] & 1);
    if (attn_bpe_set_special(tok, special) && special) special = 0;
    uint32_t *ids = NULL;
    size_t k = 0;
    if (attn_tokenizer_encode(tok, (const char *)data, size, "fuzz", &ids, &k)) abort();
    size_t at = 0;
    for (size_t i = 0; i < k; i++) {
        const char *bytes;
        size_t n;
        if (attn_tokenizer_token_bytes(tok, ids[i], &bytes, &n)) abort();
        if (at + n > size || memcmp(data + at, bytes, n)) abort();
        at += n;
    }
    if (at != size) abort();
    free(ids);
    return 0;
}
