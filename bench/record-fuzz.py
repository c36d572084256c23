#!/usr/bin/env python3
"""Appends one fuzz run (bench/fuzz.sh) to bench/RESULTS.md from chatnode-fuzz's JSON summary:
date, commit, machine, inputs, crashes, hangs, internal errors, undocumented codes, lost posts,
the node's RSS before and after, every answer seen, the error lines of the node's log, and the
inputs that caused internal errors or hangs (the first few, cut short).

    record-fuzz.py SUMMARY.json [NODE.log]
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


def log_errors(path):
    """The node's error lines (level error), the first few of them cut short."""
    if not path or not os.path.exists(path):
        return None, []
    lines = [l.rstrip() for l in open(path, errors="replace") if " ERROR " in l]
    return len(lines), [l[:300] for l in lines[:3]]


def examples(title, items):
    """The first few examples of a finding, with the inputs that caused them, as list items."""
    out = []
    for e in items[:3]:
        inputs = e.get("request") or e.get("socket_inputs") or []
        line = f"- {title}: `{str(e.get('answer', ''))[:200]}` after `{json.dumps(inputs)[:600]}`"
        if e.get("reproduced_by"):
            line += f"; sent again alone, `{str(e['reproduced_by'])[:300]}` answers it again"
        out.append(line)
    return out


def main():
    s = json.load(open(sys.argv[1]))
    n_errors, error_lines = log_errors(sys.argv[2] if len(sys.argv) > 2 else None)
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
    ]
    if n_errors is not None:
        lines.append(f"| node log: error lines (causes of internal errors) | {n_errors:,} |")
    lines.append("")
    found = examples("internal", s.get("internal_examples") or []) + examples(
        "hang", s.get("hang_examples") or []
    )
    found += [f"- node log: `{l}`" for l in error_lines]
    if found:
        lines += found + [""]
    with open(record.RESULTS, "a") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
