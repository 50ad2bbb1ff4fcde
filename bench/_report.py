"""How every bench script reports a figure: printed, and collected by bench/run_all.py.

A script calls ``figure(...)`` for each measured value. When SDILAB_BENCH_REPORT names a file,
the figure is also appended to it as one JSON line, so run_all.py can build one table.
"""

import json
import os
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None
    database: str = ""


def database_label(url: str) -> str:
    return "postgres" if url.startswith("postgres") else "sqlite"


def figure(
    name: str,
    value: float,
    unit: str,
    *,
    target: str = "",
    met: bool | None = None,
    database: str = "",
) -> Figure:
    row = Figure(name, value, unit, target, met, database)
    verdict = "" if met is None else ("  [met]" if met else "  [MISSED]")
    where = f" ({database})" if database else ""
    goal = f"  target {target}" if target else ""
    print(f"{name}{where}: {value:.4g} {unit}{goal}{verdict}", flush=True)
    path = os.environ.get("SDILAB_BENCH_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(row)) + "\n")
    return row
