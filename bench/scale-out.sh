#!/usr/bin/env bash
# Scale-out (issue 18): QoS 1 OwnTracks location ingest, acknowledged to the phones, through a
# 3-node rmqtt cluster into PostgreSQL with 1 and then 2 mytracks nodes in external mode, and
# the CPU seconds each component (every rmqttd, every mytracks node, the PostgreSQL backends
# and shared processes, the load generators) spends per stored location, read from
# /proc/<pid>/stat before and after the measured window. Prints a table per run and writes a
# JSON result. Each run starts a fresh cluster and database; everything is removed at the end.
# Details: bench/scale-out.py.
#
#   bench/scale-out.sh PATH-TO-mytracks [--secs S] [--warmup S] [--phones N] [--inflight N]
#                      [--nodes 1,2] [--strategy hash_clientid|round_robin] [--rate R] [--json FILE] [--keep]
#
# Defaults: 20 s measured after 5 s warm-up, 30 phones (10 per broker node), 32 in flight
# each, results in target/bench-scale-out.json. Needs rmqttd 0.24.0 (MYTRACKS_RMQTTD, else
# ~/.cargo/bin/rmqttd; `cargo install rmqttd --version 0.24.0 --locked`), PostgreSQL with a
# role that may create databases (MYTRACKS_BENCH_POSTGRES_URL, default
# postgres://mytracks:mytracks@127.0.0.1:5432/postgres), psql, python3, and mqttload
# (../shared/tools/mqttload, built here).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:?usage: bench/scale-out.sh PATH-TO-mytracks [options]}; shift
[ -x "$BIN" ] || { echo "not executable: $BIN (cargo build --release -p mytracks)" >&2; exit 2; }
RMQTTD=${MYTRACKS_RMQTTD:-${CARGO_HOME:-$HOME/.cargo}/bin/rmqttd}
[ -x "$RMQTTD" ] || { echo "rmqttd not found at $RMQTTD (cargo install rmqttd --version 0.24.0 --locked)" >&2; exit 2; }
command -v psql >/dev/null || { echo "psql is needed (Debian: postgresql-client)" >&2; exit 2; }
(cd ../shared/tools/mqttload && CARGO_TARGET_DIR=/tmp/mqttload-target cargo build --release --quiet)
mkdir -p target
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, $("$BIN" --version), $("$RMQTTD" --version 2>/dev/null | head -1)"
exec python3 bench/scale-out.py "$BIN" --mqttload /tmp/mqttload-target/release/mqttload \
  --rmqttd "$RMQTTD" \
  --postgres "${MYTRACKS_BENCH_POSTGRES_URL:-postgres://mytracks:mytracks@127.0.0.1:5432/postgres}" \
  --json target/bench-scale-out.json "$@"
