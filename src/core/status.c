/* status.c - the per-thread last-error message. */
#include "attn/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One message per thread: the CLI is single-threaded, but library users may
 * call from several threads and must not see each other's errors. */
static _Thread_local char last_error[1024];

const char *attn_last_error(void) { return last_error; }

void attn_clear_error(void) { last_error[0] = '\0'; }

attn_status attn_error(attn_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

attn_status attn_error_prefix(attn_status s, const char *fmt, ...)
{
    /* Formatted into a buffer of its own first: the old message may be one of
     * the arguments (formatting last_error into itself is undefined). */
    char prefix[sizeof last_error], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    size_t n = strlen(prefix); /* < sizeof last_error */
    memcpy(last_error, prefix, n);
    size_t rest = strnlen(old, sizeof old - 1);
    if (rest > sizeof last_error - 1 - n) rest = sizeof last_error - 1 - n; /* truncated, as vsnprintf */
    memcpy(last_error + n, old, rest);
    last_error[n + rest] = '\0';
    return s;
}

const char *attn_status_str(attn_status s)
{
    switch (s) {
    case ATTN_OK: return "ok";
    case ATTN_E_INVALID: return "invalid argument";
    case ATTN_E_FORMAT: return "malformed input";
    case ATTN_E_IO: return "input/output error";
    case ATTN_E_NOMEM: return "out of memory";
    case ATTN_E_NOTFOUND: return "not found";
    case ATTN_E_INTERNAL: return "internal error";
    }
    return "unknown status";
}
