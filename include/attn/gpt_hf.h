/* attn/gpt_hf.h - GPT-2 checkpoints in Hugging Face's layout.
 *
 * A folder holding config.json (vocab_size, n_positions, n_embd, n_layer,
 * n_head, layer_norm_epsilon, activation_function, architectures) and
 * model.safetensors with transformers' GPT-2 names: wte.weight, wpe.weight,
 * h.{i}.ln_1.{weight,bias}, h.{i}.attn.c_attn.{weight,bias} (Conv1D: the
 * weight stored (in, out)), h.{i}.attn.c_proj.*, h.{i}.ln_2.*,
 * h.{i}.mlp.c_fc.*, h.{i}.mlp.c_proj.*, ln_f.*, with or without the
 * "transformer." prefix; lm_head.weight optional (it must equal wte: the head
 * is tied); the attn.bias / attn.masked_bias buffers ignored; F32, F16 or
 * BF16, converted to float once. GPT-2's tokenizer files may sit beside them
 * (attn_bpe_tokenizer_load reads the same folder).
 */
#ifndef ATTN_GPT_HF_H
#define ATTN_GPT_HF_H

#include "attn/gpt.h"
#include "attn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A new GPT for batches of up to max_batch rows, with dir's weights. Errors
 * name the file: a model that is not GPT-2, sizes that disagree with a
 * tensor (its name and both shapes), a missing tensor, an untied head. */
attn_status attn_gpt_hf_load(attn_gpt **g, const char *dir, size_t max_batch);
/* The model configuration dir/config.json describes (checked as above). */
attn_status attn_gpt_hf_config(const char *dir, attn_gpt_config *c);
/* Overwrites the weights of g, whose sizes must be dir's, with dir's
 * (fine-tuning starts there). */
attn_status attn_gpt_hf_init(attn_gpt *g, const char *dir);
/* Writes dir/config.json and dir/model.safetensors (F32, no prefix, no
 * lm_head), each atomically; a model without biases is written with zero
 * biases and "attn_bias": false, and loads back as it was. */
attn_status attn_gpt_hf_save(const attn_gpt *g, const char *dir);
/* 1 if dir/config.json is in Hugging Face's GPT-2 form (has "n_embd"). */
int attn_gpt_hf_is_dir(const char *dir);

#ifdef __cplusplus
}
#endif
#endif
