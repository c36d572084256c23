#!/usr/bin/env bash
# Checks that chatnode's modules depend on each other in one direction only.
#
# Reads every `crate::…` and `super::…` path in src/**/*.rs (use lines and paths written inline,
# comments left out) and draws a graph of modules: each top-level module is one node (a folder
# module such as `store/` counts as one), except the actors, where each file is a node of its own
# (`actors/hub`, `actors/bridge`, …; `actors/mod.rs` is `actors`). It fails, printing the cycle,
# when modules depend on each other in a circle; a circle through an actor, `app` or `node` is
# printed loop by loop. `-v` prints the whole graph.
set -euo pipefail
cd "$(dirname "$0")/.."

exec python3 - "$@" <<'PY'
import os
import re
import sys

SRC = "src"
# Each file of these folders is a module of its own in the graph.
SPLIT = {"actors"}
# A circle through one of these fails the check.
WATCHED = {"app", "node"}


def module_of(path):
    """The graph node of a source file: `store`, `actors/hub`, `actors`, `node`."""
    parts = os.path.relpath(path, SRC)[: -len(".rs")].split(os.sep)
    if parts[0] in SPLIT and len(parts) > 1 and parts[1] != "mod":
        return f"{parts[0]}/{parts[1]}"
    return parts[0]


def strip_comments(text):
    """Source without comments and string literals, so paths in them are not counted."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r'r(#*)".*?"\1', '""', text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def expand(tree):
    """`a::{b, c::{d, e}}` → ["a::b", "a::c::d", "a::c::e"]."""
    tree = re.sub(r"\s+", "", tree)
    i = tree.find("{")
    if i < 0:
        return [tree]
    head, inner = tree[:i], tree[i + 1 : tree.rfind("}")]
    items, depth, start = [], 0, 0
    for j, ch in enumerate(inner):
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            items.append(inner[start:j])
            start = j + 1
    items.append(inner[start:])
    return [p for item in items if item for p in expand(head + item)]


def submodules(folder):
    d = os.path.join(SRC, folder)
    return {f[:-3] for f in os.listdir(d) if f.endswith(".rs") and f != "mod.rs"} | {
        f for f in os.listdir(d) if os.path.isdir(os.path.join(d, f))
    }


def target(src_module, path):
    """The graph node a path such as `crate::actors::hub::Hub` or `super::room` points to."""
    segs = [s for s in path.split("::") if s]
    if not segs:
        return None
    if segs[0] == "crate":
        segs = segs[1:]
    elif segs[0] == "super":
        parent = src_module.split("/")[0]
        if "/" not in src_module:
            return None  # `super::` inside a folder module stays within it
        segs = [parent] + segs[1:]
    else:
        return None
    if not segs or not re.fullmatch(r"[a-z_][a-z0-9_]*", segs[0]):
        return None
    top = segs[0]
    if top in SPLIT and len(segs) > 1 and segs[1] in submodules(top):
        return f"{top}/{segs[1]}"
    return top


def paths_in(text):
    text = strip_comments(text)
    found = []
    for m in re.finditer(r"\buse\s+((?:crate|super)::[^;]*);", text):
        found += expand(m.group(1))
    rest = re.sub(r"\buse\s+(?:crate|super)::[^;]*;", " ", text)
    found += re.findall(r"\b(?:crate|super)(?:::[A-Za-z_][A-Za-z0-9_]*)+", rest)
    return found


graph = {}
for root, _, files in os.walk(SRC):
    if os.path.relpath(root, SRC).split(os.sep)[0] == "bin":
        continue  # other crates' `crate::` is their own
    for f in files:
        if not f.endswith(".rs") or (root == SRC and f == "main.rs"):
            continue
        path = os.path.join(root, f)
        src_module = module_of(path)
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        edges = graph.setdefault(src_module, {})
        for p in paths_in(text):
            t = target(src_module, p)
            if t and t != src_module and t != "self":
                edges.setdefault(t, set()).add(os.path.relpath(path, SRC))

if "-v" in sys.argv[1:]:
    for m in sorted(graph):
        print(f"{m} -> {', '.join(sorted(graph[m])) or '(nothing)'}")


def cycle_groups():
    """The groups of modules that reach each other (strongly connected, Tarjan)."""
    index, low, stack, on, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups

def shortest_loop(group, start):
    """The shortest way from `start` back to itself inside `group` (breadth first)."""
    prev, frontier = {}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, {})):
                if w == start:
                    loop = [v]
                    while loop[-1] != start:
                        loop.append(prev[loop[-1]])
                    return loop[::-1] + [start]
                if w in group and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start]


def watched(module):
    return module in WATCHED or module.split("/")[0] in SPLIT


def show(loop):
    for a, b in zip(loop, loop[1:]):
        print(f"    {a} uses {b} in {', '.join(sorted(graph[a][b]))}")


failed = False
for group in cycle_groups():
    members = ", ".join(sorted(group))
    if not any(watched(m) for m in group):
        loop = shortest_loop(group, min(group))
        print("import cycle: " + " -> ".join(loop) + f" (the circle takes in: {members})")
        show(loop)
        failed = True
        continue
    failed = True
    seen = set()
    for m in sorted(filter(watched, group)):
        loop = shortest_loop(group, m)
        if frozenset(loop) in seen:
            continue
        seen.add(frozenset(loop))
        print("import cycle: " + " -> ".join(loop))
        show(loop)
    print(f"    (the circle takes in: {members})")
if failed:
    sys.exit(1)
print("check-imports: no import cycle")
PY
