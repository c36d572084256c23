#!/usr/bin/env bash
# Scenario 4: ingest. SOCKETS (default 200) senders, each alone in its own room, post RATE
# (default 25,000) messages/s in total for DURATION (default 20) s into one node and one Redis
# with the append-only file on (appendfsync everysec), so every acknowledged message is on disk
# within a second. Figures: acknowledged posts/s (steady-state median) and the stream lengths,
# and, after the run on the same Redis, its raw XADD rate (redis-benchmark, entries of the same
# fields and size as a post's, with and without pipelining) and the ratio persisted / raw XADD,
# so the figure can be judged on a noisier machine too.
source "$(dirname "$0")/lib.sh"
SOCKETS=${SOCKETS:-200}; RATE=${RATE:-25000}; DURATION=${DURATION:-20}
build
start_redis --appendonly yes --appendfsync everysec
start_node node
loadgen ingest --url "http://127.0.0.1:$NODE_PORT" --pid node="$NODE_PID" --pid redis="$REDIS_PID" \
  --sockets "$SOCKETS" --ramp 500 --rooms "$SOCKETS" --members 1 \
  --rate "$RATE" --duration "$DURATION" --drain 30 --workers "${WORKERS:-2}" --window "${WINDOW:-32}" \
  || log "loadgen exited with $?"
persisted=0
for i in $(seq 0 $((SOCKETS - 1))); do
  n=$(redis-cli -p "$REDIS_PORT" xlen "channel:lg-room-$i" | tr -d '\r')
  persisted=$((persisted + n))
done
# Each stream also holds two `join` events: the room's creator and its member.
persisted=$((persisted - 2 * SOCKETS))
# Where Redis spends its time per command (calls made inside the post script included).
redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' > "$BENCH_OUT/ingest.commandstats.txt"
stat() { awk -F'[:,=]' -v c="cmdstat_$1" 'tolower($1) == c {print $3 " calls, " $7 " µs per call"}' "$BENCH_OUT/ingest.commandstats.txt"; }
# Raw XADD of the same Redis: one stream entry with a post's fields (64-byte text, 36-byte uuid).
text=$(printf 'x%.0s' $(seq 64)); uuid=00000000-0000-4000-8000-000000000000
xadd_rate() {
  redis-benchmark -p "$REDIS_PORT" -n 200000 -c 50 -P "$1" -q \
    XADD bench:raw-xadd '*' type message username lg-user-0 message "$text" uuid "$uuid" |
    tr '\r' '\n' | awk '/requests per second/ {for (i = 1; i <= NF; i++) if ($(i+1) == "requests") {print int($i); exit}}'
}
raw_p16=$(xadd_rate 16); raw_p1=$(xadd_rate 1)
redis-cli -p "$REDIS_PORT" del bench:raw-xadd > /dev/null
log "raw XADD: $raw_p16/s pipelined 16 deep, $raw_p1/s one at a time (50 clients)"
aof=$(redis-cli -p "$REDIS_PORT" info persistence | tr -d '\r' | awk -F: '/^aof_current_size/ {print $2}')
# Rewrites of the append-only file during the run: each forks a child that writes the whole
# data set (its CPU is not in Redis's figure above, and on two cores it competes with the rest).
rewrites=$(redis-cli -p "$REDIS_PORT" info persistence | tr -d '\r' | awk -F: '/^aof_rewrites:/ {print $2}')
record ingest persisted="$persisted" aof_bytes="$aof" aof_rewrites="${rewrites:-?}" \
  redis_evalsha="$(stat evalsha)" redis_ft.addhash="$(stat ft.addhash)" redis_xadd="$(stat xadd)" \
  redis_sismember="$(stat sismember)" redis_unwatch="$(stat unwatch)" \
  raw_xadd_pipelined="$raw_p16" raw_xadd_unpipelined="$raw_p1"
