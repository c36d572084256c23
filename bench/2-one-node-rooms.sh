#!/usr/bin/env bash
# Scenario 2: one node, 2,000 sockets in 20 rooms of 100, 1,000 messages/s in for 30 s.
# Figures: deliveries/s, latency percentiles, loss. Override with SOCKETS, ROOMS, MEMBERS, RATE,
# DURATION. PROFILE=1 also samples the node with perf for 10 s in the middle of the run.
source "$(dirname "$0")/lib.sh"
SOCKETS=${SOCKETS:-2000}; ROOMS=${ROOMS:-20}; MEMBERS=${MEMBERS:-100}
RATE=${RATE:-1000}; DURATION=${DURATION:-30}
build
start_redis
start_node node
if [ "${PROFILE:-}" = 1 ] && command -v perf >/dev/null; then
  ( sleep $(( SOCKETS / 500 + 15 )); perf record -F 499 -g -p "$NODE_PID" -o "$BENCH_OUT/rooms.perf.data" -- sleep 10 \
      > /dev/null 2>&1; perf report -i "$BENCH_OUT/rooms.perf.data" --stdio --no-children --percent-limit 1.5 \
      > "$BENCH_OUT/rooms.perf.txt" 2>/dev/null ) &
  PROFILER_PID=$!
fi
loadgen rooms --url "http://127.0.0.1:$NODE_PORT" --pid node="$NODE_PID" --pid redis="$REDIS_PID" \
  --sockets "$SOCKETS" --ramp "${RAMP:-500}" --rooms "$ROOMS" --members "$MEMBERS" \
  --rate "$RATE" --duration "$DURATION" --drain 30 --workers "${WORKERS:-2}" || log "loadgen exited with $?"
[ -n "${PROFILER_PID:-}" ] && { wait "$PROFILER_PID" || true; }
record rooms
