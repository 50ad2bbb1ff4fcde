"""Task ``judging.judge``: one LLM judge labels one reply under one rubric version.

The label and the job's success are written in one transaction, and the insert does nothing
when a label for (reply, judge, rubric version) exists: a retried or duplicated job never
stores a second one. An answer that cannot be read is stored with no label and its raw text.
The judge's answer goes to the LLM cache too (as a run's replies do): labelling the same
prompt again, e.g. the same reply text in another run, costs no call.
"""

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from app import llm
from app.db import get_engine, insert_ignore, write_transaction
from app.jobs.errors import PermanentFailure, RetryLater
from app.jobs.registry import JobArgs, JobContext, task
from app.judging.rubric import RUBRICS, JudgeAnswer, case_for, judge_messages, parse_answer
from app.judging.service import JUDGE_TASK, MAX_RAW_CHARS, is_placeholder, judge_spec
from app.llm.types import Completion, LlmError, ModelSpec
from app.models import JudgeLabel, ModelConfig, PromptVariant, Question, Reply, ReplyStatus, utcnow
from app.runs.slots import add_cache_entries, cache_lookup

LABELS_TABLE = JudgeLabel.__table__  # type: ignore[attr-defined]


@dataclass
class Prepared:
    spec: ModelSpec
    messages: list[dict[str, str]]
    cache_key: str
    cached: Completion | None


def _prepare(reply_id: int, judge_id: int, version: str) -> Prepared | str:
    """The judge's spec and prompt; or why there is nothing to do."""
    with Session(get_engine()) as session:
        labelled = session.exec(
            select(JudgeLabel.id).where(
                JudgeLabel.reply_id == reply_id,
                JudgeLabel.judge_model_id == judge_id,
                JudgeLabel.rubric_version == version,
            )
        ).first()
        if labelled is not None:
            return "labelled"
        row = session.exec(
            select(Reply, PromptVariant, Question)
            .join(PromptVariant, col(PromptVariant.id) == col(Reply.prompt_variant_id))
            .join(Question, col(Question.id) == col(PromptVariant.question_id))
            .where(Reply.id == reply_id)
        ).first()
        if row is None:
            return "gone"
        reply, variant, question = row
        if reply.status != ReplyStatus.done:
            return f"reply {reply.status}"
        config = session.get(ModelConfig, judge_id)
        if config is None or is_placeholder(config):
            raise PermanentFailure(f"judge model {judge_id} does not exist or cannot be called")
        spec = judge_spec(session, config)
        messages = judge_messages(case_for(reply, variant, question), version)
        key = llm.cache_key(spec, messages, 0)
        return Prepared(spec, messages, key, cache_lookup(session.connection(), [key]).get(key))


def _store(
    ctx: JobContext,
    reply_id: int,
    judge_id: int,
    version: str,
    answer: JudgeAnswer,
    raw: str,
    cache: dict[str, Any] | None = None,
) -> bool:
    """Insert the label unless one exists (and the call's cache entry, if new), and finish
    the job, in one transaction. True when this call stored the label."""
    with write_transaction(get_engine()) as session:
        if cache is not None:
            add_cache_entries(session.connection(), [cache])
        stored = insert_ignore(
            session,
            LABELS_TABLE,
            {
                "reply_id": reply_id,
                "judge_model_id": judge_id,
                "rubric_version": version,
                "label": answer.label,
                "helpfulness": answer.helpfulness,
                "verdict": answer.verdict,
                "confidence": answer.confidence,
                "raw": raw[:MAX_RAW_CHARS],
                "created_at": utcnow(),
            },
            index_elements=["reply_id", "judge_model_id", "rubric_version"],
        )
        ctx.finish_in(session, {"label": answer.label, "cached": cache is None})
        return stored


def _timeout(args: JobArgs) -> float:
    return float(args.get("timeout_s", 150.0))


@task(JUDGE_TASK, timeout_s=_timeout)
async def judge_reply(ctx: JobContext, args: JobArgs) -> dict[str, Any] | None:
    reply_id, judge_id = int(args["reply_id"]), int(args["judge_id"])
    version = str(args["rubric_version"])
    if version not in RUBRICS:
        raise PermanentFailure(f"unknown rubric version {version!r}")
    prepared = await asyncio.to_thread(_prepare, reply_id, judge_id, version)
    if isinstance(prepared, str):
        return {"skipped": prepared}
    completion, cache = prepared.cached, None
    if completion is None:
        try:
            completion = await llm.complete(prepared.spec, prepared.messages)
        except LlmError as exc:
            if exc.retryable:
                raise RetryLater(str(exc), delay_s=exc.retry_after) from None
            raise PermanentFailure(str(exc)) from None
        cache = {
            "key": prepared.cache_key,
            "value": completion.model_dump(mode="json"),
            "created_at": utcnow(),
        }
    answer = parse_answer(completion.text)
    await asyncio.to_thread(
        _store, ctx, reply_id, judge_id, version, answer, completion.text, cache
    )
    return None
