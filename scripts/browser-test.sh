#!/usr/bin/env bash
# chatnode's real-browser tests: Debian's Chromium, driven by playwright-core, against real
# chatnode nodes on a real Redis (tests/browser/). Installs what is missing (as root through apt;
# otherwise it prints what to install), runs the client's unit tests (tests/frontend/), fetches
# the Whisper model, builds the debug binary with the local Whisper engine, and runs the suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# redis-server and the RediSearch module, as for every other test; espeak-ng for the voice test.
scripts/install-deps.sh --test

pkgs=()
[ -x /usr/bin/chromium ] || pkgs+=(chromium)
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
if [ ${#pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing: ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  else
    echo "the browser tests need: ${pkgs[*]}. Install them with:"
    echo "  sudo apt-get install -y ${pkgs[*]}"
    exit 1
  fi
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "the browser tests need Node.js 20 or newer (found $(node --version))"
  exit 1
fi

# The client's sync logic (resume, gaps, posts in flight) under Node alone: no browser, no build.
echo "== frontend unit tests"
node --test tests/frontend/

# playwright-core at the version package-lock.json pins; it never downloads a browser.
want=$(node -p 'require("./package-lock.json").packages["node_modules/playwright-core"].version')
have=$(node -p 'try { require("./node_modules/playwright-core/package.json").version } catch { "" }')
if [ "$have" != "$want" ]; then
  echo "installing playwright-core $want"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi

# The voice test records a sentence in the page and waits for its transcript from the nodes'
# local Whisper engine: the binary is built with it, and the model must be there.
scripts/fetch-whisper-model.sh

# --all-targets: the binary is built with the same dependency features as the test suite's (dev-
# dependencies take part), so `cargo nextest run --features whisper` afterwards reuses this build,
# CTranslate2 included, instead of compiling it a second time.
echo "== cargo build (debug binary with Whisper, for the browser tests)"
cargo build --locked --features whisper --all-targets

echo "== browser tests"
exec node --test tests/browser/
