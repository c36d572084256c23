#!/usr/bin/env bash
# Every test chatnode has: formatting, lints, unit and integration tests on real Redis and real
# sockets (with the local Whisper engine and its model), the deployment checks, and the browser
# tests. CI runs exactly this. Each step prints how long it took.
#
# Dependencies, CTranslate2 (the C++ library behind `--features whisper`) among them, are compiled
# once: the workspace is linted while it is built, with clippy-driver as the workspace's compiler
# wrapper (the way `cargo clippy` runs it, but in build mode), and every later cargo command of
# this script runs with the same wrapper, so the browser tests and nextest reuse that build.
# `cargo clippy` would compile every dependency a second time in check mode, CTranslate2 included
# (check mode runs build scripts under another unit hash).
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

step "import cycles"
scripts/check-imports.sh

step "vendored crates"
scripts/check-vendored.sh

# Every cargo command from here on compiles the workspace's crates with clippy-driver, warnings
# denied; dependencies are compiled once, in build mode, and shared by every step below.
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)"
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

# Without the Whisper engine first (its `cfg(not(feature = "whisper"))` side), so that the
# binaries left in target/debug for the browser tests are the Whisper build's.
step "cargo build + clippy (without whisper)"
cargo build --locked --workspace --all-targets

# The Whisper build adds CTranslate2 and recompiles only chatnode's own crates.
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
