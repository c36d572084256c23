#!/usr/bin/env bash
# The newcomer's first command: install what is missing, build, and start a node on
# http://127.0.0.1:8080 with an embedded Redis (data in ./data/redis).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --locked
exec ./target/release/chatnode serve
