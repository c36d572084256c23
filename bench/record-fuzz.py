#!/usr/bin/env python3
"""Appends one fuzz run (bench/fuzz.sh) to bench/RESULTS.md from chatnode-fuzz's JSON summary:
date, commit, machine, inputs, crashes, hangs, internal errors, undocumented codes, lost posts,
the node's RSS before and after, and every answer seen.

    record-fuzz.py SUMMARY.json
"""

import datetime
import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("record", os.path.join(HERE, "record.py"))
record = importlib.util.module_from_spec(spec)
spec.loader.exec_module(record)


def codes(d):
    return ", ".join(f"`{k}` {v:,}" for k, v in sorted(d.items(), key=lambda kv: -kv[1])) or "none"


def main():
    s = json.load(open(sys.argv[1]))
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mib = lambda k: f"{s[k] / 1024:,.1f} MiB" if s.get(k) is not None else "n/a"
    lines = [
        "",
        f"## fuzz · one node, random and mutated inputs — {now}",
        "",
        # BENCH_COMMIT: the commit the binaries were built from, when the run reused a build.
        f"- commit `{os.environ.get('BENCH_COMMIT') or record.commit()}`; machine: {record.machine()}",
        f"- chatnode-fuzz, {s['inputs']:,} inputs in {s['seconds']:,} s ({s['inputs_per_second']:,.0f}/s):"
        f" {s['ws_frames']:,} WebSocket frames, {s['http_requests']:,} HTTP requests,"
        f" {s['audio_uploads']:,} voice uploads; verdict: {'nothing found' if s['ok'] else 'FOUND PROBLEMS'}",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| crashes | {s['crashes']} |",
        f"| hangs (no answer within 5 s) | {s['hangs']} |",
        f"| internal errors (500, `internal`) | {s['internal_errors']} |",
        f"| codes outside the documented ones | {codes(s['undocumented_codes'])} |",
        f"| posts acknowledged / missing from history | {s['posts_acknowledged']:,} / {len(s['posts_missing'])} |",
        f"| node RSS after the warm-up / at the end | {mib('rss_kib_before')} / {mib('rss_kib_after')} |",
        f"| sockets reopened (after close codes) / sign-ins after a fuzzed signOut | {s['socket_reconnects']:,} / {s['sign_ins_after_sign_out']:,} |",
        f"| `error` frames | {codes(s['ws_error_codes'])} |",
        f"| close codes | {codes(s['close_codes'])} |",
        f"| HTTP answers | {codes(s['http_answers'])} |",
        "",
    ]
    with open(record.RESULTS, "a") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
