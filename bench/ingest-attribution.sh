#!/usr/bin/env bash
# Where does an OwnTracks ingest difference between two builds come from: the code or the
# schema? Runs the QoS 1 location ingest (bench/regression.sh's owntracks-ingest scenario)
# against OLD as it is, OLD with NEW's location indexes put into its database after start-up
# (the uniqueness rule of issue 18: unique (device_id, tst, lat, lon)), and NEW, alternating,
# ROUNDS times, each on a fresh server and database, and prints the medians. Needs the
# sqlite3 command (Debian: sqlite3).
#
#   bench/ingest-attribution.sh OLD-BINARY NEW-BINARY [ROUNDS]    (ROUNDS defaults to 5)
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?old binary}; NEW=${2:?new binary}; ROUNDS=${3:-5}
(cd ../shared/tools/mqttload && CARGO_TARGET_DIR=/tmp/mqttload-target cargo build --release --quiet)
LOAD=/tmp/mqttload-target/release/mqttload
PW="bench's correct horse battery"
RESULTS=$(mktemp)
trap 'rm -f "$RESULTS"' EXIT
UNIQUE="CREATE UNIQUE INDEX locations_device_tst_position ON locations (device_id, tst, lat, lon);
        DROP INDEX locations_device_tst;"

once() ( # binary [sql] -> acked_per_s; a subshell, so its trap cleans up whatever fails
  tmp=$(mktemp -d); pid=
  trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "$pid" ] && wait "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/data"; printf '[mqtt]\nallow_anonymous = true\n' >"$tmp/config.toml"
  "$1" user add bench --password "$PW" --data-dir "$tmp/data" >/dev/null
  "$1" serve --config "$tmp/config.toml" --data-dir "$tmp/data" --http-port 0 --mqtt-port 0 \
    >"$tmp/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 150); do [ -s "$tmp/data/runtime.json" ] && break; sleep 0.2; done
  [ -s "$tmp/data/runtime.json" ] || { echo "$1 did not start: $(tail -3 "$tmp/server.log")" >&2; exit 1; }
  [ -n "${2:-}" ] && sqlite3 "$tmp/data/mytracks.sqlite3" "$2"
  port=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["mqtt_port"])' "$tmp/data/runtime.json")
  timeout 90 "$LOAD" --port "$port" --mode fanin --pubs 20 --qos 1 --inflight 64 \
    --payload owntracks --prefix owntracks/bench --secs 10 --warmup 2 --user bench --pass "$PW" \
    2>/dev/null | grep '^RESULT' | tail -1 | grep -o 'acked_per_s=[0-9]*' | cut -d= -f2
)
echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores; old $OLD, new $NEW; $ROUNDS rounds"
for _ in $(seq 1 "$ROUNDS"); do
  echo "old $(once "$OLD")" | tee -a "$RESULTS"
  echo "old+unique-index $(once "$OLD" "$UNIQUE")" | tee -a "$RESULTS"
  echo "new $(once "$NEW")" | tee -a "$RESULTS"
done
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, value = line.split()
    rows.setdefault(name, []).append(float(value))
base = statistics.median(rows["old"])
print("\n| build | acked locations/s, median | /old | min-max |")
print("|---|---|---|---|")
for name, values in rows.items():
    m = statistics.median(values)
    print(f"| {name} | {m:.0f} | {m / base:.2f} | {min(values):.0f}-{max(values):.0f} |")
PY
