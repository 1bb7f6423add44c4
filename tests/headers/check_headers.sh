#!/bin/bash
# check_headers.sh CC INCLUDE_DIR [CFLAGS...] - every public header compiles
# alone (it includes what it uses), twice in a row (its include guard works),
# and the umbrella attn/attn.h includes every one of them. Headers named in
# ATTN_HEADERS_SKIP (attn/dist.h when built without MPI) are left out. The
# compilations run four at a time.
set -u
CC=${1:?usage: check_headers.sh CC INCLUDE_DIR [CFLAGS...]}
INC=${2:?usage: check_headers.sh CC INCLUDE_DIR [CFLAGS...]}
shift 2
INC=$(cd "$INC" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
n=0
for f in "$INC"/attn/*.h; do
    h=$(basename "$f")
    case " ${ATTN_HEADERS_SKIP:-} " in *" $h "*) echo "skipped: attn/$h"; continue ;; esac
    n=$((n + 1))
    printf '#include "attn/%s"\n#include "attn/%s"\nint attn_header_check_;\n' "$h" "$h" >"$tmp/${h%.h}.c"
    [ "$h" = attn.h ] && continue
    if ! grep -q "^[[:space:]]*#[[:space:]]*include \"attn/$h\"" "$INC/attn/attn.h"; then
        echo "attn/attn.h does not include attn/$h"
        fail=1
    fi
done
# One line "not self-contained: attn/X.h" (after the compiler's message) per failure.
export CC INC
bad=$(cd "$tmp" && ls -- *.c | xargs -P 4 -I{} sh -c \
    '"$CC" -std=c11 -Wall -Wextra -Werror -fsyntax-only -I"$INC" "$@" {} >&2 || echo "not self-contained: attn/$(basename {} .c).h"' \
    sh "$@")
[ -n "$bad" ] && echo "$bad" && fail=1
echo "$n headers checked"
exit $fail
