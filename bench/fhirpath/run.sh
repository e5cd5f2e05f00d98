#!/bin/sh
# run.sh -- FHIRPath: hortus (fp_bench.c) and npm fhirpath 5.2.2 (fp_bench.js) over
# the same generated resources and the same R4 search-parameter expressions.
#
#   sh bench/fhirpath/run.sh            (from the repository root, after make build/hortus)
#
# Knobs: FP_BENCH_PATIENTS (default 20), FP_BENCH_ROUNDS (5), FP_BENCH_SIMPLE (1000000
# for hortus; node runs a tenth of it). Needs node and npm (npm install of package.json
# here, once) or NODE_PATH pointing at a node_modules that has fhirpath.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/fhirpath
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PATIENTS=${FP_BENCH_PATIENTS:-20}
SIMPLE=${FP_BENCH_SIMPLE:-1000000}

[ -x "$ROOT/build/hortus" ] || make -C "$ROOT" build/hortus
cc -O2 -I"$ROOT/src" -D_GNU_SOURCE -o "$TMP/fp_bench" "$HERE/fp_bench.c" \
    "$ROOT/build/librel.a" -llmdb -lmicrohttpd -lcrypto -lpcre2-8 -lz -lzstd -lpthread -lm
"$ROOT/build/hortus" generate --patients "$PATIENTS" --seed 1 --format ndjson "$TMP/data" >/dev/null
"$TMP/fp_bench" --list "$TMP/data" > "$TMP/list.txt"
if [ -z "${NODE_PATH:-}" ] && [ ! -d "$HERE/node_modules/fhirpath" ]; then
    (cd "$HERE" && npm install --no-audit --no-fund --silent)
fi

echo "== hortus (C, one thread)"
FP_BENCH_SIMPLE=$SIMPLE "$TMP/fp_bench" "$TMP/data" | tee "$TMP/c.txt"
echo "== npm fhirpath 5.2.2 (node $(node --version), one process)"
FP_BENCH_SIMPLE=$((SIMPLE / 10)) node "$HERE/fp_bench.js" "$TMP/list.txt" "$TMP/data" | tee "$TMP/js.txt"

# Side by side: the figures of this run, as ratios against the targets.
rate() { sed -n "s|.* \([0-9][0-9]*\) $2.*|\1|p" "$1" | head -n 1; }
C_SP=$(rate "$TMP/c.txt" "evaluations/s")
JS_SP=$(rate "$TMP/js.txt" "evaluations/s")
C_SIMPLE=$(rate "$TMP/c.txt" "per second (")
awk -v c="$C_SP" -v j="$JS_SP" -v s="$C_SIMPLE" 'BEGIN {
    r = j > 0 ? c / j : 0
    printf "fhirpath search-parameter evaluation, hortus/fhirpath.js: %.1fx (target >= 20x: %s)\n",
        r, (r >= 20 ? "met" : "NOT met")
    printf "fhirpath simple path parse+evaluate: %d per second on one core (target >= 1000000: %s)\n",
        s, (s >= 1000000 ? "met" : "NOT met")
}'
