/* attn/attn.h - libattn, Transformer self-attention in C. The umbrella header.
 *
 *   #include <attn/attn.h>       cc prog.c $(pkg-config --cflags --libs attn)
 *
 * Every public header, by floor (docs/design.md):
 *   core     version.h, status.h (errors), tensor.h (tensors, arena), trace.h (recorded
 *            intermediates), rng.h, cpu.h (SIMD level, threads), fileio.h
 *   ops      ops.h (matmul, softmax, attention, fused kernels), ops_nn.h
 *            (layer norm, GELU, embedding, cross-entropy, dropout), bench.h
 *   formats  safetensors.h, embeddings.h (token embeddings and CSV),
 *            cls_data.h (labelled text), wordnet.h
 *   text     tokenizer.h
 *   nn       params.h (parameter tables), mha.h, mha_io.h, selfattn.h, gpt.h,
 *            train.h (optimizer, trainer), classify.h (encoder, classifier),
 *            sense.h
 *   explain  explain.h, export.h (renderers)
 */
#ifndef ATTN_ATTN_H
#define ATTN_ATTN_H

#include "attn/version.h"

#include "attn/status.h"
#include "attn/tensor.h"
#include "attn/trace.h"
#include "attn/rng.h"
#include "attn/cpu.h"
#include "attn/fileio.h"
#include "attn/ops.h"
#include "attn/ops_nn.h"
#include "attn/bench.h"
#include "attn/safetensors.h"
#include "attn/embeddings.h"
#include "attn/cls_data.h"
#include "attn/wordnet.h"
#include "attn/tokenizer.h"
#include "attn/params.h"
#include "attn/mha.h"
#include "attn/mha_io.h"
#include "attn/selfattn.h"
#include "attn/gpt.h"
#include "attn/gpt_explain.h"
#include "attn/train.h"
#include "attn/classify.h"
#include "attn/sense.h"
#include "attn/explain.h"
#include "attn/export.h"

#endif
