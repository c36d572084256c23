# Shared helpers of the benchmark scripts (sourced, not run). Everything a script starts is
# stopped by PID when it exits; artifacts go to $BENCH_OUT (default <target dir>/bench). The
# binaries are built in and run from $CARGO_TARGET_DIR when it is set (default target/).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
BENCH_OUT=${BENCH_OUT:-$TARGET_DIR/bench}
mkdir -p "$BENCH_OUT"
STARTED_PIDS=()
TMP_DIRS=()

cleanup() {
  local p
  for p in "${STARTED_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${STARTED_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  for p in "${TMP_DIRS[@]}"; do rm -rf "$p"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }

# A TCP port nobody listens on.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

build() {
  if [ "${BENCH_SKIP_BUILD:-}" != 1 ]; then
    log "cargo build --release (chatnode, chatnode-loadgen)"
    (cd "$ROOT" && cargo build --release --bin chatnode --bin chatnode-loadgen >&2)
  fi
}

# start_redis [extra redis-server args...]: sets REDIS_PORT and REDIS_PID.
start_redis() {
  REDIS_PORT=$(free_port)
  local dir; dir=$(mktemp -d /tmp/chatnode-bench-redis.XXXXXX); TMP_DIRS+=("$dir")
  local module=()
  [ -f /usr/lib/redis/modules/redisearch.so ] && module=(--loadmodule /usr/lib/redis/modules/redisearch.so)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
    "${module[@]}" "$@" > "$BENCH_OUT/redis.log" 2>&1 &
  REDIS_PID=$!; STARTED_PIDS+=("$REDIS_PID")
  for _ in $(seq 50); do
    if [ "$(redis-cli -p "$REDIS_PORT" info server 2>/dev/null | tr -d '\r' | awk -F: '/^process_id/ {print $2}')" = "$REDIS_PID" ]; then
      log "redis-server pid $REDIS_PID on port $REDIS_PORT"; return 0
    fi
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.1
  done
  log "redis-server did not start (see $BENCH_OUT/redis.log)"; exit 1
}

# start_node NAME: a node on a free port against $REDIS_PORT; sets NODE_PORT and NODE_PID.
# Benchmarks lower argon2 (bulk sign-up) and raise the per-user post, channel and join limits (one
# admin creates every room); $NODE_ENV adds more.
start_node() {
  local name=$1
  NODE_PORT=$(free_port)
  # Only the compiled-in defaults and the variables below: no config/*.toml of the work tree.
  local confdir; confdir=$(mktemp -d /tmp/chatnode-bench-conf.XXXXXX); TMP_DIRS+=("$confdir")
  env CHATNODE_CONFIG_DIR="$confdir" CHATNODE__HTTP__PORT="$NODE_PORT" \
    CHATNODE__REDIS__URL="redis://127.0.0.1:$REDIS_PORT/" \
    CHATNODE__AUTH__ARGON2_MEMORY_KIB=8 CHATNODE__AUTH__ARGON2_ITERATIONS=1 \
    CHATNODE__WS__RATE_LIMIT_MESSAGES=1000000 \
    CHATNODE__LIMITS__CHANNEL_CREATES_PER_HOUR=1000000 CHATNODE__LIMITS__MAX_CHANNELS_PER_USER=1000000 \
    CHATNODE__LIMITS__JOINS_PER_MINUTE=1000000 \
    ${POOL_SIZE:+CHATNODE__REDIS__POOL_SIZE=$POOL_SIZE} \
    CHATNODE__LOG__LEVEL=warn \
    ${NODE_ENV:-} \
    "$BIN/chatnode" serve > "$BENCH_OUT/$name.log" 2>&1 &
  NODE_PID=$!; STARTED_PIDS+=("$NODE_PID")
  for _ in $(seq 100); do
    if curl -sf "http://127.0.0.1:$NODE_PORT/readyz" >/dev/null 2>&1; then
      log "$name: chatnode pid $NODE_PID on port $NODE_PORT"; return 0
    fi
    kill -0 "$NODE_PID" 2>/dev/null || break
    sleep 0.2
  done
  log "$name did not start (see $BENCH_OUT/$name.log)"; exit 1
}

# loadgen SCENARIO [args...]: runs the tool, summary in $BENCH_OUT/SCENARIO.json and .svg.
loadgen() {
  local scenario=$1; shift
  log "chatnode-loadgen $*"
  "$BIN/chatnode-loadgen" --label "$scenario" --json "$BENCH_OUT/$scenario.json" \
    --svg "$BENCH_OUT/$scenario.svg" "$@" > /dev/null
}

# record SCENARIO [key=value...]: appends the run to bench/RESULTS.md.
record() {
  local scenario=$1; shift
  python3 "$BENCH_DIR/record.py" "$scenario" "$BENCH_OUT/$scenario.json" "$@"
  if [ -z "${BENCH_RESULTS:-}" ]; then
    mkdir -p "$BENCH_DIR/figures"
    cp "$BENCH_OUT/$scenario.svg" "$BENCH_DIR/figures/$scenario.svg"
  fi
}
