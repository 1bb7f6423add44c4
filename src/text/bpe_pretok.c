/* bpe_pretok.c - GPT-2's pre-tokenizer through PCRE2, and its byte map.
 *
 * The pattern is OpenAI's encoder.py (and tiktoken's "gpt2"):
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * where \s is Unicode's White_Space property, as in Python's `regex` module.
 * PCRE2's \s (even with PCRE2_UCP) is instead "Z categories plus \t\n\v\f\r",
 * which misses U+0085 (NEL, a control character that is White_Space);
 * JavaScript's \s misses U+0085 too and adds U+FEFF, which is not White_Space.
 * So the pattern spells White_Space out as a class, which also keeps it from
 * depending on the Unicode version PCRE2 was built with.
 *
 * PCRE2 in UTF mode needs valid UTF-8. Bytes that are not part of a valid
 * sequence cannot be characters: the text is cut at each maximal run of
 * them, each run is one piece (BPE splits it byte-wise), and the valid text
 * between runs is pre-tokenized on its own. Valid text is unaffected.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>

#include "bpe_internal.h"
#include "utf8.h"

#define WS "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
static const char gpt2_pattern[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS
                                   "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])|[" WS "]+";

struct bpe_pretok {
    pcre2_code *code;
    pcre2_match_data *md;
    int jit;
};

attn_status bpe_pretok_create(bpe_pretok **out)
{
    *out = NULL;
    bpe_pretok *p = calloc(1, sizeof *p);
    if (!p) return attn_error(ATTN_E_NOMEM, "out of memory");
    int err;
    PCRE2_SIZE at;
    p->code = pcre2_compile((PCRE2_SPTR)gpt2_pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err, &at,
                            NULL);
    if (!p->code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        free(p);
        return attn_error(ATTN_E_INTERNAL, "GPT-2 pattern at %zu: %s", (size_t)at, (char *)msg);
    }
    /* JIT where the platform has it (several times faster); else the
     * interpreter, same matches. */
    p->jit = pcre2_jit_compile(p->code, PCRE2_JIT_COMPLETE) == 0;
    p->md = pcre2_match_data_create_from_pattern(p->code, NULL);
    if (!p->md) {
        bpe_pretok_free(p);
        return attn_error(ATTN_E_NOMEM, "out of memory");
    }
    *out = p;
    return ATTN_OK;
}

void bpe_pretok_free(bpe_pretok *p)
{
    if (!p) return;
    pcre2_match_data_free(p->md);
    pcre2_code_free(p->code);
    free(p);
}

/* Length of the valid UTF-8 prefix of s[0..len). ASCII is the common case. */
static size_t valid_prefix(const unsigned char *s, size_t len)
{
    size_t i = 0;
    uint32_t cp;
    while (i < len) {
        if (s[i] < 0x80) i++;
        else if (utf8_next(s, len, &i, &cp)) break;
    }
    return i;
}

static size_t invalid_run(const unsigned char *s, size_t len)
{
    size_t i = 0, j;
    uint32_t cp;
    while (i < len && (j = i, utf8_next(s, len, &j, &cp))) i++;
    return i;
}

/* Pieces of valid UTF-8 text. */
static attn_status run_valid(bpe_pretok *p, const char *s, size_t len, bpe_piece_fn fn, void *user)
{
    size_t start = 0;
    while (start < len) {
        int rc = p->jit ? pcre2_jit_match(p->code, (PCRE2_SPTR)s, len, start, 0, p->md, NULL)
                        : pcre2_match(p->code, (PCRE2_SPTR)s, len, start, PCRE2_NO_UTF_CHECK,
                                      p->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return attn_error(ATTN_E_INTERNAL, "pre-tokenizer at byte %zu: %s", start, (char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md);
        /* Every character matches one alternative, so there are no gaps and
         * no empty matches; pass a gap on anyway rather than drop bytes. */
        attn_status st;
        if (ov[0] > start && (st = fn(s + start, ov[0] - start, user))) return st;
        if (ov[1] <= ov[0]) return attn_error(ATTN_E_INTERNAL, "pre-tokenizer: empty match at %zu", start);
        if ((st = fn(s + ov[0], ov[1] - ov[0], user))) return st;
        start = ov[1];
    }
    return start < len ? fn(s + start, len - start, user) : ATTN_OK;
}

attn_status bpe_pretok_run(bpe_pretok *p, const char *text, size_t len, bpe_piece_fn fn, void *user)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        size_t v = valid_prefix(s + i, len - i);
        if (v) {
            attn_status st = run_valid(p, text + i, v, fn, user);
            if (st) return st;
            i += v;
        }
        if (i < len) {
            size_t bad = invalid_run(s + i, len - i);
            attn_status st = fn(text + i, bad, user);
            if (st) return st;
            i += bad;
        }
    }
    return ATTN_OK;
}

/* Printable Latin-1 bytes keep their code point ('!'..'~', U+00A1..U+00AC,
 * U+00AE..U+00FF); the 68 others map to U+0100.. in byte order: 0x00..0x20,
 * 0x7F..0xA0, 0xAD. */
uint32_t bpe_byte_to_cp(unsigned char b)
{
    if (b <= 0x20) return 0x100u + b;
    if (b >= 0x7F && b <= 0xA0) return 0x100u + 33 + (b - 0x7Fu);
    if (b == 0xAD) return 0x100u + 67;
    return b;
}

int bpe_cp_to_byte(uint32_t cp)
{
    if (cp < 0x100) return bpe_byte_to_cp((unsigned char)cp) == cp ? (int)cp : -1;
    uint32_t n = cp - 0x100;
    if (n < 33) return (int)n;
    if (n < 67) return (int)(0x7F + n - 33);
    return n == 67 ? 0xAD : -1;
}

unsigned char bpe_byte_by_rank(unsigned r)
{
    /* GPT-2's ids 0..255: the bytes in the order of their code points */
    if (r < 94) return (unsigned char)(0x21 + r);          /* '!'..'~' */
    if (r < 106) return (unsigned char)(0xA1 + r - 94);    /* U+00A1..U+00AC */
    if (r < 188) return (unsigned char)(0xAE + r - 106);   /* U+00AE..U+00FF */
    r -= 188;
    if (r < 33) return (unsigned char)r;
    if (r < 67) return (unsigned char)(0x7F + r - 33);
    return 0xAD;
}
