#!/usr/bin/env bash
# Every test chatnode has: formatting, lints, unit and integration tests on real Redis and real
# sockets, and the deployment checks. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== deploy checks"
scripts/check-deploy.sh
echo "== tests"
cargo nextest run --locked --no-fail-fast
scripts/browser-test.sh
