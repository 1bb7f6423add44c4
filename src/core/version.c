/* version.c - the library's version. */
#include "attn/version.h"

const char *attn_version(void) { return ATTN_VERSION_STRING; }
