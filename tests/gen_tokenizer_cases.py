#!/usr/bin/env python3
"""Writes the texts on which attn's GPT-2 tokenizer is compared with the
reference encoder (tests/gpt2_tokenizer_check.sh), deterministically.

    gen_tokenizer_cases.py OUTDIR

*.txt are valid UTF-8 (the reference encoder takes strings): their ids must
equal the reference's and decode back to the same bytes. *.bin are bytes that
are not valid UTF-8: only decode(encode(x)) == x is checked on them.
Characters are limited to those assigned by Unicode 14 (PCRE2 10.42's tables;
node's are newer), so that both sides class every character alike.
"""
import os
import random
import sys

PROSE = """The quick brown fox jumps over the lazy dog. It's 5 o'clock; we've waited,
they're late, I'm tired and you'll see that he'd rather not. DON'T SHOUT! She's
"quoted", isn't it? Prices rose 12.5% to $1,234.56 in 2023 -- a record (again).
  Indented line with trailing spaces   
Email: someone@example.com, URL: https://example.org/path?q=1&r=2#frag
'Tis the season; rock 'n' roll; the '90s; O'Brien's dog's bone. ''' '' ' x's
Ünïcödé wörds: naïve café, façade, jalapeño, smörgåsbord, Zürich, déjà vu.
<|endoftext|>A new document starts<|endoftext|> here.
"""

CODE = """#include <stdio.h>
int main(int argc, char **argv) {
\tfor (int i = 0; i < argc; i++) {
\t\tprintf("%d: %s\\n", i, argv[i]);  // comment
\t}
\treturn argc > 1 ? 0 : -1;
}
def f(x, *args, **kw):
    '''Docstring.'''
    return [y ** 2 for y in range(x) if y % 3 == 0] + list(kw.items())

    x = {"a": 1, 'b': [2, 3.0e-5, None]}   # dict
if (a && b || !c) { x <<= 2; y >>= 3; z ^= ~w; }
SELECT id, name FROM users WHERE age >= 18 ORDER BY name;
<div class="x">&amp; &lt;tag&gt;</div>
"""

SCRIPTS = """Ελληνικά: Γειά σου Κόσμε. Русский: Привет, мир! Українська: ґанок, їжак.
العربية: مرحبا بالعالم. עברית: שלום עולם. हिन्दी: नमस्ते दुनिया। বাংলা: ওহে বিশ্ব।
中文：你好，世界！日本語：こんにちは世界、カタカナ、漢字。한국어: 안녕하세요 세계.
ไทย: สวัสดีชาวโลก. Tiếng Việt: Xin chào thế giới, ạ ặ ờ. ქართული: გამარჯობა.
Armenian: Բարեւ. Amharic: ሰላም ልዑል. Tamil: வணக்கம். Mongolian: Сайн уу. ᠮᠣᠩᠭᠣᠯ
Emoji: 😀 😃 👍🏽 👩‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵 ❤️ ✔︎ 🤷‍♀️ 1️⃣ #️⃣ 🧑🏿‍🚀 🐈‍⬛
Combining: e\u0301 a\u0300\u0316 n\u0303 Z\u0351\u0337\u0334a\u0364\u0327\u035fl\u0310g\u030bo\u0357\u0308 \u0301start
Numbers: ١٢٣ ४५६ 一二三 ½ ¾ ² ³ Ⅻ ⅷ ① ⑽ ０１２ 𝟘𝟙 and 3.14159 1e10 0xFF
Math: ∀x∈ℝ, ∑ᵢ xᵢ² ≥ 0; ∫₀^∞ e^{-x} dx = 1; ≠ ≤ ≥ ∞ → ⇒ ∂ ∇
Mixed: abc١٢٣def ΑΒΓabc 中文English123日本
Supplementary: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈 𓀀 𝄞 🀄
"""


def control_text():
    parts = []
    for c in list(range(0, 0x20)) + [0x7F] + list(range(0x80, 0xA0)):
        parts.append("a" + chr(c) + "b " + chr(c) + chr(c) + " x" + chr(c))
    # White_Space (U+0085 and U+2028 included) and characters that are not
    # (U+FEFF, U+200B, U+180E, U+001C): the places where \s differs.
    for c in [0x85, 0xA0, 0x1680, 0x2000, 0x2007, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F,
              0x3000, 0xFEFF, 0x200B, 0x180E, 0x1C, 0x1F, 0x0B, 0x0C]:
        s = chr(c)
        parts.append("word" + s + "word " + s * 3 + "x" + s + " y " + s + s + "\n" + s)
    return "\n".join(parts)


def spaces_text():
    parts = []
    for n in [1, 2, 3, 4, 7, 8, 15, 16, 31, 64, 100, 257, 1000, 3000]:
        parts.append("a" + " " * n + "b")
        parts.append(" " * n + "\n")
        parts.append("\t" * n + "c")
        parts.append("\n" * (n % 50 + 1))
        parts.append(" \t" * (n // 2) + "d" + " " * n)
    parts.append("x" + " \u3000\u00a0" * 200 + "y")
    return "".join(parts) + "   "


def random_valid(rng, n):
    # random bytes, decoded as UTF-8 with U+FFFD for what is not: controls,
    # ASCII, Latin and 2-byte characters, replacement characters
    return rng.randbytes(n).decode("utf-8", errors="replace")


def random_mix(rng, n):
    pool = ["the", " the", "The", " 's", "'s", "'S", "'ll", "'", "''", " ", "  ", "\t", "\n",
            "\r\n", "123", " 4567", "3.5", ",", ".", "!!", "?!", "--", "...", "(", ")", "日本",
            "語", "😀", "👍🏽", "e\u0301", "\u0301", "Ω", "ß", "İ", "ﬁ", "\u00a0", "\u2028",
            "\u0085", "\ufeff", "\u200b", "<|endoftext|>", "<|", "|>", "@", "#", "$", "_",
            "x", "ABC", "Zz", "١٢", "Ⅻ", "\x00", "\x7f", "\x1b[0m", "\uFFFD", "𝔘", "𓀀"]
    out, size = [], 0
    while size < n:
        s = rng.choice(pool)
        out.append(s)
        size += len(s)
    return "".join(out)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_tokenizer_cases.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = random.Random(20260512)
    cases = {
        "prose.txt": PROSE * 3,
        "code.txt": CODE * 3,
        "scripts.txt": SCRIPTS * 2,
        "control.txt": control_text(),
        "spaces.txt": spaces_text(),
        "random_valid.txt": random_valid(rng, 200000),
        "random_mix.txt": random_mix(rng, 200000),
        "empty.txt": "",
        "one_space.txt": " ",
    }
    for name, text in cases.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(text.encode("utf-8"))
    raw = {
        "random_bytes.bin": rng.randbytes(100000),
        # invalid sequences next to valid text: lone continuation bytes,
        # truncated sequences, overlongs, surrogates, bytes above F4
        "invalid_utf8.bin": b"ab\x80cd \xc3 x\xe2\x82 y\xf0\x9f\x98 z\xc0\xaf \xed\xa0\x80 \xf5\xff"
                            b" caf\xc3\xa9\xff\xfe 's\x80's  \x80  \x80\n\xc3\xa9\xc3",
    }
    for name, data in raw.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
