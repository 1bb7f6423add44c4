/* safetensors_internal.h - what the safetensors reader and writer share. */
#ifndef ATTN_SAFETENSORS_INTERNAL_H
#define ATTN_SAFETENSORS_INTERNAL_H

#include <stddef.h>

/* The reference implementation refuses larger headers; so do both sides. */
#define ATTN_ST_MAX_HEADER 100000000u

/* Offset of the first byte that is not valid UTF-8 (overlong forms,
 * surrogates and code points past U+10FFFF included), or len if all is. */
size_t attn_st_utf8_check(const unsigned char *s, size_t len);

#endif
