#!/usr/bin/env bash
# Scenario 7: what `redis.ack_replicas` costs. One node, one Redis master with one replica
# (AOF, appendfsync everysec), the ingest shape of scenario 4 (SOCKETS senders each alone in a
# room, RATE posts/s in total for DURATION s), once with ack_replicas = 0 and once with 1 (the
# node answers `posted` only after `WAIT 1` on the master). Same machine, same run.
#
#   bench/7-ack-replicas.sh                 (SOCKETS, RATE, DURATION)
source "$(dirname "$0")/lib.sh"
SOCKETS=${SOCKETS:-200}; RATE=${RATE:-5000}; DURATION=${DURATION:-20}
build

for ack in 0 1; do
  start_redis --appendonly yes --appendfsync everysec
  master_port=$REDIS_PORT; master_pid=$REDIS_PID
  replica_port=$(free_port); dir=$(mktemp -d /tmp/chatnode-bench-replica.XXXXXX); TMP_DIRS+=("$dir")
  module=(); [ -f /usr/lib/redis/modules/redisearch.so ] && module=(--loadmodule /usr/lib/redis/modules/redisearch.so)
  redis-server --port "$replica_port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
    --replicaof 127.0.0.1 "$master_port" "${module[@]}" > "$BENCH_OUT/replica.log" 2>&1 &
  replica_pid=$!; STARTED_PIDS+=("$replica_pid")
  for _ in $(seq 100); do
    redis-cli -p "$replica_port" info replication 2>/dev/null | tr -d '\r' | grep -q '^master_link_status:up' && break
    sleep 0.1
  done
  NODE_ENV="CHATNODE__REDIS__ACK_REPLICAS=$ack" start_node "ack$ack"
  node_pid=$NODE_PID
  loadgen ingest --url "http://127.0.0.1:$NODE_PORT" --pid node="$node_pid" --pid redis="$master_pid" \
    --pid replica="$replica_pid" --sockets "$SOCKETS" --ramp 500 --rooms "$SOCKETS" --members 1 \
    --rate "$RATE" --duration "$DURATION" --drain 20 --workers "${WORKERS:-2}" || log "loadgen exited with $?"
  persisted=0
  for i in $(seq 0 $((SOCKETS - 1))); do
    n=$(redis-cli -p "$master_port" xlen "channel:lg-room-$i" | tr -d '\r')
    persisted=$((persisted + n))
  done
  persisted=$((persisted - 2 * SOCKETS))
  on_replica=0
  for i in $(seq 0 $((SOCKETS - 1))); do
    n=$(redis-cli -p "$replica_port" xlen "channel:lg-room-$i" | tr -d '\r')
    on_replica=$((on_replica + n))
  done
  on_replica=$((on_replica - 2 * SOCKETS))
  BENCH_TITLE="7 · ingest with ack_replicas = $ack (one master + one replica)" \
    record ingest persisted="$persisted" on_replica="$on_replica" ack_replicas="$ack"
  kill "$node_pid" "$replica_pid" "$master_pid" 2>/dev/null || true
  for p in "$node_pid" "$replica_pid" "$master_pid"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
done
