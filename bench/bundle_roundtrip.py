"""Time the typed exports and a study bundle's round trip on a large rated run.

Builds the run of bench/metrics_scale.py (statements x 6 variant kinds x 2 arms x samples
replies, 3 raters each, 2 % adjudicated) in a fresh SQLite database, then, each in its own
process (wall time and peak RSS, ``ru_maxrss``): the replies and ratings as Parquet, the run
as a study bundle, and the bundle imported into a second fresh SQLite database. Last, checks
that the imported run's results JSON equals the original's (run and arm ids renumbered).

Targets: every step streamed, peak RSS < 300 MB; the results identical.

    .venv/bin/python bench/bundle_roundtrip.py [--statements 2000] [--samples 14] [--quick]
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import figure
from bench.metrics_scale import build

RSS_TARGET_MB = 300.0
ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys, time
from sqlmodel import Session
from app.db import build_engine
from app.bundles import service
from app.metrics import exports
from bench.metrics_scale import rss_mb
mode, url, arg, path = sys.argv[1:5]
engine = build_engine(url)
t0 = time.perf_counter()  # the modules above are loaded: their import is not timed
with Session(engine) as session:
    if mode == "parquet":
        with open(path, "wb") as out:
            for chunk in exports.stream_parquet(session, arg, int(sys.argv[5])):
                out.write(chunk)
    elif mode == "export":
        with open(path, "wb") as out:
            service.export_bundle(session, out, [int(arg)])
    else:
        with open(path, "rb") as handle:
            imported = service.import_bundle(session, handle)
        session.commit()
        print(list(imported.runs.values())[0])
print(time.perf_counter() - t0, rss_mb())
"""


def child(*args: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    return out.stdout.split()


def report(name: str, seconds: float, peak: float, size: Path | None = None) -> None:
    figure(f"{name} wall time", seconds, "s", database="sqlite")
    note = f" ({size.stat().st_size / 1e6:.2f} MB file)" if size else ""
    figure(
        f"{name} peak RSS{note}",
        peak,
        "MB",
        target=f"< {RSS_TARGET_MB:g} MB",
        met=peak < RSS_TARGET_MB,
        database="sqlite",
    )


def same_results(source_url: str, run_id: int, target_url: str, new_id: int) -> bool:
    from sqlmodel import Session, select

    from app.db import build_engine
    from app.metrics import service
    from app.models import RunArm

    def results(url: str, rid: int) -> tuple[dict[str, object], dict[int, str]]:
        with Session(build_engine(url)) as session:
            arms = session.exec(select(RunArm).where(RunArm.run_id == rid)).all()
            found = service.run_results(session, rid, resamples=200, use_snapshot=False)
            return found.model_dump(mode="json"), {a.id or 0: a.label for a in arms}

    def renumbered(value: object, arms: dict[int, str], rid: int, key: str = "") -> object:
        if isinstance(value, dict):
            return {
                k: (
                    "RUN"
                    if k == "run_id" and v == rid
                    else arms.get(v, v)
                    if (k.endswith("arm_id") or (key == "arms" and k == "id"))
                    and isinstance(v, int)
                    else renumbered(v, arms, rid, k)
                )
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [renumbered(v, arms, rid, key) for v in value]
        return value

    before, arms_before = results(source_url, run_id)
    after, arms_after = results(target_url, new_id)
    return renumbered(before, arms_before, run_id) == renumbered(after, arms_after, new_id)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--statements", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=14)
    parser.add_argument("--quick", action="store_true", help="a tenth of the statements, 1 sample")
    opts = parser.parse_args()
    statements = max(20, opts.statements // 10) if opts.quick else opts.statements
    samples = 1 if opts.quick else opts.samples
    from app.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = f"sqlite:///{folder / 'source.db'}"
        target = f"sqlite:///{folder / 'target.db'}"
        upgrade(source)
        upgrade(target)
        run_id = build(source, statements, samples)
        replies = statements * 6 * 2 * samples
        print(f"{replies:,} replies, {3 * replies:,} ratings", flush=True)
        for what in ("replies", "ratings"):
            path = folder / f"{what}.parquet"
            seconds, peak = (
                float(x) for x in child("parquet", source, what, str(path), str(run_id))
            )
            report(f"export {what}.parquet", seconds, peak, path)
        bundle = folder / "study.zip"
        seconds, peak = (float(x) for x in child("export", source, str(run_id), str(bundle)))
        report("bundle export", seconds, peak, bundle)
        new_id, seconds, peak = child("import", target, "", str(bundle))
        report("bundle import (fresh SQLite)", float(seconds), float(peak))
        same = same_results(source, run_id, target, int(new_id))
        figure("imported results JSON identical", float(same), "bool", target="1", met=same)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
