/* model_view.h - what the renderers of a model's run share (internal). */
#ifndef ATTN_MODEL_VIEW_H
#define ATTN_MODEL_VIEW_H

#include <stddef.h>

#include "attn/explain_model.h"

/* The layers [l0, l1) and heads [h0, h1) the view shows. */
void model_view_range(const attn_model_view *v, size_t *l0, size_t *l1, size_t *h0, size_t *h1);
/* The map "layer<l>.head<h>.attention" of t (checked by attn_model_view_check). */
const attn_tensor *model_view_map(const attn_trace *t, size_t l, size_t h);
/* The column of row q of a map with the largest weight (the first on ties). */
size_t model_view_top_key(const attn_tensor *map, size_t q);

#endif
