"""Time question-set import: parse + duplicate detection + insert.

Generates 100,000 statements (with 1 % exact and 1 % near duplicates) as CSV and imports them
into a fresh SQLite database, or into Postgres when SDILAB_BENCH_DATABASE_URL is set (that
database is migrated and the benchmark sets are removed afterwards). Also times a 1,000-row
file. Prints each stage's wall time and CPU time: this process's (all threads) and, when the
Postgres server runs on this machine, its backend's, so figures taken on a busy machine can
still be compared. Target: 100,000 rows in under 5 s; 1,000 rows well under 1 s.

    .venv/bin/python bench/import_speed.py [--rows 100000] [--quick]
"""

import argparse
import csv
import io
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import database_label, figure

TARGET_S = 5.0
SUBJECTS = [
    "river",
    "mountain",
    "planet",
    "enzyme",
    "bridge",
    "painting",
    "protein",
    "satellite",
    "island",
    "volcano",
    "library",
    "glacier",
    "symphony",
    "molecule",
    "forest",
    "engine",
    "reactor",
    "telescope",
    "cathedral",
    "desert",
    "comet",
    "lighthouse",
    "canal",
    "fossil",
]
PLACES = [
    "Norway",
    "Peru",
    "Kenya",
    "Japan",
    "Chile",
    "Egypt",
    "Canada",
    "India",
    "Brazil",
    "Iceland",
    "Mongolia",
    "Portugal",
    "Vietnam",
    "Ghana",
    "Austria",
    "Fiji",
    "Nepal",
    "Oman",
]
VERBS = ["weighs", "measures", "spans", "holds", "reaches", "covers", "produces", "contains"]
UNITS = ["kilograms", "metres", "litres", "tonnes", "kilometres", "cubic metres", "hectares"]
ADJECTIVES = ["oldest", "largest", "northern", "famous", "ancient", "smallest", "eastern", "main"]


def make_rows(n: int, seed: int = 7) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for i in range(n):
        roll = rng.random()
        if rows and roll < 0.01:
            statement = rng.choice(rows)["statement"]  # exact duplicate
        elif rows and roll < 0.02:
            statement = rng.choice(rows)["statement"].replace(" in ", " of ", 1)
        else:
            statement = (
                f"The {rng.choice(ADJECTIVES)} {rng.choice(SUBJECTS)} in {rng.choice(PLACES)} "
                f"{rng.choice(VERBS)} {rng.randint(2, 9_999_999):,} {rng.choice(UNITS)}."
            )
        rows.append(
            {
                "id": f"q{i + 1}",
                "statement": statement,
                "truth": rng.choice(["true", "false"]),
                "category": rng.choice(["geography", "science", "engineering", "arts"]),
                "explanation": "Generated for the import benchmark.",
            }
        )
    return rows


def to_csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


@dataclass
class Clock:
    """Wall time, this process's CPU time and (when readable) the database backend's."""

    backend_pid: int | None = None

    def read(self) -> tuple[float, float, float | None]:
        return time.perf_counter(), time.process_time(), self._backend_cpu()

    def _backend_cpu(self) -> float | None:
        if self.backend_pid is None:
            return None
        try:
            fields = Path(f"/proc/{self.backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the server runs elsewhere
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spent(start: tuple[float, float, float | None], end: tuple[float, float, float | None]) -> str:
    text = f"{end[0] - start[0]:6.2f} s wall, CPU {end[1] - start[1]:5.2f} s"
    if start[2] is not None and end[2] is not None:
        text += f" + server {end[2] - start[2]:5.2f} s"
    return text


def bench(url: str, n: int) -> None:
    from app.db import build_engine, session_scope
    from app.migrate import upgrade
    from app.questions import service

    database = database_label(url)
    upgrade(url)
    engine = build_engine(url)
    for rows_n in (1_000, n):
        data = to_csv(make_rows(rows_n))
        name = f"bench-{rows_n}-{time.time_ns()}"
        with session_scope(engine) as session:
            clock = Clock()
            if database == "postgres":
                clock.backend_pid = (
                    session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
                )
            load = os.getloadavg()[0]
            start = clock.read()
            parsed = service.parse_upload(data, "bench.csv", max_bytes=len(data))
            parsed_at = clock.read()
            assert not parsed.errors, parsed.errors[:3]
            qs = service.import_question_set(session, name, parsed)
            set_id = qs.id
        end = clock.read()
        total = end[0] - start[0]
        cpu = end[1] - start[1] + ((end[2] or 0.0) - (start[2] or 0.0))
        print(
            f"{database:8} {rows_n:>7,} rows (load {load:.1f}): "
            f"parse+dedupe {_spent(start, parsed_at)}; insert+commit {_spent(parsed_at, end)}; "
            f"{len(parsed.duplicates):,} duplicates flagged"
        )
        label = f"import {rows_n:,} statements"
        if rows_n == n:
            target = f"< {TARGET_S:.0f} s" if n == 100_000 else ""
            met = total < TARGET_S if n == 100_000 else None
            figure(label, total, "s", target=target, met=met, database=database)
        else:
            figure(label, total, "s", target="< 1 s", met=total < 1.0, database=database)
        figure(f"{label}, CPU (this process + server)", cpu, "s", database=database)
        if database == "postgres" and set_id is not None:
            with session_scope(engine) as session:
                service.delete_set(session, set_id)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 rows")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sdilab-bench-"))
    os.environ.setdefault("SDILAB_DATA_DIR", str(tmp))
    url = os.environ.get("SDILAB_BENCH_DATABASE_URL") or f"sqlite:///{tmp / 'bench.db'}"
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    bench(url, 10_000 if args.quick else args.rows)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
