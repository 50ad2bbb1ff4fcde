#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest on SQLite and on Postgres.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test

PG_URL="${SDILAB_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test}"

echo "== ruff"; .venv/bin/ruff check app tests bench migrations
echo "== mypy"; .venv/bin/mypy

echo "== pytest on SQLite"
env -u SDILAB_TEST_DATABASE_URL .venv/bin/pytest "$@"

echo "== pytest on Postgres ($PG_URL)"
SDILAB_TEST_DATABASE_URL="$PG_URL" .venv/bin/pytest "$@"
