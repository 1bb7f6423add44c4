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
 *   nn       params.h (parameter tables), mha.h, mha_io.h, selfattn.h,
 *            gpt.h (decoder), gpt_explain.h, gpt_hf.h (GPT-2 weights),
 *            encoder.h (encoder classifier model), optim.h (AdamW, training
 *            configuration, schedule), train_config.h (hyperparameter tables),
 *            checkpoint.h (both models' checkpoint directories), train.h (GPT
 *            trainer), classify.h (classifier trainer, metrics, baselines),
 *            sense.h, dist.h (MPI: data parallel, ring attention)
 *   explain  explain.h, explain_model.h, export.h (renderers), plot.h
 * dist.h needs <mpi.h> and a library built with MPI: it is included when
 * ATTN_HAVE_MPI is defined and <mpi.h> can be found (pkg-config's Cflags
 * define the one and name MPI's include directory when the library was built
 * with MPI; attn_mpi_version() says whether it was).
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
#include "attn/gpt_hf.h"
#include "attn/encoder.h"
#include "attn/optim.h"
#include "attn/train_config.h"
#include "attn/checkpoint.h"
#include "attn/train.h"
#include "attn/classify.h"
#include "attn/sense.h"
#if defined(ATTN_HAVE_MPI) && defined(__has_include)
#if __has_include(<mpi.h>)
#include "attn/dist.h"
#endif
#endif
#include "attn/explain.h"
#include "attn/explain_model.h"
#include "attn/export.h"
#include "attn/plot.h"

#endif
