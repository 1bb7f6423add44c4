/* attn/export.h - every number of a walkthrough as files: CSV, SVG, HTML, xlsx.
 *
 * A document is one or two sequences (the demo's two sentences; explain's
 * input and its --compare), each a trace made by attn_self_attention (the
 * plain walkthrough, Q = K = V = X) or attn_mha_self_attention (a multi-head
 * layer). Exporters read the traces and never recompute the library's math.
 *
 * Trace entries they can rely on (all 2-D unless said; axis names in []):
 *   plain:  embeddings [token x dim], scores, scaled [query x key],
 *           scale and temperature (0-D), mask (when one applied),
 *           attention [query x key], output [query x value_dim]
 *   layer:  embeddings [token x dim]; per head h, "head<h>." + w_q [head_dim x
 *           dim], w_k, w_v [value_dim x dim], b_q, b_k [1 x head_dim], b_v
 *           [1 x value_dim] (when the layer has biases), q [query x head_dim],
 *           k [key x head_dim], v [key x value_dim], scores, scaled, scale,
 *           temperature, mask, attention, output [query x value_dim]; then
 *           w_o [out_dim x concat_dim], b_o [1 x out_dim] (with biases),
 *           concat [query x concat_dim], output [query x out_dim].
 *   The "key" axis of a layer with add_bias_kv / add_zero_attn has one or two
 *   more positions than tokens, labelled "<bias_k>" and "<zero>".
 *
 * Outputs are all-or-nothing: files go through a temporary file renamed into
 * place, and a failure removes what this call wrote (and a directory it
 * created). Paths are checked with attn_export_check_* before any work.
 */
#ifndef ATTN_EXPORT_H
#define ATTN_EXPORT_H

#include <stddef.h>
#include "attn/status.h"
#include "attn/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_doc {
    const char *title;                 /* e.g. "attn demo"; may be NULL */
    size_t n;                          /* number of sequences: 1 or 2 */
    const attn_trace *const *traces;   /* n traces */
    const char *const *captions;       /* n captions: the sentence or the file name */
    size_t num_heads;                  /* 0: plain walkthrough; H: multi-head traces */
} attn_doc;

/* `path` can be written: its directory exists and is writable, and it is
 * not a directory. ATTN_E_IO naming the path otherwise. */
attn_status attn_export_check_file(const char *path);
/* `dir` exists and is a writable directory, or can be created (its parent
 * exists and is writable). */
attn_status attn_export_check_dir(const char *dir);

/* One CSV per 2-D matrix of each trace, with its row and column labels:
 * "<entry>.csv" ("s<i>-<entry>.csv" for two sequences; dots in entry names
 * become '-', e.g. "s1-head0-attention.csv"). Creates `dir` if needed. */
attn_status attn_export_csv(const attn_doc *doc, const char *dir);

/* One labelled vector heatmap per matrix ("<same name>.svg"): every row and
 * column label, the values in the cells where they fit, a colour legend. */
attn_status attn_export_svg(const attn_doc *doc, const char *dir);

/* One self-contained interactive page (inline CSS/JS, no network). */
attn_status attn_export_html(const attn_doc *doc, const char *path);

/* A workbook whose cells are live formulas, from the embeddings on. */
attn_status attn_export_xlsx(const attn_doc *doc, const char *path);

#ifdef __cplusplus
}
#endif
#endif
