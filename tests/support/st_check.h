/* st_check.h - helpers of the safetensors and atomic-file tests
 * (test_safetensors*.c): files built byte by byte, the one-line message. */
#ifndef ATTN_ST_CHECK_H
#define ATTN_ST_CHECK_H

#include "test_support.h"

uint32_t bits_of(float f);
/* 8-byte little-endian length, the header as given, then the data (to free);
 * its size in *size. */
unsigned char *make_st(const char *header, const void *data, size_t dlen, size_t *size);
/* attn_last_error() is one line that starts with "<file>:". */
void assert_one_line(const char *file);
void assert_msg_has(const char *words);
/* Entries of a directory, not . and .. */
size_t count_dir_entries(const char *dir);
/* A fresh empty directory under the test tmpdir (a ring of 4 buffers). */
const char *fresh_dir(const char *name);
/* Up to 64 KiB of a file (to free); the byte count in *n. */
char *read_all(const char *path, size_t *n);

#endif
