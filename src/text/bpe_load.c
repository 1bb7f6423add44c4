/* bpe_load.c - GPT-2's tokenizer files in and out.
 *
 * encoder.json (Hugging Face: vocab.json) maps each token, spelt in the byte
 * characters of bytes_to_unicode, to its id; vocab.bpe (merges.txt) lists the
 * merges in rank order, one "left right" pair a line after a "#version"
 * line. Loading checks that the two agree: every merge's parts and result
 * are tokens, every token is a byte, a merge result or a special "<|...|>".
 * attn's own checkpoints keep the same content in one JSON file:
 * {"type": "bpe", "vocab": {...}, "merges": ["left right", ...]}.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attn/fileio.h"
#include "bpe_internal.h"
#include "utf8.h"

#define MAX_FILE ((size_t)256 << 20)

/* ---- the vocabulary ---------------------------------------------------------------- */

/* The bytes a token spelt in byte characters stands for; out has room for
 * strlen(s) bytes. Returns the count, or -1 (with the error set). */
static long token_to_bytes(const char *s, char *out, const char *file)
{
    size_t len = strlen(s), i = 0, n = 0;
    while (i < len) {
        uint32_t cp;
        int byte;
        size_t at = i;
        if (utf8_next((const unsigned char *)s, len, &i, &cp) || (byte = bpe_cp_to_byte(cp)) < 0) {
            attn_error(ATTN_E_FORMAT,
                       "%s: token \"%s\": character %zu is not one of GPT-2's 256 byte characters",
                       file, s, at);
            return -1;
        }
        out[n++] = (char)byte;
    }
    if (!n) attn_error(ATTN_E_FORMAT, "%s: an empty token", file);
    return n ? (long)n : -1;
}

static const char *json_kind(const cJSON *v)
{
    return cJSON_IsString(v) ? "a string" : cJSON_IsNumber(v) ? "a number that is no id"
         : cJSON_IsObject(v) ? "an object" : cJSON_IsArray(v) ? "an array"
         : cJSON_IsBool(v) ? "a boolean" : "null";
}

/* Reads {token: id} into b->n, b->bytes, b->off; ids must be 0..n-1, each once. */
static attn_status read_vocab(bpe_tok *b, const cJSON *obj, const char *file)
{
    if (!cJSON_IsObject(obj) || !obj->child)
        return attn_error(ATTN_E_FORMAT, "%s: expected a JSON object of token -> integer id", file);
    size_t n = 0, total = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, obj)
    {
        double v = e->valuedouble;
        if (!cJSON_IsNumber(e) || v < 0 || v >= 4294967295.0 || v != (double)(uint32_t)v)
            return attn_error(ATTN_E_FORMAT, "%s: token \"%s\": expected an integer id >= 0, found %s",
                              file, e->string, json_kind(e));
        n++, total += strlen(e->string);
    }
    size_t *start = malloc(n * sizeof *start), *len = calloc(n, sizeof *len);
    b->bytes = malloc(total + 1), b->off = malloc((n + 1) * sizeof *b->off);
    attn_status st = start && len && b->bytes && b->off ? ATTN_OK : attn_error(ATTN_E_NOMEM, "%s: out of memory", file);
    size_t pos = 0;
    cJSON_ArrayForEach(e, obj)
    {
        if (st) break;
        size_t id = (size_t)e->valuedouble;
        if (id >= n) {
            st = attn_error(ATTN_E_FORMAT, "%s: token \"%s\" has id %zu, but the %zu tokens must have ids 0..%zu",
                            file, e->string, id, n, n - 1);
        } else if (len[id]) {
            st = attn_error(ATTN_E_FORMAT, "%s: token \"%s\": id %zu is given twice", file, e->string, id);
        } else {
            long k = token_to_bytes(e->string, b->bytes + pos, file);
            if (k < 0) st = ATTN_E_FORMAT;
            else start[id] = pos, len[id] = (size_t)k, pos += (size_t)k;
        }
    }
    /* Rewrite in id order so that token i is bytes[off[i]..off[i+1]). */
    char *sorted = st ? NULL : malloc(pos + 1);
    if (!st && !sorted) st = attn_error(ATTN_E_NOMEM, "%s: out of memory", file);
    if (!st) {
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            b->off[i] = o;
            memcpy(sorted + o, b->bytes + start[i], len[i]);
            o += len[i];
        }
        b->off[n] = o;
        free(b->bytes);
        b->bytes = sorted, b->n = n;
    }
    free(start), free(len);
    return st;
}

/* ---- the merges ---------------------------------------------------------------------- */

static attn_status bad_line(const char *file, size_t line, const char *what, const char *s, size_t n)
{
    return attn_error(ATTN_E_FORMAT, "%s:%zu: %s, found \"%.*s\"", file, line, what,
                      (int)(n > 80 ? 80 : n), s);
}

/* One "left right" line (n bytes, no newline) as the merge of rank r. */
static attn_status read_merge(bpe_tok *b, const bpe_idmap *m, const char *s, size_t n,
                              const char *file, size_t line, char *tmp)
{
    const char *sp = memchr(s, ' ', n);
    if (!n) return bad_line(file, line, "expected two tokens separated by a space", s, n);
    if (!sp || sp == s || sp + 1 == s + n)
        return bad_line(file, line, "expected two tokens separated by a space, not one", s, n);
    if (memchr(sp + 1, ' ', (size_t)(s + n - sp - 1)))
        return bad_line(file, line, "expected two tokens separated by one space, not more", s, n);
    uint32_t ids[3];
    size_t tl = 0;
    for (int side = 0; side < 2; side++) {
        const char *t = side ? sp + 1 : s;
        size_t tn = side ? (size_t)(s + n - sp - 1) : (size_t)(sp - s);
        char word[1024];
        if (tn >= sizeof word) return bad_line(file, line, "a token longer than 1023 bytes", s, n);
        memcpy(word, t, tn), word[tn] = 0;
        long k = token_to_bytes(word, tmp + tl, file);
        if (k < 0) return ATTN_E_FORMAT;
        long id = bpe_idmap_find(m, tmp + tl, (size_t)k);
        if (id < 0)
            return attn_error(ATTN_E_FORMAT, "%s:%zu: \"%s\" is not a token of the vocabulary (files from different tokenizers?)",
                              file, line, word);
        ids[side] = (uint32_t)id, tl += (size_t)k;
    }
    long r = bpe_idmap_find(m, tmp, tl);
    if (r < 0)
        return attn_error(ATTN_E_FORMAT, "%s:%zu: merging \"%.*s\" gives no token of the vocabulary (files from different tokenizers?)",
                          file, line, (int)n, s);
    ids[2] = (uint32_t)r;
    memcpy(b->merges[b->n_merges++], ids, sizeof ids);
    return ATTN_OK;
}

/* The lines of a vocab.bpe / merges.txt file. */
static attn_status read_merges_text(bpe_tok *b, const bpe_idmap *m, const char *text, size_t len,
                                    const char *file)
{
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    b->merges = malloc(lines * sizeof *b->merges);
    char *tmp = malloc(len + 1);
    attn_status st = b->merges && tmp ? ATTN_OK : attn_error(ATTN_E_NOMEM, "%s: out of memory", file);
    size_t i = 0, line = 0;
    while (!st && i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - text) : len, n = e - i;
        line++;
        if (n && text[i + n - 1] == '\r') n--;
        if (!(line == 1 && n >= 8 && !memcmp(text + i, "#version", 8)))
            st = read_merge(b, m, text + i, n, file, line, tmp);
        i = e + 1;
    }
    free(tmp);
    return st;
}

static attn_status read_merges_json(bpe_tok *b, const bpe_idmap *m, const cJSON *arr, const char *file)
{
    if (!cJSON_IsArray(arr)) return attn_error(ATTN_E_FORMAT, "%s: expected \"merges\", an array of \"left right\" strings", file);
    size_t n = (size_t)cJSON_GetArraySize(arr), line = 0, longest = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) if (cJSON_IsString(e)) longest = strlen(e->valuestring) > longest ? strlen(e->valuestring) : longest;
    b->merges = malloc((n + 1) * sizeof *b->merges);
    char *tmp = malloc(longest + 1);
    attn_status st = b->merges && tmp ? ATTN_OK : attn_error(ATTN_E_NOMEM, "%s: out of memory", file);
    cJSON_ArrayForEach(e, arr)
    {
        if (st) break;
        line++;
        if (!cJSON_IsString(e))
            st = attn_error(ATTN_E_FORMAT, "%s: merges[%zu]: expected a \"left right\" string", file, line - 1);
        else
            st = read_merge(b, m, e->valuestring, strlen(e->valuestring), file, line, tmp);
    }
    free(tmp);
    return st;
}

/* ---- consistency, then the index ------------------------------------------------------- */

/* Byte tokens, merge results and "<|...|>" specials, and nothing else;
 * each pair merged once. */
static attn_status byte_tokens(bpe_tok *b, const bpe_idmap *m, const char *vfile)
{
    for (unsigned c = 0; c < 256; c++) {
        char s = (char)c;
        long id = bpe_idmap_find(m, &s, 1);
        if (id < 0) return attn_error(ATTN_E_FORMAT, "%s: no token for the byte 0x%02x", vfile, c);
        b->byte_id[c] = (uint32_t)id;
    }
    return ATTN_OK;
}

static attn_status finish(bpe_tok *b, const char *vfile, const char *mfile)
{
    unsigned char *made = calloc(b->n, 1);
    if (!made) return attn_error(ATTN_E_NOMEM, "out of memory");
    for (size_t r = 0; r < b->n_merges; r++) made[b->merges[r][2]] = 1;
    for (unsigned c = 0; c < 256; c++) made[b->byte_id[c]] = 1;
    attn_status st = ATTN_OK;
    for (size_t i = 0; !st && i < b->n; i++) {
        if (made[i]) continue;
        const char *s = b->bytes + b->off[i];
        size_t k = b->off[i + 1] - b->off[i];
        if (k >= 5 && !memcmp(s, "<|", 2) && !memcmp(s + k - 2, "|>", 2)) {
            if (k == 13 && !memcmp(s, "<|endoftext|>", 13)) b->special_id = (uint32_t)i, b->has_special = 1;
            continue;
        }
        st = attn_error(ATTN_E_FORMAT,
                        "%s: token %zu (\"%.*s\") is neither a byte nor made by a merge of %s "
                        "(truncated, or files from different tokenizers?)",
                        vfile, i, (int)(k > 40 ? 40 : k), s, mfile);
    }
    free(made);
    return st ? st : bpe_merges_index(b, mfile);
}

/* ---- loading ------------------------------------------------------------------------------ */

static cJSON *parse_json(const char *path, char **buf, attn_status *st)
{
    size_t len;
    *buf = NULL;
    if ((*st = attn_read_text_file(path, MAX_FILE, buf, &len))) return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(*buf, len, &end, 0);
    if (!root) {
        size_t at = end && end >= *buf ? (size_t)(end - *buf) : 0;
        *st = attn_error(ATTN_E_FORMAT, "%s: not valid JSON at byte %zu of %zu (truncated?)", path, at, len);
    }
    return root;
}

/* Fills b from a vocabulary object and merges (text, or a JSON array). */
static attn_status build(bpe_tok *b, const cJSON *vocab, const char *vfile, const char *mtext,
                         size_t mlen, const cJSON *marr, const char *mfile)
{
    bpe_idmap m = {0};
    attn_status st = read_vocab(b, vocab, vfile);
    m.b = b;
    for (size_t i = 0; !st && i < b->n; i++) st = bpe_idmap_add(&m, (uint32_t)i);
    if (!st) st = byte_tokens(b, &m, vfile);
    if (!st) st = marr ? read_merges_json(b, &m, marr, mfile) : read_merges_text(b, &m, mtext, mlen, mfile);
    if (!st) st = finish(b, vfile, mfile);
    free(m.slot);
    return st;
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), n = strlen(name);
    char *p = malloc(a + n + 2);
    if (p) memcpy(p, dir, a), p[a] = '/', memcpy(p + a + 1, name, n + 1);
    return p;
}

static int is_file(const char *path)
{
    struct stat sb;
    return path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* dir/a if it is a file, else dir/b (NULL if out of memory). */
static char *either(const char *dir, const char *a, const char *b)
{
    char *p = join(dir, a);
    if (!p || is_file(p)) return p;
    free(p);
    return join(dir, b);
}

attn_status attn_bpe_tokenizer_load(attn_tokenizer **out, const char *dir)
{
    if (!out || !dir) return attn_error(ATTN_E_INVALID, "attn_bpe_tokenizer_load: NULL");
    *out = NULL;
    char *vpath = either(dir, "encoder.json", "vocab.json"), *mpath = either(dir, "vocab.bpe", "merges.txt");
    char *vbuf = NULL, *mbuf = NULL;
    size_t mlen = 0;
    cJSON *root = NULL;
    bpe_tok *b = NULL;
    attn_status st = vpath && mpath ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    if (!st && (!is_file(vpath) || !is_file(mpath)))
        st = attn_error(ATTN_E_IO, "%s: expected GPT-2's tokenizer files encoder.json and vocab.bpe "
                                   "(or vocab.json and merges.txt); %s is missing",
                        dir, is_file(vpath) ? strrchr(mpath, '/') + 1 : strrchr(vpath, '/') + 1);
    if (!st) root = parse_json(vpath, &vbuf, &st);
    if (!st) st = attn_read_text_file(mpath, MAX_FILE, &mbuf, &mlen);
    if (!st) st = bpe_tok_new(&b);
    if (!st) st = build(b, root, vpath, mbuf, mlen, NULL, mpath);
    cJSON_Delete(root);
    free(vbuf), free(mbuf), free(vpath), free(mpath);
    if (st) {
        bpe_tok_free(b);
        return st;
    }
    *out = &b->base;
    return ATTN_OK;
}

/* {"type": "bpe", "vocab": {...}, "merges": [...]} (parsed by tokenizer.c). */
attn_status attn_bpe_tokenizer_from_json(attn_tokenizer **out, const void *json_root, const char *path);
attn_status attn_bpe_tokenizer_from_json(attn_tokenizer **out, const void *json_root, const char *path)
{
    const cJSON *root = json_root;
    bpe_tok *b = NULL;
    attn_status st = bpe_tok_new(&b);
    if (!st)
        st = build(b, cJSON_GetObjectItemCaseSensitive(root, "vocab"), path, NULL, 0,
                   cJSON_GetObjectItemCaseSensitive(root, "merges"), path);
    if (st) {
        bpe_tok_free(b);
        return st;
    }
    *out = &b->base;
    return ATTN_OK;
}

/* ---- writing (the writers are bpe_save.c's) -------------------------------------------- */

attn_status attn_bpe_tokenizer_save_dir(const attn_tokenizer *t, const char *dir)
{
    if (!attn_tokenizer_is_bpe(t) || !dir)
        return attn_error(ATTN_E_INVALID, "attn_bpe_tokenizer_save_dir: not a byte-level BPE tokenizer");
    const bpe_tok *b = (const bpe_tok *)t;
    char *vpath = join(dir, "encoder.json"), *mpath = join(dir, "vocab.bpe");
    attn_atomic_file vf = {0}, mf = {0};
    attn_status st = vpath && mpath ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    if (!st) st = attn_atomic_open(&vf, vpath);
    if (!st && (st = attn_atomic_open(&mf, mpath))) attn_atomic_abort(&vf);
    if (!st) {
        bpe_put_vocab(vf.f, b);
        fputs("#version: 0.2\n", mf.f);
        for (size_t r = 0; r < b->n_merges; r++) {
            bpe_put_merge(mf.f, b, r, 0);
            fputc('\n', mf.f);
        }
        st = attn_atomic_commit(&vf);
        if (!st) st = attn_atomic_commit(&mf);
        else attn_atomic_abort(&mf);
    }
    free(vpath), free(mpath);
    return st;
}
