/* fuzz_tsv.c - the labelled data reader (label<TAB>text lines, parsed in
 * memory as attn_cls_split_read parses a file), then the label set and
 * labelling the split with it. */
#include <stdint.h>

#include "attn/classify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    attn_cls_split s;
    if (attn_cls_split_parse(&s, (const char *)data, size, "fuzz.tsv")) return 0;
    char **labels = NULL;
    size_t n = 0;
    if (!attn_cls_labels_of(&s, &labels, &n)) {
        (void)attn_cls_split_label(&s, (const char *const *)labels, n, "fuzz");
        attn_cls_labels_free(labels, n);
    }
    attn_cls_split_free(&s);
    return 0;
}
