#!/usr/bin/env bash
# The offline experiment of the README's "Trained SDI" section: baseline SmolLM2 vs in-context
# SDI vs LoRA-trained SDI on the held-out 30 % of the seed set, scored by the verdict parser.
# Uses its own SQLite database and data directory (default var/experiment), so the demo's data is
# untouched. About an hour on 2 cores: 40 LoRA steps of 8 examples, then 720 local replies.
# Usage: scripts/experiment_trained_sdi.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p "${1:-var/experiment}"
out="$(realpath "${1:-var/experiment}")"
export SDILAB_DATA_DIR="$out"
export SDILAB_DATABASE_URL="sqlite:///$out/sdilab.db"

# Neutral questions and, for each stance, authority, adversarial, paraphrase and noise prompts;
# pushback is left out (the parser cannot judge the second turn, see app/experiments/scoring.py).
templates="neutral-is-it-true,neutral-true-or-false"
templates+=",biased-professor-asserts,biased-professor-negates"
templates+=",adversarial-agree-asserts,adversarial-agree-negates"
templates+=",noise-literature-asserts,noise-literature-negates"

.venv/bin/python - <<'EOF'
import os

from app import migrate
from app.db import session_scope
from app.demo import service

migrate.upgrade()
with session_scope() as session:
    service.prepare(session, start_run=False, limit=0)
    base = service.ensure_local_model(session)
    base.max_tokens = int(os.environ.get("MAX_TOKENS", "48"))  # the verdict is in the opening
    print("base model:", base.name, "max_tokens", base.max_tokens)
EOF
model=$(.venv/bin/python -c "
from app.db import session_scope
from app.demo import service
with session_scope() as s: print(service.ensure_local_model(s).name)")

.venv/bin/sdilab experiment paper --model "$model" --set seed --test-fraction 0.3 --seed 0 \
  --templates "$templates" --train --train-steps "${TRAIN_STEPS:-40}" --max-len "${MAX_LEN:-192}" \
  --wait --concurrency 2 | tee "$out/experiment.log"
