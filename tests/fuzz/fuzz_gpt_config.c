/* fuzz_gpt_config.c - a GPT checkpoint's config.json (and --config files):
 * attn_train_config_from_json, then the checks every loader runs. */
#include <stdint.h>
#include <stdlib.h>

#include "attn/gpt.h"
#include "attn/train.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    attn_gpt_config m = attn_gpt_defaults();
    attn_train_config t = attn_train_defaults();
    if (!attn_train_config_from_json(text, "fuzz/config.json", &m, &t)) {
        m.vocab_size = 65;
        (void)attn_gpt_config_check(&m);
        (void)attn_train_config_check(&t);
    }
    free(text);
    return 0;
}
