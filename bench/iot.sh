#!/usr/bin/env bash
# IoT telemetry ingest (issue 9: >= 50,000 messages/s stored, QoS 0, batched): four devices
# publish JSON telemetry with `mytracks-load pub` at a fixed rate each for 10 s; then the REST
# API counts what was stored. Rates offered: 60k, 100k and 160k messages/s in total.
#
#   bench/iot.sh [PATH-TO-mytracks]      # default: builds target/release/mytracks
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ge 1 ]; then BIN=$1; else cargo build --release -q -p mytracks -p mytracks-loadgen; BIN=target/release/mytracks; fi
# The load tools are their own binary, next to the server's unless MYTRACKS_LOAD names one.
LOADGEN=${MYTRACKS_LOAD:-$(dirname "$BIN")/mytracks-load}
TMP=$(mktemp -d); PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$TMP"' EXIT
"$BIN" user add alice --password "alice's correct horse battery" --data-dir "$TMP/data" >/dev/null
for i in 1 2 3 4; do
  "$BIN" device add "d$i" --owner alice --data-dir "$TMP/data" | sed -n 's/^password: //p' >"$TMP/pw$i"
done
TOKEN=$("$BIN" token create alice --data-dir "$TMP/data")
# Four devices offer tens of thousands of messages/s each: lift the per-device rate limit.
MYTRACKS_IOT_DEVICE_PUBLISH_RATE=0 \
  "$BIN" serve --data-dir "$TMP/data" --http-port 0 --mqtt-port 0 >"$TMP/server.log" 2>&1 & PID=$!
for _ in $(seq 1 100); do [ -s "$TMP/data/runtime.json" ] && break; sleep 0.1; done
port() { python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$TMP/data/runtime.json" "$1"; }
MQTT=$(port mqtt_port); HTTP=$(port http_port)
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD), $(nproc) cores, SQLite"
for rate in 15000 25000 40000; do
  start=$(date +%s)
  pubs=()
  for i in 1 2 3 4; do
    "$LOADGEN" pub -p "$MQTT" -c 1 -t "iot/devices/d$i/telemetry/r$rate" -u "d$i" -P "$(cat "$TMP/pw$i")" \
      -q 0 -r "$rate" -s 64 --duration 10 --json --quiet >"$TMP/pub$i.json" &
    pubs+=($!)
  done
  wait "${pubs[@]}"
  sleep 3
  published=0; stored=0
  for i in 1 2 3 4; do
    p=$(tail -1 "$TMP/pub$i.json" | python3 -c 'import json,sys;print(json.load(sys.stdin)["published"])')
    s=$(curl -s -H "Authorization: Bearer $TOKEN" \
      "http://127.0.0.1:$HTTP/api/iot/devices/d$i/telemetry/?limit=1000000&start_time=$start&topic=r$rate" |
      python3 -c 'import json,sys;print(json.load(sys.stdin)["count"])')
    published=$((published + p)); stored=$((stored + s))
  done
  echo "offered $((4 * rate))/s for 10 s: published=$published stored=$stored"
done
