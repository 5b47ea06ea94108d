#!/bin/sh
# install-deps.sh build|test|bench|fuzz|peer - installs the Debian packages coffre needs
# when some are missing.  Idempotent; prints nothing when all is there.
#   build: compiler, pkg-config and the libraries the daemon links
#   test:  build + cmocka, node (e2e runner), sqlite3 (tests tamper with stores),
#          oathtool, chromium, npm, cppcheck, clang-tidy, systemd-analyze, wrk
#   bench: build + wrk, node, sqlite3
#   fuzz:  build + clang with its sanitizer and libFuzzer runtimes
#   peer:  bench + glewlwyd (bench/compare's peer), nettle-dev (its hash bound), curl
set -eu

BUILD_PKGS="gcc make pkg-config libsodium-dev libsqlite3-dev libutf8proc-dev libjansson-dev libzxcvbn-dev libmicrohttpd-dev liboath-dev libqrencode-dev libfido2-dev libcbor-dev libseccomp-dev"
# test: oathtool (an independent TOTP), chromium + npm (playwright-core pages),
# cppcheck + clang-tidy (make lint), systemd (systemd-analyze verify), wrk (soak)
TEST_PKGS="$BUILD_PKGS libcmocka-dev nodejs npm sqlite3 oathtool chromium cppcheck clang-tidy systemd wrk"
BENCH_PKGS="$BUILD_PKGS nodejs sqlite3 wrk"
FUZZ_PKGS="$BUILD_PKGS clang libclang-rt-14-dev"
PEER_PKGS="$BENCH_PKGS glewlwyd nettle-dev curl"

case "${1:-build}" in
    build) want=$BUILD_PKGS ;;
    test)  want=$TEST_PKGS ;;
    bench) want=$BENCH_PKGS ;;
    fuzz)  want=$FUZZ_PKGS ;;
    peer)  want=$PEER_PKGS ;;
    *) echo "usage: $0 build|test|bench|fuzz|peer" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
# node may come from elsewhere than Debian's package (a newer one on PATH).
case " $missing " in
    *" nodejs "*) command -v node >/dev/null 2>&1 && missing=$(echo "$missing" | sed 's/ nodejs//') ;;
esac
case " $missing " in
    *" npm "*) command -v npm >/dev/null 2>&1 && missing=$(echo "$missing" | sed 's/ npm//') ;;
esac
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root (or sudo) to install:$missing" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done"
