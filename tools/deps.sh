#!/bin/sh
# deps.sh -- install the Debian packages a task needs, only those missing.
#
#   tools/deps.sh build|test|bench|regen
#
# Used by `make run`, `make test`, `make bench` and .ci/run so that a fresh Debian
# machine needs nothing but make. Needs root or sudo when something is missing.
set -eu

build="gcc make libc6-dev liblmdb-dev libmicrohttpd-dev libssl-dev libcurl4-openssl-dev libpcre2-dev libzstd-dev zlib1g-dev"
test_pkgs="$build python3 python3-pytest python3-requests clang libclang-rt-14-dev python3-lmdb python3-cryptography zstd openssl"
bench_pkgs="$build nginx-light wrk nodejs curl python3 openssl"
regen_pkgs="python3"

case "${1:-build}" in
build) want=$build ;;
test) want=$test_pkgs ;;
bench) want=$bench_pkgs ;;
regen) want=$regen_pkgs ;;
*) echo "usage: $0 build|test|bench|regen" >&2; exit 2 ;;
esac

missing=""
# npm: any working npm will do (nodejs from other sources bundles its own, and
# Debian's npm package conflicts with those); install Debian's only when absent.
# The search oracle of the tests (tests/oracle) runs on node with npm packages too.
case "${1:-build}" in
regen | test)
    if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
        want="$want nodejs npm"
    fi
    ;;
esac
for p in $want; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in
    *" installed") ;;
    *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "deps: need root or sudo to install:$missing" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
