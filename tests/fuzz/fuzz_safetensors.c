/* fuzz_safetensors.c - the safetensors reader (header and data) on arbitrary
 * bytes: open, list, metadata, and every tensor converted to float. */
#include <stdint.h>

#include "attn/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    attn_safetensors *st = NULL;
    if (attn_safetensors_open_memory(&st, data, size, "fuzz.safetensors")) return 0;
    (void)attn_safetensors_name(st);
    for (size_t i = 0; i < attn_safetensors_metadata_count(st); i++) {
        const char *k, *v;
        if (!attn_safetensors_metadata_at(st, i, &k, &v)) (void)attn_safetensors_metadata(st, k);
    }
    for (size_t i = 0; i < attn_safetensors_count(st); i++) {
        attn_st_info info;
        if (attn_safetensors_info_at(st, i, &info)) continue;
        attn_tensor t;
        if (info.numel <= ((size_t)1 << 20) && !attn_safetensors_read(st, info.name, &t))
            attn_tensor_free(&t);
    }
    attn_safetensors_close(st);
    return 0;
}
