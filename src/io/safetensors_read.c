/* safetensors_read.c - a strict safetensors reader.
 *
 * The header is checked as strictly as the reference implementation
 * (safetensors/src/tensor.rs) so that a file we accept is one PyTorch users
 * can load too, and every refusal is one line naming the file and the tensor
 * or byte offset at fault. The data buffer is never copied: files are mapped
 * read-only and tensors are converted to float32 only when read.
 */
#include "attn/safetensors.h"
#include "safetensors_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_EXACT_INT 9007199254740992.0 /* 2^53: above it a double skips integers */
#define SHOW_MAX 120                     /* longest name quoted in a message */

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [ATTN_DTYPE_BOOL] = {"BOOL", 1},       [ATTN_DTYPE_U8] = {"U8", 1},
    [ATTN_DTYPE_I8] = {"I8", 1},           [ATTN_DTYPE_I16] = {"I16", 2},
    [ATTN_DTYPE_U16] = {"U16", 2},         [ATTN_DTYPE_F16] = {"F16", 2},
    [ATTN_DTYPE_BF16] = {"BF16", 2},       [ATTN_DTYPE_I32] = {"I32", 4},
    [ATTN_DTYPE_U32] = {"U32", 4},         [ATTN_DTYPE_F32] = {"F32", 4},
    [ATTN_DTYPE_F64] = {"F64", 8},         [ATTN_DTYPE_I64] = {"I64", 8},
    [ATTN_DTYPE_U64] = {"U64", 8},         [ATTN_DTYPE_F8_E5M2] = {"F8_E5M2", 1},
    [ATTN_DTYPE_F8_E4M3] = {"F8_E4M3", 1},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

const char *attn_dtype_name(attn_dtype d)
{
    return (unsigned)d < N_DTYPES ? dtypes[d].name : "?";
}

size_t attn_dtype_size(attn_dtype d)
{
    return (unsigned)d < N_DTYPES ? dtypes[d].size : 0;
}

struct attn_safetensors {
    char *name;                 /* printable file name, for messages */
    void *map;                  /* the mapping of a file, or NULL */
    size_t map_size;
    const unsigned char *data;  /* the data buffer (after the header) */
    size_t data_size;
    cJSON *root;                /* owns the tensor names and metadata strings */
    attn_st_info *info;         /* sorted by offset */
    size_t n;
    const attn_st_info **by_name; /* into info, sorted by name */
    const char **meta_key, **meta_val;
    size_t n_meta;
};

size_t attn_st_utf8_check(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t more;
        unsigned long cp, min;
        if (c >= 0xC2 && c <= 0xDF) more = 1, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0) more = 2, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4) more = 3, cp = c & 0x07, min = 0x10000;
        else return i;
        if (len - i <= more) return i;
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += more + 1;
    }
    return len;
}

/* ---- messages -------------------------------------------------------------
 * Names come from the file and may hold newlines or be huge; a message must
 * stay one short line, so they are quoted through show(). */
typedef struct shown {
    char s[SHOW_MAX + 4];
} shown;

static const char *show(shown *b, const char *s)
{
    size_t i = 0;
    for (; s[i] && i < SHOW_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        b->s[i] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
    }
    if (s[i]) memcpy(b->s + i, "...", 3), i += 3;
    b->s[i] = '\0';
    return b->s;
}

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

/* "<file>: <message>" */
static attn_status PRINTF_LIKE(3, 4) file_error(attn_status s, const attn_safetensors *st,
                                               const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return attn_error(s, "%s: %s", st->name, msg);
}

/* "<file>: tensor '<name>': <message>" */
static attn_status PRINTF_LIKE(4, 5) tensor_error(attn_status s, const attn_safetensors *st,
                                                 const char *tensor, const char *fmt, ...)
{
    char msg[640];
    shown b;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return attn_error(s, "%s: tensor '%s': %s", st->name, show(&b, tensor), msg);
}

/* What a JSON value is, for "expected X, found Y". */
static const char *describe(const cJSON *item, char *buf, size_t n)
{
    if (!item) return "nothing";
    if (cJSON_IsNumber(item)) {
        snprintf(buf, n, "%.17g", item->valuedouble);
        return buf;
    }
    if (cJSON_IsString(item)) return "a string";
    if (cJSON_IsArray(item)) return "an array";
    if (cJSON_IsObject(item)) return "an object";
    if (cJSON_IsBool(item)) return "a boolean";
    if (cJSON_IsNull(item)) return "null";
    return "an invalid value";
}

static void format_shape(char *buf, size_t n, int ndim, const size_t *shape)
{
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ", %zu" : "%zu", shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

/* ---- header parsing ------------------------------------------------------ */

/* A JSON number that is an exact non-negative integer fitting a size_t.
 * cJSON stores every number as a double, so 1.5, -1 and 2^60 (which a double
 * cannot hold exactly) all arrive here and must be refused. */
static int json_size(const cJSON *item, size_t *out)
{
    if (!cJSON_IsNumber(item)) return 0;
    double d = item->valuedouble;
    if (!(d >= 0) || d > MAX_EXACT_INT || d != floor(d) || d > (double)SIZE_MAX) return 0;
    *out = (size_t)d;
    return 1;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* cJSON keeps every duplicate key (lookups see the first), so duplicates must
 * be found by hand: sort the keys and compare neighbours. NULL if none. */
static attn_status find_duplicate(const cJSON *obj, size_t count, const char **dup)
{
    *dup = NULL;
    if (count < 2) return ATTN_OK;
    const char **keys = malloc(count * sizeof *keys);
    if (!keys) return ATTN_E_NOMEM;
    size_t k = 0;
    for (const cJSON *c = obj->child; c && k < count; c = c->next) keys[k++] = c->string;
    qsort(keys, k, sizeof *keys, cmp_str_ptr);
    for (size_t i = 1; i < k && !*dup; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0) *dup = keys[i];
    free(keys);
    return ATTN_OK;
}

static attn_status parse_metadata(attn_safetensors *st, const cJSON *meta)
{
    char buf[40];
    if (cJSON_IsNull(meta)) return ATTN_OK; /* the reference reads null as "none" */
    if (!cJSON_IsObject(meta))
        return file_error(ATTN_E_FORMAT, st,
                          "\"__metadata__\" must be an object of strings, found %s",
                          describe(meta, buf, sizeof buf));
    size_t n = (size_t)cJSON_GetArraySize(meta);
    const char *dup;
    shown b;
    if (find_duplicate(meta, n, &dup)) return file_error(ATTN_E_NOMEM, st, "out of memory");
    if (dup)
        return file_error(ATTN_E_FORMAT, st, "duplicate \"__metadata__\" key '%s'",
                          show(&b, dup));
    if (!n) return ATTN_OK;
    st->meta_key = malloc(n * sizeof *st->meta_key);
    st->meta_val = malloc(n * sizeof *st->meta_val);
    if (!st->meta_key || !st->meta_val) return file_error(ATTN_E_NOMEM, st, "out of memory");
    for (const cJSON *c = meta->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return file_error(ATTN_E_FORMAT, st,
                              "\"__metadata__\" value of '%s' must be a string, found %s",
                              show(&b, c->string), describe(c, buf, sizeof buf));
        st->meta_key[st->n_meta] = c->string;
        st->meta_val[st->n_meta] = c->valuestring;
        st->n_meta++;
    }
    return ATTN_OK;
}

/* The member `key` of a tensor entry; NULL (and an error) if it is missing
 * or given twice. */
static attn_status entry_member(const attn_safetensors *st, const cJSON *entry, const char *key,
                                const cJSON **out)
{
    *out = NULL;
    for (const cJSON *c = entry->child; c; c = c->next) {
        if (strcmp(c->string, key) != 0) continue;
        if (*out)
            return tensor_error(ATTN_E_FORMAT, st, entry->string, "duplicate key \"%s\"", key);
        *out = c;
    }
    if (!*out) return tensor_error(ATTN_E_FORMAT, st, entry->string, "missing \"%s\"", key);
    return ATTN_OK;
}

static attn_status parse_entry(const attn_safetensors *st, const cJSON *entry, attn_st_info *info)
{
    const char *name = entry->string;
    char buf[40], sbuf[200];
    if (!cJSON_IsObject(entry))
        return tensor_error(ATTN_E_FORMAT, st, name,
                            "expected an object {\"dtype\", \"shape\", \"data_offsets\"}, found %s",
                            describe(entry, buf, sizeof buf));
    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL;
    attn_status s = entry_member(st, entry, "dtype", &dtype);
    if (!s) s = entry_member(st, entry, "shape", &shape);
    if (!s) s = entry_member(st, entry, "data_offsets", &offsets);
    if (s) return s;

    if (!cJSON_IsString(dtype))
        return tensor_error(ATTN_E_FORMAT, st, name, "\"dtype\" must be a string, found %s",
                            describe(dtype, buf, sizeof buf));
    size_t d = 0;
    while (d < N_DTYPES && strcmp(dtypes[d].name, dtype->valuestring) != 0) d++;
    if (d == N_DTYPES) {
        shown b;
        return tensor_error(ATTN_E_FORMAT, st, name, "unknown dtype '%s'",
                            show(&b, dtype->valuestring));
    }
    memset(info, 0, sizeof *info);
    info->name = name;
    info->dtype = (attn_dtype)d;

    if (!cJSON_IsArray(shape))
        return tensor_error(ATTN_E_FORMAT, st, name, "\"shape\" must be an array, found %s",
                            describe(shape, buf, sizeof buf));
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > ATTN_ST_MAX_DIMS)
        return tensor_error(ATTN_E_FORMAT, st, name,
                            "shape has %d dimensions, more than the %d supported", ndim,
                            ATTN_ST_MAX_DIMS);
    info->ndim = ndim;
    int i = 0;
    for (const cJSON *c = shape->child; c; c = c->next, i++)
        if (!json_size(c, &info->shape[i]))
            return tensor_error(ATTN_E_FORMAT, st, name,
                                "shape[%d] must be a non-negative integer <= 2^53, found %s", i,
                                describe(c, buf, sizeof buf));
    format_shape(sbuf, sizeof sbuf, ndim, info->shape);

    if (!cJSON_IsArray(offsets))
        return tensor_error(ATTN_E_FORMAT, st, name,
                            "\"data_offsets\" must be an array [begin, end], found %s",
                            describe(offsets, buf, sizeof buf));
    if (cJSON_GetArraySize(offsets) != 2)
        return tensor_error(ATTN_E_FORMAT, st, name,
                            "\"data_offsets\" must be an array [begin, end], found %d values",
                            cJSON_GetArraySize(offsets));
    const cJSON *b0 = offsets->child, *b1 = b0->next;
    if (!json_size(b0, &info->begin))
        return tensor_error(ATTN_E_FORMAT, st, name,
                            "data_offsets begin must be a non-negative integer <= 2^53, found %s",
                            describe(b0, buf, sizeof buf));
    if (!json_size(b1, &info->end))
        return tensor_error(ATTN_E_FORMAT, st, name,
                            "data_offsets end must be a non-negative integer <= 2^53, found %s",
                            describe(b1, buf, sizeof buf));

    size_t numel = 1, esize = dtypes[d].size;
    for (i = 0; i < ndim; i++) {
        if (info->shape[i] && numel > SIZE_MAX / info->shape[i])
            return tensor_error(ATTN_E_FORMAT, st, name, "shape %s overflows the element count",
                                sbuf);
        numel *= info->shape[i];
    }
    if (numel > SIZE_MAX / esize)
        return tensor_error(ATTN_E_FORMAT, st, name, "shape %s of %s overflows the byte count",
                            sbuf, dtypes[d].name);
    info->numel = numel;
    if (info->begin > info->end)
        return tensor_error(ATTN_E_FORMAT, st, name,
                            "data_offsets [%zu, %zu]: begin is past end", info->begin, info->end);
    if (info->end - info->begin != numel * esize)
        return tensor_error(ATTN_E_FORMAT, st, name,
                            "data_offsets [%zu, %zu] hold %zu bytes, but shape %s of %s needs %zu",
                            info->begin, info->end, info->end - info->begin, sbuf,
                            dtypes[d].name, numel * esize);
    return ATTN_OK;
}

static int cmp_offset(const void *a, const void *b)
{
    const attn_st_info *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name); /* a deterministic order for empty tensors */
}

static int cmp_info_name(const void *a, const void *b)
{
    return strcmp((*(const attn_st_info *const *)a)->name, (*(const attn_st_info *const *)b)->name);
}

/* The data offsets, sorted, must tile [0, data_size) exactly. */
static attn_status check_layout(const attn_safetensors *st)
{
    size_t at = 0;
    shown a;
    for (size_t i = 0; i < st->n; i++) {
        const attn_st_info *t = &st->info[i];
        if (t->begin == at) {
            at = t->end;
            continue;
        }
        if (i == 0)
            return tensor_error(ATTN_E_FORMAT, st, t->name,
                                "data_offsets [%zu, %zu] do not begin at 0, where the first "
                                "tensor must",
                                t->begin, t->end);
        const attn_st_info *p = &st->info[i - 1];
        if (t->begin > at)
            return tensor_error(ATTN_E_FORMAT, st, t->name,
                                "data_offsets [%zu, %zu] leave a gap of %zu bytes after tensor "
                                "'%s' [%zu, %zu]",
                                t->begin, t->end, t->begin - at, show(&a, p->name), p->begin,
                                p->end);
        return tensor_error(ATTN_E_FORMAT, st, t->name,
                            "data_offsets [%zu, %zu] overlap tensor '%s' [%zu, %zu]", t->begin,
                            t->end, show(&a, p->name), p->begin, p->end);
    }
    if (at != st->data_size)
        return file_error(ATTN_E_FORMAT, st,
                          "the tensors end at byte %zu of the data buffer, but it holds %zu "
                          "bytes (the data must end where the file does)",
                          at, st->data_size);
    return ATTN_OK;
}

static uint64_t ld64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Validates the whole file and fills st; on failure st is left for close(). */
static attn_status parse(attn_safetensors *st, const unsigned char *bytes, size_t size)
{
    if (size < 8)
        return file_error(ATTN_E_FORMAT, st,
                          "file is %zu bytes, too short for the 8-byte header length", size);
    uint64_t hlen = ld64(bytes);
    if (hlen > ATTN_ST_MAX_HEADER)
        return file_error(ATTN_E_FORMAT, st, "header length %llu is over the limit of %u bytes",
                          (unsigned long long)hlen, ATTN_ST_MAX_HEADER);
    if (hlen > size - 8)
        return file_error(ATTN_E_FORMAT, st,
                          "header length %llu runs past the end of the file (size %zu)",
                          (unsigned long long)hlen, size);
    size_t n = (size_t)hlen;
    const unsigned char *h = bytes + 8;
    size_t bad = attn_st_utf8_check(h, n);
    if (bad < n)
        return file_error(ATTN_E_FORMAT, st,
                          "header is not valid UTF-8 at byte %zu (file offset %zu)", bad, bad + 8);
    /* cJSON wants a NUL-terminated string; a NUL inside the header would
     * make it stop early and accept the prefix. */
    const unsigned char *nul = memchr(h, 0, n);
    if (nul)
        return file_error(ATTN_E_FORMAT, st,
                          "header is not valid JSON near byte %zu (file offset %zu): a NUL byte",
                          (size_t)(nul - h), (size_t)(nul - h) + 8);
    char *text = malloc(n + 1);
    if (!text) return file_error(ATTN_E_NOMEM, st, "out of memory for a %zu-byte header", n);
    memcpy(text, h, n);
    text[n] = '\0';
    const char *end = NULL;
    /* The end pointer, not cJSON_GetErrorPtr(): that one is a process-wide
     * global, and other threads may be parsing too. */
    st->root = cJSON_ParseWithLengthOpts(text, n + 1, &end, 1);
    size_t at = end ? (size_t)(end - text) : 0;
    free(text);
    if (!st->root)
        return file_error(ATTN_E_FORMAT, st,
                          "header is not valid JSON near byte %zu (file offset %zu)", at, at + 8);
    char buf[40];
    if (!cJSON_IsObject(st->root))
        return file_error(ATTN_E_FORMAT, st, "header must be a JSON object, found %s",
                          describe(st->root, buf, sizeof buf));
    st->data = h + n;
    st->data_size = size - 8 - n;

    size_t count = (size_t)cJSON_GetArraySize(st->root);
    const char *dup;
    shown b;
    if (find_duplicate(st->root, count, &dup))
        return file_error(ATTN_E_NOMEM, st, "out of memory");
    if (dup) {
        if (strcmp(dup, "__metadata__") == 0)
            return file_error(ATTN_E_FORMAT, st, "duplicate \"__metadata__\" entry");
        return file_error(ATTN_E_FORMAT, st, "duplicate tensor name '%s'", show(&b, dup));
    }
    if (count) {
        st->info = malloc(count * sizeof *st->info);
        st->by_name = malloc(count * sizeof *st->by_name);
        if (!st->info || !st->by_name) return file_error(ATTN_E_NOMEM, st, "out of memory");
    }
    for (const cJSON *c = st->root->child; c; c = c->next) {
        attn_status s;
        if (strcmp(c->string, "__metadata__") == 0)
            s = parse_metadata(st, c);
        else if (!(s = parse_entry(st, c, &st->info[st->n])))
            st->n++;
        if (s) return s;
    }
    /* qsort needs a non-NULL base even for no elements. */
    if (st->n > 1) qsort(st->info, st->n, sizeof *st->info, cmp_offset);
    attn_status s = check_layout(st);
    if (s) return s;
    for (size_t i = 0; i < st->n; i++) st->by_name[i] = &st->info[i];
    if (st->n > 1) qsort(st->by_name, st->n, sizeof *st->by_name, cmp_info_name);
    return ATTN_OK;
}

/* ---- opening and closing ------------------------------------------------- */

static attn_status new_handle(attn_safetensors **out, const char *name)
{
    attn_safetensors *st = calloc(1, sizeof *st);
    char *copy = st ? malloc(strlen(name) + 1) : NULL;
    if (!copy) {
        free(st);
        return attn_error(ATTN_E_NOMEM, "%s: out of memory", name);
    }
    /* The file name appears in every message: keep it on one line. */
    size_t i = 0;
    for (; name[i]; i++)
        copy[i] = ((unsigned char)name[i] < 0x20 || name[i] == 0x7F) ? '?' : name[i];
    copy[i] = '\0';
    st->name = copy;
    *out = st;
    return ATTN_OK;
}

void attn_safetensors_close(attn_safetensors *st)
{
    if (!st) return;
    if (st->map) munmap(st->map, st->map_size);
    cJSON_Delete(st->root);
    free(st->info);
    free(st->by_name);
    free(st->meta_key);
    free(st->meta_val);
    free(st->name);
    free(st);
}

attn_status attn_safetensors_open_memory(attn_safetensors **out, const void *data, size_t size,
                                         const char *name)
{
    if (!out) return attn_error(ATTN_E_INVALID, "attn_safetensors_open_memory: NULL handle");
    *out = NULL;
    if (!data && size)
        return attn_error(ATTN_E_INVALID, "attn_safetensors_open_memory: NULL data of %zu bytes",
                          size);
    attn_safetensors *st;
    attn_status s = new_handle(&st, name ? name : "<memory>");
    if (s) return s;
    s = parse(st, data, size);
    if (s) {
        attn_safetensors_close(st);
        return s;
    }
    *out = st;
    return ATTN_OK;
}

attn_status attn_safetensors_open(attn_safetensors **out, const char *path)
{
    if (!out) return attn_error(ATTN_E_INVALID, "attn_safetensors_open: NULL handle");
    *out = NULL;
    if (!path) return attn_error(ATTN_E_INVALID, "attn_safetensors_open: NULL path");
    attn_safetensors *st;
    attn_status s = new_handle(&st, path);
    if (s) return s;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0) {
        s = file_error(ATTN_E_IO, st, "cannot open: %s", strerror(errno));
    } else if (fstat(fd, &sb) != 0) {
        s = file_error(ATTN_E_IO, st, "cannot stat: %s", strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        s = file_error(ATTN_E_IO, st, "not a regular file");
    } else if ((uintmax_t)sb.st_size > SIZE_MAX) {
        s = file_error(ATTN_E_IO, st, "too large to map (%jd bytes)", (intmax_t)sb.st_size);
    } else if (sb.st_size < 8) {
        /* mmap of an empty file fails; report the real problem instead. */
        s = parse(st, (const unsigned char *)"", (size_t)sb.st_size);
    } else {
        void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            s = file_error(ATTN_E_IO, st, "cannot map %zu bytes: %s", (size_t)sb.st_size,
                           strerror(errno));
        } else {
            st->map = map;
            st->map_size = (size_t)sb.st_size;
            s = parse(st, map, st->map_size);
        }
    }
    if (fd >= 0) close(fd); /* the mapping stays valid without the descriptor */
    if (s) {
        attn_safetensors_close(st);
        return s;
    }
    *out = st;
    return ATTN_OK;
}

/* ---- queries ------------------------------------------------------------- */

const char *attn_safetensors_name(const attn_safetensors *st) { return st ? st->name : ""; }

size_t attn_safetensors_count(const attn_safetensors *st) { return st ? st->n : 0; }

attn_status attn_safetensors_info_at(const attn_safetensors *st, size_t i, attn_st_info *info)
{
    if (!st || !info)
        return attn_error(ATTN_E_INVALID, "attn_safetensors_info_at: NULL argument");
    if (i >= st->n)
        return file_error(ATTN_E_INVALID, st, "tensor index %zu out of range (%zu tensors)", i,
                          st->n);
    *info = st->info[i];
    return ATTN_OK;
}

static const attn_st_info *lookup(const attn_safetensors *st, const char *name)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const attn_st_info *t = st->by_name[mid];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

attn_status attn_safetensors_info(const attn_safetensors *st, const char *name, attn_st_info *info)
{
    if (!st || !name || !info)
        return attn_error(ATTN_E_INVALID, "attn_safetensors_info: NULL argument");
    const attn_st_info *t = lookup(st, name);
    shown b;
    if (!t) return file_error(ATTN_E_NOTFOUND, st, "no tensor '%s'", show(&b, name));
    *info = *t;
    return ATTN_OK;
}

const char *attn_safetensors_metadata(const attn_safetensors *st, const char *key)
{
    if (!st || !key) return NULL;
    for (size_t i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_key[i], key) == 0) return st->meta_val[i];
    return NULL;
}

size_t attn_safetensors_metadata_count(const attn_safetensors *st) { return st ? st->n_meta : 0; }

attn_status attn_safetensors_metadata_at(const attn_safetensors *st, size_t i, const char **key,
                                         const char **value)
{
    if (!st || !key || !value)
        return attn_error(ATTN_E_INVALID, "attn_safetensors_metadata_at: NULL argument");
    if (i >= st->n_meta)
        return file_error(ATTN_E_INVALID, st, "metadata index %zu out of range (%zu entries)",
                          i, st->n_meta);
    *key = st->meta_key[i];
    *value = st->meta_val[i];
    return ATTN_OK;
}

/* ---- conversion to float32 ----------------------------------------------- *
 * Bytes are assembled explicitly: the format is little-endian whatever the
 * host is, and a buffer from open_memory need not be aligned. */

static uint16_t ld16(const unsigned char *p) { return (uint16_t)(p[0] | (unsigned)p[1] << 8); }

static uint32_t ld32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Bit-exact: every half (subnormals, infinities, NaN payloads) is a float. */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    if (exp == 0x1F) return f32_from_bits(sign | 0x7F800000u | mant << 13);
    if (exp == 0) {
        if (mant == 0) return f32_from_bits(sign);
        /* Subnormal: shift the mantissa up until it is normal. */
        uint32_t e = 113; /* 127 - 15 + 1 */
        while (!(mant & 0x400)) mant <<= 1, e--;
        return f32_from_bits(sign | e << 23 | (mant & 0x3FF) << 13);
    }
    return f32_from_bits(sign | (exp + 112) << 23 | mant << 13);
}

/* float8 e4m3fn: bias 7, no infinities, S.1111.111 is NaN. */
static float f8e4m3_to_f32(unsigned char b)
{
    float sign = (b & 0x80) ? -1.0f : 1.0f;
    unsigned exp = (b >> 3) & 0xF, mant = b & 7;
    if (exp == 0xF && mant == 7) return sign * NAN;
    if (exp == 0) return sign * ldexpf((float)mant, -9);
    return sign * ldexpf((float)(8 + mant), (int)exp - 10);
}

static void convert(attn_dtype d, const unsigned char *p, size_t n, float *out)
{
    size_t i;
    switch (d) {
    case ATTN_DTYPE_BOOL: for (i = 0; i < n; i++) out[i] = p[i] ? 1.0f : 0.0f; break;
    case ATTN_DTYPE_U8: for (i = 0; i < n; i++) out[i] = (float)p[i]; break;
    case ATTN_DTYPE_I8: for (i = 0; i < n; i++) out[i] = (float)(int8_t)p[i]; break;
    case ATTN_DTYPE_I16: for (i = 0; i < n; i++) out[i] = (float)(int16_t)ld16(p + 2 * i); break;
    case ATTN_DTYPE_U16: for (i = 0; i < n; i++) out[i] = (float)ld16(p + 2 * i); break;
    case ATTN_DTYPE_F16: for (i = 0; i < n; i++) out[i] = f16_to_f32(ld16(p + 2 * i)); break;
    case ATTN_DTYPE_BF16:
        for (i = 0; i < n; i++) out[i] = f32_from_bits((uint32_t)ld16(p + 2 * i) << 16);
        break;
    case ATTN_DTYPE_I32: for (i = 0; i < n; i++) out[i] = (float)(int32_t)ld32(p + 4 * i); break;
    case ATTN_DTYPE_U32: for (i = 0; i < n; i++) out[i] = (float)ld32(p + 4 * i); break;
    case ATTN_DTYPE_F32: for (i = 0; i < n; i++) out[i] = f32_from_bits(ld32(p + 4 * i)); break;
    case ATTN_DTYPE_F64:
        for (i = 0; i < n; i++) {
            uint64_t u = ld64(p + 8 * i);
            double v;
            memcpy(&v, &u, sizeof v);
            out[i] = (float)v; /* round to nearest; out of range becomes +-inf */
        }
        break;
    case ATTN_DTYPE_I64: for (i = 0; i < n; i++) out[i] = (float)(int64_t)ld64(p + 8 * i); break;
    case ATTN_DTYPE_U64: for (i = 0; i < n; i++) out[i] = (float)ld64(p + 8 * i); break;
    case ATTN_DTYPE_F8_E5M2:
        /* e5m2 is the top byte of a half. */
        for (i = 0; i < n; i++) out[i] = f16_to_f32((uint16_t)(p[i] << 8));
        break;
    case ATTN_DTYPE_F8_E4M3: for (i = 0; i < n; i++) out[i] = f8e4m3_to_f32(p[i]); break;
    }
}

attn_status attn_safetensors_read(const attn_safetensors *st, const char *name, attn_tensor *out)
{
    if (!out) return attn_error(ATTN_E_INVALID, "attn_safetensors_read: NULL tensor");
    memset(out, 0, sizeof *out);
    if (!st || !name) return attn_error(ATTN_E_INVALID, "attn_safetensors_read: NULL argument");
    const attn_st_info *t = lookup(st, name);
    shown b;
    if (!t) return file_error(ATTN_E_NOTFOUND, st, "no tensor '%s'", show(&b, name));
    if (t->ndim > ATTN_MAX_DIMS)
        return tensor_error(ATTN_E_INVALID, st, t->name,
                            "rank %d is more than the %d dimensions a tensor can hold", t->ndim,
                            ATTN_MAX_DIMS);
    if (t->numel > SIZE_MAX / sizeof(float))
        return tensor_error(ATTN_E_NOMEM, st, t->name, "%zu elements overflow a float32 buffer",
                            t->numel);
    if (attn_tensor_create(out, t->ndim, t->shape) != ATTN_OK)
        return tensor_error(ATTN_E_NOMEM, st, t->name, "cannot allocate %zu floats", t->numel);
    convert(t->dtype, st->data + t->begin, t->numel, out->data);
    return ATTN_OK;
}
