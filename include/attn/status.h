/* attn/status.h - error codes and the last error message.
 *
 * Every fallible libattn function returns an attn_status. On failure the
 * library keeps a one-line message (file, line, field, expected vs found where
 * it knows them) that attn_last_error() returns until the next failure in the
 * same thread. The library never prints and never exits.
 */
#ifndef ATTN_STATUS_H
#define ATTN_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attn_status {
    ATTN_OK = 0,
    ATTN_E_INVALID = 1,  /* bad argument: shape, size, NULL, out-of-range value */
    ATTN_E_FORMAT = 2,   /* malformed input data: CSV, JSON, file contents */
    ATTN_E_IO = 3,       /* open/read/write/rename failed */
    ATTN_E_NOMEM = 4,    /* allocation failed or a size overflowed */
    ATTN_E_NOTFOUND = 5, /* a named thing (trace entry, tensor) is absent */
    ATTN_E_INTERNAL = 6  /* a bug in attn */
} attn_status;

/* The message of the most recent failure in this thread ("" if none). */
const char *attn_last_error(void);

/* A short constant name for a status ("invalid argument", ...). */
const char *attn_status_str(attn_status s);

/* Clears the last error message. */
void attn_clear_error(void);

/* Records a formatted message and returns `s`, so that callers can write
 * `return attn_error(ATTN_E_INVALID, "L must be > 0, got %zu", l);`. */
attn_status attn_error(attn_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Puts a formatted prefix before the last error message and returns `s`:
 * `attn_error_prefix(ATTN_E_FORMAT, "%s: ", path)` names the file a lower
 * layer's message was about. (Never pass attn_last_error() to attn_error: it
 * would format the buffer into itself.) */
attn_status attn_error_prefix(attn_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif
