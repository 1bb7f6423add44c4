/* attn/mha_io.h - nn.MultiheadAttention state_dicts in safetensors files. */
#ifndef ATTN_MHA_IO_H
#define ATTN_MHA_IO_H

#include "attn/mha.h"
#include "attn/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The configuration a state_dict implies: embed_dim, kdim/vdim, head widths
 * and out_dim from the weight shapes, bias from "in_proj_bias", add_bias_kv
 * from "bias_k". num_heads is not in a PyTorch state_dict: pass it (0 takes
 * it from the "num_heads" metadata that attn writes). add_zero_attn has no
 * parameter: it is taken from metadata when present, else left 0. `prefix`
 * (may be NULL) is prepended to every name, e.g. "layers.0.self_attn.". */
attn_status attn_mha_config_from_safetensors(attn_mha_config *cfg, const attn_safetensors *st,
                                             const char *prefix, size_t num_heads);

/* Copies every parameter of `mha` from the file; a missing tensor or one of
 * another shape is an error that names it and both shapes. */
attn_status attn_mha_load_safetensors(attn_mha *mha, const attn_safetensors *st,
                                      const char *prefix);

/* Writes the parameters under their state_dict names, with metadata
 * "num_heads" and "add_zero_attn" (atomically: temp file, then rename). */
attn_status attn_mha_save_safetensors(attn_mha *mha, const char *path);

#ifdef __cplusplus
}
#endif
#endif
