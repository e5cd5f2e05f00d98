#!/bin/sh
# search.sh -- the search part of `make bench`, run by bench/run.sh against the hortus
# it loaded (or by hand: sh bench/search.sh PORT DATADIR NDJSONDIR PID).
#
#   1. counting: Observation?code=<LOINC>&_summary=count, 8 clients: matches counted/s
#   2. first page of 50 at 8 clients (p50, p99): a token search, Patient?family=,
#      and Observation?subject=&code=&date=ge
#   3. _sort=date over the largest match set, first page (p50 of 20 requests)
#   3a. a chain, a _has and a _revinclude page, and Patient/X/$everything of a patient
#       with about 150 resources (all of them, one page), at 8 clients (p50, p99)
#   3b. reindex: a custom SearchParameter over every Observation, created while 2
#       clients keep reading; resources reindexed per second until $reindex says
#       complete (target >= 200,000/s), and the reads' rate meanwhile
#   4. sizes: database bytes against the ndjson bytes, and the server's anonymous
#      memory (RSS without the mapped database) at the end (index entries per
#      resource: `hortus check` of the kept directory, BENCH_KEEP=1; 4 minutes at
#      10,000 patients, so not part of every run)
# Prints one line per figure; the caller puts them in its table.
set -eu
PORT=$1 DB=$2 ND=$3 HPID=$4
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUR=${BENCH_DURATION:-10}
B="http://127.0.0.1:$PORT"
T=$(mktemp -d /tmp/hortus-search.XXXXXX)
trap 'rm -rf "$T"' EXIT

# values drawn from the data: the first Observation's subject and code, a family name
OBS=$(head -1 "$ND/Observation.ndjson")
SUBJ=$(printf '%s' "$OBS" | sed -n 's|.*"subject":{"reference":"\(Patient/[^"]*\)".*|\1|p')
CODE=$(printf '%s' "$OBS" | sed -n 's|.*"code":{"coding":\[{"system":"http://loinc.org","code":"\([^"]*\)".*|\1|p')
FAMILY=$(head -1 "$ND/Patient.ndjson" | sed -n 's|.*"family":"\([^"]*\)".*|\1|p')
[ -n "$SUBJ" ] && [ -n "$CODE" ] && [ -n "$FAMILY" ] || {
    echo "search.sh: could not pick values from the data" >&2
    exit 1
}
enc() { printf '%s' "$1" | sed 's/|/%7C/g; s/ /%20/g'; }
COUNT_Q="/fhir/Observation?code=$(enc "http://loinc.org|$CODE")&_summary=count"
TOKEN_Q="/fhir/Observation?code=$(enc "http://loinc.org|$CODE")"
FAMILY_Q="/fhir/Patient?family=$(enc "$FAMILY")"
SELECT_Q="/fhir/Observation?subject=$SUBJ&code=$(enc "http://loinc.org|$CODE")&date=ge2000-01-01"
SORT_Q="/fhir/Observation?status=final&_sort=date"
CHAIN_Q="/fhir/Observation?subject:Patient.family=$(enc "$FAMILY")&code=$(enc "http://loinc.org|$CODE")"
HAS_Q="/fhir/Patient?family=$(enc "$FAMILY")&_has:Observation:patient:code=$(enc "http://loinc.org|$CODE")"
REVINC_Q="/fhir/Patient?family=$(enc "$FAMILY")&_count=10&_revinclude=Encounter:subject"

total_of() {
    curl -sf "$B$1" | sed -n 's/.*"total":\([0-9]*\).*/\1/p'
}

wrk_one() { # name, clients, path -> "req/s p50 p99 non2xx"
    printf '%s\n' "$3" >"$T/$1.path"
    wrk -t2 -c"$2" -d"${DUR}s" --latency -s "$ROOT/bench/read.lua" "$B" -- "$T/$1.path" \
        >"$T/$1.txt" 2>&1 || :
    awk '
        /Requests\/sec/ { rps = $2 }
        /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
        /Non-2xx/ { bad = $NF }
        function ms(v) { if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
                         if (v ~ /ms$/) { sub(/ms$/, "", v); return v }
                         if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000 } return v }
        END { printf "%d %.3f %.3f %d\n", rps, ms(p50), ms(p99), bad + 0 }' "$T/$1.txt"
}

# The writes of the earlier steps leave index overlay records that the writer folds
# once it has been idle for a second (docs/STORAGE.md 4.6): background work of those
# writes, measured with them. Let it finish (at most 60 s) so the figures below are the
# searches' own.
waited=0
while [ "$waited" -lt 600 ] &&
    curl -sf "$B/metrics" | grep -Eq '^hortus_index_fold_running 1|^hortus_index_overlay_records [1-9]'; do
    sleep 0.1
    waited=$((waited + 1))
done
echo "fold|$((waited / 10))"

MATCHES=$(total_of "$COUNT_Q")
set -- $(wrk_one count 8 "$COUNT_Q")
echo "count|$COUNT_Q|$1|$2|$3|$4|$MATCHES|$(awk -v r="$1" -v m="$MATCHES" 'BEGIN { printf "%.0f", r * m }')"
pages() { # record, name:path ... -> one "record|name|path|req/s|p50|p99|non2xx|matches" each
    rec=$1
    shift
    for q in "$@"; do
        name=${q%%:*} path=${q#*:}
        n=$(total_of "$path")
        set -- $(wrk_one "$name" 8 "$path")
        echo "$rec|$name|$path|$1|$2|$3|$4|$n"
    done
}
pages page token:"$TOKEN_Q" family:"$FAMILY_Q" selective:"$SELECT_Q"
# the patient of the first 100 whose $everything is closest to 150 resources
EVERY_P=$(head -100 "$ND/Patient.ndjson" | sed -n 's|^{"resourceType":"Patient","id":"\([^"]*\)".*|\1|p' |
    while read -r p; do
        printf '%s %s\n' "$(total_of "/fhir/Patient/$p/\$everything?_summary=count")" "$p"
    done | awk '{ d = $1 - 150; if (d < 0) d = -d } NR == 1 || d < best { best = d; p = $2 }
                END { print p }')
EVERY_Q="/fhir/Patient/$EVERY_P/\$everything?_count=200"
# part 2 of search: a chain, a _has, a page with what refers to it, a patient's
# $everything (targets 5 / 20 ms)
pages link chain:"$CHAIN_Q" has:"$HAS_Q" revinclude:"$REVINC_Q" everything:"$EVERY_Q"
# reindex of one custom parameter over every Observation while 2 clients read
printf '%s\n' "$TOKEN_Q" >"$T/rx.path"
wrk -t1 -c2 -d600s -s "$ROOT/bench/read.lua" "$B" -- "$T/rx.path" >"$T/rx.txt" 2>&1 &
WRK=$!
sleep 1
cat >"$T/sp.json" <<'JSON'
{"resourceType":"SearchParameter","id":"bench-code","url":"http://example.org/fhir/SearchParameter/bench-code","name":"bench-code","status":"active","description":"bench","code":"bench-code","base":["Observation"],"type":"token","expression":"Observation.code"}
JSON
t0=$(date +%s.%N)
curl -sf -o /dev/null -X PUT -H 'Content-Type: application/fhir+json' \
    --data-binary @"$T/sp.json" "$B/fhir/SearchParameter/bench-code"
state=""
while [ "$state" != complete ]; do
    sleep 0.05
    st=$(curl -sf "$B/fhir/\$reindex")
    state=$(printf '%s' "$st" | sed -n 's/.*"name":"status","valueCode":"\([a-z]*\)".*/\1/p')
done
t1=$(date +%s.%N)
kill -INT "$WRK" 2>/dev/null || :
wait "$WRK" 2>/dev/null || :
RX_N=$(printf '%s' "$st" | sed -n 's/.*"name":"processed","valueInteger":\([0-9]*\).*/\1/p')
RX_READS=$(awk '/Requests\/sec/ { print int($2) }' "$T/rx.txt")
RX_CHECK=$(total_of "/fhir/Observation?bench-code=$(enc "http://loinc.org|$CODE")&_summary=count")
echo "reindex|$RX_N|$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')|${RX_READS:-0}|$RX_CHECK|$MATCHES"
curl -sf -o /dev/null -X DELETE "$B/fhir/SearchParameter/bench-code" || :
# _sort over the largest set: 20 sequential first pages, the median time
n=$(total_of "$SORT_Q&_summary=count")
for i in $(seq 20); do
    curl -s -o /dev/null -w '%{time_total}\n' "$B$SORT_Q&_count=50"
done | sort -n | awk -v n="$n" -v q="$SORT_Q" '{ t[NR] = $1 } END { printf "sort|%s|%d|%.1f|%.1f\n", q, n, t[int((NR + 1) / 2)] * 1000, t[NR] * 1000 }'
# memory: anonymous RSS (the mapped database is file-backed and not counted)
awk '/^RssAnon/ { printf "rss|%d\n", $2 / 1024 }' "/proc/$HPID/status" 2>/dev/null || :
# sizes
echo "size|$(du -b "$DB/data.mdb" | cut -f1)|$(cat "$ND"/*.ndjson | wc -c)"
