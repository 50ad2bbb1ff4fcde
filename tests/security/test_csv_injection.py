"""Exports neutralise formula injection: every text cell a spreadsheet would run as a formula
(=, +, -, @, tab, CR first, also after leading spaces or newlines) reaches the CSV inert."""

import csv
import io
import itertools
import re

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.metrics.exports import neutralise
from tests import factories
from tests.security.world import build_world

CORPUS = [
    "=1+1",
    '=HYPERLINK("http://evil.example","x")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+9)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    " =1+1",
    "   +1+1",
    "\n=1+1",
    " \t@SUM(A1)",
    "=cmd|'/C notepad'!'A1'",
    "\uff1d1+1",  # full-width equals: not a formula, left alone
]
NUMBER = re.compile(r"^\s*[-+]?\d+(\.\d+)?([eE][-+]?\d+)?\s*$")


def dangerous(cell: str) -> bool:
    if NUMBER.match(cell):
        return False
    return cell.startswith(("=", "+", "-", "@", "\t", "\r")) or cell.lstrip().startswith(
        ("=", "+", "-", "@")
    )


def test_the_check_recognises_the_corpus() -> None:
    assert all(dangerous(c) for c in CORPUS[:-1]) and not dangerous(CORPUS[-1])
    assert not dangerous("-0.25") and not dangerous("'=1+1")


def test_neutralise_covers_the_corpus() -> None:
    for value in CORPUS:
        assert not dangerous(neutralise(value)), repr(value)
        assert neutralise(value).lstrip("'") == value  # the text itself is kept


def test_exported_csvs_are_inert(client: TestClient, db: Session) -> None:
    cycle = itertools.cycle(CORPUS)
    world = build_world(db, lambda slot: next(cycle) + f" {slot}")
    factories.login(client, world.admin)
    run_id = world.ids["run_id"]
    seen = 0
    for what in ("metrics", "replies", "ratings"):
        response = client.get(f"/results/runs/{run_id}/{what}.csv")
        assert response.status_code == 200
        rows = list(csv.reader(io.StringIO(response.text)))
        assert len(rows) > 1, what
        for row in rows:
            for cell in row:
                assert not dangerous(cell), (what, cell)
                seen += cell.startswith("'")
    assert seen >= 10  # the corpus really reached the exports
