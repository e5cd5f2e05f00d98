#!/bin/sh
# auth.sh -- authenticated reads against unauthenticated ones, the authorisation part of
# `make bench` (run by bench/run.sh after the other figures, or by hand:
# sh bench/auth.sh HORTUS DATADIR PATHS).
#
# The same data dir is served alternately without authorisation and with bearer tokens
# (`--auth-jwks`, an RSA key made here, one RS256 token of a user: user/*.rs and a
# fhirUser claim, so the scope check and the Consent lookup both run); reads by id at
# 32 connections, the same paths and random sequence as the read benchmark, the best
# of BENCH_ROUNDS rounds each. One server at a time (a data dir has one). Prints
#   auth|RPS_OPEN|P50_OPEN|P99_OPEN|RPS_AUTH|P50_AUTH|P99_AUTH|NON2XX_AUTH
set -eu
HORTUS=$1 DB=$2 PATHS=$3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUR=${BENCH_DURATION:-10}
ROUNDS=${BENCH_ROUNDS:-2}
T=$(mktemp -d /tmp/hortus-auth.XXXXXX)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$T"' EXIT
ISS=https://idp.bench.example
AUD=https://fhir.bench.example/fhir

# the key, its JWKS and one token (openssl signs, python3 only encodes)
openssl genrsa -out "$T/key.pem" 2048 2>/dev/null
openssl rsa -in "$T/key.pem" -noout -modulus | sed 's/^Modulus=//' >"$T/n.hex"
python3 - "$T" "$ISS" "$AUD" <<'EOF'
import base64, json, sys, time
t, iss, aud = sys.argv[1:4]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
n = bytes.fromhex(open(t + "/n.hex").read().strip())
json.dump({"keys": [{"kty": "RSA", "kid": "bench", "use": "sig", "n": b64(n), "e": "AQAB"}]},
          open(t + "/jwks.json", "w"))
now = int(time.time())
claims = {"iss": iss, "aud": aud, "exp": now + 3600, "iat": now, "sub": "bench",
          "scope": "user/*.rs", "fhirUser": "Practitioner/bench"}
si = b64(json.dumps({"alg": "RS256", "kid": "bench", "typ": "JWT"}).encode()) + "." + \
     b64(json.dumps(claims).encode())
open(t + "/signing-input", "w").write(si)
EOF
openssl dgst -sha256 -sign "$T/key.pem" -out "$T/sig" "$T/signing-input"
TOKEN="$(cat "$T/signing-input").$(python3 -c 'import base64,sys; print(base64.urlsafe_b64encode(open(sys.argv[1],"rb").read()).rstrip(b"=").decode())' "$T/sig")"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() { # extra serve flags...
    PORT=$(free_port)
    "$HORTUS" serve --port "$PORT" --data "$DB" "$@" >>"$T/hortus.log" 2>&1 &
    PID=$!
    i=0
    until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -gt 300 ] || ! kill -0 "$PID" 2>/dev/null; then
            echo "bench/auth.sh: hortus did not start:" >&2
            tail -5 "$T/hortus.log" >&2
            exit 1
        fi
        sleep 0.1
    done
}
stop() { kill "$PID" && wait "$PID" 2>/dev/null || :; PID=""; }

# "rps p50ms p99ms non2xx" of a wrk --latency output
summary() {
    awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /Requests\/sec/ { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /Non-2xx/ { bad = $NF }
        END { printf "%d %.3f %.3f %d\n", rps, p50, p99, bad + 0 }' "$1"
}

read_round() { # NAME [TOKEN]
    wrk -t2 -c32 -d3s -s "$ROOT/bench/read.lua" "http://127.0.0.1:$PORT" -- "$PATHS" ${2:+"$2"} >/dev/null 2>&1
    wrk -t2 -c32 -d"${DUR}s" --latency -s "$ROOT/bench/read.lua" "http://127.0.0.1:$PORT" -- "$PATHS" ${2:+"$2"} >"$T/$1.txt" 2>&1
    summary "$T/$1.txt"
}

: >"$T/open" && : >"$T/auth"
r=1
while [ $r -le "$ROUNDS" ]; do
    start
    read_round "open-$r" >>"$T/open"
    stop
    start --auth-jwks "$T/jwks.json" --auth-issuer "$ISS" --auth-audience "$AUD"
    # the token is good: one read must answer 200
    P1=$(head -1 "$PATHS")
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$P1")
    [ "$code" = 200 ] || { echo "bench/auth.sh: the bench token is refused ($code)" >&2; exit 1; }
    read_round "auth-$r" "$TOKEN" >>"$T/auth"
    stop
    r=$((r + 1))
done
set -- $(sort -k1,1nr "$T/open" | head -1) $(sort -k1,1nr "$T/auth" | head -1)
echo "auth|$1|$2|$3|$5|$6|$7|$8"
