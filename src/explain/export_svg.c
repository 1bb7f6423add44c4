/* PLACEHOLDER so that the attn binary links while the real exporter is being
 * written: replace this whole file with the implementation. */
#include "attn/export.h"

attn_status attn_export_svg(const attn_doc *doc, const char *out)
{
    (void)doc;
    (void)out;
    return attn_error(ATTN_E_INTERNAL, "the svg exporter is not built yet");
}
