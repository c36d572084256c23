#!/usr/bin/env python3
"""Appends one benchmark run to bench/RESULTS.md: date, commit, machine, the figures of the
loadgen's JSON summary, and the goals beside them with the distance.

    record.py SCENARIO SUMMARY.json [key=value ...]

SCENARIO is idle, rooms, cluster or ingest. Extra key=value pairs are facts the script measured
itself (e.g. persisted=123456 from Redis) and are listed with the run.
"""

import datetime
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.environ.get("BENCH_RESULTS") or os.path.join(HERE, "RESULTS.md")

HEADER = """# chatnode benchmark results

Every entry below is written by a script in `bench/` from the JSON summary of
`chatnode-loadgen` (never typed in by hand). Newest last. How to run them: `bench/README.md`;
the tool itself: `docs/LOADGEN.md`.

Goals on the 2-core reference machine: ≤ 8 KiB server RSS per idle socket; 19,000 sockets on
one node; ≥ 100,000 deliveries/s on one node with p99 ≤ 25 ms; ≥ 20,000 persisted messages/s.
"""

TITLES = {
    "idle": "1 · one node, idle authenticated sockets with heartbeats",
    "rooms": "2 · one node, sockets in rooms, fixed message rate",
    "cluster": "3 · three nodes behind HAProxy, sockets in rooms, fixed message rate",
    "ingest": "4 · ingest: persisted messages per second into one Redis",
}


def sh(cmd):
    try:
        return subprocess.check_output(cmd, shell=True, text=True, stderr=subprocess.DEVNULL).strip()
    except Exception:
        return ""


def machine():
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip() or platform.processor()
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    load = sh("cut -d' ' -f1-3 /proc/loadavg")
    return f"{os.cpu_count()} cores ({cpu}), {mem}, Linux {platform.release()}, load average at the end of the run (1, 5, 15 min) {load}"


def commit():
    c = sh(f"git -C {HERE} rev-parse --short HEAD") or "unknown"
    dirty = sh(f"git -C {HERE} status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock")
    return c + (" (with uncommitted changes)" if dirty else "")


def fmt(v, digits=0):
    if v is None:
        return "–"
    if isinstance(v, float) and digits:
        return f"{v:,.{digits}f}"
    return f"{int(round(v)):,}"


def distance(value, goal, lower_is_better):
    if value is None:
        return "not measured"
    met = value <= goal if lower_is_better else value >= goal
    if met:
        return "met"
    if lower_is_better:
        return f"{value / goal:.1f}× the goal ({(value - goal) / goal:+.0%})"
    return f"{value / goal:.0%} of the goal ({value - goal:+,.0f})"


def node_metric(snapshot, name, i=None):
    nodes = (snapshot or {}).get("nodes") or []
    vals = [n.get("metrics", {}).get(name) for n in nodes if (i is None or nodes.index(n) == i)]
    vals = [v for v in vals if v is not None]
    return sum(vals) if vals else None


def proc(snapshot, name, key):
    p = ((snapshot or {}).get("processes") or {}).get(name) or {}
    return p.get(key)


def cpu_share(s, name, a="ready", b="after"):
    """CPU seconds per wall second of a process between two snapshots."""
    sa, sb = s["server"].get(a) or {}, s["server"].get(b) or {}
    ca, cb = proc(sa, name, "cpu_secs"), proc(sb, name, "cpu_secs")
    if ca is None or cb is None or not sa.get("unix_ms") or not sb.get("unix_ms"):
        return None
    dt = (sb["unix_ms"] - sa["unix_ms"]) / 1000
    return (cb - ca) / dt if dt > 0 else None


def steady(s, key):
    """Median of a per-second series over the sending window, first second skipped."""
    d = s["config"]["duration_secs"]
    vals = sorted(p[key] for p in s["timeseries"] if 1 <= p["t"] < d)
    return vals[len(vals) // 2] if vals else None


def main():
    scenario, path = sys.argv[1], sys.argv[2]
    extra = dict(a.split("=", 1) for a in sys.argv[3:])
    with open(path) as f:
        s = json.load(f)
    c, conn, msg, dl, lat = s["config"], s["connects"], s["messages"], s["deliveries"], s["latency_ms"]
    procs = sorted(((s["server"].get("before") or {}).get("processes") or {}).keys())
    figures = []
    goals = []
    figures.append(("sockets connected / attempted", f"{fmt(conn['succeeded'])} / {fmt(conn['attempted'])}"))
    if conn["failure_reasons"]:
        figures.append(("connect failures", ", ".join(f"{k}: {v}" for k, v in conn["failure_reasons"].items())))
    if s["disconnects"]["total"]:
        figures.append(("dropped during the run", ", ".join(f"{k}: {v}" for k, v in s["disconnects"]["reasons"].items())))
    figures.append(("setup and ramp", f"{fmt(s['phases']['setup_and_ramp_secs'], 1)} s"))

    if scenario == "idle":
        before = s["server"]["before"]
        for when in ("ready", "after"):
            snap = s["server"][when]
            rss0, rss1 = proc(before, "node", "rss_bytes"), proc(snap, "node", "rss_bytes")
            if rss0 is not None and rss1 is not None and conn["succeeded"]:
                per = (rss1 - rss0) / conn["succeeded"]
                label = "after the ramp" if when == "ready" else f"after {fmt(c['duration_secs'])} s idle"
                figures.append((f"node RSS {label}", f"{rss1 / 2**20:,.1f} MiB (from {rss0 / 2**20:,.1f} MiB): {per / 1024:,.2f} KiB per socket"))
        rss0 = proc(before, "node", "rss_bytes")
        rss1 = proc(s["server"]["after"], "node", "rss_bytes")
        per = (rss1 - rss0) / conn["succeeded"] if rss0 is not None and rss1 is not None and conn["succeeded"] else None
        frames = node_metric(s["server"]["after"], "chatnode_frames_out_total")
        if frames is not None:
            figures.append(("frames the node queued to sockets (presence and pings)", fmt(frames)))
        slow = node_metric(s["server"]["after"], "chatnode_slow_client_closes_total")
        if slow:
            figures.append(("sockets closed as too slow (1013)", fmt(slow)))
        goals.append(("server RSS per idle socket", "≤ 8 KiB", f"{per / 1024:,.2f} KiB" if per is not None else "–",
                      distance(per / 1024 if per is not None else None, 8, True)))
        held = conn["succeeded"] - s["disconnects"]["total"]
        goals.append(("sockets held on one node", "19,000", fmt(held), distance(held, 19000, False)))
    else:
        figures.append(("messages sent / acknowledged", f"{fmt(msg['sent'])} / {fmt(msg['acked'])}" +
                        (f" (errors: {', '.join(f'{k}: {v}' for k, v in msg['errors'].items())})" if msg["errors"] else "")))
        figures.append(("messages in per second (acked / send window)", fmt(msg["in_per_sec"])))
        figures.append(("deliveries expected / received", f"{fmt(dl['expected'])} / {fmt(dl['received'])}"))
        figures.append(("lost / duplicated / out of order", f"{fmt(dl['lost'])} / {fmt(dl['duplicated'])} / {fmt(dl['out_of_order'])}"))
        figures.append(("deliveries out per second (all / span)", f"{fmt(dl['out_per_sec'])} over {dl['span_secs']} s; steady-state median {fmt(steady(s, 'delivered_per_sec'))}/s"))
        figures.append(("delivery latency ms p50 / p90 / p99 / p99.9 / max",
                        " / ".join(fmt(lat[k], 2) for k in ("p50", "p90", "p99", "p999", "max"))))
        al = s["ack_latency_ms"]
        figures.append(("post → ack latency ms p50 / p99 / max", " / ".join(fmt(al[k], 2) for k in ("p50", "p99", "max"))))
        an = s.get("answer_latency_ms")
        if an and an.get("count"):
            figures.append(("send → answer (posted or busy) ms p50 / p99 / max",
                            " / ".join(fmt(an[k], 2) for k in ("p50", "p99", "max"))))
            if msg.get("refused"):
                goals.append(("post → answer p99 under overload (posted or busy)", "≤ 250 ms",
                              f"{an['p99']:,.2f} ms", distance(an["p99"], 250, True)))
        if scenario in ("rooms", "cluster"):
            outs = dl["out_per_sec"]
            goals.append(("deliveries per second" + (" (3 nodes)" if scenario == "cluster" else " on one node"),
                          "≥ 100,000", fmt(outs), distance(outs, 100000, False)))
            goals.append(("delivery p99", "≤ 25 ms", f"{lat['p99']:,.2f} ms", distance(lat["p99"], 25, True)))
            lost = dl["lost"] + dl["duplicated"] + dl["out_of_order"]
            goals.append(("loss, duplicates, reordering", "0", fmt(lost), "met" if lost == 0 else "missed"))
        if scenario == "ingest":
            persisted = float(extra["persisted"]) if "persisted" in extra else None
            rate = steady(s, "acked_per_sec")
            overall = persisted / (c["duration_secs"] + (s["phases"]["drain_secs"] or 0)) if persisted else None
            figures.append(("messages persisted in Redis (XLEN, all rooms)", fmt(persisted)))
            figures.append(("acknowledged posts per second, steady-state median", fmt(rate)))
            figures.append(("persisted over send window + drain", f"{fmt(overall)}/s"))
            goals.append(("persisted messages per second", "≥ 20,000", fmt(rate), distance(rate, 20000, False)))
            for depth in ("pipelined", "unpipelined"):
                raw = float(extra.get(f"raw_xadd_{depth}") or 0)
                if raw and rate:
                    goals.append((f"persisted / raw XADD of the same Redis ({depth}: {fmt(raw)}/s)",
                                  "≥ 1/3", f"{rate / raw:.3f}",
                                  "met" if rate / raw >= 1 / 3 else f"{rate / raw * 3:.0%} of the goal"))
    frames_out = node_metric(s["server"]["after"], "chatnode_frames_out_total")
    writes = node_metric(s["server"]["after"], "chatnode_socket_writes_total")
    if frames_out and writes:
        figures.append(("frames queued to sockets / socket writes (whole run)",
                        f"{fmt(frames_out)} / {fmt(writes)}: {frames_out / writes:,.2f} frames per write"))
    for name in procs:
        share = cpu_share(s, name)
        rss = proc(s["server"]["after"], name, "rss_bytes")
        if share is not None:
            figures.append((f"{name}: CPU while loaded / RSS at the end", f"{share:.0%} of a core / {(rss or 0) / 2**20:,.1f} MiB"))
    figures.append(("load generator CPU (all workers)", f"{s['loadgen_cpu_secs']:,.1f} s"))
    sa, sb = s["server"].get("ready") or {}, s["server"].get("after") or {}
    if sa.get("machine_busy_cpu_secs") is not None and sb.get("machine_busy_cpu_secs") is not None:
        dt = (sb["unix_ms"] - sa["unix_ms"]) / 1000
        busy = (sb["machine_busy_cpu_secs"] - sa["machine_busy_cpu_secs"]) / dt
        ours = sum(cpu_share(s, n) or 0 for n in procs)
        ours += (sb.get("loadgen_workers_cpu_secs", 0) - sa.get("loadgen_workers_cpu_secs", 0)) / dt
        figures.append(("whole machine while loaded: busy cores (of which other processes than the node(s), Redis, proxy and load generator)",
                        f"{busy:.2f} of {os.cpu_count()} ({max(busy - ours, 0):.2f})"))
    for k, v in extra.items():
        if k != "persisted":
            figures.append((k.replace("_", " "), v))
    for what in ("commands", "cpu"):
        split = extra.get(f"master_split_{what}")
        if split and split.endswith("%") and int(extra.get("redis_masters") or 1) > 1:
            value = float(split[:-1])
            goals.append((f"work split over the masters ({'commands' if what == 'commands' else 'CPU seconds'}): largest distance from the mean",
                          "≤ 20 %", split, distance(value, 20, True)))

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"\n## {os.environ.get('BENCH_TITLE') or TITLES.get(scenario, scenario)} — {now}\n",
             f"- commit `{commit()}`; machine: {machine()}",
             f"- run `{s['run_id']}`{' (' + s['label'] + ')' if s['label'] else ''}: {c['sockets']:,} sockets over "
             f"{len(c['urls'])} URL(s), {c['workers']} workers, ramp {fmt(c['ramp_per_sec'])}/s, {c['rooms']} rooms × "
             f"{c['members_per_room']} members, {fmt(c['rate_per_sec'])} msg/s for {fmt(c['duration_secs'])} s, "
             f"{c['message_bytes']}-byte texts",
             ""]
    if s.get("errors"):
        lines.append(f"- **the run reported errors:** {'; '.join(s['errors'])}\n")
    lines += ["| figure | value |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in figures]
    lines += ["", "| goal | target | measured | distance |", "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {m} | {d} |" for a, b, m, d in goals]
    note = os.environ.get("BENCH_NOTE")
    if note:
        lines += ["", note]
    new = not os.path.exists(RESULTS)
    with open(RESULTS, "a") as f:
        if new:
            f.write(HEADER)
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
