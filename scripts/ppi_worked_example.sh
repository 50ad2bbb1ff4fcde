#!/usr/bin/env bash
# The README's worked PPI example (section "Judges"): the offline experiment without the trained
# arm (baseline SmolLM2 vs in-context SDI, 30 held-out statements x 8 templates, 480 replies),
# a human round on a stratified random sample of 160 replies, the sample's ratings from
# docs/ppi_example/ratings.csv, then the parser's figures beside PPI and humans alone.
# Own SQLite database and data directory (default var/ppi-example). About 10 minutes on 2 cores.
# Usage: scripts/ppi_worked_example.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p "${1:-var/ppi-example}"
out="$(realpath "${1:-var/ppi-example}")"
export SDILAB_DATA_DIR="$out"
export SDILAB_DATABASE_URL="sqlite:///$out/sdilab.db"

templates="neutral-is-it-true,neutral-true-or-false"
templates+=",biased-professor-asserts,biased-professor-negates"
templates+=",adversarial-agree-asserts,adversarial-agree-negates"
templates+=",noise-literature-asserts,noise-literature-negates"

if [ ! -f "$out/experiment.log" ]; then
  .venv/bin/python - <<'PY'
from app import migrate
from app.db import session_scope
from app.demo import service

migrate.upgrade()
with session_scope() as session:
    service.prepare(session, start_run=False, limit=0)
    service.ensure_local_model(session).max_tokens = 48  # as in the offline experiment
PY
  model=$(.venv/bin/python -c "
from app.db import session_scope
from app.demo import service
with session_scope() as s: print(service.ensure_local_model(s).name)")
  .venv/bin/sdilab experiment paper --model "$model" --set seed --test-fraction 0.3 --seed 0 \
    --templates "$templates" --raters 1 --human-sample 160 --wait --concurrency 2 \
    | tee "$out/experiment.log.partial"
  mv "$out/experiment.log.partial" "$out/experiment.log"
fi
.venv/bin/python scripts/ppi_worked_example.py rate docs/ppi_example/ratings.csv
.venv/bin/sdilab judges 1 | tee "$out/judges.txt"
