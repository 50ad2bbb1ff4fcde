"""Reply slots as the workers see them: the statements that read and fill them, the LLM cache,
and the columns of a finished reply. Shared by the generate task and the Batch API task."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update

from app import llm
from app.db import insert_ignore_statement, name_of
from app.llm.types import CachedCompletion, Completion, ModelSpec
from app.models import (
    LlmCacheEntry,
    PromptVariant,
    Question,
    ReplyStatus,
    RunArm,
    Stance,
    utcnow,
)
from app.runs.service import REPLIES
from app.verdicts import statement_verdicts

VARIANTS = PromptVariant.__table__  # type: ignore[attr-defined]
QUESTIONS = Question.__table__  # type: ignore[attr-defined]
ARMS = RunArm.__table__  # type: ignore[attr-defined]
CACHE = LlmCacheEntry.__table__  # type: ignore[attr-defined]
PENDING = ReplyStatus.pending.value
REPLY_FIELDS = (
    "status",
    "text",
    "verdict",
    "first_text",
    "first_verdict",
    "transcript",
    "tokens_in",
    "tokens_out",
    "latency_ms",
    "cost_usd",
    "finish_reason",
    "from_cache",
    "cached_from_run_id",
    "error",
    "attempts",
    "completed_at",
)
STORE_REPLY = (
    update(REPLIES)
    .where(REPLIES.c.id == bindparam("_id"), REPLIES.c.status == PENDING)
    .values({name: bindparam(name) for name in REPLY_FIELDS})
)
# Built once: the worker runs them for every batch.
READ_SLOTS = (
    select(
        REPLIES.c.id,
        REPLIES.c.run_id,
        REPLIES.c.arm_id,
        REPLIES.c.sample_index,
        REPLIES.c.status,
        VARIANTS.c.messages,
        VARIANTS.c.followup,
        VARIANTS.c.stance,
        QUESTIONS.c.statement,
    )
    .join(VARIANTS, VARIANTS.c.id == REPLIES.c.prompt_variant_id)
    .join(QUESTIONS, QUESTIONS.c.id == VARIANTS.c.question_id)
    .where(REPLIES.c.id.in_(bindparam("ids", expanding=True)))
)
CACHE_LOOKUP = select(CACHE.c.key, CACHE.c.value).where(
    CACHE.c.key.in_(bindparam("keys", expanding=True))
)
_CACHE_ADD = {
    dialect: insert_ignore_statement(CACHE, dialect, index_elements=["key"])
    for dialect in ("postgresql", "sqlite")
}

# Arm snapshots never change once a run is created: parse each one once per worker process.
_specs: dict[int, ModelSpec] = {}
_policies: dict[int, str] = {}

# A run's cache policy. auto: serve from the cache only calls that repeat (temperature 0 or a
# fixed seed), so sampling is never silently replayed; use: every call (the user asks for it);
# refresh: none, and the new answers replace the stored ones; off: none, and store none.
CACHE_POLICIES = ("auto", "use", "refresh", "off")


def reads_cache(policy: str, spec: ModelSpec) -> bool:
    if policy == "use":
        return True
    if policy == "auto":
        return spec.temperature == 0 or spec.seed is not None
    return False


def writes_cache(policy: str) -> bool:
    return policy != "off"


@dataclass
class Slot:
    reply_id: int
    run_id: int
    arm_id: int
    sample_index: int
    status: str
    messages: list[dict[str, str]]
    followup: str
    stance: str
    statement: str = ""  # what the reply is read against (app/verdicts/restate.py)
    spec: ModelSpec | None = None
    key: str = ""  # the first call's cache key
    cached: CachedCompletion | None = None
    policy: str = "auto"


@dataclass
class Call:
    key: str
    completion: Completion
    cached: bool


def cache_lookup(conn: Connection, keys: Sequence[str]) -> dict[str, CachedCompletion]:
    if not keys:
        return {}
    rows = conn.execute(CACHE_LOOKUP, {"keys": list(set(keys))})
    return {key: CachedCompletion.model_validate(value) for key, value in rows}


def cache_entry(key: str, completion: Completion, run_id: int, now: Any) -> dict[str, Any]:
    """A new cache row: the answer and the run whose call made it."""
    value = completion.model_dump(exclude={"run_id"}) | {"run_id": run_id}
    return {"key": key, "value": value, "created_at": now}


def read_slots(conn: Connection, reply_ids: list[int]) -> list[Slot | None]:
    """Slots by reply id; pending ones with their spec, cache key and cached answer."""
    rows = conn.execute(READ_SLOTS, {"ids": list(set(reply_ids))}).all()
    slots = {row[0]: Slot(*row) for row in rows}
    pending = [s for s in slots.values() if s.status == PENDING]
    missing = {s.arm_id for s in pending} - set(_specs)
    if missing:
        for arm_id, snapshot in conn.execute(
            select(ARMS.c.id, ARMS.c.snapshot).where(ARMS.c.id.in_(missing))
        ):
            remember_spec(arm_id, snapshot)
    for slot in pending:
        slot.spec = _specs[slot.arm_id]
        slot.policy = _policies.get(slot.arm_id, "auto")
        slot.key = llm.cache_key(slot.spec, slot.messages, slot.sample_index)
    readable = [s for s in pending if s.spec is not None and reads_cache(s.policy, s.spec)]
    cached = cache_lookup(conn, [s.key for s in readable])
    for slot in readable:
        slot.cached = cached.get(slot.key)
    return [slots.get(i) for i in reply_ids]


def reply_values(
    spec: ModelSpec,
    calls: list[Call],
    pushback: bool,
    transcript: list[Any],
    attempt: int,
    stance: str = Stance.none.value,
    statement: str | None = None,
) -> dict[str, Any]:
    """The columns of a finished reply slot (every REPLY_FIELDS key)."""
    first, final = calls[0].completion, calls[-1].completion
    # The user asked about the negation when the stance negates: verdicts are flipped. After
    # pushback the final reply answers the pushback on the first answer.
    verdict, first_verdict = statement_verdicts(
        final.text, stance == Stance.negates, first.text if pushback else None, statement
    )
    tokens_in = sum(c.completion.tokens_in for c in calls)
    tokens_out = sum(c.completion.tokens_out for c in calls)
    return {
        "status": ReplyStatus.done.value,
        "text": final.text,
        "verdict": verdict.value,
        "first_text": first.text if pushback else "",
        "first_verdict": first_verdict.value if first_verdict else None,
        "transcript": transcript,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "latency_ms": sum(c.completion.latency_ms for c in calls),
        "cost_usd": llm.cost_usd(spec, tokens_in, tokens_out),
        "finish_reason": final.finish_reason,
        "from_cache": all(c.cached for c in calls),
        "cached_from_run_id": _source_run(calls),
        "error": "",
        "attempts": attempt,
        "completed_at": utcnow(),
    }


def _source_run(calls: list[Call]) -> int | None:
    """The run whose call made the first cached answer of a reply served from the cache."""
    if not calls or not all(c.cached for c in calls):
        return None
    first = calls[0].completion
    return first.run_id if isinstance(first, CachedCompletion) else None


def remember_spec(arm_id: int, snapshot: dict[str, Any]) -> ModelSpec:
    """The arm's model spec, parsed from its snapshot once per process."""
    spec = _specs.get(arm_id)
    if spec is None:
        fields = {k: v for k, v in snapshot.items() if k in ModelSpec.model_fields}
        spec = _specs[arm_id] = ModelSpec.model_validate(fields)
        _policies[arm_id] = str(snapshot.get("cache_policy") or "auto")
    return spec


def policy_of(arm_id: int) -> str:
    return _policies.get(arm_id, "auto")


def forget_specs() -> None:
    """Drop the parsed specs (tests reuse arm ids after emptying the database)."""
    _specs.clear()
    _policies.clear()


def add_cache_entries(
    conn: Connection, entries: Sequence[dict[str, Any]], *, replace: bool = False
) -> None:
    """Store new LLM cache entries; an entry another job stored first is kept, unless
    ``replace`` (the refresh policy: the new answer replaces the stored one)."""
    if not entries:
        return
    if replace:
        conn.execute(delete(CACHE).where(CACHE.c.key.in_([e["key"] for e in entries])))
    conn.execute(_CACHE_ADD[name_of(conn)], list(entries))


def record_error(conn: Connection, reply_id: int, error: str, attempts: int) -> None:
    """Note a failed try on a slot still pending (the job may try again)."""
    conn.execute(
        update(REPLIES)
        .where(REPLIES.c.id == reply_id, REPLIES.c.status == PENDING)
        .values(error=error[:2000], attempts=attempts)
    )
