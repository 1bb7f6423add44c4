/* safetensors_write.c - writes float32 tensors as a safetensors file.
 *
 * Every argument is checked before a byte is written, and the file goes
 * through attn_atomic_*: a failed or refused write leaves neither a partial
 * target nor a temporary file behind.
 */
#include "attn/fileio.h"
#include "attn/safetensors.h"
#include "safetensors_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growable string; `oom` sticks so that appends need no checks. */
typedef struct sbuf {
    char *d;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (n > SIZE_MAX - b->n - 1) {
        b->oom = 1;
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap = cap > SIZE_MAX / 2 ? b->n + n + 1 : cap * 2;
        char *d = realloc(b->d, cap);
        if (!d) {
            b->oom = 1;
            return;
        }
        b->d = d;
        b->cap = cap;
    }
    memcpy(b->d + b->n, s, n);
    b->n += n;
    b->d[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* A JSON string literal; the text is known to be valid UTF-8. */
static void sb_json_string(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static void sb_size(sbuf *b, size_t v)
{
    char num[24];
    int len = snprintf(num, sizeof num, "%zu", v);
    sb_put(b, num, (size_t)len);
}

static int utf8_ok(const char *s)
{
    size_t n = strlen(s);
    return attn_st_utf8_check((const unsigned char *)s, n) == n;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first name given twice in names[0..n), or NULL. Sorts `names`. */
static const char *first_duplicate(const char **names, size_t n)
{
    if (n < 2) return NULL;
    qsort(names, n, sizeof *names, cmp_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) return names[i];
    return NULL;
}

static attn_status check_args(const char *path, const attn_st_named *tensors, size_t n,
                              const char *const *meta_keys, const char *const *meta_values,
                              size_t n_meta, size_t *total_bytes)
{
    if (n && !tensors) return attn_error(ATTN_E_INVALID, "%s: the tensor list is NULL", path);
    if (n_meta && (!meta_keys || !meta_values))
        return attn_error(ATTN_E_INVALID, "%s: the metadata lists are NULL", path);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = tensors[i].name;
        const attn_tensor *t = tensors[i].tensor;
        if (!name || !name[0])
            return attn_error(ATTN_E_INVALID, "%s: tensor %zu has no name", path, i);
        if (strcmp(name, "__metadata__") == 0)
            return attn_error(ATTN_E_INVALID,
                              "%s: tensor %zu: the name \"__metadata__\" is reserved", path, i);
        if (!utf8_ok(name))
            return attn_error(ATTN_E_INVALID, "%s: tensor %zu: the name is not valid UTF-8",
                              path, i);
        if (!t) return attn_error(ATTN_E_INVALID, "%s: tensor '%.200s' is NULL", path, name);
        size_t numel;
        if (attn_shape_numel(t->ndim, t->shape, &numel) != ATTN_OK || numel != t->numel)
            return attn_error(ATTN_E_INVALID,
                              "%s: tensor '%.200s': rank %d and its shape do not match numel %zu",
                              path, name, t->ndim, t->numel);
        if (numel && !t->data)
            return attn_error(ATTN_E_INVALID, "%s: tensor '%.200s' has no data", path, name);
        /* numel * 4 cannot overflow: attn_shape_numel checked it. */
        if (numel * sizeof(float) > SIZE_MAX - total)
            return attn_error(ATTN_E_INVALID, "%s: the tensors overflow size_t bytes", path);
        total += numel * sizeof(float);
    }
    for (size_t i = 0; i < n_meta; i++) {
        if (!meta_keys[i] || !meta_values[i])
            return attn_error(ATTN_E_INVALID, "%s: metadata entry %zu is NULL", path, i);
        if (!utf8_ok(meta_keys[i]) || !utf8_ok(meta_values[i]))
            return attn_error(ATTN_E_INVALID, "%s: metadata entry %zu is not valid UTF-8", path,
                              i);
    }
    /* Readers refuse offsets a double cannot hold exactly. */
    if ((uint64_t)total > ((uint64_t)1 << 53))
        return attn_error(ATTN_E_INVALID, "%s: %zu bytes of data, more than 2^53", path, total);
    size_t most = n > n_meta ? n : n_meta;
    const char **names = most ? malloc(most * sizeof *names) : NULL;
    if (most && !names) return attn_error(ATTN_E_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) names[i] = tensors[i].name;
    const char *dup = first_duplicate(names, n);
    attn_status st = ATTN_OK;
    if (dup) {
        st = attn_error(ATTN_E_INVALID, "%s: duplicate tensor name '%.200s'", path, dup);
    } else {
        for (size_t i = 0; i < n_meta; i++) names[i] = meta_keys[i];
        dup = first_duplicate(names, n_meta);
        if (dup) st = attn_error(ATTN_E_INVALID, "%s: duplicate metadata key '%.200s'", path, dup);
    }
    free(names);
    if (st) return st;
    *total_bytes = total;
    return ATTN_OK;
}

/* {"__metadata__":{...},"name":{"dtype":"F32","shape":[..],"data_offsets":[b,e]},...}
 * padded with spaces to a multiple of 8, so the data starts 8-aligned. */
static attn_status build_header(sbuf *b, const char *path, const attn_st_named *tensors,
                                size_t n, const char *const *meta_keys,
                                const char *const *meta_values, size_t n_meta)
{
    sb_str(b, "{");
    if (n_meta) {
        sb_str(b, "\"__metadata__\":{");
        for (size_t i = 0; i < n_meta; i++) {
            if (i) sb_str(b, ",");
            sb_json_string(b, meta_keys[i]);
            sb_str(b, ":");
            sb_json_string(b, meta_values[i]);
        }
        sb_str(b, "}");
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const attn_tensor *t = tensors[i].tensor;
        if (i || n_meta) sb_str(b, ",");
        sb_json_string(b, tensors[i].name);
        sb_str(b, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int k = 0; k < t->ndim; k++) {
            if (k) sb_str(b, ",");
            sb_size(b, t->shape[k]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_size(b, at);
        sb_str(b, ",");
        at += t->numel * sizeof(float);
        sb_size(b, at);
        sb_str(b, "]}");
    }
    sb_str(b, "}");
    while (!b->oom && b->n % 8) sb_str(b, " ");
    if (b->oom) return attn_error(ATTN_E_NOMEM, "%s: out of memory for the header", path);
    if (b->n > ATTN_ST_MAX_HEADER)
        return attn_error(ATTN_E_INVALID,
                          "%s: the header would be %zu bytes, over the limit of %u that readers "
                          "accept",
                          path, b->n, ATTN_ST_MAX_HEADER);
    return ATTN_OK;
}

/* Little-endian whatever the host, in chunks to keep the fwrite calls few. */
static int write_f32_le(FILE *f, const float *x, size_t n)
{
    unsigned char chunk[4096];
    size_t per = sizeof chunk / 4;
    for (size_t i = 0; i < n; i += per) {
        size_t m = n - i < per ? n - i : per;
        for (size_t k = 0; k < m; k++) {
            uint32_t u;
            memcpy(&u, &x[i + k], sizeof u);
            chunk[4 * k] = (unsigned char)u;
            chunk[4 * k + 1] = (unsigned char)(u >> 8);
            chunk[4 * k + 2] = (unsigned char)(u >> 16);
            chunk[4 * k + 3] = (unsigned char)(u >> 24);
        }
        if (fwrite(chunk, 4, m, f) != m) return 0;
    }
    return 1;
}

attn_status attn_safetensors_write(const char *path, const attn_st_named *tensors, size_t n,
                                   const char *const *meta_keys, const char *const *meta_values,
                                   size_t n_meta)
{
    if (!path) return attn_error(ATTN_E_INVALID, "attn_safetensors_write: NULL path");
    size_t total;
    attn_status st = check_args(path, tensors, n, meta_keys, meta_values, n_meta, &total);
    if (st) return st;
    sbuf header = {0};
    st = build_header(&header, path, tensors, n, meta_keys, meta_values, n_meta);
    if (st) {
        free(header.d);
        return st;
    }
    attn_atomic_file af;
    st = attn_atomic_open(&af, path);
    if (st) {
        free(header.d);
        return st;
    }
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)header.n >> (8 * i));
    int ok = fwrite(len, 1, 8, af.f) == 8 && fwrite(header.d, 1, header.n, af.f) == header.n;
    for (size_t i = 0; ok && i < n; i++)
        ok = write_f32_le(af.f, tensors[i].tensor->data, tensors[i].tensor->numel);
    free(header.d);
    if (!ok) {
        int e = errno;
        attn_atomic_abort(&af);
        return attn_error(ATTN_E_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return attn_atomic_commit(&af);
}
