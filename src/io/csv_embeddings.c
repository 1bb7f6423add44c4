/* csv_embeddings.c - a strict reader for embeddings in CSV.
 *
 * Small on purpose: one record at a time, RFC 4180 quoting, and an error for
 * anything unexpected that names the file, the line and the column (1-based
 * cell number) so that a user can fix the file without guessing.
 */
#include "attn/embeddings.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <strings.h>

#include "attn/fileio.h"

#define MAX_FILE_BYTES ((size_t)1 << 30) /* 1 GiB: far above 4096 rows of any sane width */

/* One record's cells, compactly: every cell's text NUL-terminated in one
 * buffer, and per cell its offset and whether it was quoted (9 bytes a cell
 * beside the text; a 100 MB header of one-letter names needed 2.4 GB when
 * each cell was its own allocation). */
typedef struct record {
    size_t *off;
    unsigned char *quoted;
    size_t n, cap;
    char *text;
    size_t tlen, tcap;
    size_t line; /* line on which the record starts */
    size_t max_cells; /* more is an error */
} record;

typedef struct parser {
    const char *s;
    size_t len, pos;
    size_t line;
    const char *name;
} parser;

static const char *cell_text(const record *r, size_t i) { return r->text + r->off[i]; }

static void record_clear(record *r)
{
    r->n = 0;
    r->tlen = 0;
}

static void record_free(record *r)
{
    free(r->off);
    free(r->quoted);
    free(r->text);
    memset(r, 0, sizeof *r);
}

/* Is buf[0..n) valid UTF-8 (no overlong forms, surrogates or code points
 * above U+10FFFF)? Returns n, or the offset of the first bad byte. */
static size_t utf8_valid_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || i + len > n) return i;
        unsigned long cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const unsigned long min_of[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_of[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += len;
    }
    return n;
}

static attn_status push_cell(parser *p, record *r, const char *buf, size_t n, int quoted)
{
    size_t bad = utf8_valid_prefix((const unsigned char *)buf, n);
    if (bad < n)
        return attn_error(ATTN_E_FORMAT, "%s:%zu:%zu: not valid UTF-8 (byte 0x%02x at offset %zu of the cell)",
                          p->name, p->line, r->n + 1, (unsigned char)buf[bad], bad);
    if (r->n == r->max_cells)
        return attn_error(ATTN_E_FORMAT, "%s:%zu:%zu: more than %zu cells (at most %d dimensions)",
                          p->name, r->line, r->n + 1, r->max_cells, ATTN_CSV_MAX_DIMS);
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 16;
        size_t *o = realloc(r->off, ncap * sizeof *o);
        if (o) r->off = o;
        unsigned char *q = o ? realloc(r->quoted, ncap) : NULL;
        if (!q) return attn_error(ATTN_E_NOMEM, "%s:%zu: out of memory", p->name, p->line);
        r->quoted = q;
        r->cap = ncap;
    }
    if (r->tcap - r->tlen < n + 1) {
        size_t ncap = r->tcap ? r->tcap : 256;
        while (ncap - r->tlen < n + 1) ncap *= 2;
        char *t = realloc(r->text, ncap);
        if (!t) return attn_error(ATTN_E_NOMEM, "%s:%zu: out of memory", p->name, p->line);
        r->text = t;
        r->tcap = ncap;
    }
    memcpy(r->text + r->tlen, buf, n);
    r->text[r->tlen + n] = '\0';
    r->off[r->n] = r->tlen;
    r->quoted[r->n] = (unsigned char)quoted;
    r->tlen += n + 1;
    r->n++;
    return ATTN_OK;
}

/* A growable byte buffer for one cell's text. */
typedef struct buf {
    char *d;
    size_t n, cap;
} buf;

static int buf_put(buf *b, char c)
{
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 64;
        char *d = realloc(b->d, ncap);
        if (!d) return 0;
        b->d = d;
        b->cap = ncap;
    }
    b->d[b->n++] = c;
    return 1;
}

/* Is the rest of the current line blank? (Blank lines are skipped.) */
static int line_is_blank(const parser *p)
{
    for (size_t i = p->pos; i < p->len && p->s[i] != '\n'; i++)
        if (!isspace((unsigned char)p->s[i])) return 0;
    return 1;
}

/* Reads the next non-blank record. Returns ATTN_OK with r->n == 0 at EOF. */
static attn_status read_record(parser *p, record *r)
{
    record_clear(r);
    while (p->pos < p->len && line_is_blank(p)) {
        while (p->pos < p->len && p->s[p->pos] != '\n') p->pos++;
        if (p->pos < p->len) p->pos++, p->line++;
    }
    if (p->pos >= p->len) return ATTN_OK;
    r->line = p->line;
    buf b = {0};
    attn_status st = ATTN_OK;
    for (;;) {
        size_t col = r->n + 1;
        int quoted = 0;
        b.n = 0;
        /* Leading spaces before a quote are tolerated. */
        size_t q = p->pos;
        while (q < p->len && (p->s[q] == ' ' || p->s[q] == '\t')) q++;
        if (q < p->len && p->s[q] == '"') {
            quoted = 1;
            p->pos = q + 1;
            for (;;) {
                if (p->pos >= p->len) {
                    st = attn_error(ATTN_E_FORMAT, "%s:%zu:%zu: unterminated quoted cell",
                                    p->name, r->line, col);
                    goto out;
                }
                char c = p->s[p->pos++];
                if (c == '"') {
                    if (p->pos < p->len && p->s[p->pos] == '"') {
                        p->pos++;
                        if (!buf_put(&b, '"')) goto nomem;
                        continue;
                    }
                    break;
                }
                if (c == '\n') p->line++;
                if (c == '\0') {
                    st = attn_error(ATTN_E_FORMAT, "%s:%zu:%zu: unexpected NUL byte", p->name,
                                    p->line, col);
                    goto out;
                }
                if (!buf_put(&b, c)) goto nomem;
            }
            while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                                       p->s[p->pos] == '\r'))
                p->pos++;
            if (p->pos < p->len && p->s[p->pos] != ',' && p->s[p->pos] != '\n') {
                st = attn_error(ATTN_E_FORMAT,
                                "%s:%zu:%zu: expected ',' or end of line after a quoted cell, "
                                "found '%c'",
                                p->name, p->line, col, p->s[p->pos]);
                goto out;
            }
        } else {
            while (p->pos < p->len && p->s[p->pos] != ',' && p->s[p->pos] != '\n') {
                char c = p->s[p->pos++];
                if (c == '\0') {
                    st = attn_error(ATTN_E_FORMAT, "%s:%zu:%zu: unexpected NUL byte", p->name,
                                    p->line, col);
                    goto out;
                }
                if (c == '"') {
                    st = attn_error(ATTN_E_FORMAT,
                                    "%s:%zu:%zu: a quote inside an unquoted cell (quote the "
                                    "whole cell and double the quote)",
                                    p->name, p->line, col);
                    goto out;
                }
                if (!buf_put(&b, c)) goto nomem;
            }
            /* Drop a CR of a CRLF line end, and surrounding spaces. */
            while (b.n && isspace((unsigned char)b.d[b.n - 1])) b.n--;
            size_t lead = 0;
            while (lead < b.n && isspace((unsigned char)b.d[lead])) lead++;
            if (lead) {
                memmove(b.d, b.d + lead, b.n - lead);
                b.n -= lead;
            }
        }
        if ((st = push_cell(p, r, b.d ? b.d : "", b.n, quoted))) goto out;
        if (p->pos >= p->len) break;
        char c = p->s[p->pos++];
        if (c == '\n') {
            p->line++;
            break;
        }
        /* c == ',': another cell follows (possibly empty, at end of line). */
    }
out:
    free(b.d);
    return st;
nomem:
    free(b.d);
    return attn_error(ATTN_E_NOMEM, "%s:%zu: out of memory", p->name, p->line);
}

/* Parses a finite float. 0 on success; otherwise an error was recorded. */
static attn_status parse_number(const parser *p, size_t line, size_t col, const char *dim,
                                const char *text, float *out)
{
    if (!*text)
        return attn_error(ATTN_E_FORMAT,
                          "%s:%zu:%zu: expected a number for dimension '%s', found an empty "
                          "cell",
                          p->name, line, col, dim);
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0')
        return attn_error(ATTN_E_FORMAT,
                          "%s:%zu:%zu: expected a number for dimension '%s', found '%.40s'",
                          p->name, line, col, dim, text);
    if (!isfinite(v))
        return attn_error(ATTN_E_FORMAT,
                          "%s:%zu:%zu: expected a finite number for dimension '%s', found "
                          "'%.40s'",
                          p->name, line, col, dim, text);
    float f = (float)v;
    if (!isfinite(f))
        return attn_error(ATTN_E_FORMAT,
                          "%s:%zu:%zu: %.40s for dimension '%s' is outside the float32 range",
                          p->name, line, col, text, dim);
    *out = f;
    return ATTN_OK;
}

static attn_status parse_header(parser *p, record *r, attn_embeddings *e)
{
    if (r->n == 0)
        return attn_error(ATTN_E_FORMAT,
                          "%s:1:1: the file is empty: expected a header 'token,<dim>,...'",
                          p->name);
    if (strcasecmp(cell_text(r, 0), "token") != 0)
        return attn_error(ATTN_E_FORMAT,
                          "%s:%zu:1: expected 'token' as the first header cell, found '%.40s'",
                          p->name, r->line, cell_text(r, 0));
    if (r->n < 2 || (r->n == 2 && !cell_text(r, 1)[0] && !r->quoted[1]))
        return attn_error(ATTN_E_FORMAT,
                          "%s:%zu:2: the header has no dimensions: expected "
                          "'token,<dim>,<dim>,...'",
                          p->name, r->line);
    size_t nd = r->n - 1;
    e->dims = calloc(nd, sizeof(char *));
    if (!e->dims) return attn_error(ATTN_E_NOMEM, "%s: out of memory", p->name);
    e->n_dims = nd;
    /* Duplicates through a hash table of column numbers (open addressing,
     * at most half full): linear in the number of columns. */
    size_t hcap = 16;
    while (hcap < 2 * nd) hcap *= 2;
    size_t *slot = calloc(hcap, sizeof *slot); /* 0 empty, else j + 1 */
    if (!slot) return attn_error(ATTN_E_NOMEM, "%s: out of memory", p->name);
    attn_status st = ATTN_OK;
    for (size_t j = 0; j < nd && !st; j++) {
        const char *name = cell_text(r, j + 1);
        if (!name[0]) {
            st = attn_error(ATTN_E_FORMAT, "%s:%zu:%zu: empty dimension name", p->name, r->line,
                            j + 2);
            break;
        }
        uint64_t h = 1469598103934665603u; /* FNV-1a */
        for (const unsigned char *c = (const unsigned char *)name; *c; c++)
            h = (h ^ *c) * 1099511628211u;
        size_t i = (size_t)h & (hcap - 1);
        for (; slot[i]; i = (i + 1) & (hcap - 1))
            if (strcmp(e->dims[slot[i] - 1], name) == 0) {
                st = attn_error(ATTN_E_FORMAT,
                                "%s:%zu:%zu: duplicate dimension name '%.40s' (also column %zu)",
                                p->name, r->line, j + 2, name, slot[i] + 1);
                break;
            }
        if (st) break;
        slot[i] = j + 1;
        if (!(e->dims[j] = strdup(name))) st = attn_error(ATTN_E_NOMEM, "%s: out of memory", p->name);
    }
    free(slot);
    return st;
}

static attn_status parse_rows(parser *p, record *r, attn_embeddings *e)
{
    size_t cap = 0;
    const size_t header_line = r->line;
    /* A row may be a little longer than the header (the message counts its
     * cells), never without bound. */
    r->max_cells = 2 * (e->n_dims + 1) + 16;
    for (;;) {
        attn_status st = read_record(p, r);
        if (st) return st;
        if (r->n == 0) break;
        size_t want = e->n_dims + 1;
        if (r->n != want)
            return attn_error(ATTN_E_FORMAT, "%s:%zu:%zu: expected %zu cells (token and %zu "
                                             "dimensions), found %zu",
                              p->name, r->line, (r->n < want ? r->n : want) + 1, want,
                              e->n_dims, r->n);
        if (e->n_tokens == ATTN_CSV_MAX_ROWS)
            return attn_error(ATTN_E_FORMAT, "%s:%zu:1: more than %d token rows (the limit)",
                              p->name, r->line, ATTN_CSV_MAX_ROWS);
        if (!cell_text(r, 0)[0])
            return attn_error(ATTN_E_FORMAT, "%s:%zu:1: empty token", p->name, r->line);
        if (e->n_tokens == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **t = realloc(e->tokens, ncap * sizeof(char *));
            if (!t) return attn_error(ATTN_E_NOMEM, "%s: out of memory", p->name);
            e->tokens = t;
            float *d = realloc(e->data, ncap * e->n_dims * sizeof(float));
            if (!d) return attn_error(ATTN_E_NOMEM, "%s: out of memory", p->name);
            e->data = d;
            cap = ncap;
        }
        float *row = e->data + e->n_tokens * e->n_dims;
        for (size_t j = 0; j < e->n_dims; j++) {
            st = parse_number(p, r->line, j + 2, e->dims[j], cell_text(r, j + 1), &row[j]);
            if (st) return st;
        }
        if (!(e->tokens[e->n_tokens] = strdup(cell_text(r, 0))))
            return attn_error(ATTN_E_NOMEM, "%s: out of memory", p->name);
        e->n_tokens++;
    }
    if (e->n_tokens == 0)
        return attn_error(ATTN_E_FORMAT, "%s:%zu:1: no token rows after the header", p->name,
                          header_line + 1);
    return ATTN_OK;
}

attn_status attn_embeddings_parse_csv(attn_embeddings *e, const char *text, size_t len,
                                      const char *name)
{
    if (!e || (!text && len)) return attn_error(ATTN_E_INVALID, "attn_embeddings_parse_csv: NULL");
    memset(e, 0, sizeof *e);
    parser p = {text ? text : "", len, 0, 1, name ? name : "<csv>"};
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) p.pos = 3; /* UTF-8 BOM */
    record r = {0};
    r.max_cells = (size_t)ATTN_CSV_MAX_DIMS + 1;
    attn_status st = read_record(&p, &r);
    if (!st) st = parse_header(&p, &r, e);
    if (!st) st = parse_rows(&p, &r, e);
    record_free(&r);
    if (st) attn_embeddings_free(e);
    return st;
}

attn_status attn_embeddings_read_csv(attn_embeddings *e, const char *path)
{
    if (!e || !path) return attn_error(ATTN_E_INVALID, "attn_embeddings_read_csv: NULL");
    memset(e, 0, sizeof *e);
    /* A regular file's size is checked before reading; a pipe or device is
     * read up to the limit; a NUL byte (/dev/zero) stops the read at once. */
    char *text = NULL;
    size_t n = 0;
    attn_status st = attn_read_file(path, MAX_FILE_BYTES, ATTN_READ_TEXT, &text, &n);
    if (!st) st = attn_embeddings_parse_csv(e, text, n, path);
    free(text);
    return st;
}
