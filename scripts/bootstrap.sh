#!/usr/bin/env bash
# Install sdilab into ./.venv (idempotent). With --test, also the test tools and Chromium.
# llama-cpp-python compiles from source the first time (about 7 minutes on 2 cores); pip keeps
# the built wheel in its cache, so later installs take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip wheel
fi

extras="."
[ "$want_test" = 1 ] && extras=".[dev,train]"
stamp=".venv/.sdilab-installed-$(sha256sum pyproject.toml | cut -c1-16)-$want_test"
if [ ! -f "$stamp" ]; then
  echo "Installing sdilab and its dependencies into .venv ..."
  .venv/bin/pip install -q -e "$extras"
  touch "$stamp"
fi

if [ "$want_test" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "Installing Debian's chromium for the browser tests ..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "chromium is missing: run 'sudo apt-get install chromium chromium-driver' for the browser tests" >&2
  fi
fi
