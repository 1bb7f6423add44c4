/* attn/fileio.h - writing files so that a failure leaves nothing behind.
 *
 * attn_atomic_open creates a temporary file beside the target; commit
 * flushes, fsyncs and renames it into place; abort removes it. Either way the
 * target is never seen half-written.
 */
#ifndef ATTN_FILEIO_H
#define ATTN_FILEIO_H

#include <stdio.h>
#include "attn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_atomic_file {
    FILE *f;            /* write here */
    char *path;         /* the target */
    char *tmp_path;     /* the temporary file */
} attn_atomic_file;

/* Fails (ATTN_E_IO, naming the path) if the target's directory does not
 * exist or is not writable. */
attn_status attn_atomic_open(attn_atomic_file *af, const char *path);
/* Checks every write succeeded, fsyncs, renames. Frees af's resources. */
attn_status attn_atomic_commit(attn_atomic_file *af);
/* Removes the temporary file. Frees af's resources. Safe after commit. */
void attn_atomic_abort(attn_atomic_file *af);

/* Reads a whole regular file of at most max_bytes into a NUL-terminated
 * malloc'd buffer (*len may be NULL). Errors name the path. */
attn_status attn_read_text_file(const char *path, size_t max_bytes, char **out, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
