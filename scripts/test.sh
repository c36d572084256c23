#!/usr/bin/env bash
# Every test chatnode has: formatting, lints, unit and integration tests on real Redis and real
# sockets (with the local Whisper engine and its model), the deployment checks, and the browser
# tests. CI runs exactly this. Each step prints how long it took.
#
# CTranslate2 (the C++ library behind `--features whisper`) is compiled once: the Whisper build
# is linted while it is built, with clippy-driver as the workspace's compiler wrapper (the way
# `cargo clippy` runs it, but in build mode), and every later cargo command of this script runs
# with the same wrapper, so the browser tests and nextest reuse that build. `cargo clippy
# --features whisper` would build CTranslate2 a second time: check mode runs build scripts under
# another unit hash.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
step_started=$started
step() {
  local now
  now=$(date +%s)
  if [ -n "${step_name:-}" ]; then
    echo "== ${step_name}: $((now - step_started)) s"
  fi
  step_name="$1"
  step_started=$now
  echo "== $1"
}

step "install dependencies"
scripts/install-deps.sh --test
scripts/fetch-whisper-model.sh

step "cargo fmt"
cargo fmt --all -- --check

step "vendored crates"
scripts/check-vendored.sh

step "cargo clippy (without whisper)"
cargo clippy --locked --workspace --all-targets -- -D warnings

# From here on every cargo command builds through clippy-driver with warnings denied.
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)"
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

step "cargo build + clippy (with whisper)"
cargo build --locked --workspace --all-targets --features whisper

step "deploy checks"
scripts/check-deploy.sh

step "browser tests"
scripts/browser-test.sh

step "tests"
CHATNODE_REQUIRE_WHISPER=1 cargo nextest run --locked --workspace --no-fail-fast --features whisper

step "done"
echo "== total: $(($(date +%s) - started)) s"
