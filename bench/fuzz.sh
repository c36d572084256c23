#!/usr/bin/env bash
# Fuzz: one node (release build, its own redis-server), chatnode-fuzz sending INPUTS (default
# 10,000,000) random and mutated inputs: WebSocket frames, HTTP requests to every endpoint, voice
# uploads with mutated WAV/FLAC/Ogg/MP3/WebM headers (loadgen/src/bin/chatnode-fuzz.rs). Reports
# crashes, hangs (no answer within 5 s), internal errors, codes outside the documented ones, lost
# posts, the node's RSS before and after, and every error and close code seen; the JSON summary
# goes to $BENCH_OUT/fuzz.json and an entry to RESULTS.md. Every `internal` answer and every hang
# is kept in the summary with the input that caused it (the request, or the frames sent on that
# socket since its last answered marker, with the worker's seed and batch number), and the node's
# log stays in $BENCH_OUT/fuzz-node.log: the node logs the cause of every internal error there
# (level error), and the count of such lines goes into the entry. Exits non-zero when the fuzzer
# found anything.
#
# Knobs: INPUTS (default 10,000,000), WORKERS (sockets/clients, default 4), SEED (default 1),
# BENCH_SKIP_BUILD=1 (use the release binaries as built).
#
# The node's per-user limits are raised so that the inputs reach the code behind them (the
# limits have tests of their own): posts, read markers, typing, joins, channel creation, the
# daily audio quota, and failed sign-ins (the fuzzer signs in again after its own signOut frames,
# from the address its wrong-password frames come from).
source "$(dirname "$0")/lib.sh"
INPUTS=${INPUTS:-10000000}
if [ "${BENCH_SKIP_BUILD:-}" != 1 ]; then
  log "cargo build --release (chatnode, chatnode-fuzz)"
  (cd "$ROOT" && cargo build --release --bin chatnode --bin chatnode-fuzz >&2)
fi
start_redis
NODE_ENV="CHATNODE__AUTH__MAX_FAILED_LOGINS=1000000000 CHATNODE__VOICE__DAILY_QUOTA_BYTES=0 \
  CHATNODE__VOICE__ENGINE=none CHATNODE__LIMITS__READS_PER_MINUTE=1000000000 \
  CHATNODE__LIMITS__TYPING_PER_MINUTE=1000000000 RUST_BACKTRACE=0" start_node fuzz-node
log "fuzz: $INPUTS inputs, ${WORKERS:-4} sockets/clients"
set +e
"$BIN/chatnode-fuzz" --url "http://127.0.0.1:$NODE_PORT" --pid "$NODE_PID" --inputs "$INPUTS" \
  --workers "${WORKERS:-4}" --seed "${SEED:-1}" > "$BENCH_OUT/fuzz.json"
status=$?
set -e
cat "$BENCH_OUT/fuzz.json"
# The node's log level is warn: its error lines are internal errors (and Redis outages).
errors=$(grep -c ' ERROR ' "$BENCH_OUT/fuzz-node.log" || true)
log "chatnode-fuzz exited with $status; node log: $BENCH_OUT/fuzz-node.log ($errors error lines)"
if [ -s "$BENCH_OUT/fuzz.json" ]; then
  python3 "$BENCH_DIR/record-fuzz.py" "$BENCH_OUT/fuzz.json" "$BENCH_OUT/fuzz-node.log"
fi
exit $status
