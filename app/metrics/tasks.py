"""Task ``metrics.judge``: one LLM judge labels one reply under one rubric version.

The label and the job's success are written in one transaction, and the insert does nothing
when a label for (reply, judge, rubric version) exists: a retried or duplicated job never
stores a second one. An answer that cannot be read is stored with no label and its raw text.
"""

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from app import llm
from app.db import get_engine, write_transaction
from app.jobs.errors import PermanentFailure, RetryLater
from app.jobs.registry import JobArgs, JobContext, task
from app.llm.types import LlmError, ModelSpec
from app.metrics.judge import (
    JUDGE_TASK,
    MAX_RAW_CHARS,
    RUBRICS,
    JudgeAnswer,
    case_for,
    is_placeholder,
    judge_messages,
    judge_spec,
    parse_answer,
)
from app.models import JudgeLabel, ModelConfig, PromptVariant, Question, Response, utcnow

LABELS_TABLE = JudgeLabel.__table__  # type: ignore[attr-defined]


@dataclass
class Prepared:
    spec: ModelSpec
    messages: list[dict[str, str]]


def _prepare(response_id: int, judge_id: int, version: str) -> Prepared | str:
    """The judge's spec and prompt; or why there is nothing to do."""
    with Session(get_engine()) as session:
        labelled = session.exec(
            select(JudgeLabel.id).where(
                JudgeLabel.response_id == response_id,
                JudgeLabel.judge_model_id == judge_id,
                JudgeLabel.rubric_version == version,
            )
        ).first()
        if labelled is not None:
            return "labelled"
        row = session.exec(
            select(Response, PromptVariant, Question)
            .join(PromptVariant, col(PromptVariant.id) == col(Response.prompt_variant_id))
            .join(Question, col(Question.id) == col(PromptVariant.question_id))
            .where(Response.id == response_id)
        ).first()
        if row is None:
            return "gone"
        response, variant, question = row
        if response.status != "done":
            return f"reply {response.status}"
        config = session.get(ModelConfig, judge_id)
        if config is None or is_placeholder(config):
            raise PermanentFailure(f"judge model {judge_id} does not exist or cannot be called")
        return Prepared(
            judge_spec(session, config),
            judge_messages(case_for(response, variant, question), version),
        )


def _store(
    ctx: JobContext, response_id: int, judge_id: int, version: str, answer: JudgeAnswer, raw: str
) -> bool:
    """Insert the label unless one exists, and finish the job, in one transaction. True
    when this call stored it."""
    with write_transaction(get_engine()) as session:
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        result = session.execute(
            insert(LABELS_TABLE)
            .values(
                response_id=response_id,
                judge_model_id=judge_id,
                rubric_version=version,
                label=answer.label,
                helpfulness=answer.helpfulness,
                verdict=answer.verdict,
                raw=raw[:MAX_RAW_CHARS],
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(
                index_elements=["response_id", "judge_model_id", "rubric_version"]
            )
            .returning(LABELS_TABLE.c.id)
        )
        stored = result.first() is not None
        ctx.finish_in(session, {"label": answer.label})
        return stored


def _limit(args: JobArgs) -> int:
    return int(args.get("max_concurrency", 4))


def _timeout(args: JobArgs) -> float:
    return float(args.get("timeout_s", 150.0))


@task(JUDGE_TASK, limit=_limit, timeout_s=_timeout)
async def judge_reply(ctx: JobContext, args: JobArgs) -> dict[str, Any] | None:
    response_id, judge_id = int(args["response_id"]), int(args["judge_id"])
    version = str(args["rubric_version"])
    if version not in RUBRICS:
        raise PermanentFailure(f"unknown rubric version {version!r}")
    prepared = await asyncio.to_thread(_prepare, response_id, judge_id, version)
    if isinstance(prepared, str):
        return {"skipped": prepared}
    try:
        completion = await llm.complete(prepared.spec, prepared.messages)
    except LlmError as exc:
        if exc.retryable:
            raise RetryLater(str(exc), delay_s=exc.retry_after) from None
        raise PermanentFailure(str(exc)) from None
    answer = parse_answer(completion.text)
    await asyncio.to_thread(_store, ctx, response_id, judge_id, version, answer, completion.text)
    return None
