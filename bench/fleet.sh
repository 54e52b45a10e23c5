#!/usr/bin/env bash
# IoT fleet command (issue 9: a fleet command to 10,000 connected devices delivered to all
# within 2 s): `mytracks-load fleet` registers the devices through the REST API, connects and
# subscribes each as itself (QoS 2), posts a fleet command and times it from the request to the
# PUBLISH at every device and to every device's PUBCOMP. Three runs against one server: the
# first registers the devices and keeps them (passwords in a credentials file), the second
# reuses them, the third reuses them and removes them at the end.
#
#   bench/fleet.sh [PATH-TO-mytracks] [COUNT]      # default: builds target/release/mytracks; 10000
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ge 1 ] && [ -n "$1" ]; then BIN=$1; else cargo build --release -q -p mytracks -p mytracks-loadgen; BIN=target/release/mytracks; fi
# The load tools are their own binary, next to the server's unless MYTRACKS_LOAD names one.
LOADGEN=${MYTRACKS_LOAD:-$(dirname "$BIN")/mytracks-load}
COUNT=${2:-10000}
# One socket per device on each side (the server inherits this limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((COUNT + 200)) ]; then
  echo "ulimit -n is $(ulimit -n): $((COUNT + 200)) file descriptors needed for $COUNT devices" >&2; exit 2
fi
TMP=$(mktemp -d); PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$TMP"' EXIT
"$BIN" user add fleetowner --password "fleet owner's correct horse battery" --data-dir "$TMP/data" >/dev/null
TOKEN=$("$BIN" token create fleetowner --data-dir "$TMP/data")
"$BIN" serve --data-dir "$TMP/data" --http-port 0 --mqtt-port 0 >"$TMP/server.log" 2>&1 & PID=$!
for _ in $(seq 1 100); do [ -s "$TMP/data/runtime.json" ] && break; sleep 0.1; done
port() { python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$TMP/data/runtime.json" "$1"; }
MQTT=$(port mqtt_port); HTTP=$(port http_port)
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, SQLite, $COUNT devices"
for run in 1 2 3; do
  keep=(--keep); [ "$run" = 3 ] && keep=()
  echo "## run $run"
  "$LOADGEN" fleet -p "$MQTT" --http-port "$HTTP" --token "$TOKEN" --count "$COUNT" \
    --credentials "$TMP/credentials.json" "${keep[@]}" --quiet
done
grep -E 'ERROR|WARN' "$TMP/server.log" | grep -v 'first start' | head -5 || true
