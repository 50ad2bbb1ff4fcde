"""Time question-set import: parse + duplicate detection + insert.

Generates 100,000 statements (with 1 % exact and 1 % near duplicates) as CSV, imports them into
a fresh SQLite database (and into Postgres when SDILAB_BENCH_DATABASE_URL is set; that database
is migrated and the benchmark set removed afterwards), and prints the seconds per stage. Also
times a 1,000-row file. Target: 100,000 rows in under 5 s; 1,000 rows well under 1 s.

    .venv/bin/python bench/import_speed.py [--rows 100000]
"""

import argparse
import csv
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


def bench(url: str, label: str, n: int) -> None:
    from app.db import build_engine, session_scope
    from app.migrate import upgrade
    from app.questions import service

    upgrade(url)
    engine = build_engine(url)
    for rows_n in (1_000, n):
        data = to_csv(make_rows(rows_n))
        name = f"bench-{rows_n}-{time.time_ns()}"
        c0, t0 = time.process_time(), time.perf_counter()
        parsed = service.parse_upload(data, "bench.csv", max_bytes=len(data))
        t1 = time.perf_counter()
        with session_scope(engine) as session:
            qs = service.import_question_set(session, name, parsed)
            set_id = qs.id
        c2, t2 = time.process_time(), time.perf_counter()
        assert not parsed.errors, parsed.errors[:3]
        total = t2 - t0
        target = f" (target < {TARGET_S:.0f} s: {'met' if total < TARGET_S else 'MISSED'})"
        print(
            f"{label:8} {rows_n:>7,} rows: parse+dedupe {t1 - t0:6.2f} s, insert {t2 - t1:6.2f} s,"
            f" total {total:6.2f} s (this process's CPU {c2 - c0:5.2f} s);"
            f" {len(parsed.duplicates):,} duplicates flagged" + (target if rows_n == n else "")
        )
        if label == "postgres" and set_id is not None:
            with session_scope(engine) as session:
                service.delete_set(session, set_id)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sdilab-bench-"))
    os.environ.setdefault("SDILAB_DATA_DIR", str(tmp))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    bench(f"sqlite:///{tmp / 'bench.db'}", "sqlite", args.rows)
    pg = os.environ.get("SDILAB_BENCH_DATABASE_URL")
    if pg:
        bench(pg, "postgres", args.rows)
    else:
        print("postgres: skipped (set SDILAB_BENCH_DATABASE_URL to include it)")


if __name__ == "__main__":
    main()
