/* attn/explain_model.h - renderers of a model's run: every layer's and
 * head's attention map of a text (attn explain --model).
 *
 * They read the trace of attn_gpt_trace_text (attn/gpt_explain.h): the maps
 * "layer<l>.head<h>.attention" (T x T, rows queries, columns keys, zeros
 * above the diagonal), the "token" labels and, after
 * attn_gpt_compare_hidden, "compare.cosine" and "compare.positions". They
 * never recompute the model's math: they select, order and format.
 */
#ifndef ATTN_EXPLAIN_MODEL_H
#define ATTN_EXPLAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "attn/explain.h"
#include "attn/status.h"
#include "attn/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_model_view {
    const char *title;        /* e.g. the model's directory; may be NULL */
    const attn_trace *trace;  /* the run of the text */
    const uint32_t *ids;      /* its token ids (n_tokens; the tokens are the "token" labels) */
    size_t n_tokens, layers, heads;
    long layer, head;         /* the maps shown: one layer / head, or -1 for all */
    const attn_trace *compare;    /* the run of --compare-text, or NULL */
    const uint32_t *compare_ids;  /* its ids */
    size_t compare_n;
} attn_model_view;

/* Checks the view: sizes, the filters in range, every map present. */
attn_status attn_model_view_check(const attn_model_view *v);

/* {"tokens": [...], "ids": [...], ["layer": L,] ["head": H,] "layers":
 * [{["layer": l,] "heads": [{["head": h,] "attention": [[...], ...]}, ...]}, ...]}
 * written as it goes (a model's maps are large); with a comparison also
 * "compare": {"tokens", "ids"} and "shared_tokens": [{"token", "position",
 * "compare_position", "cosine_by_layer": [...], "attends_to": [[...]],
 * "compare_attends_to": [[...]]}] (per layer, per head, the key token the
 * shared token's query weights most). */
attn_status attn_json_model(FILE *f, const attn_model_view *v);

/* Terminal tables: the chosen head's map (layer and head given), or per
 * layer a table of queries x heads naming the key each query weights most
 * and that weight; with a comparison, per shared token the cosine after each
 * layer and the keys each head weights most in both texts. */
attn_status attn_text_model(FILE *f, const attn_model_view *v, const attn_text_opts *o);

/* One CSV / SVG per map shown ("layer<l>-head<h>-attention.csv"). */
attn_status attn_export_model_csv(const attn_model_view *v, const char *dir);
attn_status attn_export_model_svg(const attn_model_view *v, const char *dir);
/* One self-contained page: a layer x head grid of thumbnails drawn on
 * demand on canvases, a click shows the full map with the tokens. Maps are
 * stored as 16-bit fractions (8-bit above 16 M cells), lower triangle. */
attn_status attn_export_model_html(const attn_model_view *v, const char *path);

#ifdef __cplusplus
}
#endif
#endif
