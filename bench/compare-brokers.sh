#!/usr/bin/env bash
# Builds mytracks in release mode and runs the workplace's neutral side-by-side comparison
# (../shared/tools/compare-brokers: Mosquitto from Debian and mytracks, same load generator,
# alternating runs). Paste the output into BENCHMARKS.md with the date and the commit.
#
#   bench/compare-brokers.sh            # from the repository root
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p mytracks
echo "# $(date -u +%Y-%m-%d) commit $(git rev-parse --short HEAD) on $(nproc) cores"
exec ../shared/tools/compare-brokers target/release/mytracks
