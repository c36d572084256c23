#!/usr/bin/env bash
# Every test chatnode has: formatting, lints, unit and integration tests on real Redis and real
# sockets (with the local Whisper engine and its model), the deployment checks, and the browser
# tests. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
scripts/fetch-whisper-model.sh

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
cargo clippy --locked --all-targets --features whisper -- -D warnings
echo "== deploy checks"
scripts/check-deploy.sh
echo "== browser tests"
scripts/browser-test.sh
echo "== tests"
CHATNODE_REQUIRE_WHISPER=1 cargo nextest run --locked --no-fail-fast --features whisper
