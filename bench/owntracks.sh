#!/usr/bin/env bash
# The OwnTracks backend's performance targets, measured on this machine with SQLite:
#   1. MQTT QoS 1 location ingest, acknowledged after commit  (target >= 20,000/s)
#   2. HTTP mode POSTs to /pub                                (target >= 5,000/s)
#   3. a day of 1 Hz history (86,400 points) as GeoJSON       (target < 200 ms)
#   4. live feed latency, ingest to WebSocket, at 1,000/s     (target p99 < 50 ms)
# Usage: bench/owntracks.sh [PATH-TO-mytracks]   (default target/release/mytracks)
# Needs: mqttload (../shared/tools/mqttload, built here), wrk, mosquitto_pub, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/mytracks}
[ -x "$BIN" ] || { echo "build first: cargo build --release"; exit 2; }
# The load tools are their own binary, next to the server's unless MYTRACKS_LOAD names one.
LOADGEN=${MYTRACKS_LOAD:-$(dirname "$BIN")/mytracks-load}
[ -x "$LOADGEN" ] || { echo "build first: cargo build --release (or set MYTRACKS_LOAD)"; exit 2; }
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
(cd ../shared/tools/mqttload && CARGO_TARGET_DIR=/tmp/mqttload-target cargo build --release --quiet)
LOAD=/tmp/mqttload-target/release/mqttload
TMP=$(mktemp -d); PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$TMP"' EXIT
PW="bench's correct horse battery"
"$BIN" user add bench --password "$PW" --data-dir "$TMP/data" >/dev/null
TOKEN=$("$BIN" token create bench --data-dir "$TMP/data")
"$BIN" serve --data-dir "$TMP/data" --http-port 0 --mqtt-port 0 >"$TMP/server.log" 2>&1 & PID=$!
for _ in $(seq 1 100); do [ -s "$TMP/data/runtime.json" ] && break; sleep 0.1; done
port() { python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$TMP/data/runtime.json" "$1"; }
MQTT=$(port mqtt_port); HTTP=$(port http_port)
echo "# mytracks $("$BIN" --version | cut -d' ' -f2), SQLite, $(nproc) cores; MQTT $MQTT, HTTP $HTTP"

echo "## 1. MQTT QoS 1 ingest, ack after commit (mqttload fanin, 20 publishers, 64 in flight each)"
for i in 1 2 3; do
  "$LOAD" --mode fanin --port "$MQTT" --pubs 20 --qos 1 --inflight 64 --payload owntracks \
    --prefix owntracks/bench --user bench --pass "$PW" --secs 10 --warmup 2 2>/dev/null | grep '^RESULT'
done

echo "## 2. HTTP mode (wrk, 2 threads, 32 connections, 10 s)"
AUTH=$(printf '%s' "bench:$PW" | base64 -w0) LIMIT_U=bench \
  wrk -t2 -c32 -d10s -s bench/http_pub.lua "http://127.0.0.1:$HTTP/pub" | grep -E 'Requests/sec|Latency|Non-2xx|requests in'

echo "## 3. a day of 1 Hz points as GeoJSON"
"$LOADGEN" day --port "$MQTT" --user bench --password "$PW" --start 1700006400
URL="http://127.0.0.1:$HTTP/api/locations/?device=day&start_time=1700006400&end_time=1700092799&format=geojson"
for i in 1 2 3 4 5; do
  curl -s -o "$TMP/day.json" -w "geojson bytes=%{size_download} time_total=%{time_total}s\n" -H "Authorization: Bearer $TOKEN" "$URL"
done
python3 -c 'import json,sys;print("features:", len(json.load(open(sys.argv[1]))["features"]))' "$TMP/day.json"

echo "## 4. live feed latency at 1,000 locations/s (mytracks-load feed)"
"$LOADGEN" feed --port "$MQTT" --http-port "$HTTP" --user bench --password "$PW" --token "$TOKEN" \
  --rate 1000 --secs 10 --warmup 2
grep -E 'ERROR|WARN' "$TMP/server.log" | grep -v 'first start' | head -5 || true
