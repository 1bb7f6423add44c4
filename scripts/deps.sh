#!/bin/sh
# Installs the Debian packages attn needs, if any is missing:
#   sh scripts/deps.sh build   what the library and the attn tool need
#   sh scripts/deps.sh test    that and cmocka, for the tests (the default)
# Needs root or sudo; otherwise prints the apt-get line to run.
set -eu
build_pkgs="libcjson-dev libxlsxwriter-dev libpcre2-dev"
case "${1:-test}" in
build) pkgs="$build_pkgs"; what="the build" ;;
test) pkgs="$build_pkgs libcmocka-dev"; what="the build and tests" ;;
*) echo "usage: sh scripts/deps.sh [build|test]" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "attn needs:$missing. Install them with: apt-get install$missing" >&2
    exit 1
fi
echo "attn: installing$missing (Debian packages $what need)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q $missing >/dev/null || {
    $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q $missing >/dev/null
}
