/* wordnet.c - WordNet's data.noun (wndb(5WN)) to a labelled, split data set.
 *
 *   synset_offset lex_filenum ss_type w_cnt word lex_id [word lex_id...] p_cnt
 *   [ptr...] [frames...] | gloss
 *
 * offset: 8 decimal digits; lex_filenum: 2 decimal digits; w_cnt: 2 hex
 * digits; lex_id: 1 hex digit; p_cnt: 3 decimal digits; each pointer is
 * "symbol offset pos source/target". The licence at the top is indented by
 * two spaces. */
#include "attn/wordnet.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/fileio.h"

uint32_t attn_crc32(const void *data, size_t len)
{
    static uint32_t table[256];
    static int ready = 0; /* benign race: every thread writes the same values */
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    const unsigned char *p = data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static const char *const lexnames[45] = {
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather",
    "adj.ppl"};

const char *attn_lexname(int n) { return n >= 0 && n < 45 ? lexnames[n] : NULL; }

attn_split attn_wordnet_split(const char *offset, size_t len)
{
    uint32_t r = attn_crc32(offset, len) % 10;
    return r == 0 ? ATTN_SPLIT_TEST : r == 1 ? ATTN_SPLIT_VALID : ATTN_SPLIT_TRAIN;
}

/* ---- one line ----------------------------------------------------------------- */

typedef struct cursor {
    const char *p;
    const char *path;
    size_t line;
} cursor;

/* The next space-separated field: *f and its length. 0 if none. */
static size_t field(cursor *c, const char **f)
{
    while (*c->p == ' ') c->p++;
    *f = c->p;
    while (*c->p && *c->p != ' ' && *c->p != '\n') c->p++;
    return (size_t)(c->p - *f);
}

static int all_of(const char *s, size_t n, int hex)
{
    if (!n) return 0;
    for (size_t i = 0; i < n; i++)
        if (!(hex ? isxdigit((unsigned char)s[i]) : isdigit((unsigned char)s[i]))) return 0;
    return 1;
}

static attn_status bad(const cursor *c, const char *what, const char *f, size_t n)
{
    if (!n)
        return attn_error(ATTN_E_FORMAT, "%s:%zu: expected %s, found the end of the line", c->path,
                          c->line, what);
    return attn_error(ATTN_E_FORMAT, "%s:%zu: expected %s, found '%.*s'", c->path, c->line, what,
                      (int)(n > 40 ? 40 : n), f);
}

/* A growing text buffer. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
} sbuf;

static int put(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->n + n + 1 > cap) cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) return -1;
        b->s = ns, b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
    return 0;
}

/* Parses one synset line into label and text (text written into b). */
static attn_status parse_line(cursor *c, sbuf *b, int *lex, const char **off, size_t *off_len)
{
    const char *f;
    size_t n = field(c, &f);
    if (n != 8 || !all_of(f, n, 0)) return bad(c, "an 8-digit synset offset", f, n);
    *off = f, *off_len = n;
    n = field(c, &f);
    if (n != 2 || !all_of(f, n, 0)) return bad(c, "a 2-digit lexicographer file number", f, n);
    *lex = (f[0] - '0') * 10 + (f[1] - '0');
    if (*lex < 3 || *lex > 28)
        return attn_error(ATTN_E_FORMAT,
                          "%s:%zu: lexicographer file %02d is not a noun file (noun.* are 03..28)",
                          c->path, c->line, *lex);
    n = field(c, &f);
    if (n != 1 || f[0] != 'n') return bad(c, "synset type 'n'", f, n);
    n = field(c, &f);
    if (n != 2 || !all_of(f, n, 1)) return bad(c, "a 2-hex-digit word count", f, n);
    unsigned long w_cnt = strtoul(f, NULL, 16);
    if (!w_cnt) return bad(c, "a word count of at least 1", f, n);
    b->n = 0;
    for (unsigned long w = 0; w < w_cnt; w++) {
        n = field(c, &f);
        if (!n) return bad(c, "a word", f, n);
        if (w && put(b, ", ", 2)) return attn_error(ATTN_E_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            char ch = f[i] == '_' ? ' ' : f[i];
            if (put(b, &ch, 1)) return attn_error(ATTN_E_NOMEM, "out of memory");
        }
        n = field(c, &f);
        if (n != 1 || !all_of(f, n, 1)) return bad(c, "a 1-hex-digit lex_id after a word", f, n);
    }
    n = field(c, &f);
    if (n != 3 || !all_of(f, n, 0)) return bad(c, "a 3-digit pointer count", f, n);
    unsigned long p_cnt = strtoul(f, NULL, 10);
    for (unsigned long p = 0; p < p_cnt; p++) {
        n = field(c, &f);
        if (!n || f[0] == '|') return bad(c, "a pointer symbol", f, n);
        n = field(c, &f);
        if (n != 8 || !all_of(f, n, 0)) return bad(c, "a pointer's 8-digit synset offset", f, n);
        n = field(c, &f);
        if (n != 1 || !strchr("nvasr", f[0])) return bad(c, "a pointer's part of speech", f, n);
        n = field(c, &f);
        if (n != 4 || !all_of(f, n, 1)) return bad(c, "a pointer's 4-hex-digit source/target", f, n);
    }
    n = field(c, &f);
    if (n != 1 || f[0] != '|') return bad(c, "'|' before the gloss", f, n);
    while (*c->p == ' ') c->p++;
    const char *g = c->p, *end = g + strlen(g);
    while (end > g && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\r')) end--;
    if (end == g) return bad(c, "a gloss after '|'", g, 0);
    if (put(b, ": ", 2)) return attn_error(ATTN_E_NOMEM, "out of memory");
    for (const char *q = g; q < end; q++) { /* TSV-safe */
        char ch = *q == '\t' || *q == '\r' || *q == '\n' ? ' ' : *q;
        if (put(b, &ch, 1)) return attn_error(ATTN_E_NOMEM, "out of memory");
    }
    return ATTN_OK;
}

/* data.noun's longest line is about 12 KB: anything near this is not it. */
#define MAX_LINE ((size_t)1 << 20)

/* One line, its '\n' included, into b; *eof at the end of the file. A
 * bounded read (/dev/zero or a file of one huge line is refused), and an
 * allocation or read failure is an error, never a quiet end of file. */
static attn_status read_line(FILE *in, const char *path, size_t no, sbuf *b, int *eof)
{
    b->n = 0;
    *eof = 0;
    int ch;
    while ((ch = getc(in)) != EOF) {
        if (ch == 0) return attn_error(ATTN_E_FORMAT, "%s:%zu: a NUL byte in the line", path, no);
        if (b->n >= MAX_LINE)
            return attn_error(ATTN_E_FORMAT,
                              "%s:%zu: a line longer than %zu bytes (is this WordNet's data.noun?)",
                              path, no, MAX_LINE);
        char byte = (char)ch;
        if (put(b, &byte, 1)) return attn_error(ATTN_E_NOMEM, "%s:%zu: out of memory", path, no);
        if (ch == '\n') break;
    }
    if (ch == EOF && ferror(in)) return attn_error(ATTN_E_IO, "%s: read error: %s", path, strerror(errno));
    if (ch == EOF && !b->n) *eof = 1;
    return ATTN_OK;
}

attn_status attn_wordnet_build(const char *path, const char *out_dir, attn_wordnet_stats *stats)
{
    if (!path || !out_dir) return attn_error(ATTN_E_INVALID, "attn_wordnet_build: NULL");
    attn_wordnet_stats s;
    memset(&s, 0, sizeof s);
    FILE *in = fopen(path, "r");
    if (!in) {
        int e = errno;
        if (e == ENOENT)
            return attn_error(ATTN_E_NOTFOUND,
                              "%s: not found: WordNet is not installed (install wordnet-base: "
                              "apt-get install wordnet-base)",
                              path);
        return attn_error(ATTN_E_IO, "%s: cannot open: %s", path, strerror(e));
    }
    static const char *const names[3] = {"train.tsv", "valid.tsv", "test.tsv"};
    attn_atomic_file out[3];
    memset(out, 0, sizeof out);
    attn_status st = ATTN_OK;
    for (int i = 0; i < 3 && !st; i++) {
        size_t n = strlen(out_dir) + strlen(names[i]) + 2;
        char *p = malloc(n);
        if (!p) {
            st = attn_error(ATTN_E_NOMEM, "out of memory");
            break;
        }
        snprintf(p, n, "%s/%s", out_dir, names[i]);
        st = attn_atomic_open(&out[i], p);
        free(p);
    }
    sbuf ln = {0};
    sbuf b = {0};
    size_t seen[45] = {0};
    cursor c = {NULL, path, 0};
    while (!st) {
        int eof = 0;
        c.line++;
        if ((st = read_line(in, path, c.line, &ln, &eof)) || eof) break;
        const char *line = ln.s;
        if (line[0] == ' ' && line[1] == ' ') continue; /* the licence */
        if (line[0] == '\n' || (line[0] == '\r' && line[1] == '\n')) continue;
        c.p = line;
        int lex = 0;
        const char *off = NULL;
        size_t off_len = 0;
        if ((st = parse_line(&c, &b, &lex, &off, &off_len))) break;
        attn_split sp = attn_wordnet_split(off, off_len);
        FILE *f = out[sp].f;
        fputs(lexnames[lex], f);
        fputc('\t', f);
        fwrite(b.s, 1, b.n, f);
        fputc('\n', f);
        s.split[sp]++, s.synsets++;
        if (!seen[lex]++) s.classes++;
    }
    if (!st && !s.synsets)
        st = attn_error(ATTN_E_FORMAT, "%s: no synsets (is this WordNet's data.noun?)", path);
    for (int i = 0; i < 3; i++) {
        if (!out[i].f) continue;
        if (!st) st = attn_atomic_commit(&out[i]);
        else attn_atomic_abort(&out[i]);
    }
    free(ln.s), free(b.s);
    fclose(in);
    if (!st && stats) *stats = s;
    return st;
}
