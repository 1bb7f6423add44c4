/* fuzz_cls_config.c - a classifier checkpoint's config.json, read by the
 * loader itself (the directory has no vocabulary, so a config that passes
 * every check stops there: no model is allocated). */
#include <stdint.h>

#include "attn/classify.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write("config.json", data, size);
    attn_cls_info info;
    attn_encoder *e = NULL;
    attn_tokenizer *tok = NULL;
    if (!attn_cls_model_load(fuzz_dir(), 1, &info, &e, &tok)) { /* cannot happen: no vocab */
        attn_encoder_free(e);
        attn_tokenizer_free(tok);
        attn_cls_info_free(&info);
    }
    return 0;
}
