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
  # SEARCH=0 starts Redis without RediSearch (no indexing: what a post costs without search).
  [ "${SEARCH:-1}" = 1 ] && [ -f /usr/lib/redis/modules/redisearch.so ] &&
    module=(--loadmodule /usr/lib/redis/modules/redisearch.so)
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

# start_node NAME: a node on a free port against $REDIS_PORT (or $NODE_REDIS_URL when set, which
# may be empty, e.g. for a cluster named in $NODE_ENV); sets NODE_PORT and NODE_PID.
# Benchmarks lower argon2 (bulk sign-up) and raise the per-user post, channel and join limits (one
# admin creates every room); $NODE_ENV adds more.
start_node() {
  local name=$1
  NODE_PORT=$(free_port)
  # Only the compiled-in defaults and the variables below: no config/*.toml of the work tree.
  local confdir; confdir=$(mktemp -d /tmp/chatnode-bench-conf.XXXXXX); TMP_DIRS+=("$confdir")
  env CHATNODE_CONFIG_DIR="$confdir" CHATNODE__HTTP__PORT="$NODE_PORT" \
    CHATNODE__REDIS__URL="${NODE_REDIS_URL-redis://127.0.0.1:$REDIS_PORT/}" \
    CHATNODE__AUTH__ARGON2_MEMORY_KIB=8 CHATNODE__AUTH__ARGON2_ITERATIONS=1 \
    CHATNODE__WS__RATE_LIMIT_MESSAGES=1000000 \
    CHATNODE__LIMITS__CHANNEL_CREATES_PER_HOUR=1000000 CHATNODE__LIMITS__MAX_CHANNELS_PER_USER=1000000 \
    CHATNODE__LIMITS__JOINS_PER_MINUTE=1000000 \
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

# start_haproxy PORT...: Debian's HAProxy (installed if missing) in front of the nodes on these
# ports, round robin, maxconn 8,000 (under the 20,000-file limit with two descriptors per proxied
# socket); sets PROXY_PORT and HAPROXY_PID.
start_haproxy() {
  if ! command -v haproxy >/dev/null; then
    log "installing haproxy (Debian package)"
    apt-get install -y haproxy >&2 || { apt-get update >&2 && apt-get install -y haproxy >&2; }
  fi
  PROXY_PORT=$(free_port)
  local cfg=$BENCH_OUT/haproxy.cfg i=0 p
  {
    cat <<CFG
global
    maxconn 8000
defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout tunnel 1h
frontend chat
    bind 127.0.0.1:$PROXY_PORT
    maxconn 8000
    default_backend nodes
backend nodes
    balance roundrobin
CFG
    for p in "$@"; do i=$((i + 1)); echo "    server n$i 127.0.0.1:$p maxconn 4000"; done
  } > "$cfg"
  haproxy -f "$cfg" -db > "$BENCH_OUT/haproxy.log" 2>&1 &
  HAPROXY_PID=$!; STARTED_PIDS+=("$HAPROXY_PID")
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PROXY_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  log "haproxy pid $HAPROXY_PID on port $PROXY_PORT"
}

# A port for a cluster-mode redis-server: at most 55535, with its cluster bus port (+10000) free.
free_cluster_port() {
  python3 -c '
import random, socket
while True:
    p = random.randint(20000, 55535)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
        print(p); break
    except OSError:
        pass'
}

# start_redis_cluster [extra redis-server args...]: six redis-server processes in cluster mode
# (RediSearch loaded when installed), formed into three masters with one replica each by
# redis-cli. Sets MASTER_PORTS (3), REDIS_PIDS and REDIS_NAMES (master1-3, replica1-3).
start_redis_cluster() {
  local module=() ports=() pids=() dir p i
  # SEARCH=0 starts Redis without RediSearch (no indexing: what a post costs without search).
  [ "${SEARCH:-1}" = 1 ] && [ -f /usr/lib/redis/modules/redisearch.so ] &&
    module=(--loadmodule /usr/lib/redis/modules/redisearch.so)
  for i in 1 2 3 4 5 6; do
    p=$(free_cluster_port); dir=$(mktemp -d /tmp/chatnode-bench-cluster.XXXXXX); TMP_DIRS+=("$dir")
    redis-server --port "$p" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
      "${module[@]}" "$@" > "$BENCH_OUT/redis-cluster-$i.log" 2>&1 &
    pids+=("$!"); STARTED_PIDS+=("$!"); ports+=("$p")
  done
  for p in "${ports[@]}"; do
    for _ in $(seq 100); do redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${ports[@]}") --cluster-replicas 1 --cluster-yes \
    > "$BENCH_OUT/redis-cluster-create.log" 2>&1
  for p in "${ports[@]}"; do
    for _ in $(seq 100); do
      redis-cli -p "$p" cluster info | tr -d '\r' | grep -q '^cluster_state:ok' && break; sleep 0.1
    done
  done
  MASTER_PORTS=(); REDIS_PIDS=(); REDIS_NAMES=()
  local m=0 r=0
  for i in "${!ports[@]}"; do
    if redis-cli -p "${ports[$i]}" role | head -1 | grep -q master; then
      m=$((m + 1)); MASTER_PORTS+=("${ports[$i]}"); REDIS_NAMES+=("master$m")
    else
      r=$((r + 1)); REDIS_NAMES+=("replica$r")
    fi
    REDIS_PIDS+=("${pids[$i]}")
  done
  log "redis cluster: masters on ${MASTER_PORTS[*]}, pids ${REDIS_PIDS[*]}"
}

