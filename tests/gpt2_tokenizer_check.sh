#!/bin/sh
# attn's GPT-2 tokenizer against the reference encoder (the npm package's own
# Encoder.js, run by tests/gpt2_reference.js with Debian's node), on the texts
# of tests/gen_tokenizer_cases.py and all of tiny Shakespeare: the ids must be
# identical, and decoding must give back every input's bytes (also bytes that
# are not UTF-8). The expected ids are made here, at test time.
#   gpt2_tokenizer_check.sh ATTN_BIN VOCAB_DIR SOURCE_DIR WORK_DIR
# Without the vocabulary files (make gpt2-vocab) or node, a user's run skips
# (exit 77, ctest's "skipped"); under CI=true it fails.
set -u
attn=$1 vocab=$2 src=$3 work=$4
missing=""
[ -f "$vocab/encoder.json" ] && [ -f "$vocab/vocab.bpe" ] && [ -f "$vocab/Encoder.js" ] ||
    missing="GPT-2's tokenizer files in $vocab (run 'make gpt2-vocab')"
command -v node >/dev/null 2>&1 || missing="${missing:+$missing; }node (apt-get install nodejs)"
if [ -n "$missing" ]; then
    case ${CI:-} in
    true | 1 | yes) echo "FAIL: missing $missing" >&2; exit 1 ;;
    esac
    echo "SKIP: missing $missing"
    exit 77
fi
shakespeare=${ATTN_TINYSHAKESPEARE:-$src/../shared/data/tinyshakespeare.txt}
rm -rf "$work" && mkdir -p "$work" || exit 1
python3 "$src/tests/gen_tokenizer_cases.py" "$work" || exit 1
if [ -f "$shakespeare" ]; then
    cp "$shakespeare" "$work/tinyshakespeare.txt"
else
    case ${CI:-} in
    true | 1 | yes) echo "FAIL: no tiny Shakespeare at $shakespeare" >&2; exit 1 ;;
    esac
    echo "note: no tiny Shakespeare at $shakespeare (set ATTN_TINYSHAKESPEARE); its case is skipped"
fi
# The reference ids of every text, in one run of node (loading Encoder.js
# once): each X.txt gets X.txt.ref.
node "$src/tests/gpt2_reference.js" "$vocab" "$work"/*.txt || { echo "FAIL: the reference encoder failed"; exit 1; }
fail=0
for f in "$work"/*.txt "$work"/*.bin; do
    name=$(basename "$f")
    if ! "$attn" tokenize --gpt2 "$vocab" < "$f" > "$f.ids"; then
        echo "FAIL $name: attn tokenize failed"; fail=1; continue
    fi
    case $name in
    *.txt)
        if ! cmp -s "$f.ref" "$f.ids"; then
            echo "FAIL $name: ids differ from the reference:"; cmp "$f.ref" "$f.ids"; fail=1; continue
        fi ;;
    esac
    if ! "$attn" tokenize --gpt2 "$vocab" --decode < "$f.ids" | cmp -s - "$f"; then
        echo "FAIL $name: decode(encode(x)) != x"; fail=1; continue
    fi
    echo "ok   $name: $(wc -w < "$f.ids") ids$(case $name in *.txt) echo ', identical to the reference';; esac), decoded exactly"
done
exit $fail
