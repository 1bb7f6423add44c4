/* fuzz_wordnet.c - WordNet's data.noun lines, through the whole build (it
 * writes the three splits into the scratch directory). */
#include <stdint.h>

#include "attn/wordnet.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    attn_wordnet_stats s;
    (void)attn_wordnet_build(fuzz_write("data.noun", data, size), fuzz_dir(), &s);
    return 0;
}
