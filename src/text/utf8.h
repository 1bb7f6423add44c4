/* utf8.h - strict UTF-8 decoding and encoding shared by the tokenizers. */
#ifndef ATTN_TEXT_UTF8_H
#define ATTN_TEXT_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes one code point at s[*i] (strict UTF-8: no overlongs, surrogates or
 * values above U+10FFFF) and advances *i. Returns 0 on success, -1 (and
 * leaves *i) on an invalid or truncated sequence. */
static inline int utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *cp)
{
    unsigned char c = s[*i];
    size_t need;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        (*i)++;
        return 0;
    } else if ((c & 0xE0) == 0xC0) need = 1, v = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) need = 2, v = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) need = 3, v = c & 0x07, min = 0x10000;
    else return -1;
    if (*i + need >= len) return -1; /* truncated sequence */
    for (size_t k = 1; k <= need; k++) {
        unsigned char d = s[*i + k];
        if ((d & 0xC0) != 0x80) return -1;
        v = (v << 6) | (d & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return -1;
    *cp = v;
    *i += need + 1;
    return 0;
}

/* Writes v as UTF-8 and a NUL into out[0..5); returns the byte count. */
static inline int utf8_put(uint32_t v, char *out)
{
    if (v < 0x80) return out[0] = (char)v, out[1] = 0, 1;
    if (v < 0x800) {
        out[0] = (char)(0xC0 | (v >> 6)), out[1] = (char)(0x80 | (v & 0x3F)), out[2] = 0;
        return 2;
    }
    if (v < 0x10000) {
        out[0] = (char)(0xE0 | (v >> 12)), out[1] = (char)(0x80 | ((v >> 6) & 0x3F));
        out[2] = (char)(0x80 | (v & 0x3F)), out[3] = 0;
        return 3;
    }
    out[0] = (char)(0xF0 | (v >> 18)), out[1] = (char)(0x80 | ((v >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((v >> 6) & 0x3F)), out[3] = (char)(0x80 | (v & 0x3F)), out[4] = 0;
    return 4;
}

#endif
