/* attn/version.h - the library's version (core floor). */
#ifndef ATTN_VERSION_H
#define ATTN_VERSION_H

#define ATTN_VERSION_MAJOR 0
#define ATTN_VERSION_MINOR 1
#define ATTN_VERSION_PATCH 0
#define ATTN_VERSION_STRING "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version string, e.g. "0.1.0". */
const char *attn_version(void);

#ifdef __cplusplus
}
#endif
#endif
