#!/usr/bin/env bash
# Runs the four scenarios one after another (about 10 minutes), each appending to RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")"
(cd .. && cargo build --release --bin chatnode --bin chatnode-loadgen)
export BENCH_SKIP_BUILD=1
./1-idle-sockets.sh
./2-one-node-rooms.sh
./3-three-nodes-haproxy.sh
./4-ingest.sh
