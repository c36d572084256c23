#!/usr/bin/env bash
# Checks that the patched dependencies in vendor/ are the ones chatnode builds with, and that each
# is exactly its upstream release plus the patch stored beside it.
#
#   scripts/check-vendored.sh          (from anywhere; no arguments; run by scripts/test.sh)
#
# For each crate in VENDORED below (name, upstream version, SHA-256 of the upstream .crate):
#   - vendor/<name>/Cargo.toml has that version;
#   - Cargo.lock holds that crate once, at that version, from the path (no registry source), and
#     no unused patch: if a dependency moves to a newer upstream release, Cargo resolves the
#     registry crate instead, the patch silently stops applying, and this check fails;
#   - the upstream .crate (from Cargo's cache, or fetched by cargo into a scratch project) has
#     that checksum, and unpacked with vendor/<name>/chatnode.patch applied it equals
#     vendor/<name> file for file (CHATNODE-PATCH.md and chatnode.patch aside).
# To move to a new upstream release: unpack it into vendor/<name>, apply chatnode.patch (fix it
# up if needed), update the version and checksum here and in CHATNODE-PATCH.md, `cargo update -p
# <name>`, and measure again (bench/1-idle-sockets.sh).
# Needs cargo, tar, patch, sha256sum, diff. Exits non-zero if any check fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# name version sha256-of-the-upstream-.crate
VENDORED=(
    "actix-http 3.20.0 d20a22850ea7fecad12c5f8cd97d246c3af1f04ef400033977c2f13425c45816"
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
fail() {
    echo "    FAILED: $*"
    failed=$((failed + 1))
}

# lock_entries NAME: "version source" of every Cargo.lock package named NAME ("-" for no source).
lock_entries() {
    awk -v name="$1" '
        function flush() { if (package && n == name) print v, (s == "" ? "-" : s) }
        /^\[/        { flush(); package = ($0 == "[[package]]"); n = ""; v = ""; s = "" }
        /^name = /    { n = $3; gsub(/"/, "", n) }
        /^version = / { v = $3; gsub(/"/, "", v) }
        /^source = /  { s = $3; gsub(/"/, "", s) }
        END           { flush() }
    ' Cargo.lock
}

# upstream_crate NAME VERSION: prints the path of the upstream .crate, fetching it if needed.
upstream_crate() {
    local name=$1 version=$2 cargo_home=${CARGO_HOME:-$HOME/.cargo} found
    found=$(find "$cargo_home/registry/cache" -name "$name-$version.crate" 2>/dev/null | head -n1)
    if [ -z "$found" ]; then
        # A scratch project outside the workspace, so that no [patch] applies.
        mkdir -p "$tmp/fetch/src"
        printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\n%s = "=%s"\n' \
            "$name" "$version" >"$tmp/fetch/Cargo.toml"
        : >"$tmp/fetch/src/lib.rs"
        cargo fetch --quiet --manifest-path "$tmp/fetch/Cargo.toml" \
            --target "$(rustc -vV | sed -n 's/^host: //p')" >&2
        found=$(find "$cargo_home/registry/cache" -name "$name-$version.crate" | head -n1)
    fi
    [ -n "$found" ] && echo "$found"
}

for entry in "${VENDORED[@]}"; do
    read -r name version checksum <<<"$entry"
    dir="vendor/$name"
    echo "==> $dir: upstream $name $version plus $dir/chatnode.patch"

    vendored_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$dir/Cargo.toml" | head -n1)
    [ "$vendored_version" = "$version" ] \
        || fail "$dir/Cargo.toml has version $vendored_version, expected $version"

    entries=$(lock_entries "$name")
    if [ "$entries" != "$version -" ]; then
        fail "Cargo.lock does not build $name from $dir alone; its $name entries (version source):"
        echo "${entries:-      (none)}" | sed 's/^/      /'
    fi
    if grep -q '^\[\[patch.unused\]\]' Cargo.lock; then
        fail "Cargo.lock lists an unused patch: a dependency needs another $name than $version"
    fi

    if ! crate=$(upstream_crate "$name" "$version"); then
        fail "could not get upstream $name $version"
        continue
    fi
    actual=$(sha256sum "$crate" | cut -d' ' -f1)
    if [ "$actual" != "$checksum" ]; then
        fail "$crate has SHA-256 $actual, expected $checksum"
        continue
    fi
    mkdir -p "$tmp/upstream"
    tar -xzf "$crate" -C "$tmp/upstream"
    if ! patch --quiet -p1 -d "$tmp/upstream/$name-$version" <"$dir/chatnode.patch"; then
        fail "$dir/chatnode.patch does not apply to upstream $name $version"
        continue
    fi
    if diff -r -q -x CHATNODE-PATCH.md -x chatnode.patch -x target \
        "$tmp/upstream/$name-$version" "$dir"; then
        echo "    ok: $dir is upstream $name $version with chatnode.patch applied"
    else
        fail "$dir differs from upstream $name $version with chatnode.patch applied (above)"
    fi
done

echo "vendored checks: $failed failed"
[ "$failed" -eq 0 ]
