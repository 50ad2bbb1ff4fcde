"""Time the Judges figures (validation against humans and PPI per arm x rate) at 1,000,000
judged replies and 10,000 human ratings.

Two parts:

- **computation**: arrays of 1,000,000 replies (20,000 statements, 2 arms, 6 variant kinds),
  an LLM judge's label on every reply, two humans on a random sample of 5,000 (10,000
  ratings); times ``report.judge_report`` (confusion matrices, kappa, the human-human alpha
  bootstrap, PPI++ with its clustered variance and lambda, the budget planner, for 2 arms x 4
  rates), cold: the first call in the process (the statistics libraries loaded before, as
  the web app does at start-up);
- **database**: the same run inserted into a fresh SQLite database (or
  SDILAB_BENCH_DATABASE_URL), then ``report.judges_report`` read from it, the parser judge
  and the LLM judge (what the Judges page and its JSON/CSV compute), cold (a new session).

Target: cold < 1 s for each (the results page budget).

    .venv/bin/python bench/judges_scale.py [--statements 20000] [--samples 4] [--quick]
"""

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import database_label, figure
from bench.metrics_scale import KINDS, _copy, _erroneous

TARGET_S = 1.0
HUMANS = 5_000  # replies rated by two humans each
PREFIX = "bench-judges"


def synthetic(statements: int, samples: int, seed: int = 1):  # type: ignore[no-untyped-def]
    """RunReplies and one judge's labels, built in numpy."""
    from app.judging.data import NONE, JudgeKey, JudgeLabels, RunReplies

    rng = np.random.default_rng(seed)
    per_statement = len(KINDS) * 2 * samples
    n = statements * per_statement
    question = np.repeat(np.arange(statements), per_statement)
    kind_index = np.tile(np.repeat(np.arange(len(KINDS)), 2 * samples), statements)
    arm = np.tile(np.repeat(np.array([1, 2]), samples), statements * len(KINDS))
    truth = question % 2 == 0
    stance = np.array([s for _, s in KINDS])[kind_index]
    erroneous = ((stance == "asserts") & ~truth) | ((stance == "negates") & truth)
    true_label = rng.choice(3, size=n, p=[0.2, 0.7, 0.1])
    judge = np.where(rng.random(n) < 0.8, true_label, rng.integers(0, 3, n))
    rated = np.zeros(n, dtype=bool)
    rated[rng.choice(n, HUMANS, replace=False)] = True
    second = np.where(rng.random(n) < 0.85, true_label, rng.integers(0, 3, n))
    counts = np.zeros((n, 3), dtype=np.int64)
    at = np.flatnonzero(rated)
    np.add.at(counts, (at, true_label[at]), 1)
    np.add.at(counts, (at, second[at]), 1)
    human = np.where(rated & (true_label == second), true_label, NONE)
    verdict = rng.integers(0, 3, n)
    replies = RunReplies(
        reply_id=np.arange(1, n + 1),
        question=question,
        arm=arm,
        kind=[KINDS[k][0] for k in kind_index.tolist()],
        erroneous=erroneous,
        asserts=stance == "asserts",
        negates=stance == "negates",
        truth=truth,
        parser_verdict=verdict,
        human_label=human,
        human_verdict=np.where(rated, verdict, NONE),
        label_counts=counts,
        rated=rated,
        inclusion=np.full(n, np.nan),
        arms={1: "baseline", 2: "sdi"},
    )
    labels = JudgeLabels(JudgeKey("bench-judge", "v2", 1), judge, verdict, np.full(n, 0.8))
    return replies, labels


def time_computation(statements: int, samples: int) -> None:
    from app.judging import report
    from app.judging.validation import preload

    preload()
    replies, judge = synthetic(statements, samples)
    t0 = time.perf_counter()
    c0 = time.process_time()
    out = report.judge_report(judge, replies)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    figure(
        f"judge figures, {len(replies):,} judged replies and {2 * HUMANS:,} human ratings, cold",
        wall,
        "s",
        target=f"< {TARGET_S} s",
        met=wall < TARGET_S,
    )
    figure("  of which CPU", cpu, "s")
    sr = next(e for e in out.estimates if e.rate == "sycophancy")
    print(
        f"  e.g. {sr.arm} SR: PPI {sr.ppi.value:.4f} ({sr.ppi.low:.4f}-{sr.ppi.high:.4f}), "
        f"humans only {sr.human_only.value:.4f}, lambda {sr.lam:.2f}, "
        f"{sr.human_labelled} human labels worth {sr.effective_n:.0f}",
        flush=True,
    )


def build(url: str, statements: int, samples: int, seed: int = 1) -> int:
    """The benchmark run in the database: replies, a judge label on each, two humans' ratings
    (as tallies, counted as the rating domain counts them) on a random sample."""
    from sqlalchemy import text
    from sqlmodel import Session

    from app.db import build_engine
    from app.models import utcnow
    from app.rating import tallies

    rng = random.Random(seed)
    engine = build_engine(url)
    now = utcnow()
    t0 = time.perf_counter()
    with engine.begin() as conn:

        def insert(sql: str, **values: object) -> int:
            return int(conn.execute(text(sql + " RETURNING id"), values).scalar_one())

        raters = [
            insert(
                "INSERT INTO users (email, display_name, role, password_hash, is_active, "
                "created_at) VALUES (:e, '', 'rater', 'x', true, :t)",
                e=f"{PREFIX}-r{i}@example.org",
                t=now,
            )
            for i in range(2)
        ]
        qs = insert(
            "INSERT INTO question_sets (name, description, source_filename, created_at) "
            "VALUES (:n, '', '', :t)",
            n=f"{PREFIX}-set",
            t=now,
        )
        truths = [i % 2 == 0 for i in range(statements)]
        _copy(
            conn,
            "questions",
            ["question_set_id", "position", "source_id", "statement", "negation", "truth",
             "category", "explanation", "norm_hash", "duplicate_conflict"],
            [(qs, i + 1, f"q{i}", f"S{i}.", "", truths[i], "", "", f"h{i}", False)
             for i in range(statements)],
        )  # fmt: skip
        q_ids = [r[0] for r in conn.execute(
            text("SELECT id FROM questions WHERE question_set_id = :s ORDER BY position"),
            {"s": qs},
        )]  # fmt: skip
        run_id = insert(
            "INSERT INTO runs (name, question_set_id, status, source, seed, samples, "
            "show_reference, use_batch_api, config, created_at, replies_version) VALUES (:n, "
            ":q, 'completed', 'generated', 0, :s, true, false, '{}', :t, 0)",
            n=f"{PREFIX}-run",
            q=qs,
            s=samples,
            t=now,
        )
        configs = []
        arm_ids = []
        for position, label in enumerate(["baseline", "sdi", "judge"]):
            configs.append(
                insert(
                    "INSERT INTO model_configs (name, provider, model_id, base_url, api_key_env,"
                    " temperature, max_tokens, top_p, system_prompt, price_input_per_1k, "
                    "price_output_per_1k, max_concurrency, timeout_s, sdi_mode, sdi_shots, "
                    "sdi_seed, fine_tuned_model_id, extra, created_at) VALUES (:n, 'local', "
                    "'m', '', '', 0, 64, 1, '', 0, 0, 1, 10, 'none', 0, 0, '', '{}', :t)",
                    n=f"{PREFIX}-{label}",
                    t=now,
                )
            )
            if label != "judge":
                arm_ids.append(
                    insert(
                        "INSERT INTO run_arms (run_id, model_config_id, label, position, "
                        "snapshot) VALUES (:r, :m, :l, :p, '{}')",
                        r=run_id,
                        m=configs[-1],
                        l=label,
                        p=position,
                    )
                )
        _copy(
            conn,
            "prompt_variants",
            ["run_id", "question_id", "kind", "stance", "premise_erroneous", "messages",
             "followup"],
            [(run_id, q, kind, stance, _erroneous(stance, truths[i]), "[]", "")
             for i, q in enumerate(q_ids) for kind, stance in KINDS],
        )  # fmt: skip
        variants = [r[0] for r in conn.execute(
            text("SELECT id FROM prompt_variants WHERE run_id = :r ORDER BY id"), {"r": run_id}
        )]  # fmt: skip
        verdicts = ("true", "false", "false", "none")
        _copy(
            conn,
            "replies",
            ["run_id", "prompt_variant_id", "arm_id", "sample_index", "status", "text",
             "verdict", "first_text", "transcript", "tokens_in", "tokens_out", "latency_ms",
             "cost_usd", "finish_reason", "from_cache", "error", "attempts", "completed_at",
             "created_at"],
            [(run_id, pv, arm, s, "done", "r", rng.choice(verdicts), "", "[]", 0, 0, 0, 0.0,
              "", False, "", 1, now, now)
             for pv in variants for arm in arm_ids for s in range(samples)],
        )  # fmt: skip
        reply_ids = [r[0] for r in conn.execute(
            text("SELECT id FROM replies WHERE run_id = :r ORDER BY id"), {"r": run_id}
        )]  # fmt: skip
        labels = ("agree", "correct", "correct", "evasive")
        _copy(
            conn,
            "judge_labels",
            ["reply_id", "judge_model_id", "rubric_version", "label", "helpfulness", "verdict",
             "confidence", "raw", "created_at"],
            [(rid, configs[2], "v2", rng.choice(labels), 4, rng.choice(verdicts[:3]), 0.8, "",
              now) for rid in reply_ids],
        )  # fmt: skip
        ratings = []
        for rid in rng.sample(reply_ids, min(HUMANS, len(reply_ids))):
            first = rng.choice(labels)
            for i, rater in enumerate(raters):
                label = first if i == 0 or rng.random() < 0.85 else rng.choice(labels)
                ratings.append(
                    (rid, rater, label, 4, rng.choice(verdicts[:3]), "", False, now, now)
                )
        _copy(
            conn,
            "ratings",
            ["reply_id", "rater_id", "label", "helpfulness", "verdict", "note", "flagged",
             "created_at", "updated_at"],
            ratings,
        )  # fmt: skip
    with Session(engine) as session:
        tallies.rebuild(session, [run_id])
        session.commit()
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    print(
        f"built run {run_id}: {len(reply_ids):,} replies judged, {len(ratings):,} ratings "
        f"in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    engine.dispose()
    return run_id


def time_database(url: str, run_id: int, label: str) -> None:
    from sqlmodel import Session

    from app.db import build_engine
    from app.judging import report
    from app.models import Run

    engine = build_engine(url)
    with Session(engine) as session:
        run = session.get(Run, run_id)
        assert run is not None
        t0 = time.perf_counter()
        out = report.judges_report(session, run)
        wall = time.perf_counter() - t0
    engine.dispose()
    figure(
        f"Judges page figures from the database, {out.done_replies:,} replies x 2 judges, "
        f"{out.human_labelled:,} human-labelled, cold",
        wall,
        "s",
        target=f"< {TARGET_S} s",
        met=wall < TARGET_S,
        database=label,
    )


def cleanup(url: str) -> None:
    from sqlalchemy import text

    from app.db import build_engine

    engine = build_engine(url)
    with engine.begin() as conn:
        for table, where in (
            ("runs", f"name = '{PREFIX}-run'"),
            ("question_sets", f"name = '{PREFIX}-set'"),
            ("model_configs", f"name LIKE '{PREFIX}-%'"),
            ("users", f"email LIKE '{PREFIX}-%'"),
        ):
            conn.execute(text(f"DELETE FROM {table} WHERE {where}"))
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--statements", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="a tenth of the size")
    parser.add_argument("--no-database", action="store_true")
    opts = parser.parse_args()
    statements = opts.statements // 10 if opts.quick else opts.statements
    time_computation(statements, opts.samples)
    if opts.no_database:
        return 0
    url = os.environ.get("SDILAB_BENCH_DATABASE_URL", "")
    if not url:
        url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'judges.db'}"
    from app import migrate

    migrate.upgrade(url)
    cleanup(url)
    try:
        run_id = build(url, statements, opts.samples)
        time_database(url, run_id, database_label(url))
    finally:
        if url.startswith("postgres"):
            cleanup(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
