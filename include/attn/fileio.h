/* attn/fileio.h - writing files so that a failure leaves nothing behind;
 * reading whole files within a size limit.
 *
 * attn_atomic_open creates a temporary file beside the target; commit
 * flushes, fsyncs and renames it into place; abort removes it. Either way the
 * target is never seen half-written. What is not a regular file (a character
 * device such as /dev/null, a FIFO, a socket, the file stdout writes to) is
 * written in place as a stream instead of being renamed over; a symbolic link
 * is followed and its target replaced atomically (a dangling one is refused).
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
    char *tmp_path;     /* the temporary file; NULL when writing a stream */
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

/* Reads a whole file of at most max_bytes into a NUL-terminated malloc'd
 * buffer. A regular file's size is checked (fstat) before reading; a pipe or
 * device is read in chunks and refused as soon as it passes the limit. With
 * ATTN_READ_TEXT a NUL byte is refused at once, naming its line and column
 * (so /dev/zero fails on its first byte). */
#define ATTN_READ_TEXT 1u
attn_status attn_read_file(const char *path, size_t max_bytes, unsigned flags, char **out,
                           size_t *len);

/* attn_read_file for an open stream (stdin, a pipe), named `name` in
 * messages: read in chunks, refused as soon as it passes max_bytes. */
attn_status attn_read_stream(FILE *f, const char *name, size_t max_bytes, unsigned flags, char **out,
                             size_t *len);

/* One line of f (line_no counts from 1 for messages) without its '\n' into
 * *buf (grown as needed, *cap its size; NUL-terminated), its length in *len.
 * A line longer than max_bytes is refused (ATTN_E_FORMAT, naming name:line)
 * before it is read whole; a failed allocation or read is an error, never a
 * quiet end. *eof is set, with ATTN_OK, when f is at its end. */
attn_status attn_read_line(FILE *f, const char *name, size_t line_no, size_t max_bytes, char **buf,
                           size_t *cap, size_t *len, int *eof);

/* ATTN_E_INVALID, naming both, if `out` is an existing regular file that is
 * also one of inputs[0..n) (NULL entries skipped). Compared by device and
 * inode, so another spelling, a symbolic or a hard link counts as the same. */
attn_status attn_check_not_input(const char *out, const char *const *inputs, size_t n);

#ifdef __cplusplus
}
#endif
#endif
