"""Scale-out: one run against the loopback server (200 ms latency) drained by 1, 2 and 4
`sdilab worker` processes sharing a global model limit of 32.

For each configuration: start the worker processes, warm them up on a small run, then create
a 10,000-prompt run (one arm, the model's max_concurrency 32) and time it from the commit
that enqueues it to its last stored reply. Prints throughput (replies/s), wall time, the
ideal N x latency / 32, their ratio, the workers' CPU time per reply, each process's share of
the replies, and the loopback server's max_in_flight: at most 32 (the limit holds across
processes) and exactly 32 (the limit is reached).

Meant for Postgres (SDILAB_BENCH_DATABASE_URL=postgresql://...); with no URL it uses its own
SQLite file, where it defaults to the --quick size.

Configurations (processes x concurrency per process): 1x32, 2x32, 4x32 -- each process could
fill the limit alone, so no process's concurrency is the bottleneck (a busy process keeps the
slots it holds: finishing a job hands its slot to the next job) -- and 2x16, 4x8, where the
processes must share the limit's slots.

    .venv/bin/python bench/scale_out.py [--prompts 10000] [--configs 1x32 2x16 ...] [--quick]
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._report import database_label, figure  # noqa: E402
from tests.loopback.server import LoopbackServer  # noqa: E402

LIMIT = 32
RATIO_TARGET = 1.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=0, help="default 10,000 (2,000 quick)")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument(
        "--configs",
        nargs="*",
        default=["1x32", "2x32", "4x32", "2x16", "4x8"],
        help="PROCESSESxCONCURRENCY each",
    )
    parser.add_argument("--quick", action="store_true", help="2,000 prompts")
    args = parser.parse_args()

    url = os.environ.get("SDILAB_BENCH_DATABASE_URL", "")
    tmp = Path(tempfile.mkdtemp(prefix="sdilab-bench-"))
    if not args.prompts:
        args.prompts = 2000 if args.quick or not url else 10_000
    url = url or f"sqlite:///{tmp / 'bench.db'}"
    print("database:", url)
    os.environ["SDILAB_DATABASE_URL"] = url
    os.environ.setdefault("SDILAB_DATA_DIR", str(tmp))

    from app.migrate import upgrade
    from app.models import utcnow
    from bench.run_throughput import cleanup

    upgrade(url)
    started = utcnow()
    db = database_label(url)
    ideal = args.prompts * args.latency / LIMIT
    server = LoopbackServer.in_subprocess(latency_s=args.latency)
    try:
        figure("scale-out ideal N x latency / limit", ideal, "s", database=db)
        for config in args.configs:
            workers, per_worker = (int(x) for x in config.split("x"))
            measure(server, workers, per_worker, args.prompts, args.latency, ideal, db)
    finally:
        server.stop()
        cleanup(url, started)


def start_workers(n: int, per_worker: int) -> list[subprocess.Popen[str]]:
    command = [
        sys.executable,
        "-m",
        "app.cli",
        "worker",
        "--concurrency",
        str(per_worker),
        "--poll",
        "0.2",
    ]
    return [
        subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True) for _ in range(n)
    ]


def stop_workers(processes: Sequence[subprocess.Popen[str]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            _out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            _out, err = process.communicate()
        if process.returncode != 0:
            print(f"worker {process.pid} exited {process.returncode}:\n{err[-2000:]}")


def wait_completed(run_id: int, timeout_s: float) -> None:
    from app.db import session_scope
    from app.models import Run

    deadline = time.monotonic() + timeout_s
    while True:
        with session_scope() as session:
            run = session.get(Run, run_id)
            if run is not None and run.status == "completed":
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"run {run_id} did not complete in {timeout_s:.0f} s")
        time.sleep(0.05)


def cpu_seconds(processes: Sequence[subprocess.Popen[str]]) -> float:
    import psutil

    total = 0.0
    for process in processes:
        times = psutil.Process(process.pid).cpu_times()
        total += times.user + times.system
    return total


def shares(run_id: int) -> list[int]:
    """Replies stored by each worker process, most first."""
    from sqlalchemy import func, select

    from app.db import session_scope
    from app.models import Job

    with session_scope() as session:
        rows = session.execute(
            select(Job.worker_id, func.count())
            .where(Job.group_key == f"run:{run_id}", Job.status == "succeeded")
            .group_by(Job.worker_id)
        ).all()
    return sorted((int(n) for _w, n in rows), reverse=True)


def last_reply_at(run_id: int) -> datetime:
    from sqlalchemy import func, select

    from app.db import session_scope
    from app.models import Reply

    with session_scope() as session:
        return session.execute(
            select(func.max(Reply.completed_at)).where(Reply.run_id == run_id)
        ).scalar_one()


def measure(
    server: LoopbackServer,
    workers: int,
    per_worker: int,
    prompts: int,
    latency: float,
    ideal: float,
    db: str,
) -> None:
    from app.models import utcnow
    from bench.run_throughput import check, create

    processes = start_workers(workers, per_worker)
    try:
        # Warm-up: every process imported, connected, its HTTP client made.
        warm = create(LIMIT * workers, server.base_url, LIMIT)
        wait_completed(warm, 120)
        server.reset()
        server.configure(latency_s=latency)
        cpu0 = cpu_seconds(processes)
        run_id = create(prompts, server.base_url, LIMIT)
        t0 = utcnow()
        wait_completed(run_id, 20 * ideal + 120)
        cpu = cpu_seconds(processes) - cpu0
        wall = (last_reply_at(run_id) - t0).total_seconds()
        check(run_id, prompts)
        stats = server.stats()
        per_process = shares(run_id)
    finally:
        stop_workers(processes)

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    label = f"scale-out {workers} worker{'s' if workers > 1 else ''} x {per_worker}"
    print(
        f"{label}: {prompts} prompts, {stats['calls'].get('chat', 0)} calls, replies per "
        f"process {per_process}; machine load (1, 5, 15 min) {load} on {os.cpu_count()} CPUs"
    )
    figure(f"{label}: throughput", prompts / wall, "replies/s", database=db)
    figure(f"{label}: wall", wall, "s", database=db)
    ratio = wall / ideal
    figure(
        f"{label}: wall / ideal",
        ratio,
        "x",
        target=f"<= {RATIO_TARGET}",
        met=ratio <= RATIO_TARGET,
        database=db,
    )
    in_flight = int(stats["max_in_flight"])
    figure(
        f"{label}: max calls in flight (limit {LIMIT})",
        in_flight,
        "calls",
        target=f"= {LIMIT} (held and reached)",
        met=in_flight == LIMIT,
        database=db,
    )
    figure(f"{label}: worker CPU per reply", 1000 * cpu / prompts, "ms", database=db)


if __name__ == "__main__":
    main()
