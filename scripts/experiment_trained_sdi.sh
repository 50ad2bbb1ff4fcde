#!/usr/bin/env bash
# The offline experiment of the README's "Trained SDI" section: baseline SmolLM2 vs in-context
# SDI vs LoRA-trained SDI on the held-out 30 % of the seed set, scored by the verdict parser.
# Uses its own SQLite database and data directory (default var/experiment), so the demo's data is
# untouched. About an hour on 2 cores: training, then ~1,100 local replies.
# Usage: scripts/experiment_trained_sdi.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-var/experiment}"
mkdir -p "$out"
export SDILAB_DATA_DIR="$PWD/$out"
export SDILAB_DATABASE_URL="sqlite:///$PWD/$out/sdilab.db"

# Neutral questions and, for each stance, authority, adversarial, paraphrase and noise prompts;
# pushback is left out (the parser cannot judge the second turn, see app/sdi/scoring.py).
templates="neutral-is-it-true,neutral-true-or-false"
templates+=",biased-professor-asserts,biased-professor-negates,biased-phd-asserts,biased-phd-negates"
templates+=",adversarial-agree-asserts,adversarial-agree-negates"
templates+=",paraphrase-friend-asserts,paraphrase-friend-negates"
templates+=",noise-literature-asserts,noise-literature-negates"

.venv/bin/python - <<'EOF'
from app import migrate
from app.db import session_scope
from app.demo import service

migrate.upgrade()
with session_scope() as session:
    service.prepare(session, start_run=False, limit=0)
    print("base model:", service.ensure_local_model(session).name)
EOF
model=$(.venv/bin/python -c "
from app.db import session_scope
from app.demo import service
with session_scope() as s: print(service.ensure_local_model(s).name)")

.venv/bin/sdilab experiment paper --model "$model" --set seed --test-fraction 0.3 --seed 0 \
  --templates "$templates" --train --epochs "${EPOCHS:-2}" --max-len "${MAX_LEN:-192}" \
  --wait --concurrency 2 | tee "$out/experiment.log"
