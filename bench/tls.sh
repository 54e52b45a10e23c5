#!/usr/bin/env bash
# TLS against plain TCP on the same mytracks server, with the same load generator
# (`mytracks-load`, which speaks TLS; the workplace's mqttload does not):
#   - QoS 0 fan-in (20 publishers -> 1 subscriber), plain vs TLS, alternating, 3 runs each
#   - new connections per second: plain, TLS, and mutual TLS with a client certificate
# Certificates are generated with openssl into a temporary directory.
#
#   bench/tls.sh            # from the repository root
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p mytracks -p mytracks-loadgen
BIN=target/release/mytracks
# The load tools are their own binary, next to the server's unless MYTRACKS_LOAD names one.
LOADGEN=${MYTRACKS_LOAD:-$(dirname "$BIN")/mytracks-load}
TMP=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$TMP"' EXIT

cd "$TMP"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
    -keyout ca.key -out ca.pem 2>/dev/null
for name in server client; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
        -keyout $name.key -out $name.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > $name.ext
    openssl x509 -req -in $name.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile $name.ext -out $name.pem 2>/dev/null
done
cat > mt.toml <<CONF
[mqtt]
allow_anonymous = true
[mqtt.tls]
port = 0
cert_file = "$TMP/server.pem"
key_file = "$TMP/server.key"
ca_file = "$TMP/ca.pem"
CONF
cd - >/dev/null

"$BIN" serve --config "$TMP/mt.toml" --data-dir "$TMP/data" --http-port -1 --mqtt-port 0 >"$TMP/log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do [ -s "$TMP/data/runtime.json" ] && break; sleep 0.1; done
PLAIN=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["mqtt_port"])' "$TMP/data/runtime.json")
TLS=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["mqtt_tls_port"])' "$TMP/data/runtime.json")
TLS_ARGS=(--host localhost --cafile "$TMP/ca.pem")
MTLS_ARGS=("${TLS_ARGS[@]}" --cert "$TMP/client.pem" --key "$TMP/client.key")

echo "# $(date -u +%Y-%m-%d) commit $(git rev-parse --short HEAD) on $(nproc) cores; plain $PLAIN, TLS $TLS"
for i in 1 2 3; do
    "$LOADGEN" fanin --port "$PLAIN" --pubs 20 --secs 5
    "$LOADGEN" fanin --port "$TLS" "${TLS_ARGS[@]}" --pubs 20 --secs 5
done
"$LOADGEN" connect --port "$PLAIN" --secs 5
"$LOADGEN" connect --port "$TLS" "${TLS_ARGS[@]}" --secs 5
"$LOADGEN" connect --port "$TLS" "${MTLS_ARGS[@]}" --secs 5
