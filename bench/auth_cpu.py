"""CPU time of authenticating one request: the session cookie read, the login session and its
user looked up (app/accounts/deps.py::load_user), in a request-scoped database session.

Fills a fresh database with 200 users (1 in 10 deactivated) and 4,000 login sessions (half of
them expired, as they are until the next login deletes them), then calls ``load_user`` with
real signed cookies, each call in its own database session that commits, as a request does.
The same loop without the lookup (session, connection, commit) is timed too, and the figure is
the difference: what authentication adds to a request. CPU time of this process (the machine
is shared: wall time would measure the neighbours), median of 5 rounds of 2,000 calls.

Usage: .venv/bin/python bench/auth_cpu.py [--calls N] [--rounds N] [--quick]
SDILAB_BENCH_DATABASE_URL selects Postgres (its public schema is dropped and rebuilt).
"""

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SDILAB_SECRET_KEY", "bench-secret-key-0123456789")
os.environ.setdefault("SDILAB_ENVIRONMENT", "test")

from bench._report import database_label, figure  # noqa: E402
from bench.rating_latency import _reset, _url  # noqa: E402

USERS = 200
SESSIONS = 4000


def fill(url: str) -> list[str]:
    """The signed cookies of the live sessions of active users."""
    from sqlalchemy import insert
    from sqlmodel import Session

    from app.accounts.deps import sign_token
    from app.accounts.security import hash_token, new_token
    from app.db import build_engine
    from app.models import AuthSession, User, utcnow

    engine = build_engine(url)
    now = utcnow()
    cookies = []
    with Session(engine) as s:
        users = [
            User(email=f"auth-{i}@example.org", role="admin" if i % 20 == 0 else "rater")
            for i in range(USERS)
        ]
        for i, user in enumerate(users):
            user.is_active = i % 10 != 9
        s.add_all(users)
        s.flush()
        rows = []
        for i in range(SESSIONS):
            user = users[i % USERS]
            token = new_token()
            expired = i % 2 == 1
            rows.append(
                {
                    "token_hash": hash_token(token),
                    "user_id": user.id,
                    "created_at": now,
                    "expires_at": now + timedelta(hours=-1 if expired else 12),
                }
            )
            if not expired and user.is_active:
                cookies.append(sign_token(token))
        s.execute(insert(AuthSession), rows)
        s.commit()
    engine.dispose()
    return cookies


def _request(cookie: str) -> object:
    from starlette.requests import Request

    from app.accounts.deps import SESSION_COOKIE

    header = f"{SESSION_COOKIE}={cookie}".encode()
    return Request({"type": "http", "headers": [(b"cookie", header)], "state": {}})


def cpu_per_call(fn: Callable[[int], None], calls: int, rounds: int) -> float:
    """Median CPU seconds per call over ``rounds`` rounds."""
    for i in range(min(calls, 200)):
        fn(i)
    per_call = []
    for _ in range(rounds):
        start = time.process_time()
        for i in range(calls):
            fn(i)
        per_call.append((time.process_time() - start) / calls)
    return statistics.median(per_call)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 500 calls")
    opts = parser.parse_args()
    if opts.quick:
        opts.calls, opts.rounds = 500, 3
    url = _url()
    os.environ["SDILAB_DATABASE_URL"] = url
    database = database_label(url)
    _reset(url)
    cookies = fill(url)

    from sqlmodel import Session

    from app.accounts.deps import load_user
    from app.db import build_engine

    engine = build_engine(url)
    requests = [_request(c) for c in cookies]

    def authenticated(i: int) -> None:
        with Session(engine, expire_on_commit=False) as session:
            user = load_user(requests[i % len(requests)], session)  # type: ignore[arg-type]
            assert user is not None and user.id is not None
            session.commit()

    def bare(_i: int) -> None:
        with Session(engine, expire_on_commit=False) as session:
            session.connection()
            session.commit()

    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    with_auth = cpu_per_call(authenticated, opts.calls, opts.rounds)
    without = cpu_per_call(bare, opts.calls, opts.rounds)
    engine.dispose()
    figure("auth: CPU added to a request", (with_auth - without) * 1e6, "µs", database=database)
    figure("auth: request session with auth", with_auth * 1e6, "µs", database=database)
    figure("auth: request session alone", without * 1e6, "µs", database=database)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
