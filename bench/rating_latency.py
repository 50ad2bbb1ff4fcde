"""Latency of "next reply" and "submit rating" at 1,000,000 replies and 3,000,000 ratings.

Fills a database with a bulk generator (COPY on Postgres, large executemany batches on
SQLite), serves the app with uvicorn on 127.0.0.1, and times requests over loopback HTTP:

- submit: POST /rate/{round}/items/{token} (a plain form post answered with 303);
- next:   GET /rate as HTMX (reclaims expired leases, leases the next reply, renders it).

The round has k=4; each reply already has 2, 3 or 4 ratings (3 on average) from 40 raters,
so a third of the replies are full and every bench rater has ~75,000 ratings behind them.

``--pairwise``: the same data plus a pairwise round over the run (one item per prompt variant
x sample: replies / 2 pairs), each item with 2, 3 or 4 choices from the 40 raters (k=4), and
times its pages instead: POST /rate/pairwise/{round}/items/{token} (303) and GET
/rate/pairwise as HTMX.

Usage: .venv/bin/python bench/rating_latency.py [--replies N] [--requests N] [--quick]
       [--pairwise]
SDILAB_BENCH_DATABASE_URL selects Postgres (its public schema is dropped and rebuilt).
"""

import argparse
import hashlib
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._report import database_label, figure  # noqa: E402
from bench._server import web_server  # noqa: E402

RATERS = 40
K = 4
PASSWORD = "bench password 123"
ACTION = re.compile(r'action="(/rate/\d+/items/([0-9a-f]+))"')


def _url() -> str:
    url = os.environ.get("SDILAB_BENCH_DATABASE_URL", "")
    if url:
        return url
    return f"sqlite:///{Path(tempfile.mkdtemp(prefix='sdilab-bench-')) / 'bench.db'}"


def _hash(*parts: object) -> int:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _reset(url: str) -> None:
    from sqlalchemy import create_engine, text

    if url.startswith("postgres"):
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    from app import migrate

    migrate.upgrade(url)


def _defaults(model: Any, **fields: Any) -> dict[str, Any]:
    """Every column of a row, from the model's Python defaults (the tables have no DB ones)."""
    row = model(**fields).model_dump()
    for key, value in row.items():
        if isinstance(value, list | dict):
            row[key] = json.dumps(value)
    return row


class Loader:
    """Bulk rows into a table: COPY on Postgres, executemany in large batches on SQLite."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"

    def load(self, table: str, columns: list[str], rows: Any, total: int) -> None:
        started = time.perf_counter()
        raw = self.engine.raw_connection()
        try:
            if self.postgres:
                cursor = raw.driver_connection.cursor()
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for n, row in enumerate(rows, 1):
                        copy.write_row(row)
                        if n % 500_000 == 0:
                            self._progress(table, n, total, started)
            else:
                cursor = raw.cursor()
                marks = ", ".join("?" for _ in columns)
                sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
                cursor.execute("BEGIN")
                batch: list[tuple[Any, ...]] = []
                for n, row in enumerate(rows, 1):
                    batch.append(row)
                    if len(batch) == 100_000:
                        cursor.executemany(sql, batch)
                        batch = []
                    if n % 500_000 == 0:
                        self._progress(table, n, total, started)
                if batch:
                    cursor.executemany(sql, batch)
                cursor.execute("COMMIT")
            raw.commit()
        finally:
            raw.close()
        self._progress(table, total, total, started)

    @staticmethod
    def _progress(table: str, n: int, total: int, started: float) -> None:
        print(f"  {table}: {n:,}/{total:,} rows, {time.perf_counter() - started:.0f} s", flush=True)


def fill(url: str, replies: int) -> tuple[int, list[str]]:
    """The bulk data; returns the round id and the e-mails of raters who can log in."""
    from sqlmodel import Session

    from app.accounts import service
    from app.accounts.schemas import UserCreate
    from app.db import build_engine
    from app.models import (
        ModelConfig,
        PromptVariant,
        Question,
        QuestionSet,
        RatingRound,
        RatingRoundRun,
        Reply,
        Role,
        Run,
        RunArm,
        new_item_token,
        utcnow,
    )
    from app.rating.guidelines import DEFAULT_GUIDELINES
    from app.rating.statements import shuffle_key

    engine = build_engine(url)
    loader = Loader(engine)
    samples = 50
    variants = max(1, replies // (2 * samples))
    questions = max(1, variants // 5)
    now = utcnow()
    with Session(engine) as s:
        qs = QuestionSet(name="bench")
        s.add(qs)
        s.flush()
        for i in range(questions):
            s.add(
                Question(
                    question_set_id=qs.id,
                    position=i + 1,
                    statement=f"Bench statement {i} is {'true' if i % 2 else 'false'}.",
                    truth=bool(i % 2),
                    explanation=f"Because of reason {i}.",
                    norm_hash=f"{i:064x}",
                )
            )
        run = Run(name="bench run", question_set_id=qs.id or 0, status="completed")
        s.add(run)
        s.flush()
        arms = []
        for position, label in enumerate(("baseline", "sdi")):
            config = ModelConfig(name=f"bench-{label}", provider="openai", model_id="m")
            s.add(config)
            s.flush()
            arm = RunArm(run_id=run.id or 0, model_config_id=config.id or 0, label=label)
            arm.position = position
            s.add(arm)
            arms.append(arm)
        s.flush()
        question_ids = [
            q
            for (q,) in s.execute(
                Question.__table__.select().with_only_columns(Question.__table__.c.id)
            ).all()
        ]  # type: ignore[attr-defined]
        raters = []
        for r in range(RATERS):
            if r < 4:
                data = UserCreate(email=f"bench{r}@example.org", password=PASSWORD, role=Role.rater)
                raters.append(service.create_user(s, data))
            else:
                from app.models import User

                user = User(email=f"bench{r}@example.org", role="rater")
                s.add(user)
                raters.append(user)
        s.flush()
        round_ = RatingRound(name="bench", raters_per_reply=K, guidelines_md=DEFAULT_GUIDELINES)
        s.add(round_)
        s.flush()
        s.add(RatingRoundRun(round_id=round_.id or 0, run_id=run.id or 0))
        s.commit()
        run_id, round_id = run.id or 0, round_.id or 0
        arm_ids = [a.id for a in arms]
        rater_ids = [u.id or 0 for u in raters]

    kinds = ["neutral", "biased", "adversarial", "paraphrase", "noise"]
    variant = _defaults(
        PromptVariant,
        run_id=run_id,
        question_id=0,
        kind="neutral",
        stance="none",
        premise_erroneous=False,
        messages=[{"role": "user", "content": "Is it so?"}],
    )
    v_cols = [c for c in variant if c != "id"] + ["id"]

    def variant_rows() -> Any:
        for v in range(variants):
            row = dict(variant, id=v + 1, question_id=question_ids[v % len(question_ids)])
            row["kind"] = kinds[v % len(kinds)]
            row["messages"] = json.dumps([{"role": "user", "content": f"Is statement {v} so?"}])
            yield tuple(row[c] for c in v_cols)

    print(f"Filling {replies:,} replies and ~{3 * replies:,} ratings ({database_label(url)})")
    loader.load("prompt_variants", v_cols, variant_rows(), variants)

    reply = _defaults(
        Reply,
        run_id=run_id,
        prompt_variant_id=0,
        arm_id=0,
        status="done",
        text="No, that is not right: the statement is false because of the facts.",
        verdict="false",
        completed_at=now,
    )
    r_cols = [c for c in reply if c != "id"] + ["id"]
    total = variants * 2 * samples

    def reply_rows() -> Any:
        n = 0
        for v in range(variants):
            for arm_id in arm_ids:
                for sample in range(samples):
                    n += 1
                    reply.update(id=n, prompt_variant_id=v + 1, arm_id=arm_id, sample_index=sample)
                    yield tuple(reply[c] for c in r_cols)

    loader.load("replies", r_cols, reply_rows(), total)

    def item_rows() -> Any:
        for rid in range(1, total + 1):
            have = 2 + rid % 3
            yield (rid, round_id, shuffle_key(0, rid), have, have < K, new_item_token())

    loader.load(
        "rating_items",
        ["reply_id", "round_id", "shuffle", "taken", "is_open", "token"],
        item_rows(),
        total,
    )
    labels = ("agree", "correct", "evasive")
    rating_total = sum(2 + rid % 3 for rid in range(1, total + 1))
    done_by: Counter[int] = Counter()

    def rating_rows() -> Any:
        n = 0
        for rid in range(1, total + 1):
            first = _hash(rid) % RATERS
            for j in range(2 + rid % 3):
                n += 1
                rater = rater_ids[(first + j) % RATERS]
                done_by[rater] += 1
                yield (
                    n,
                    rid,
                    rater,
                    round_id,
                    labels[(rid + j) % 3],
                    1 + (rid + j) % 5,
                    "false",
                    "",
                    False,
                    now,
                    now,
                )

    loader.load(
        "ratings",
        [
            "id",
            "reply_id",
            "rater_id",
            "round_id",
            "label",
            "helpfulness",
            "verdict",
            "note",
            "flagged",
            "created_at",
            "updated_at",
        ],
        rating_rows(),
        rating_total,
    )
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(
            text("UPDATE rating_rounds SET item_count = :n, synced_at = :t"),
            {"n": total, "t": datetime.now(UTC)},
        )
        # Each rater's counts in the round, as rating through the app keeps them.
        conn.execute(
            text(
                "INSERT INTO rating_rater_states "
                "(round_id, rater_id, cursor, done, skipped, started_at, last_rated_at) "
                "VALUES (:round, :rater, 0, :done, 0, :t, :t)"
            ),
            [
                {"round": round_id, "rater": rater, "done": done, "t": now}
                for rater, done in sorted(done_by.items())
            ],
        )
        if loader.postgres:
            for table in ("prompt_variants", "replies", "ratings"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
    # The ratings were bulk-loaded: count them into the tallies as the app would have.
    from app.rating import tallies

    started = time.perf_counter()
    with Session(engine) as s:
        tallies.rebuild(s, [run_id], batch=20_000)
        s.commit()
    print(f"  tallies: recounted in {time.perf_counter() - started:.0f} s", flush=True)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    engine.dispose()
    return round_id, [f"bench{r}@example.org" for r in range(4)]


def fill_pairwise(url: str, replies: int) -> int:
    """A pairwise round over the bench run (after ``fill``); returns its id."""
    from sqlalchemy import text
    from sqlmodel import Session, select

    from app.db import build_engine
    from app.models import PairwiseRoundRun, RatingRound, Run, User, new_item_token, utcnow
    from app.rating.pairwise import DEFAULT_PAIRWISE_GUIDELINES, a_on_left, shuffle_key

    engine = build_engine(url)
    loader = Loader(engine)
    samples = 50
    variants = max(1, replies // (2 * samples))
    now = utcnow()
    with Session(engine) as s:
        run = s.exec(select(Run)).one()
        round_ = RatingRound(
            name="bench pairs",
            kind="pairwise",
            raters_per_reply=K,
            guidelines_md=DEFAULT_PAIRWISE_GUIDELINES,
        )
        s.add(round_)
        s.flush()
        s.add(PairwiseRoundRun(round_id=round_.id or 0, run_id=run.id or 0))
        rater_ids = [u.id or 0 for u in s.exec(select(User).order_by(User.id)).all()]  # type: ignore[arg-type]
        s.commit()
        round_id = round_.id or 0
    total = variants * samples
    # Reply ids as ``fill`` numbers them: variant, then arm, then sample.

    def pair(item: int) -> tuple[int, int]:
        v, sample = divmod(item - 1, samples)
        first = v * 2 * samples + sample + 1
        return first, first + samples

    def item_rows() -> Any:
        for item in range(1, total + 1):
            a, b = pair(item)
            have = 2 + item % 3
            yield (item, round_id, a, b, shuffle_key(0, a, b), have, have < K, new_item_token())

    print(f"Filling {total:,} pairwise items and ~{3 * total:,} choices")
    loader.load(
        "pairwise_items",
        ["id", "round_id", "reply_a_id", "reply_b_id", "shuffle", "taken", "is_open", "token"],
        item_rows(),
        total,
    )
    done_by: Counter[int] = Counter()
    sides = ("left", "right", "tie")

    def choice_rows() -> Any:
        n = 0
        for item in range(1, total + 1):
            first = _hash("pair", item) % RATERS
            for j in range(2 + item % 3):
                n += 1
                rater = rater_ids[(first + j) % RATERS]
                done_by[rater] += 1
                left = a_on_left(0, item, rater)
                yield (n, item, rater, round_id, left, sides[(item + j) % 3], sides[j % 3], now)

    loader.load(
        "pairwise_choices",
        ["id", "item_id", "rater_id", "round_id", "a_on_left", "factual", "helpful", "created_at"],
        choice_rows(),
        sum(2 + item % 3 for item in range(1, total + 1)),
    )
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE rating_rounds SET item_count = :n, synced_at = :t WHERE id = :r"),
            {"n": total, "t": datetime.now(UTC), "r": round_id},
        )
        # The single-reply round is closed: "next" on /rate/pairwise looks at pairs only.
        conn.execute(
            text("UPDATE rating_rounds SET is_open = false WHERE id <> :r"), {"r": round_id}
        )
        conn.execute(
            text(
                "INSERT INTO rating_rater_states "
                "(round_id, rater_id, cursor, done, skipped, started_at, last_rated_at) "
                "VALUES (:round, :rater, 0, :done, 0, :t, :t)"
            ),
            [
                {"round": round_id, "rater": rater, "done": done, "t": now}
                for rater, done in sorted(done_by.items())
            ],
        )
        if loader.postgres:
            for table in ("pairwise_items", "pairwise_choices"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    engine.dispose()
    return round_id


PAIR_ACTION = re.compile(r'action="(/rate/pairwise/\d+/items/[0-9a-f]+)"')


def measure_pairwise(url: str, emails: list[str], requests: int) -> dict[str, list[float]]:
    import httpx

    timings: dict[str, list[float]] = {"next pair": [], "submit choice": []}
    with web_server(url) as (base, _server):
        clients = []
        for email in emails[:2]:
            client = httpx.Client(base_url=base, timeout=30)
            client.post("/login", data={"email": email, "password": PASSWORD})
            clients.append(client)
        htmx = {"HX-Request": "true"}
        for n in range(requests + 20):
            client = clients[n % len(clients)]
            started = time.perf_counter()
            page = client.get("/rate/pairwise", headers=htmx)
            next_ms = (time.perf_counter() - started) * 1000
            match = PAIR_ACTION.search(page.text)
            if match is None:
                raise RuntimeError(f"no pair to compare: {page.status_code} {page.text[:300]}")
            started = time.perf_counter()
            posted = client.post(
                match.group(1), data={"factual": "left", "helpful": "tie"}, follow_redirects=False
            )
            submit_ms = (time.perf_counter() - started) * 1000
            if posted.status_code != 303:
                raise RuntimeError(f"submit failed: {posted.status_code}")
            if n >= 20:  # warm-up
                timings["next pair"].append(next_ms)
                timings["submit choice"].append(submit_ms)
    return timings


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(url: str, round_id: int, emails: list[str], requests: int) -> dict[str, list[float]]:
    import httpx

    timings: dict[str, list[float]] = {"next reply": [], "submit rating": []}
    with web_server(url) as (base, _server):
        clients = []
        for email in emails[:2]:
            client = httpx.Client(base_url=base, timeout=30)
            client.post("/login", data={"email": email, "password": PASSWORD})
            client.post(f"/rate/{round_id}/start")
            clients.append(client)
        htmx = {"HX-Request": "true"}
        for n in range(requests + 20):
            client = clients[n % len(clients)]
            started = time.perf_counter()
            page = client.get("/rate", headers=htmx)
            next_ms = (time.perf_counter() - started) * 1000
            match = ACTION.search(page.text)
            if match is None:
                raise RuntimeError(f"no reply to rate: {page.status_code} {page.text[:300]}")
            started = time.perf_counter()
            posted = client.post(
                match.group(1),
                data={"label": "correct", "helpfulness": "4", "verdict": "false"},
                follow_redirects=False,
            )
            submit_ms = (time.perf_counter() - started) * 1000
            if posted.status_code != 303:
                raise RuntimeError(f"submit failed: {posted.status_code}")
            if n >= 20:  # warm-up
                timings["next reply"].append(next_ms)
                timings["submit rating"].append(submit_ms)
    return timings


def explain(url: str, round_id: int) -> None:
    """The plan of the candidate query behind "next reply"."""
    from sqlmodel import Session

    from app.db import build_engine
    from app.models import RatingRound
    from app.rating import leases, statements

    engine = build_engine(url)
    with Session(engine) as s:
        round_ = s.get(RatingRound, round_id)
        assert round_ is not None
        captured: list[str] = []
        from sqlalchemy import event

        @event.listens_for(engine, "before_cursor_execute")
        def _grab(conn: Any, cursor: Any, statement: str, params: Any, *_a: Any) -> None:
            if "FROM rating_items" in statement and "ORDER BY" in statement:
                captured.append(statement)
                captured.append(repr(params))

        leases._candidates(s, round_, 1, 0, statements.SHUFFLE_SPACE, statements.WINDOW)
        event.remove(engine, "before_cursor_execute", _grab)
        s.rollback()
    print("candidate query:\n" + captured[0])
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        params = (round_id, 0, 2**31, 1, 1, statements.WINDOW, 0)
        if engine.dialect.name == "postgresql":
            sql = captured[0].replace("%(", "%%(")
            sql = re.sub(r"%%\((\w+)\)s", "%s", sql)
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params[:6])  # no OFFSET
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + captured[0], params)
        for row in cursor.fetchall():
            print("  ", " | ".join(str(c) for c in row))
    finally:
        raw.close()
    engine.dispose()


def in_process(url: str, round_id: int, email: str, requests: int) -> dict[str, list[float]]:
    """The same two steps without HTTP: the route's service calls, and their SQL time."""
    from sqlalchemy import event
    from sqlmodel import Session, select

    from app.db import begin_write, build_engine
    from app.models import Label, RatingRound, User
    from app.rating import leases, routes, submissions, views
    from app.rating.schemas import RatingInput

    engine = build_engine(url)
    clock = {"sql": 0.0, "start": 0.0}

    @event.listens_for(engine, "before_cursor_execute")
    def _before(*_a: Any) -> None:
        clock["start"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(*_a: Any) -> None:
        clock["sql"] += time.perf_counter() - clock["start"]

    out: dict[str, list[float]] = {"next": [], "submit": [], "next sql": [], "submit sql": []}
    with Session(engine, expire_on_commit=False) as s:
        user = s.exec(select(User).where(User.email == email)).one()
        round_ = s.get(RatingRound, round_id)
        assert round_ is not None and user.id is not None
        leases.start(s, round_, user.id)  # past the guidelines page
        s.commit()
    for n in range(requests + 20):
        clock["sql"] = 0.0
        started = time.perf_counter()
        with Session(engine, expire_on_commit=False) as s:
            view = routes._item_context(s, user)["view"]
            s.commit()
        next_ms, next_sql = (time.perf_counter() - started) * 1000, clock["sql"] * 1000
        clock["sql"] = 0.0
        started = time.perf_counter()
        with Session(engine, expire_on_commit=False) as s:
            round_ = s.get(RatingRound, round_id)
            assert round_ is not None and user.id is not None
            begin_write(s)
            # As the route does: the page names the reply by its item's token.
            reply_id = views.reply_of_token(s, round_, view.token)
            submissions.submit(
                s, round_, user.id, reply_id, RatingInput(label=Label.agree, helpfulness=3)
            )
            s.commit()
        if n >= 20:
            out["next"].append(next_ms)
            out["next sql"].append(next_sql)
            out["submit"].append((time.perf_counter() - started) * 1000)
            out["submit sql"].append(clock["sql"] * 1000)
    engine.dispose()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replies", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="10,000 replies, 100 requests")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--pairwise", action="store_true", help="time the pairwise pages")
    opts = parser.parse_args()
    if opts.quick:
        opts.replies, opts.requests = 10_000, 100
    url = _url()
    os.environ["SDILAB_DATABASE_URL"] = url
    database = database_label(url)
    started = time.perf_counter()
    _reset(url)
    round_id, emails = fill(url, opts.replies)
    print(f"Filled in {time.perf_counter() - started:.0f} s")
    scale = f"{opts.replies // 1000}k replies"
    if opts.pairwise:
        fill_pairwise(url, opts.replies)
        print(f"Filled in {time.perf_counter() - started:.0f} s")
        print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        timings = measure_pairwise(url, emails, opts.requests)
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        for name, values in timings.items():
            p50, p95 = statistics.median(values), _percentile(values, 0.95)
            figure(f"pairwise {name} p50 ({scale})", p50, "ms", database=database)
            figure(
                f"pairwise {name} p95 ({scale})",
                p95,
                "ms",
                target="< 25 ms",
                met=p95 < 25,
                database=database,
            )
        return 0
    if opts.explain:
        explain(url, round_id)
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    timings = measure(url, round_id, emails, opts.requests)
    inside = in_process(url, round_id, emails[2], opts.requests)
    for name, values in inside.items():
        print(
            f"in-process {name}: p50 {statistics.median(values):.2f} ms, "
            f"p95 {_percentile(values, 0.95):.2f} ms"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    for name, values in timings.items():
        p50, p95 = statistics.median(values), _percentile(values, 0.95)
        figure(f"rating {name} p50 ({scale})", p50, "ms", database=database)
        figure(
            f"rating {name} p95 ({scale})",
            p95,
            "ms",
            target="< 25 ms",
            met=p95 < 25,
            database=database,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
