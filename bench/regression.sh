#!/usr/bin/env bash
# Two builds of mytracks side by side: does a change cost throughput or latency?
# Starts both (embedded defaults: SQLite, an account for the OwnTracks ingest, anonymous MQTT
# for the broker scenarios), then runs each scenario ROUNDS times, alternating old and new
# (mqttload, ../shared/tools), and prints every run and the medians.
#
#   bench/regression.sh OLD-BINARY NEW-BINARY [ROUNDS]    (ROUNDS defaults to 5)
#
# Scenarios: the broker's (compare-brokers' QoS 0 and QoS 1 fan-in, latency at 20,000 msg/s
# offered, QoS 0 fan-out to 100) and the OwnTracks QoS 1 location ingest, acknowledged after
# commit (bench/owntracks.sh's first scenario).
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?old binary}; NEW=${2:?new binary}; ROUNDS=${3:-5}
(cd ../shared/tools/mqttload && CARGO_TARGET_DIR=/tmp/mqttload-target cargo build --release --quiet)
LOAD=/tmp/mqttload-target/release/mqttload
TMP=$(mktemp -d); PIDS=()
trap 'for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null; done; rm -rf "$TMP"' EXIT
PW="bench's correct horse battery"

start() { # name binary -> prints "mqtt_port"
  local dir="$TMP/$1"; mkdir -p "$dir/data"
  printf '[mqtt]\nallow_anonymous = true\n' >"$dir/config.toml"
  "$2" user add bench --password "$PW" --data-dir "$dir/data" >/dev/null
  "$2" serve --config "$dir/config.toml" --data-dir "$dir/data" --http-port 0 --mqtt-port 0 \
    >"$dir/server.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 1 150); do [ -s "$dir/data/runtime.json" ] && break; sleep 0.2; done
  python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["mqtt_port"])' "$dir/data/runtime.json"
}
OLD_PORT=$(start old "$OLD"); NEW_PORT=$(start new "$NEW"); sleep 0.5
echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores; old $OLD on $OLD_PORT, new $NEW on $NEW_PORT; $ROUNDS rounds, alternating"

run() { timeout 90 "$LOAD" --port "$1" "${@:2}" 2>/dev/null | grep '^RESULT' | tail -1; }
SCENARIOS=(
  "qos0-fanin|--mode fanin --pubs 20 --qos 0 --secs 5 --warmup 1"
  "qos1-fanin|--mode fanin --pubs 20 --qos 1 --secs 5 --warmup 1"
  "qos0-20k-latency|--mode fanin --pubs 20 --qos 0 --rate 20000 --secs 5 --warmup 1"
  "qos0-fanout-100|--mode fanout --subs 100 --qos 0 --rate 2000 --secs 5 --warmup 1"
  "owntracks-ingest|--mode fanin --pubs 20 --qos 1 --inflight 64 --payload owntracks --prefix owntracks/bench --secs 10 --warmup 2"
)
for entry in "${SCENARIOS[@]}"; do
  name=${entry%%|*}; args=${entry#*|}
  login=(); [[ $name == owntracks-* ]] && login=(--user bench --pass "$PW")
  for _ in $(seq 1 "$ROUNDS"); do
    # shellcheck disable=SC2086 # a scenario's arguments are split on purpose
    o=$(run "$OLD_PORT" $args "${login[@]}"); n=$(run "$NEW_PORT" $args "${login[@]}")
    echo "$name old $o" | tee -a "$TMP/results"; echo "$name new $n" | tee -a "$TMP/results"
  done
done
python3 - "$TMP/results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, who, *rest = line.split()
    kv = dict(p.split("=", 1) for p in rest if "=" in p)
    rows.setdefault((name, who), []).append(kv)
print("\n| scenario | metric | old median | new median | new/old | old min-max | new min-max |")
print("|---|---|---|---|---|---|---|")
for name in dict.fromkeys(n for n, _ in rows):
    metrics = ["received_per_s", "lat_p50_us", "lat_p99_us"]
    if "fanin" in name and "qos1" in name or name == "owntracks-ingest":
        metrics = ["acked_per_s", "received_per_s", "lat_p99_us"]
    for m in metrics:
        vals = {w: [float(r[m]) for r in rows.get((name, w), []) if m in r] for w in ("old", "new")}
        if not vals["old"] or not vals["new"]:
            continue
        mo, mn = statistics.median(vals["old"]), statistics.median(vals["new"])
        ratio = f"{mn / mo:.2f}" if mo else "-"
        print(f"| {name} | {m} | {mo:.0f} | {mn:.0f} | {ratio} | {min(vals['old']):.0f}-{max(vals['old']):.0f} | {min(vals['new']):.0f}-{max(vals['new']):.0f} |")
EOF
