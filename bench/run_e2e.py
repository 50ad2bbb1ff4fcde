"""End to end: the user's command, `sdilab run start ... --wait`, as a subprocess against the
loopback server (2,000 prompts, 200 ms latency, 32 calls in flight; ideal 12.5 s).

Unlike bench/run_throughput.py (a worker in the bench's own process, timed from its first
claim), this times the whole command from exec to exit: interpreter and import start-up,
creating the run, the in-process worker, following progress, the final status and exit.

Prints the command's wall time, its ratio to the ideal N x latency / concurrency (target
<= 1.05), the child's CPU time (user + sys, from wait4) per reply, its worker's CPU time per reply
(the process's CPU while the worker ran, as the command reports it; target <= 1 ms) and the
CLI's start-up, the wall time of `sdilab --help` (median of 5, target <= 0.5 s). SQLite by
default (a temporary file); SDILAB_BENCH_DATABASE_URL=postgresql://... uses that database
(migrated; the benchmark's rows are deleted afterwards).

    .venv/bin/python bench/run_e2e.py [--prompts 2000] [--latency 0.2] [--concurrency 32]
    [--quick]  (500 prompts)   [--profile out.txt]  (the command under cProfile)
    [--py-spy out.svg|out.txt]  (the command under `py-spy record`, every thread: a flame graph,
    or collapsed stacks; py-spy is not a dependency: PATH or the venv's bin)
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import database_label, figure
from bench.run_throughput import check, cleanup

ROOT = Path(__file__).resolve().parents[1]

RATIO_TARGET = 1.05
CPU_TARGET_MS = 1.0
STARTUP_TARGET_S = 0.5
CLI = [sys.executable, "-m", "app.cli"]
WORKER_LINE = re.compile(r"Worker in this process: .*?(?P<cpu>[0-9.]+) s CPU in [0-9.]+ s")
WARM = (
    "import app.cli, app.jobs.worker, app.llm.openai_provider, aiohttp, uvloop;"
    "from app.jobs import registry; registry.discover()"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="500 prompts")
    parser.add_argument("--profile", default="", help="run the command under cProfile")
    parser.add_argument("--py-spy", default="", help="run the command under py-spy record")
    args = parser.parse_args()
    if args.quick:
        args.prompts = 500

    url = os.environ.get("SDILAB_BENCH_DATABASE_URL", "")
    tmp = Path(tempfile.mkdtemp(prefix="sdilab-bench-"))
    url = url or f"sqlite:///{tmp / 'bench.db'}"
    print("database:", url)
    os.environ["SDILAB_DATABASE_URL"] = url
    os.environ.setdefault("SDILAB_DATA_DIR", str(tmp))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    # As a user runs it: with the bytecode cache (a shell that turns it off would compile
    # every module at every start), filled before the timings.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-c", WARM], cwd=ROOT, env=env, check=True)

    from app.migrate import upgrade
    from app.models import utcnow
    from tests.loopback.server import LoopbackServer

    upgrade(url)
    startup = cli_startup(env)
    started = utcnow()
    server = LoopbackServer.in_subprocess(latency_s=args.latency)
    try:
        set_name, model, template = prepare(args.prompts, server.base_url, args.concurrency)
        command = [
            *["run", "start", "--set", set_name, "--models", model, "--templates", template],
            *["--name", f"bench-{set_name}", "--wait", "--concurrency", str(args.concurrency)],
        ]
        wall, cpu, output = run_command(command, env, args.profile, args.py_spy)
        run_id = run_of(f"bench-{set_name}")
        check(run_id, args.prompts)
        calls = server.stats()["calls"].get("chat", 0)
    finally:
        server.stop()
        cleanup(url, started)
        shutil.rmtree(tmp, ignore_errors=True)

    print(output[-1500:])
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine load average (1, 5, 15 min): {load} on {os.cpu_count()} CPUs")
    print(f"{args.prompts} prompts, {calls} calls; `sdilab run start --wait` {wall:.2f} s")
    ideal = args.prompts * args.latency / args.concurrency
    db = database_label(url)
    figure("e2e `run start --wait` wall time", wall, "s", database=db)
    figure("e2e ideal N x latency / concurrency", ideal, "s", database=db)
    ratio = wall / ideal
    figure(
        "e2e wall / ideal",
        ratio,
        "x",
        target=f"<= {RATIO_TARGET}",
        met=ratio <= RATIO_TARGET,
        database=db,
    )
    figure("e2e process CPU (user + sys)", cpu, "s", database=db)
    figure(
        "e2e process CPU per reply (start-up included)",
        1000.0 * cpu / max(1, args.prompts),
        "ms",
        database=db,
    )
    found = WORKER_LINE.search(output)
    if found is None:  # code from before the command reported its worker
        print("the command printed no worker line: its worker's CPU is not known")
    else:
        worker_ms = 1000.0 * float(found["cpu"]) / max(1, args.prompts)
        figure(
            "e2e worker CPU per reply (the process while its worker ran)",
            worker_ms,
            "ms",
            target=f"<= {CPU_TARGET_MS}",
            met=worker_ms <= CPU_TARGET_MS,
            database=db,
        )
    figure(
        "CLI start-up (`sdilab --help` wall, median of 5)",
        startup,
        "s",
        target=f"<= {STARTUP_TARGET_S}",
        met=startup <= STARTUP_TARGET_S,
        database=db,
    )


def cli_startup(env: dict[str, str], times: int = 5) -> float:
    """Median wall time of `sdilab --help` (a cold import of the command line)."""
    walls = []
    for _ in range(times):
        t0 = time.perf_counter()
        subprocess.run([*CLI, "--help"], cwd=ROOT, env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def prepare(prompts: int, base_url: str, concurrency: int) -> tuple[str, str, str]:
    """A question set of ``prompts`` unique statements (no cache hits), one neutral template,
    one model config allowed ``concurrency`` calls at once: their names."""
    from app.db import session_scope
    from app.models import ModelConfig, Question, QuestionSet, VariantTemplate

    tag = uuid.uuid4().hex[:10]
    with session_scope() as session:
        qs = QuestionSet(name=f"bench-{tag}")
        session.add(qs)
        session.flush()
        session.add_all(
            Question(
                question_set_id=qs.id,
                position=i + 1,
                statement=f"Bench statement {tag} number {i} is true.",
                truth=i % 2 == 0,
                norm_hash=f"{tag}{i}",
            )
            for i in range(prompts)
        )
        session.add(
            VariantTemplate(
                name=f"bench-{tag}", kind="neutral", text="Is it true that {statement_clause}?"
            )
        )
        session.add(
            ModelConfig(
                name=f"bench-{tag}",
                provider="openai",
                model_id="loopback",
                base_url=base_url,
                max_concurrency=concurrency,
                timeout_s=30,
                max_tokens=64,
            )
        )
    return f"bench-{tag}", f"bench-{tag}", f"bench-{tag}"


def run_command(
    command: list[str], env: dict[str, str], profile: str, py_spy: str
) -> tuple[float, float, str]:
    """Run `sdilab COMMAND`: (wall s, CPU s of the process, its output)."""
    argv = [*CLI, *command]
    if profile:
        argv = [sys.executable, "-m", "cProfile", "-o", profile, "-m", "app.cli", *command]
    elif py_spy:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        fmt = "flamegraph" if py_spy.endswith(".svg") else "raw"  # raw: collapsed stacks
        argv = [spy, "record", "--threads", "-r", "100", "-f", fmt, "-o", py_spy, "--", *argv]
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        _pid, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - t0
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read().decode(errors="replace")
    if process.returncode != 0:
        raise SystemExit(f"`sdilab {' '.join(command)}` exited {process.returncode}:\n{output}")
    if profile:
        import pstats

        stats = pstats.Stats(profile)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(30)
    return wall, usage.ru_utime + usage.ru_stime, output


def run_of(name: str) -> int:
    from sqlmodel import select

    from app.db import session_scope
    from app.models import Run

    with session_scope() as session:
        run = session.exec(select(Run).where(Run.name == name)).one()
        return run.id or 0


if __name__ == "__main__":
    main()
