"""What judge jobs share, per reply or through the Batch API: the judge's spec (kept per
process), the cases of many replies read in one statement with their cached answers, and the
label rows, with the tokens of the call behind each and their cost at the judge's prices."""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlmodel import Session

from app import llm
from app.db import insert_ignore_statement, name_of
from app.jobs.errors import PermanentFailure
from app.judging.rubric import JudgeAnswer, case_of, judge_messages, parse_answer
from app.judging.service import MAX_RAW_CHARS, is_placeholder, judge_spec
from app.llm.types import Completion, ModelSpec
from app.models import JudgeLabel, ModelConfig, PromptVariant, Question, Reply, ReplyStatus, utcnow
from app.runs.slots import cache_lookup

LABELS_TABLE = JudgeLabel.__table__  # type: ignore[attr-defined]
REPLIES = Reply.__table__  # type: ignore[attr-defined]
VARIANTS = PromptVariant.__table__  # type: ignore[attr-defined]
QUESTIONS = Question.__table__  # type: ignore[attr-defined]


@dataclass
class Prepared:
    reply_id: int
    spec: ModelSpec
    messages: list[dict[str, str]]
    cache_key: str
    cached: Completion | None


# One statement reads the cases of many replies: whether each is labelled already, the reply,
# its prompt and statement.
_CASES = (
    sa.select(
        REPLIES.c.id,
        REPLIES.c.status,
        REPLIES.c.text,
        REPLIES.c.first_text,
        VARIANTS.c.messages,
        VARIANTS.c.followup,
        QUESTIONS.c.statement,
        QUESTIONS.c.truth,
        QUESTIONS.c.explanation,
        sa.exists()
        .where(
            LABELS_TABLE.c.reply_id == REPLIES.c.id,
            LABELS_TABLE.c.judge_model_id == sa.bindparam("judge_id"),
            LABELS_TABLE.c.rubric_version == sa.bindparam("version"),
        )
        .label("labelled"),
    )
    .join(VARIANTS, VARIANTS.c.id == REPLIES.c.prompt_variant_id)
    .join(QUESTIONS, QUESTIONS.c.id == VARIANTS.c.question_id)
    .where(REPLIES.c.id.in_(sa.bindparam("reply_ids", expanding=True)))
)
# A judge's spec, made once per process and kept for SPEC_TTL_S: a config edited meanwhile is
# used within that time (each label's cache key holds the spec it was made with).
SPEC_TTL_S = 30.0
_specs: dict[int, tuple[float, ModelSpec]] = {}


def judge_spec_of(session: Session, judge_id: int) -> ModelSpec:
    now = time.monotonic()
    kept = _specs.get(judge_id)
    if kept is not None and now - kept[0] < SPEC_TTL_S:
        return kept[1]
    config = session.get(ModelConfig, judge_id)
    if config is None or is_placeholder(config):
        raise PermanentFailure(f"judge model {judge_id} does not exist or cannot be called")
    spec = judge_spec(session, config)
    _specs[judge_id] = (now, spec)
    return spec


def prepare_cases(
    session: Session, judge_id: int, version: str, reply_ids: Sequence[int]
) -> dict[int, Prepared | str]:
    """Per reply: the judge's prompt and any cached answer; or why there is nothing to do
    (``gone``, ``labelled``, ``reply <status>``)."""
    conn = session.connection()
    rows = conn.execute(
        _CASES, {"reply_ids": list(set(reply_ids)), "judge_id": judge_id, "version": version}
    ).all()
    out: dict[int, Prepared | str] = {i: "gone" for i in reply_ids}
    todo: list[Prepared] = []
    spec: ModelSpec | None = None
    for row in rows:
        if row.labelled:
            out[row.id] = "labelled"
            continue
        if row.status != ReplyStatus.done:
            out[row.id] = f"reply {row.status}"
            continue
        spec = spec or judge_spec_of(session, judge_id)
        case = case_of(
            row.statement,
            bool(row.truth),
            row.explanation,
            row.messages,
            row.followup,
            row.first_text,
            row.text,
        )
        messages = judge_messages(case, version)
        prepared = Prepared(row.id, spec, messages, llm.cache_key(spec, messages, 0), None)
        out[row.id] = prepared
        todo.append(prepared)
    cached = cache_lookup(conn, [p.cache_key for p in todo])
    for prepared in todo:
        prepared.cached = cached.get(prepared.cache_key)
    return out


def label_values(
    reply_id: int,
    judge_id: int,
    version: str,
    spec: ModelSpec,
    completion: Completion,
    *,
    cached: bool,
    via_batch: bool = False,
) -> dict[str, Any]:
    """A judge_labels row: the answer read, its raw text, and the call's tokens and cost
    (none for an answer read from the cache)."""
    answer: JudgeAnswer = parse_answer(completion.text)
    tokens_in = 0 if cached else completion.tokens_in
    tokens_out = 0 if cached else completion.tokens_out
    return {
        "reply_id": reply_id,
        "judge_model_id": judge_id,
        "rubric_version": version,
        "label": answer.label,
        "helpfulness": answer.helpfulness,
        "verdict": answer.verdict,
        "confidence": answer.confidence,
        "raw": completion.text[:MAX_RAW_CHARS],
        "created_at": utcnow(),
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "cost_usd": llm.cost_usd(spec, tokens_in, tokens_out),
        "from_cache": cached,
        "via_batch": via_batch,
    }


def cache_value(key: str, completion: Completion) -> dict[str, Any]:
    return {"key": key, "value": completion.model_dump(mode="json"), "created_at": utcnow()}


_INSERT_LABELS: dict[str, Any] = {}


def insert_labels(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert labels, each unless one exists for its reply x judge x rubric version."""
    if not rows:
        return
    dialect = name_of(conn)
    stmt = _INSERT_LABELS.get(dialect)
    if stmt is None:
        stmt = _INSERT_LABELS[dialect] = insert_ignore_statement(
            LABELS_TABLE, dialect, index_elements=["reply_id", "judge_model_id", "rubric_version"]
        )
    conn.execute(stmt, list(rows))


def forget_specs() -> None:
    """Drop the kept judge specs (tests reuse config ids after emptying the database)."""
    _specs.clear()
