#!/usr/bin/env bash
# Scenario 5: Redis Cluster. Three nodes behind HAProxy on a local cluster of six redis-server
# processes (three masters with a replica each, RediSearch loaded on each, AOF with
# appendfsync everysec), running the ingest shape (scenario 4) and the rooms shape (scenario 3);
# then the same two shapes on three nodes and ONE Redis, in the same run, for comparison.
#
# What it shows: how evenly the masters share the work (commands and CPU seconds per master,
# from INFO commandstats and INFO cpu before and after each shape; goal: each within ±20 % of
# the mean). On a 2-core machine six Redis processes, three nodes and the load generator share
# two cores, so the cluster cannot be faster in absolute terms here; the even split is what
# says it will scale with cores and machines.
#
#   bench/5-cluster.sh                      (INGEST_RATE, ROOMS_RATE, DURATION, SKIP_SINGLE=1)
source "$(dirname "$0")/lib.sh"
INGEST_SOCKETS=${INGEST_SOCKETS:-200}; INGEST_RATE=${INGEST_RATE:-10000}
ROOMS=${ROOMS:-20}; MEMBERS=${MEMBERS:-100}; ROOMS_RATE=${ROOMS_RATE:-1000}
DURATION=${DURATION:-20}
build

# cpu_and_calls PORT: "<cpu seconds> <commands>" of one redis-server so far.
cpu_and_calls() {
  local cpu calls
  cpu=$(redis-cli -p "$1" info cpu | tr -d '\r' |
    awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.2f", s}')
  calls=$(redis-cli -p "$1" info commandstats | tr -d '\r' |
    awk -F'[:,=]' '/^cmdstat_/ {s += $3} END {print s + 0}')
  echo "$cpu $calls"
}

# split_figures LABEL PORT...: after a shape, the per-master work since the last `mark`, as
# key=value pairs for record.py, and the largest distance from the mean (percent).
declare -A MARK_CPU MARK_CALLS
mark() { local p; for p in "$@"; do read -r MARK_CPU[$p] MARK_CALLS[$p] < <(cpu_and_calls "$p"); done; }
split_figures() {
  local p cpu calls i=0 cpus=() callss=()
  SPLIT=()
  for p in "$@"; do
    read -r cpu calls < <(cpu_and_calls "$p")
    cpus+=("$(awk -v a="$cpu" -v b="${MARK_CPU[$p]}" 'BEGIN {printf "%.2f", a - b}')"); callss+=($((calls - MARK_CALLS[$p])))
  done
  for p in "$@"; do
    SPLIT+=("master_$((i + 1))_(port_$p)=${callss[$i]} commands, ${cpus[$i]} CPU s")
    i=$((i + 1))
  done
  SPLIT+=("master_split_commands=$(python3 -c 'import sys; v=[float(x) for x in sys.argv[1:]]; m=sum(v)/len(v); print(f"{max(abs(x-m) for x in v)/m:.1%}" if m else "–")' "${callss[@]}")")
  SPLIT+=("master_split_cpu=$(python3 -c 'import sys; v=[float(x) for x in sys.argv[1:]]; m=sum(v)/len(v); print(f"{max(abs(x-m) for x in v)/m:.1%}" if m else "–")' "${cpus[@]}")")
}

# persisted PORT ARGS: messages in the ingest rooms' streams (redis-cli -c follows MOVED).
persisted() {
  local port=$1 n total=0 i
  for i in $(seq 0 $((INGEST_SOCKETS - 1))); do
    n=$(redis-cli -c -p "$port" xlen "channel:lg-room-$i" | tr -d '\r')
    total=$((total + n))
  done
  # Each stream also holds two `join` events: the room's creator and its member.
  echo $((total - 2 * INGEST_SOCKETS))
}

run_shapes() {
  local label=$1 slug=$2 seed_port=$3; shift 3
  local masters=("$@") pidargs=() ports=() pids=() i
  for i in 1 2 3; do start_node "$slug-node$i"; ports+=("$NODE_PORT"); pids+=("$NODE_PID"); done
  start_haproxy "${ports[@]}"
  pidargs=(--pid node1="${pids[0]}" --pid node2="${pids[1]}" --pid node3="${pids[2]}" --pid haproxy="$HAPROXY_PID")
  for i in "${!REDIS_PIDS[@]}"; do pidargs+=(--pid "${REDIS_NAMES[$i]}=${REDIS_PIDS[$i]}"); done
  local metrics="http://127.0.0.1:${ports[0]},http://127.0.0.1:${ports[1]},http://127.0.0.1:${ports[2]}"

  mark "${masters[@]}"
  loadgen ingest --url "http://127.0.0.1:$PROXY_PORT" --metrics-url "$metrics" "${pidargs[@]}" \
    --sockets "$INGEST_SOCKETS" --ramp 500 --rooms "$INGEST_SOCKETS" --members 1 \
    --rate "$INGEST_RATE" --duration "$DURATION" --drain 20 --workers "${WORKERS:-2}" || log "loadgen exited with $?"
  split_figures "${masters[@]}"
  BENCH_TITLE="5 · $label: ingest, 3 nodes behind HAProxy" \
    record ingest persisted="$(persisted "$seed_port")" redis_masters="${#masters[@]}" "${SPLIT[@]}"

  mark "${masters[@]}"
  loadgen cluster --url "http://127.0.0.1:$PROXY_PORT" --metrics-url "$metrics" "${pidargs[@]}" \
    --sockets $((ROOMS * MEMBERS)) --ramp "${RAMP:-500}" --rooms "$ROOMS" --members "$MEMBERS" \
    --rate "$ROOMS_RATE" --duration "$DURATION" --drain 20 --workers "${WORKERS:-2}" || log "loadgen exited with $?"
  split_figures "${masters[@]}"
  BENCH_TITLE="5 · $label: rooms, 3 nodes behind HAProxy" \
    record cluster redis_masters="${#masters[@]}" "${SPLIT[@]}"

  kill "${pids[@]}" "$HAPROXY_PID" 2>/dev/null || true
  for i in "${pids[@]}" "$HAPROXY_PID"; do while kill -0 "$i" 2>/dev/null; do sleep 0.1; done; done
}

# The cluster.
start_redis_cluster --appendonly yes --appendfsync everysec
REDIS_PORT=${MASTER_PORTS[0]}
seeds=""; for p in "${MASTER_PORTS[@]}"; do seeds+="${seeds:+,}redis://127.0.0.1:$p"; done
NODE_REDIS_URL="" NODE_ENV="CHATNODE__REDIS__CLUSTER_NODES=$seeds" \
  run_shapes "Redis Cluster (3 masters + 3 replicas)" cluster "${MASTER_PORTS[0]}" "${MASTER_PORTS[@]}"
for p in "${REDIS_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done

# One Redis, same shapes, same run.
if [ "${SKIP_SINGLE:-}" != 1 ]; then
  start_redis --appendonly yes --appendfsync everysec
  REDIS_PIDS=("$REDIS_PID"); REDIS_NAMES=(redis)
  run_shapes "one Redis" single "$REDIS_PORT" "$REDIS_PORT"
fi
