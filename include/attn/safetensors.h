/* attn/safetensors.h - reading and writing the safetensors format.
 *
 * Layout: an 8-byte little-endian u64 N, N bytes of UTF-8 JSON (an object:
 * name -> {"dtype", "shape", "data_offsets": [begin, end]}, plus an optional
 * "__metadata__" object of string -> string), then the data buffer. The
 * reader validates as strictly as the reference implementation: N <= 100 MB,
 * the header a JSON object, known dtypes, numel x dtype size = end - begin,
 * ranges contiguous from 0 and non-overlapping, the last end = the buffer
 * size, no duplicate names, every size computation overflow-checked. Files
 * are memory-mapped. The writer writes F32 through a temporary file renamed
 * into place, header padded with spaces to a multiple of 8 bytes.
 */
#ifndef ATTN_SAFETENSORS_H
#define ATTN_SAFETENSORS_H

#include <stddef.h>
#include "attn/status.h"
#include "attn/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATTN_ST_MAX_DIMS 8  /* what a file may hold; reading into a tensor needs <= 4 */

typedef enum attn_dtype {
    ATTN_DTYPE_BOOL, ATTN_DTYPE_U8, ATTN_DTYPE_I8, ATTN_DTYPE_I16, ATTN_DTYPE_U16,
    ATTN_DTYPE_F16, ATTN_DTYPE_BF16, ATTN_DTYPE_I32, ATTN_DTYPE_U32, ATTN_DTYPE_F32,
    ATTN_DTYPE_F64, ATTN_DTYPE_I64, ATTN_DTYPE_U64, ATTN_DTYPE_F8_E5M2, ATTN_DTYPE_F8_E4M3
} attn_dtype;

/* "F32", "BOOL", ...; and the size of one element in bytes. */
const char *attn_dtype_name(attn_dtype d);
size_t attn_dtype_size(attn_dtype d);

typedef struct attn_st_info {
    const char *name;
    attn_dtype dtype;
    int ndim;
    size_t shape[ATTN_ST_MAX_DIMS];
    size_t numel;
    size_t begin, end;   /* byte range within the data buffer */
} attn_st_info;

typedef struct attn_safetensors attn_safetensors;

/* Opens and validates a file. Errors name the file and what is wrong, e.g.
 * "w.safetensors: tensor 'x': data_offsets [0, 12] hold 12 bytes, but shape
 * [2, 2] of F32 needs 16". */
attn_status attn_safetensors_open(attn_safetensors **st, const char *path);
/* The same on a buffer in memory (not copied: it must outlive `st`). */
attn_status attn_safetensors_open_memory(attn_safetensors **st, const void *data, size_t size,
                                         const char *name);
void attn_safetensors_close(attn_safetensors *st);
/* The name messages use for st: the path, or open_memory's name ("<memory>"
 * when NULL), with control characters shown as '?'. Valid until close. */
const char *attn_safetensors_name(const attn_safetensors *st);

/* Tensors in file order (sorted by offset); metadata lookups. */
size_t attn_safetensors_count(const attn_safetensors *st);
attn_status attn_safetensors_info_at(const attn_safetensors *st, size_t i, attn_st_info *info);
/* ATTN_E_NOTFOUND (naming the tensor and the file) when absent. */
attn_status attn_safetensors_info(const attn_safetensors *st, const char *name, attn_st_info *info);
/* The value of a "__metadata__" key, or NULL. */
const char *attn_safetensors_metadata(const attn_safetensors *st, const char *key);
size_t attn_safetensors_metadata_count(const attn_safetensors *st);
attn_status attn_safetensors_metadata_at(const attn_safetensors *st, size_t i, const char **key,
                                         const char **value);

/* Reads tensor `name` into a new owned float32 tensor (rank <= 4). F32, F16,
 * BF16 and F64 are converted; BOOL, U8, I8, I16, U16, I32, U32, I64 and U64
 * too (masks are stored that way), exactly where the value fits a float. */
attn_status attn_safetensors_read(const attn_safetensors *st, const char *name, attn_tensor *out);

/* Writing: F32 tensors, optional metadata (n_meta key/value pairs). */
typedef struct attn_st_named {
    const char *name;
    const attn_tensor *tensor;
} attn_st_named;

attn_status attn_safetensors_write(const char *path, const attn_st_named *tensors, size_t n,
                                   const char *const *meta_keys, const char *const *meta_values,
                                   size_t n_meta);

#ifdef __cplusplus
}
#endif
#endif
