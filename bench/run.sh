#!/bin/sh
# run.sh -- `make bench`: hortus against the static-file limit of this machine,
# side by side in one run (see bench/README.md for what each figure means).
#
#   1. generate a dataset (hortus generate, ndjson) and load it into a fresh
#      hortus data dir with `hortus import`; write the same keys and bytes with raw
#      LMDB (bench/lmdb_raw.c), the limit the import is set against;
#   2. fetch a sample of resources back from hortus and write the exact bytes
#      to files that a private nginx (own config, own loopback port) serves;
#   3. read by id: wrk -t2 -c32 --latency against nginx and hortus in alternating
#      rounds, same paths, same random sequence; the best round of each is kept;
#   4. durable creates: wrk POST /fhir/Observation at 1 and at 32 connections;
#   5. print the table; stop both servers and remove the temp dir.
#
# Knobs (environment): BENCH_PATIENTS (default 10000), BENCH_DURATION (seconds per
# wrk run, default 10), BENCH_ROUNDS (alternating read rounds, best kept, default 2),
# BENCH_SAMPLE (paths in the read mix, default 2000),
# HORTUS_BIN (default build/hortus), BENCH_KEEP=1 keeps the temp dir.
#   6. transaction ingest (BENCH_TX_PATIENTS, default 200, one Bundle each, 8 clients);
#   6b. durable creates by validation level (full, structure, off), fresh dir each;
#   7. search (bench/search.sh): matches counted per second, first pages at 8 clients,
#      _sort over the largest set, memory and database size;
#   8. authenticated reads against unauthenticated ones (bench/auth.sh).
# Takes about 12 minutes (10,000 patients; 6 with BENCH_PATIENTS=1000); needs wrk, nginx,
# cc, curl, openssl and python3.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HORTUS=${HORTUS_BIN:-$ROOT/build/hortus}
PATIENTS=${BENCH_PATIENTS:-10000}
DUR=${BENCH_DURATION:-10}
SAMPLE=${BENCH_SAMPLE:-2000}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

for tool in wrk nginx cc curl; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool not found (tools/deps.sh bench)" >&2; exit 1; }
done
[ -x "$HORTUS" ] || { echo "bench: $HORTUS not built (make build/hortus)" >&2; exit 1; }

T=$(mktemp -d /tmp/hortus-bench.XXXXXX)
HPID=""
cleanup() {
    [ -n "$HPID" ] && kill "$HPID" 2>/dev/null && wait "$HPID" 2>/dev/null || true
    [ -f "$T/nginx.pid" ] && kill "$(cat "$T/nginx.pid")" 2>/dev/null || true
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT INT TERM

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# "1.23ms" / "456.00us" / "1.02s" -> milliseconds
wrk_summary() { # FILE -> "rps p50ms p99ms non2xx"
    awk '
    function ms(x) {
        if (x ~ /us$/) { sub(/us$/, "", x); return x / 1000 }
        if (x ~ /ms$/) { sub(/ms$/, "", x); return x + 0 }
        if (x ~ /s$/)  { sub(/s$/, "", x);  return x * 1000 }
        return x + 0
    }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    $1 == "Requests/sec:" { rps = $2 }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, bad + 0 }' "$1"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, load average $LOAD_START"
echo "== building bench/loadgen"
cc -O2 -Wall -Wextra -pthread -o "$T/loadgen" "$ROOT/bench/loadgen.c"

echo "== generating $PATIENTS patients"
"$HORTUS" generate --patients "$PATIENTS" --seed 1 --format ndjson "$T/data" 2>"$T/generate.log"
head -1 "$T/generate.log"
RESOURCES=$(cat "$T"/data/*.ndjson | wc -l)

echo "== hortus import of $RESOURCES resources (validation full, every index, durable commits)"
"$HORTUS" import --data "$T/db" "$T/data" 2>"$T/import.log" ||
    { echo "bench: hortus import failed:" >&2; tail -20 "$T/import.log" >&2; exit 1; }
grep -E "^hortus import: (done|[0-9.]+ s reading|dangling)|search index of the load" "$T/import.log"
IMP_S=$(sed -n 's/.*done: [0-9]* resources loaded in \([0-9.]*\) s.*/\1/p' "$T/import.log")
IMP_RATE=$(sed -n 's/.*done: [0-9]* resources loaded in [0-9.]* s (\([0-9]*\)\/s).*/\1/p' "$T/import.log")

# the limit of this design: LMDB itself writing the keys and bytes the import wrote,
# in key order with MDB_APPEND, in durable commits (bench/lmdb_raw.c)
echo "== raw LMDB: the import's keys and bytes, appended in key order (bench/lmdb_raw.c)"
cc -O2 -Wall -o "$T/lmdb_raw" "$ROOT/bench/lmdb_raw.c" -llmdb
"$T/lmdb_raw" "$T/db" "$T/raw" >"$T/raw.txt" 2>"$T/raw.log"
cat "$T/raw.txt"
RAW_S=$(sed -n 's/^raw: .* bytes, \([0-9.]*\) s,.*/\1/p' "$T/raw.txt")
rm -rf "$T/raw"
D=$T/data

HPORT=$(free_port)
"$HORTUS" serve --port "$HPORT" --data "$T/db" >"$T/hortus.log" 2>&1 &
HPID=$!
i=0
until curl -sf "http://127.0.0.1:$HPORT/healthz" >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$HPID" 2>/dev/null; then
        echo "bench: hortus did not start; log:" >&2
        cat "$T/hortus.log" >&2
        exit 1
    fi
    sleep 0.1
done

# the read mix: an even spread over all types, in proportion to their counts
cat "$D"/*.ndjson |
    sed -n 's|^{"resourceType":"\([A-Za-z]*\)","id":"\([^"]*\)".*|/fhir/\1/\2|p' |
    awk -v n="$RESOURCES" -v k="$SAMPLE" 'BEGIN { step = n / k; if (step < 1) step = 1; next_i = 0 }
        NR - 1 >= next_i { print; next_i += step }' >"$T/paths.txt"
mkdir -p "$T/www"
"$T/loadgen" get 127.0.0.1 "$HPORT" "$T/paths.txt" "$T/www" >"$T/fetch.txt"
AVG_BYTES=$(find "$T/www" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f", s / NR }')
# create bodies: Observations without their id (the server assigns one)
sed -n '1,2000s/"id":"[^"]*",//p' "$D/Observation.ndjson" >"$T/bodies.ndjson"

NPORT=$(free_port)
mkdir -p "$T/ngx"
chmod 755 "$T"
chmod -R a+rX "$T/www"
cat >"$T/nginx.conf" <<EOF
worker_processes auto;
pid $T/nginx.pid;
error_log $T/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 10000000;
    keepalive_timeout 75;
    open_file_cache max=20000 inactive=60s;
    client_body_temp_path $T/ngx/body;
    proxy_temp_path $T/ngx/proxy;
    fastcgi_temp_path $T/ngx/fastcgi;
    uwsgi_temp_path $T/ngx/uwsgi;
    scgi_temp_path $T/ngx/scgi;
    types { }
    default_type application/fhir+json;
    server {
        listen 127.0.0.1:$NPORT;
        root $T/www;
        etag on;
    }
}
EOF
nginx -p "$T" -c "$T/nginx.conf" -e "$T/nginx-error.log"
sleep 0.3
FIRST=$(head -1 "$T/paths.txt")
curl -sf "http://127.0.0.1:$NPORT$FIRST" -o "$T/check-nginx" &&
    curl -sf "http://127.0.0.1:$HPORT$FIRST" -o "$T/check-hortus" &&
    cmp -s "$T/check-nginx" "$T/check-hortus" ||
    { echo "bench: nginx and hortus do not serve the same bytes for $FIRST" >&2; exit 1; }

run_wrk() { # NAME PORT THREADS CONNS SCRIPT ARGS...
    name=$1 port=$2 th=$3 c=$4 script=$5
    shift 5
    wrk -t"$th" -c"$c" -d"${DUR}s" --latency -s "$ROOT/bench/$script" "http://127.0.0.1:$port" -- "$@" >"$T/$name.txt" 2>&1
    wrk_summary "$T/$name.txt"
}

LOAD_READ=$(cut -d' ' -f1-3 /proc/loadavg)
# best of ROUNDS by req/s: "rps p50 p99 non2xx" lines on stdin
best() { sort -k1,1nr | head -1; }
ROUNDS=${BENCH_ROUNDS:-2}
echo "== read by id, 32 connections, ${DUR}s each, nginx and hortus alternating, best of $ROUNDS (3s warm-up each first); load average $LOAD_READ"
wrk -t2 -c32 -d3s -s "$ROOT/bench/read.lua" "http://127.0.0.1:$NPORT" -- "$T/paths.txt" >/dev/null 2>&1
wrk -t2 -c32 -d3s -s "$ROOT/bench/read.lua" "http://127.0.0.1:$HPORT" -- "$T/paths.txt" >/dev/null 2>&1
: >"$T/reads-nginx" && : >"$T/reads-hortus"
r=1
while [ $r -le "$ROUNDS" ]; do
    run_wrk "read-nginx-$r" "$NPORT" 2 32 read.lua "$T/paths.txt" >>"$T/reads-nginx"
    run_wrk "read-hortus-$r" "$HPORT" 2 32 read.lua "$T/paths.txt" >>"$T/reads-hortus"
    r=$((r + 1))
done
R_NGINX=$(best <"$T/reads-nginx")
R_HORTUS=$(best <"$T/reads-hortus")

# commit counters from /metrics: "commits fsyncs writes"
store_counters() {
    curl -sf "http://127.0.0.1:$HPORT/metrics" | awk '
        $1 == "hortus_store_commits_total" { c = $2 }
        $1 == "hortus_store_fsyncs_total" { f = $2 }
        $1 == "hortus_store_write_requests_total" { w = $2 }
        END { printf "%d %d %d\n", c, f, w }' || echo "0 0 0"
}

echo "== durable creates (POST /fhir/Observation), ${DUR}s each"
# what one synced 4 KiB write costs on the disk holding the data dir
SYNC_MS=$(dd if=/dev/zero of="$T/db/sync-probe" bs=4k count=200 oflag=dsync 2>&1 |
    awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") printf "%.2f", $(i - 1) * 1000 / 200 }')
rm -f "$T/db/sync-probe"
C_1=$(run_wrk create-1 "$HPORT" 1 1 create.lua "$T/bodies.ndjson" Observation)
set -- $(store_counters)
S0_C=$1 S0_F=$2 S0_W=$3
curl -sf "http://127.0.0.1:$HPORT/metrics" >"$T/metrics-before" || :
C_32=$(run_wrk create-32 "$HPORT" 2 32 create.lua "$T/bodies.ndjson" Observation)
curl -sf "http://127.0.0.1:$HPORT/metrics" >"$T/metrics-after" || :
set -- $(store_counters)
COMMITS=$(($1 - S0_C)) FSYNCS=$(($2 - S0_F)) WRITES=$(($3 - S0_W))


TXP=${BENCH_TX_PATIENTS:-200}
echo "== transaction ingest: $TXP patients, one transaction Bundle each, 8 clients"
"$HORTUS" generate --patients "$TXP" --seed 2 --format bundles "$T/tx" >/dev/null 2>&1
TX_RES=$(cat "$T"/tx/*.json | grep -o '"request":{"method"' | wc -l)
TX_START=$(date +%s.%N)
# the shared Organizations and Practitioners first: the patients' Bundles name them
curl -s -o /dev/null -w '%{http_code}\n' -X POST -H 'Content-Type: application/fhir+json' \
    --data-binary @"$T/tx/organizations.json" "http://127.0.0.1:$HPORT/fhir" >"$T/tx.codes"
ls "$T"/tx/*.json | grep -v '/organizations.json$' | xargs -P8 -I{} curl -s -o /dev/null -w '%{http_code}\n' -X POST \
    -H 'Content-Type: application/fhir+json' --data-binary @{} "http://127.0.0.1:$HPORT/fhir" \
    >>"$T/tx.codes"
TX_END=$(date +%s.%N)
TX_BAD=$(grep -vc '^200$' "$T/tx.codes" || :)

# what validation costs a write: the same creates at 32 clients against a fresh data dir
# per level (`--validate full|structure|off`), referential integrity off in all three
# (the bodies name patients a fresh dir does not hold), one server at a time
echo "== durable creates by validation level, fresh data dirs, ${DUR}s each"
: >"$T/creates-by-level"
for level in full structure off; do
    VPORT=$(free_port)
    "$HORTUS" serve --port "$VPORT" --data "$T/v-$level" --validate "$level" \
        --referential-integrity off >"$T/v-$level.log" 2>&1 &
    VPID=$!
    i=0
    until curl -sf "http://127.0.0.1:$VPORT/healthz" >/dev/null 2>&1 || [ $i -gt 100 ]; do
        i=$((i + 1))
        sleep 0.1
    done
    echo "$level $(run_wrk "create-$level" "$VPORT" 2 32 create.lua "$T/bodies.ndjson" Observation)" \
        >>"$T/creates-by-level"
    kill "$VPID" && wait "$VPID" 2>/dev/null || :
    rm -rf "$T/v-$level"
done

# what the audit trail costs a write (docs/AUDIT.md): the same creates at 32 clients,
# fresh data dir each, `--audit off` and `on` alternating twice, best of each kept
echo "== durable creates with and without the audit trail, fresh data dirs, ${DUR}s each"
: >"$T/creates-audit-on" && : >"$T/creates-audit-off"
for audit in off on off on; do
    APORT=$(free_port)
    "$HORTUS" serve --port "$APORT" --data "$T/a-$audit" --audit "$audit" \
        --referential-integrity off >"$T/a-$audit.log" 2>&1 &
    APID=$!
    i=0
    until curl -sf "http://127.0.0.1:$APORT/healthz" >/dev/null 2>&1 || [ $i -gt 100 ]; do
        i=$((i + 1))
        sleep 0.1
    done
    run_wrk "create-audit-$audit" "$APORT" 2 32 create.lua "$T/bodies.ndjson" Observation \
        >>"$T/creates-audit-$audit"
    kill "$APID" && wait "$APID" 2>/dev/null || :
    rm -rf "$T/a-$audit"
done
A_ON=$(best <"$T/creates-audit-on")
A_OFF=$(best <"$T/creates-audit-off")

echo "== search (bench/search.sh): counting, first pages at 8 clients, _sort, sizes"
sh "$ROOT/bench/search.sh" "$HPORT" "$T/db" "$D" "$HPID" >"$T/search.txt" || :

# authenticated reads need the data dir to themselves: the server above stops here
echo "== authenticated reads (bench/auth.sh): the same reads with and without bearer tokens, alternating, best of $ROUNDS"
kill "$HPID" && wait "$HPID" 2>/dev/null || :
HPID=""
sh "$ROOT/bench/auth.sh" "$HORTUS" "$T/db" "$T/paths.txt" >"$T/auth.txt" || :

echo
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || REV="$REV+uncommitted"
echo "hortus bench -- $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $REV, $(nproc) cores, dataset $PATIENTS patients / $RESOURCES resources, read mix $(wc -l <"$T/paths.txt") ids (avg $AVG_BYTES bytes)"
echo "load average before the run $LOAD_START, before the reads $LOAD_READ, at the end $(cut -d' ' -f1-3 /proc/loadavg) (other processes share these cores)"
printf '%-44s %10s %10s %10s %8s\n' "" "req/s" "p50 ms" "p99 ms" "non-2xx"
set -- $R_NGINX
printf '%-44s %10s %10s %10s %8s\n' "read by id, 32 conns: nginx static file" "$1" "$2" "$3" "$4"
NG_RPS=$1
set -- $R_HORTUS
printf '%-44s %10s %10s %10s %8s\n' "read by id, 32 conns: hortus" "$1" "$2" "$3" "$4"
H_RPS=$1 H_P99=$3
set -- $C_1
printf '%-44s %10s %10s %10s %8s\n' "durable create, 1 client: hortus" "$1" "$2" "$3" "$4"
set -- $C_32
printf '%-44s %10s %10s %10s %8s\n' "durable create, 32 clients: hortus" "$1" "$2" "$3" "$4"
C32_RPS=$1
awk -v n="$RESOURCES" -v s="$IMP_S" -v r="$IMP_RATE" -v w="$RAW_S" 'BEGIN {
    raw = w > 0 ? n / w : 0
    printf "%-44s %10d\n", "hortus import (full validation): resources/s", r
    printf "%-44s %10d\n", "raw LMDB, same keys+bytes appended: res/s", raw
    printf "import: %d resources in %.1f s, %d/s (target >= 150000/s: %s); %.0f%% of the raw LMDB rate of the same keys and bytes (%.1f s)\n",
        n, s, r, (r >= 150000 ? "met" : "NOT met"), (raw > 0 ? 100 * r / raw : 0), w
}'
echo
awk -v h="$H_RPS" -v n="$NG_RPS" -v p="$H_P99" -v c="$C32_RPS" 'BEGIN {
    r = n > 0 ? h / n : 0
    printf "read ratio hortus/nginx: %.2f (target >= 0.50: %s); hortus read p99 %.3f ms (target <= 2 ms: %s)\n",
        r, (r >= 0.5 ? "met" : "NOT met"), p, (p <= 2 ? "met" : "NOT met")
    printf "durable creates at 32 clients: %d/s (target >= 10000/s: %s)\n", c, (c >= 10000 ? "met" : "NOT met")
}'
awk -v w="$WRITES" -v c="$COMMITS" -v f="$FSYNCS" -v s="${SYNC_MS:-0}" 'BEGIN {
    if (c > 0)
        printf "  during the 32-client run: %d writes in %d commits (%.1f per commit), %.1f fsyncs per commit; one synced 4 KiB write on this disk: %s ms\n",
            w, c, w / c, f / c, s
}'

# commit durations during the 32-client run, from the difference of the two
# hortus_store_commit_seconds histograms: the bucket bound under which half and 99% fell
awk '
    /^hortus_store_commit_seconds_bucket/ {
        le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le)
        if (FILENAME ~ /before$/) b[le] = $2; else { a[le] = $2; order[++n] = le }
    }
    END {
        if (!n) exit
        total = a["+Inf"] - b["+Inf"]
        if (total <= 0) exit
        for (i = 1; i <= n; i++) {
            c = a[order[i]] - b[order[i]]
            if (p50 == "" && c >= total * 0.5) p50 = order[i]
            if (p99 == "" && c >= total * 0.99) p99 = order[i]
        }
        slow = total - (a["0.01"] - b["0.01"])
        printf "  commit durations in that run: half under %s ms, 99%% under %s ms, %d of %d commits over 10 ms\n",
            (p50 == "+Inf" ? p50 : p50 * 1000), (p99 == "+Inf" ? p99 : p99 * 1000), slow, total
    }' "$T/metrics-before" "$T/metrics-after" 2>/dev/null || :

# search figures (bench/search.sh), against the targets of docs/SEARCH.md's issue
echo
awk -v n="$TX_RES" -v a="$TX_START" -v b="$TX_END" -v bad="$TX_BAD" 'BEGIN {
    r = n / (b - a)
    printf "transaction ingest (one patient per Bundle, 8 clients): %d resources in %.1f s = %d resources/s (target >= 40000: %s), %d Bundles not 200\n",
        n, b - a, r, (r >= 40000 ? "met" : "NOT met"), bad
}'
awk '{ printf "durable creates, 32 clients, fresh dir, --validate %-9s %6d/s, p50 %.2f ms, p99 %.2f ms, non-2xx %d\n", $1, $2, $3, $4, $5 }' \
    "$T/creates-by-level" 2>/dev/null || :
echo "$A_ON" "$A_OFF" | awk '{ r = $1 / ($5 > 0 ? $5 : 1)
    printf "writes with audit / without: %.2f (%d/s with, %d/s without, 32 clients, best of 2 each; target >= 0.90: %s)\n",
        r, $1, $5, (r >= 0.90 ? "met" : "NOT met") }'
awk -F'|' '
    $1 == "fold"  { printf "search: waited %d s for the index fold the writes above left running\n", $2 }
    $1 == "count" { printf "search: %s counted %d matches/request at %d req/s (8 clients): %.1f million matches counted/s (target >= 20: %s)\n", $2, $7, $3, $8 / 1e6, ($8 >= 2e7 ? "met" : "NOT met") }
    $1 == "page"  { printf "search: first page, 8 clients, %-9s %6d req/s, p50 %.3f ms, p99 %.3f ms (targets 1 / 5 ms: %s), %d matches, non-2xx %d: %s\n", $2, $4, $5, $6, ($5 <= 1 && $6 <= 5 ? "met" : "NOT met"), $8, $7, $3 }
    $1 == "link"  { printf "search: 8 clients, %-10s %6d req/s, p50 %.3f ms, p99 %.3f ms (targets 5 / 20 ms: %s), %d matches, non-2xx %d: %s\n", $2, $4, $5, $6, ($5 <= 5 && $6 <= 20 ? "met" : "NOT met"), $8, $7, $3 }
    $1 == "reindex" { r = $2 / ($3 > 0 ? $3 : 1); printf "search: reindex of a custom token parameter over %d Observations while 2 clients read: %.1f s = %d resources/s (target >= 200000: %s); reads meanwhile %d req/s; search by it finds %d of %d\n", $2, $3, r, (r >= 200000 ? "met" : "NOT met"), $4, $5, $6 }
    $1 == "sort"  { printf "search: _sort=date over %d matches, first page p50 %.1f ms (target <= 50 ms: %s), worst of 20 %.1f ms: %s\n", $3, $4, ($4 <= 50 ? "met" : "NOT met"), $5, $2 }
    $1 == "rss"   { printf "server memory without the mapped database (RssAnon): %d MiB (target < 256: %s)\n", $2, ($2 < 256 ? "met" : "NOT met") }
    $1 == "size"  { printf "database %.0f MiB for %.0f MiB of ndjson (%.2fx)\n", $2 / 1048576, $3 / 1048576, $2 / $3 }
' "$T/search.txt" 2>/dev/null || :

awk -F'|' '$1 == "auth" { r = $5 / ($2 > 0 ? $2 : 1); printf "authenticated reads by id (RS256 bearer token, user/*.rs, 32 connections): %d req/s against %d without authorisation = %.2fx (target >= 0.90: %s); p50 %.3f / %.3f ms, p99 %.3f / %.3f ms, non-2xx %d\n", $5, $2, r, (r >= 0.9 ? "met" : "NOT met"), $6, $3, $7, $4, $8 }' \
    "$T/auth.txt" 2>/dev/null || :

# FHIRPath engine against the HL7 reference implementation (npm fhirpath), same
# resources and expressions, one process each.
echo
echo "== FHIRPath: hortus vs npm fhirpath (bench/fhirpath/run.sh)"
sh "$ROOT/bench/fhirpath/run.sh" | tail -n 2
