#!/usr/bin/env bash
# Every BENCHMARKS.md scenario in one run, mytracks next to Debian's Mosquitto on this machine:
#   broker: QoS 0 and QoS 1 fan-in, latency at a fixed rate, fan-out   (mqttload and mytracks-load)
#   TLS: fan-in and new connections per second                          (mytracks-load; mqttload has no TLS)
#   OwnTracks: QoS 1 location ingest (Mosquitto relays the same messages; it stores nothing),
#              HTTP mode, a day of history, live-feed latency            (mytracks only: Mosquitto has none)
#   idle connection memory, start-up time, binary size
# Both brokers run at the same time; scenarios alternate Mosquitto / mytracks.
#
#   bench/side-by-side.sh [PATH-TO-mytracks]     # default: builds target/release/mytracks
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ge 1 ]; then BIN=$1; else cargo build --release -q -p mytracks -p mytracks-loadgen; BIN=target/release/mytracks; fi
# The load tools are their own binary, next to the server's unless MYTRACKS_LOAD names one.
LOADGEN=${MYTRACKS_LOAD:-$(dirname "$BIN")/mytracks-load}
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
(cd ../shared/tools/mqttload && CARGO_TARGET_DIR=/tmp/mqttload-target cargo build --release --quiet)
LOAD=/tmp/mqttload-target/release/mqttload
TMP=$(mktemp -d); chmod 755 "$TMP"; PIDS=()
trap 'for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"' EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
# Summary fields of a `mytracks-load ... --json` run (its last line).
field() { tail -1 "$1" | python3 -c 'import json,sys
d=json.load(sys.stdin); v=d
for k in sys.argv[1].split("."): v=(v or {}).get(k)
print(v)' "$2"; }

# Certificates for both TLS listeners (openssl, ECDSA P-256).
(cd "$TMP"
 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
   -keyout ca.key -out ca.pem 2>/dev/null
 openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
   -keyout server.key -out server.csr 2>/dev/null
 printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > server.ext
 openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
   -extfile server.ext -out server.pem 2>/dev/null
 chmod 644 server.key)

# Mosquitto: plain and TLS listeners, anonymous access (as mytracks below).
MQ=$(free_port); MQ_TLS=$(free_port)
cat > "$TMP/mosquitto.conf" <<CONF
per_listener_settings false
allow_anonymous true
max_queued_messages 100000
listener $MQ 127.0.0.1
listener $MQ_TLS 127.0.0.1
cafile $TMP/ca.pem
certfile $TMP/server.pem
keyfile $TMP/server.key
CONF
/usr/sbin/mosquitto -c "$TMP/mosquitto.conf" >"$TMP/mosquitto.log" 2>&1 & MQ_PID=$!; PIDS+=("$MQ_PID")

# mytracks: the same, plus an account for the OwnTracks scenarios.
PW="bench's correct horse battery"
cat > "$TMP/mt.toml" <<CONF
[mqtt]
allow_anonymous = true
[mqtt.tls]
port = 0
cert_file = "$TMP/server.pem"
key_file = "$TMP/server.key"
CONF
"$BIN" user add bench --password "$PW" --config "$TMP/mt.toml" --data-dir "$TMP/data" >/dev/null
TOKEN=$("$BIN" token create bench --config "$TMP/mt.toml" --data-dir "$TMP/data")
"$BIN" serve --config "$TMP/mt.toml" --data-dir "$TMP/data" --http-port 0 --mqtt-port 0 >"$TMP/mt.log" 2>&1 & MT_PID=$!; PIDS+=("$MT_PID")
for _ in $(seq 1 100); do [ -s "$TMP/data/runtime.json" ] && break; sleep 0.1; done
port() { python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$TMP/data/runtime.json" "$1"; }
MT=$(port mqtt_port); MT_TLS=$(port mqtt_tls_port); HTTP=$(port http_port)
sleep 0.5

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD), $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
echo "# $("$BIN" --version), $(/usr/sbin/mosquitto -h 2>/dev/null | head -1)"
echo "# Mosquitto: plain $MQ, TLS $MQ_TLS; mytracks: plain $MT, TLS $MT_TLS, HTTP $HTTP"

# bench_pair NAME PORT QOS [EXTRA...]: `mytracks-load sub` (1 client) while `pub` runs 20 clients
# as fast as possible; prints delivered/s and the subscriber's latency.
bench_pair() {
  local name=$1 port=$2 qos=$3; shift 3
  "$LOADGEN" sub -p "$port" -t 'bench/#' -q "$qos" --warmup 1.5 --duration 4.5 --json --quiet "$@" >"$TMP/sub.json" &
  local sub=$!; sleep 0.5
  "$LOADGEN" pub -p "$port" -c 20 -t 'bench/%i' -q "$qos" --rate "${RATE:-0}" -s 200 --duration 6 --json --quiet "$@" >"$TMP/pub.json"
  wait "$sub"
  printf '%-10s mytracks-bench  published/s=%-9s delivered/s=%-9s p50_ms=%-8s p99_ms=%s\n' "$name" \
    "$(field "$TMP/pub.json" published_per_s)" "$(field "$TMP/sub.json" received_per_s)" \
    "$(field "$TMP/sub.json" latency_ms.p50)" "$(field "$TMP/sub.json" latency_ms.p99)"
}
mqttload() {
  local name=$1 port=$2; shift 2
  printf '%-10s mqttload        %s\n' "$name" "$("$LOAD" --port "$port" --secs 5 --warmup 1 "$@" 2>/dev/null | grep '^RESULT' | tail -1)"
}

echo; echo "## 1. 10,000 idle connections: connect rate and resident memory per connection (first, on fresh processes)"
for who in mosquitto:$MQ_PID:$MQ mytracks:$MT_PID:$MT; do
  IFS=: read -r name pid port <<<"$who"
  before=$(rss_kib "$pid")
  "$LOADGEN" conn -p "$port" -c 10000 --duration 10 --json --quiet >"$TMP/conn.json" & conn=$!
  sleep 8; during=$(rss_kib "$pid"); wait "$conn"
  printf '%-10s connect/s=%-7s connected=%s rss_before_kib=%s rss_with_10k_kib=%s per_conn_kib=%s\n' "$name" \
    "$(field "$TMP/conn.json" connect_per_s)" "$(field "$TMP/conn.json" connected)" "$before" "$during" \
    "$(python3 -c "print(round(($during-$before)/10000,2))")"
done

echo; echo "## 2. QoS 0 fan-in, 20 publishers -> 1 subscriber, as fast as possible (200 B)"
for i in 1 2; do
  mqttload mosquitto "$MQ" --mode fanin --pubs 20 --qos 0; mqttload mytracks "$MT" --mode fanin --pubs 20 --qos 0
  bench_pair mosquitto "$MQ" 0; bench_pair mytracks "$MT" 0
done

echo; echo "## 3. QoS 1 fan-in to a QoS 1 subscriber"
mqttload mosquitto "$MQ" --mode fanin --pubs 20 --qos 1; mqttload mytracks "$MT" --mode fanin --pubs 20 --qos 1
bench_pair mosquitto "$MQ" 1; bench_pair mytracks "$MT" 1

echo; echo "## 4. latency at 20,000 msg/s offered (20 publishers x 1,000/s, QoS 0)"
mqttload mosquitto "$MQ" --mode fanin --pubs 20 --qos 0 --rate 20000; mqttload mytracks "$MT" --mode fanin --pubs 20 --qos 0 --rate 20000
RATE=1000 bench_pair mosquitto "$MQ" 0; RATE=1000 bench_pair mytracks "$MT" 0

echo; echo "## 5. QoS 0 fan-out, 1 publisher at 2,000/s -> 100 subscribers"
mqttload mosquitto "$MQ" --mode fanout --subs 100 --qos 0 --rate 2000; mqttload mytracks "$MT" --mode fanout --subs 100 --qos 0 --rate 2000
for who in mosquitto:$MQ mytracks:$MT; do
  IFS=: read -r name port <<<"$who"
  "$LOADGEN" sub -p "$port" -c 100 -t fan/x --warmup 1.5 --duration 4.5 --json --quiet >"$TMP/sub.json" &
  sub=$!; sleep 0.8
  "$LOADGEN" pub -p "$port" -c 1 -t fan/x --rate 2000 -s 200 --duration 6 --json --quiet >"$TMP/pub.json"
  wait "$sub"
  printf '%-10s mytracks-bench  delivered/s=%-9s p50_ms=%-8s p99_ms=%s\n' "$name" \
    "$(field "$TMP/sub.json" received_per_s)" "$(field "$TMP/sub.json" latency_ms.p50)" "$(field "$TMP/sub.json" latency_ms.p99)"
done

echo; echo "## 6. TLS: QoS 0 fan-in (20 -> 1) and new connections/s (TLS 1.3, P-256, server authentication)"
TLS=(--host localhost --cafile "$TMP/ca.pem")
bench_pair mosquitto "$MQ_TLS" 0 "${TLS[@]}"; bench_pair mytracks "$MT_TLS" 0 "${TLS[@]}"
for who in mosquitto:$MQ_TLS mytracks:$MT_TLS; do
  IFS=: read -r name port <<<"$who"
  "$LOADGEN" conn -p "$port" "${TLS[@]}" -c 3000 --duration 4 --json --quiet >"$TMP/conn.json"
  printf '%-10s tls connect/s=%-7s connected=%s p99_ms=%s\n' "$name" "$(field "$TMP/conn.json" connect_per_s)" \
    "$(field "$TMP/conn.json" connected)" "$(field "$TMP/conn.json" latency_ms.p99)"
done

echo; echo "## 7. OwnTracks location ingest over MQTT, QoS 1, 20 publishers x 64 in flight (JSON locations)"
echo "(mytracks acknowledges after the SQLite commit; Mosquitto relays them to mqttload's one subscriber and stores nothing)"
"$LOAD" --mode fanin --port "$MQ" --pubs 20 --qos 1 --inflight 64 --payload owntracks --prefix owntracks/bench \
  --secs 10 --warmup 2 2>/dev/null | grep '^RESULT' | sed 's/^/mosquitto  /'
"$LOAD" --mode fanin --port "$MT" --pubs 20 --qos 1 --inflight 64 --payload owntracks --prefix owntracks/bench \
  --user bench --pass "$PW" --secs 10 --warmup 2 2>/dev/null | grep '^RESULT' | sed 's/^/mytracks   /'

echo; echo "## 8. OwnTracks HTTP mode, POST /pub (wrk, 2 threads, 32 connections, 10 s; mytracks only)"
AUTH=$(printf '%s' "bench:$PW" | base64 -w0) LIMIT_U=bench \
  wrk -t2 -c32 -d10s -s bench/http_pub.lua "http://127.0.0.1:$HTTP/pub" | grep -E 'Requests/sec|Latency|Non-2xx'

echo; echo "## 9. a day of 1 Hz history (86,400 points) as GeoJSON (mytracks only)"
"$LOADGEN" day --port "$MT" --user bench --password "$PW" --start 1700006400
URL="http://127.0.0.1:$HTTP/api/locations/?device=day&start_time=1700006400&end_time=1700092799&format=geojson"
for i in 1 2 3 4 5; do
  curl -s -o "$TMP/day.json" -w "time_total=%{time_total}s bytes=%{size_download}\n" -H "Authorization: Bearer $TOKEN" "$URL"
done

echo; echo "## 10. live feed latency, MQTT ingest to WebSocket at 1,000 locations/s (mytracks only)"
"$LOADGEN" feed --port "$MT" --http-port "$HTTP" --user bench --password "$PW" --token "$TOKEN" --rate 1000 --secs 10 --warmup 2

echo; echo "## 11. start-up time: exec to the MQTT port accepting (median of 5)"
startup() { # NAME PORT COMMAND...
  local name=$1 port=$2; shift 2; local times=()
  for i in 1 2 3 4 5; do
    local t0; t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 & local pid=$!
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.002; done
    times+=($(( ($(date +%s%N) - t0) / 1000000 )))
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
  printf '%-10s startup_ms=%s (runs: %s)\n' "$name" "$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)" "${times[*]}"
}
SP=$(free_port); printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$SP" >"$TMP/startup.conf"
startup mosquitto "$SP" /usr/sbin/mosquitto -c "$TMP/startup.conf"
SP=$(free_port); mkdir -p "$TMP/startup"
"$BIN" serve --data-dir "$TMP/startup" --mqtt-port "$SP" --http-port -1 >/dev/null 2>&1 & p=$!; sleep 2; kill $p; wait $p 2>/dev/null || true
startup mytracks "$SP" "$BIN" serve --data-dir "$TMP/startup" --mqtt-port "$SP" --http-port -1

echo; echo "## 12. binary size"
printf '%-10s %s bytes (%s)\n' mosquitto "$(stat -c %s /usr/sbin/mosquitto)" "plus shared libraries: $(ldd /usr/sbin/mosquitto | awk '{print $1}' | grep -E 'ssl|crypto|cjson|websockets' | tr '\n' ' ')"
strip -o "$TMP/mytracks-stripped" "$BIN"
printf '%-10s %s bytes as built (line tables for backtraces), %s bytes stripped (%s)\n' mytracks "$(stat -c %s "$BIN")" \
  "$(stat -c %s "$TMP/mytracks-stripped")" "one static program: TLS, SQLite, PostgreSQL client, HTTP, the web UI"
grep -E 'ERROR|panicked' "$TMP/mt.log" | head -5 || true
