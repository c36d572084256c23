#!/usr/bin/env bash
# Scenario 3: three nodes on one Redis behind Debian's HAProxy (round robin, maxconn 8,000: under
# the 20,000-file limit with two descriptors per proxied socket), the same load as scenario 2.
source "$(dirname "$0")/lib.sh"
SOCKETS=${SOCKETS:-2000}; ROOMS=${ROOMS:-20}; MEMBERS=${MEMBERS:-100}
RATE=${RATE:-1000}; DURATION=${DURATION:-30}
if ! command -v haproxy >/dev/null; then
  log "installing haproxy (Debian package)"
  apt-get install -y haproxy >&2 || { apt-get update >&2 && apt-get install -y haproxy >&2; }
fi
build
start_redis
ports=(); pids=()
for i in 1 2 3; do start_node "node$i"; ports+=("$NODE_PORT"); pids+=("$NODE_PID"); done
PROXY_PORT=$(free_port)
cfg=$BENCH_OUT/haproxy.cfg
cat > "$cfg" <<CFG
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
    server n1 127.0.0.1:${ports[0]} maxconn 4000
    server n2 127.0.0.1:${ports[1]} maxconn 4000
    server n3 127.0.0.1:${ports[2]} maxconn 4000
CFG
haproxy -f "$cfg" -db > "$BENCH_OUT/haproxy.log" 2>&1 &
HAPROXY_PID=$!; STARTED_PIDS+=("$HAPROXY_PID")
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PROXY_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
log "haproxy pid $HAPROXY_PID on port $PROXY_PORT"
loadgen cluster --url "http://127.0.0.1:$PROXY_PORT" \
  --metrics-url "http://127.0.0.1:${ports[0]},http://127.0.0.1:${ports[1]},http://127.0.0.1:${ports[2]}" \
  --pid node1="${pids[0]}" --pid node2="${pids[1]}" --pid node3="${pids[2]}" \
  --pid redis="$REDIS_PID" --pid haproxy="$HAPROXY_PID" \
  --sockets "$SOCKETS" --ramp "${RAMP:-500}" --rooms "$ROOMS" --members "$MEMBERS" \
  --rate "$RATE" --duration "$DURATION" --drain 30 --workers "${WORKERS:-2}" || log "loadgen exited with $?"
record cluster
