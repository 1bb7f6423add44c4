/* fuzz_util.h - what the libFuzzer harnesses share.
 *
 * Readers that take a path get the input written to a file in a directory
 * made once per process (under $FUZZ_TMPDIR, else /dev/shm, else $TMPDIR or
 * /tmp) and removed at exit. */
#ifndef ATTN_FUZZ_UTIL_H
#define ATTN_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* The per-process scratch directory. */
const char *fuzz_dir(void);
/* Writes data to <fuzz_dir>/<name>; returns the path (static, per name
 * slot: valid until the next call with the same name). Aborts on failure:
 * a harness that cannot write its file finds nothing. */
const char *fuzz_write(const char *name, const uint8_t *data, size_t size);
/* A NUL-terminated malloc'd copy (aborts on out of memory). */
char *fuzz_cstr(const uint8_t *data, size_t size);

#endif
