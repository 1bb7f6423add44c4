/* fuzz_csv.c - the CSV embeddings reader on arbitrary bytes; what it accepts
 * then goes through self-attention (huge or odd values must not crash). */
#include <stdint.h>
#include <stdlib.h>

#include "attn/attn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    attn_embeddings e;
    if (attn_embeddings_parse_csv(&e, (const char *)data, size, "fuzz.csv")) return 0;
    if (e.n_tokens) (void)attn_embeddings_find(&e, e.tokens[e.n_tokens - 1]);
    if (e.n_tokens * e.n_dims <= 4096) {
        attn_trace *t = NULL;
        attn_sdpa_params p = attn_sdpa_defaults();
        if (!attn_trace_create(&t)) (void)attn_self_attention(NULL, &e, &p, t);
        attn_trace_free(t);
    }
    attn_embeddings_free(&e);
    return 0;
}
