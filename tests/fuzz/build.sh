#!/bin/sh
# build.sh -- build the libFuzzer drivers of tests/fuzz/ with clang.
#
#   sh tests/fuzz/build.sh            # every tests/fuzz/*_fuzz.c -> build/fuzz/NAME_fuzz
#   sh tests/fuzz/build.sh json       # only json_fuzz
#
# Drivers are compiled together with the sources they exercise (not linked against
# build/libsan.a, which cc builds without the fuzzer's coverage instrumentation).
# json_fuzz needs only src/json and three base files, so it builds in seconds;
# any other driver is compiled with every source file but src/main.c and linked
# with the project's libraries.
# Needs clang with its libFuzzer runtime (Debian: clang, plus libclang-rt-14-dev if
# the runtime is missing).
set -eu
cd "$(dirname "$0")/../.."
CC=${CLANG:-clang}
OUT=build/fuzz
mkdir -p "$OUT"
FLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# the libraries of the Makefile (LDLIBS, passed by `make fuzz-replay`), or the same list
LIBS=${LDLIBS:-"-llmdb -lmicrohttpd -lcrypto -lcurl -lpcre2-8 -lz -lzstd -lpthread -lm"}

if [ $# -eq 0 ]; then
    set -- $(for f in tests/fuzz/*_fuzz.c; do basename "$f" _fuzz.c; done)
fi
for name in "$@"; do
    driver=tests/fuzz/${name}_fuzz.c
    [ -f "$driver" ] || { echo "no driver $driver" >&2; exit 2; }
    case $name in
    json) srcs="src/json/json.c src/json/json_write.c src/base/arena.c src/base/buf.c src/base/err.c" ;;
    *) srcs=$(find src -name '*.c' ! -path src/main.c | sort) ;;
    esac
    # shellcheck disable=SC2086 # word splitting of the source list is intended
    $CC $FLAGS -o "$OUT/${name}_fuzz" "$driver" $srcs $LIBS
    echo "built $OUT/${name}_fuzz"
done
