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
    sql-on-fhir)
        out=$($py "$conf/sql-on-fhir/run.py" --cmd "$bin view" --jobs 2 | tail -n 1)
        ratchet sql-on-fhir "$out" ;;
    esac
done
exit $status
