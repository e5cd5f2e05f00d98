#!/bin/sh
# conformance.sh -- run the official suites in ../shared/conformance against a
# hortus binary and hold each pass count to its ratchet in tests/baselines/.
# A count below its baseline fails; a count above it asks for the baseline to be
# raised (never lowered).
set -eu
bin=${1:?usage: conformance.sh HORTUS_BINARY}
here=$(cd "$(dirname "$0")" && pwd)
conf=${HORTUS_CONFORMANCE:-$here/../../shared/conformance}
py=${PYTHON:-/usr/bin/python3}
status=0

ratchet() { # name, summary line "N passed, M failed"
    name=$1 line=$2
    base=$(cat "$here/baselines/$name")
    got=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p')
    [ -n "$got" ] || { echo "$name: no summary line"; status=1; return; }
    if [ "$got" -lt "$base" ]; then
        echo "$name: $got passed, below the baseline $base"
        status=1
    elif [ "$got" -gt "$base" ]; then
        echo "$name: $got passed, above the baseline $base: raise tests/baselines/$name"
    else
        echo "$name: $got passed (baseline $base)"
    fi
}

for f in "$here"/baselines/*; do
    [ -e "$f" ] || continue
    name=$(basename "$f")
    case $name in
    fhirpath)
        out=$($py "$conf/fhirpath/run.py" --cmd "$bin fhirpath" --jobs 2 | tail -n 1)
        ratchet fhirpath "$out" ;;
    fhir-patch)
        # needs a running server: a private one on a free loopback port, without
        # referential integrity (the cases' resources name resources the suite never
        # creates, such as Organization/1)
        dir=$(mktemp -d)
        port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        "$bin" serve --port "$port" --data "$dir/data" --referential-integrity off >"$dir/log" 2>&1 &
        pid=$!
        i=0
        until $py -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/healthz')" 2>/dev/null; do
            i=$((i + 1))
            [ $i -lt 100 ] || break
            sleep 0.1
        done
        out=$($py "$conf/fhir-patch/run.py" --base "http://127.0.0.1:$port/fhir" | tail -n 1)
        kill "$pid"
        wait "$pid" || { echo "fhir-patch: server exited badly:"; cat "$dir/log"; status=1; }
        rm -rf "$dir"
        ratchet fhir-patch "$out" ;;
    sql-on-fhir)
        out=$($py "$conf/sql-on-fhir/run.py" --cmd "$bin view" --jobs 2 | tail -n 1)
        ratchet sql-on-fhir "$out" ;;
    esac
done
exit $status
