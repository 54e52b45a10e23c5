#!/usr/bin/env bash
# The abuse bench of issue 16 (not a test: a human runs it and reads the table). Each attack
# of the security review (deep topics, subscription amplification, wrong-password CONNECT
# storm, 1 MB telemetry flood, idle HTTP sockets under a 1,024 fd limit, a stalled
# subscriber) and a reconnect storm runs against a fresh server (release binary, fresh data
# dir, default configuration) while a canary phone publishes 10 QoS 1 locations/s and a
# friend reads them. Prints a Markdown table: server up, peak RSS over the idle baseline,
# canary locations acknowledged / stored / sent, canary p99 publish-to-delivery latency, and
# what each attack saw. Targets: up, < +300 MiB, all stored, p99 < 100 ms.
#
#   bench/abuse.sh                         # builds target/release/mytracks, runs every attack
#   bench/abuse.sh path/to/mytracks        # another build (e.g. an older commit's)
#   bench/abuse.sh path/to/mytracks storm stalled --json out.json   # some attacks only
#
# Attacks: deep subscriptions wrong-password telemetry idle-http stalled storm (~10 min in all).
# A server growing more than --rss-cap-mib (default 3072) over its baseline is killed by the
# bench, so an unfixed build cannot take the machine down ("killed at cap").
# Needs: python3 with paho-mqtt 2.x, prlimit (util-linux). Run it on an otherwise quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ] && [ -x "$1" ] && [ ! -d "$1" ]; then
  BIN=$1; shift
else
  cargo build --release --bin mytracks
  BIN=target/release/mytracks
fi
python3 -c 'import paho.mqtt; assert paho.mqtt.__version__ >= "2"' 2>/dev/null \
  || { echo "needs paho-mqtt 2.x: pip install 'paho-mqtt>=2'"; exit 2; }
echo "# $(date -u '+%Y-%m-%d %H:%M') UTC, $("$BIN" --version), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
exec python3 bench/abuse.py "$BIN" "$@"
