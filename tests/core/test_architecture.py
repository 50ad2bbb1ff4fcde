"""The import contract in pyproject.toml ([tool.importlinter]): data flows one way through the
packages of app/, and no two modules (or packages) import each other.

The contract is checked on the real tree, and shown to fail on a copy of the tree with one
deliberately wrong import.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """A copy of app/ and pyproject.toml to break on purpose."""
    shutil.copytree(ROOT / "app", tmp_path / "app", ignore=shutil.ignore_patterns("static"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_tree_keeps_the_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_an_upstream_module_importing_a_downstream_one_breaks_it(tree_copy: Path) -> None:
    _append(tree_copy / "app/runs/service.py", "from app.metrics import service as _metrics")
    result = _lint(tree_copy)
    assert result.returncode != 0
    assert "app.runs is not allowed to import app.metrics" in result.stdout
    assert "app.runs.service -> app.metrics.service" in result.stdout


def test_a_library_importing_a_domain_breaks_it(tree_copy: Path) -> None:
    _append(tree_copy / "app/llm/cache.py", "from app.runs import service as _runs")
    result = _lint(tree_copy)
    assert result.returncode != 0
    assert "app.llm is not allowed to import app.runs" in result.stdout


def test_an_import_circle_breaks_it(tree_copy: Path) -> None:
    _append(tree_copy / "app/jobs/queue.py", "from app.jobs import registry as _registry")
    result = _lint(tree_copy)
    assert result.returncode != 0
    assert "No cycles are allowed in app.jobs" in result.stdout
