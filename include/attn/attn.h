/* attn/attn.h - libattn, Transformer self-attention in C. The umbrella header.
 *
 *   #include <attn/attn.h>       cc prog.c $(pkg-config --cflags --libs attn)
 *
 * Areas: status.h (errors), tensor.h (tensors, arena), trace.h (recorded
 * intermediates), ops.h (matmul, softmax, attention), embeddings.h (token
 * embeddings and CSV), selfattn.h (the article's self-attention and example),
 * explain.h (renderers).
 */
#ifndef ATTN_ATTN_H
#define ATTN_ATTN_H

#define ATTN_VERSION_MAJOR 0
#define ATTN_VERSION_MINOR 1
#define ATTN_VERSION_PATCH 0
#define ATTN_VERSION_STRING "0.1.0"

#include "attn/status.h"
#include "attn/tensor.h"
#include "attn/trace.h"
#include "attn/ops.h"
#include "attn/embeddings.h"
#include "attn/selfattn.h"
#include "attn/explain.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version string, e.g. "0.1.0". */
const char *attn_version(void);
/* The MPI the library was built with (e.g. "Open MPI 4.1.4, MPI 3.1"), or
 * NULL when it was built without: then attn/dist.h is not available. */
const char *attn_mpi_version(void);

#ifdef __cplusplus
}
#endif
#endif
