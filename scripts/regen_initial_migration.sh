#!/usr/bin/env bash
# Regenerate the initial migration from the models (only while nothing has been deployed).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f migrations/versions/*_initial_schema.py
SDILAB_DATABASE_URL="sqlite:///$tmp/regen.db" .venv/bin/alembic revision --autogenerate \
  --rev-id 0001 -m "initial schema" >/dev/null
rm -rf "$tmp"
.venv/bin/ruff format -q migrations/versions || true
ls migrations/versions
