#!/bin/sh
# build.sh -- build the libFuzzer drivers of tests/fuzz/ with clang.
#
#   sh tests/fuzz/build.sh            # builds build/fuzz/json_fuzz
#
# Each driver is compiled together with the sources it exercises (not with
# build/libsan.a, which is built by cc without fuzzer coverage instrumentation).
# Needs clang with its libFuzzer runtime (Debian: clang, libclang-rt-14-dev when
# the runtime is missing).
set -eu
cd "$(dirname "$0")/../.."
CC=${CLANG:-clang}
OUT=build/fuzz
mkdir -p "$OUT"
FLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
BASE="src/base/arena.c src/base/buf.c src/base/err.c"
$CC $FLAGS -o "$OUT/json_fuzz" tests/fuzz/json_fuzz.c src/json/json.c src/json/json_write.c $BASE
echo "built $OUT/json_fuzz"
