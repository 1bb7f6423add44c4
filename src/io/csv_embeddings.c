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
#include <strings.h>

#define MAX_FILE_BYTES ((size_t)1 << 30) /* 1 GiB: far above 4096 rows of any sane width */

typedef struct cell {
    char *text;
    int quoted;
} cell;

typedef struct record {
    cell *cells;
    size_t n, cap;
    size_t line; /* line on which the record starts */
} record;

typedef struct parser {
    const char *s;
    size_t len, pos;
    size_t line;
    const char *name;
} parser;

static void record_clear(record *r)
{
    for (size_t i = 0; i < r->n; i++) free(r->cells[i].text);
    r->n = 0;
}

static void record_free(record *r)
{
    record_clear(r);
    free(r->cells);
    memset(r, 0, sizeof *r);
}

static attn_status push_cell(parser *p, record *r, const char *buf, size_t n, int quoted)
{
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 16;
        cell *c = realloc(r->cells, ncap * sizeof *c);
        if (!c) return attn_error(ATTN_E_NOMEM, "%s:%zu: out of memory", p->name, p->line);
        r->cells = c;
        r->cap = ncap;
    }
    char *t = malloc(n + 1);
    if (!t) return attn_error(ATTN_E_NOMEM, "%s:%zu: out of memory", p->name, p->line);
    memcpy(t, buf, n);
    t[n] = '\0';
    r->cells[r->n].text = t;
    r->cells[r->n].quoted = quoted;
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
    if (strcasecmp(r->cells[0].text, "token") != 0)
        return attn_error(ATTN_E_FORMAT,
                          "%s:%zu:1: expected 'token' as the first header cell, found '%.40s'",
                          p->name, r->line, r->cells[0].text);
    if (r->n < 2 || (r->n == 2 && !r->cells[1].text[0] && !r->cells[1].quoted))
        return attn_error(ATTN_E_FORMAT,
                          "%s:%zu:2: the header has no dimensions: expected "
                          "'token,<dim>,<dim>,...'",
                          p->name, r->line);
    size_t nd = r->n - 1;
    e->dims = calloc(nd, sizeof(char *));
    if (!e->dims) return attn_error(ATTN_E_NOMEM, "%s: out of memory", p->name);
    e->n_dims = nd;
    for (size_t j = 0; j < nd; j++) {
        const char *name = r->cells[j + 1].text;
        if (!name[0])
            return attn_error(ATTN_E_FORMAT, "%s:%zu:%zu: empty dimension name", p->name,
                              r->line, j + 2);
        for (size_t k = 0; k < j; k++)
            if (strcmp(e->dims[k], name) == 0)
                return attn_error(ATTN_E_FORMAT,
                                  "%s:%zu:%zu: duplicate dimension name '%.40s' (also column "
                                  "%zu)",
                                  p->name, r->line, j + 2, name, k + 2);
        e->dims[j] = r->cells[j + 1].text;
        r->cells[j + 1].text = NULL; /* moved */
    }
    return ATTN_OK;
}

static attn_status parse_rows(parser *p, record *r, attn_embeddings *e)
{
    size_t cap = 0;
    const size_t header_line = r->line;
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
        if (!r->cells[0].text[0])
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
            st = parse_number(p, r->line, j + 2, e->dims[j], r->cells[j + 1].text, &row[j]);
            if (st) return st;
        }
        e->tokens[e->n_tokens++] = r->cells[0].text;
        r->cells[0].text = NULL; /* moved */
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
    FILE *f = fopen(path, "rb");
    if (!f) return attn_error(ATTN_E_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *text = malloc(cap);
    attn_status st = ATTN_OK;
    if (!text) {
        fclose(f);
        return attn_error(ATTN_E_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_FILE_BYTES) {
                st = attn_error(ATTN_E_FORMAT, "%s: larger than %zu bytes", path, MAX_FILE_BYTES);
                break;
            }
            char *t = realloc(text, cap * 2);
            if (!t) {
                st = attn_error(ATTN_E_NOMEM, "%s: out of memory", path);
                break;
            }
            text = t;
            cap *= 2;
        }
        size_t got = fread(text + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) st = attn_error(ATTN_E_IO, "%s: cannot read: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (!st) st = attn_embeddings_parse_csv(e, text, n, path);
    free(text);
    return st;
}
