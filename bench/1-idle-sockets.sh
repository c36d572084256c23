#!/usr/bin/env bash
# Scenario 1: one node, SOCKETS (default 10,000) idle authenticated sockets held for HOLD seconds
# (default 40: at least two heartbeat rounds at the default 15 s interval). Figures: server RSS
# per socket, sockets held, what failed. One user per socket, as real clients would be; USERS=n
# makes the sockets share n users, which takes the presence broadcasts out of the picture.
source "$(dirname "$0")/lib.sh"
SOCKETS=${SOCKETS:-10000}
build
start_redis
start_node node
loadgen idle --url "http://127.0.0.1:$NODE_PORT" --pid node="$NODE_PID" --pid redis="$REDIS_PID" \
  --sockets "$SOCKETS" --ramp "${RAMP:-500}" --rooms 0 --duration "${HOLD:-40}" --drain 5 \
  --workers "${WORKERS:-2}" --connect-timeout 30 ${USERS:+--users "$USERS"} || log "loadgen exited with $?"
record idle ${USERS:+distinct_users="$USERS"}
