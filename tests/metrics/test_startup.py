"""The web app loads the statistics libraries when it starts, not on the first results page."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECK = """
import sys
from fastapi.testclient import TestClient
from app.main import create_app
from app.metrics.stats import _LIBRARIES
app = create_app()
before = [name for name in _LIBRARIES if name in sys.modules]
with TestClient(app):
    after = [name for name in _LIBRARIES if name in sys.modules]
print(len(before), len(after), len(_LIBRARIES))
"""


def test_startup_imports_the_statistics_libraries() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, check=True
    )
    before, after, total = (int(x) for x in out.stdout.split())
    assert before == 0
    assert after == total == 4
