"""Altered bundles whose manifest was rewritten to match (so the hashes pass): a row of any
member replaced by random JSON, or a value of one of its columns changed. The import either
succeeds or raises BundleError, never another error, and a refused one saves nothing."""

import hashlib
import io
import json
import zipfile
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, func, select

from app.bundles import service as bundles
from app.models import Question, Rating, Reply, Run
from tests import factories
from tests.metrics import helpers

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@pytest.fixture
def bundle(db: Session, admin: factories.UserWithPassword) -> bytes:
    run = factories.make_run(db, factories.make_question_set(db, n=3))
    helpers.random_ratings(db, run, helpers.make_raters(db, 3), admin.id, seed=2)
    buffer = io.BytesIO()
    bundles.export_bundle(db, buffer, [run.id])
    return buffer.getvalue()


def _rewritten(data: bytes, member: str, change: Any) -> bytes:
    """The bundle with one member changed and the manifest's hash of it updated."""
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        contents = {name: source.read(name) for name in source.namelist()}
    contents[member] = change(contents[member])
    manifest = json.loads(contents["manifest.json"])
    manifest["members"][member]["sha256"] = hashlib.sha256(contents[member]).hexdigest()
    contents["manifest.json"] = json.dumps(manifest).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name, content in contents.items():
            target.writestr(name, content)
    return out.getvalue()


def _counts(db: Session) -> tuple[int, ...]:
    return tuple(
        db.exec(select(func.count()).select_from(t)).one() for t in (Run, Reply, Rating, Question)
    )


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    member=st.sampled_from([f"{name}.jsonl" for name in bundles.PART_NAMES]),
    line=st.integers(min_value=0, max_value=50),
    column=st.integers(min_value=0, max_value=40),
    value=json_values,
    whole_row=st.booleans(),
)
def test_an_altered_row_is_imported_or_refused_cleanly(
    db: Session, bundle: bytes, member: str, line: int, column: int, value: Any, whole_row: bool
) -> None:
    def change(content: bytes) -> bytes:
        lines = content.decode().splitlines()
        if not lines:
            return json.dumps(value).encode() + b"\n"
        at = line % len(lines)
        row = json.loads(lines[at])
        if whole_row or not row:
            lines[at] = json.dumps(value)
        else:
            key = sorted(row)[column % len(row)]
            row[key] = value
            lines[at] = json.dumps(row)
        return ("\n".join(lines) + "\n").encode()

    data = _rewritten(bundle, member, change)
    before = _counts(db)
    savepoint = db.begin_nested()
    try:
        bundles.import_bundle(db, io.BytesIO(data))
    except bundles.BundleError as exc:
        savepoint.rollback()
        assert str(exc).strip()
        assert _counts(db) == before
        return
    savepoint.rollback()
