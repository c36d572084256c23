#!/usr/bin/env bash
# The newcomer's first command: install what is missing, fetch the Whisper model, build with the
# local transcription engine, and start a node on http://127.0.0.1:8080 with an embedded Redis
# (data in ./data/redis). The first build compiles CTranslate2 and takes several minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/fetch-whisper-model.sh
cargo build --release --locked --features whisper
exec ./target/release/chatnode serve
