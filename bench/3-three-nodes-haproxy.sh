#!/usr/bin/env bash
# Scenario 3: three nodes on one Redis behind Debian's HAProxy (round robin, maxconn 8,000: under
# the 20,000-file limit with two descriptors per proxied socket), the same load as scenario 2.
source "$(dirname "$0")/lib.sh"
SOCKETS=${SOCKETS:-2000}; ROOMS=${ROOMS:-20}; MEMBERS=${MEMBERS:-100}
RATE=${RATE:-1000}; DURATION=${DURATION:-30}
build
start_redis
ports=(); pids=()
for i in 1 2 3; do start_node "node$i"; ports+=("$NODE_PORT"); pids+=("$NODE_PID"); done
start_haproxy "${ports[@]}"
loadgen cluster --url "http://127.0.0.1:$PROXY_PORT" \
  --metrics-url "http://127.0.0.1:${ports[0]},http://127.0.0.1:${ports[1]},http://127.0.0.1:${ports[2]}" \
  --pid node1="${pids[0]}" --pid node2="${pids[1]}" --pid node3="${pids[2]}" \
  --pid redis="$REDIS_PID" --pid haproxy="$HAPROXY_PID" \
  --sockets "$SOCKETS" --ramp "${RAMP:-500}" --rooms "$ROOMS" --members "$MEMBERS" \
  --rate "$RATE" --duration "$DURATION" --drain 30 --workers "${WORKERS:-2}" || log "loadgen exited with $?"
record cluster
