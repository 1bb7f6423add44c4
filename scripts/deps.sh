#!/bin/sh
# Installs the Debian packages that attn's build and tests need, if any is
# missing. Needs root or sudo; otherwise prints the apt-get line to run.
set -eu
pkgs="libcjson-dev libxlsxwriter-dev libcmocka-dev libpcre2-dev"
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
echo "attn: installing$missing (Debian packages the build and tests need)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q $missing >/dev/null || {
    $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q $missing >/dev/null
}
