"""Shared column helpers and value sets for the tables."""

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint
from sqlmodel import SQLModel

# Deterministic constraint names, so that migrations can alter them on SQLite and Postgres.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Aware UTC; SQLModel's UTCDateTime stores it the same way on SQLite and Postgres."""
    return datetime.now(UTC)


def one_of(column: str, values: type[StrEnum]) -> CheckConstraint:
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=column)


class Role(StrEnum):
    admin = "admin"
    rater = "rater"


class VariantKind(StrEnum):
    neutral = "neutral"
    biased = "biased"
    adversarial = "adversarial"
    paraphrase = "paraphrase"
    noise = "noise"
    pushback = "pushback"


class Stance(StrEnum):
    """What the user claims: nothing, the statement itself, or its negation."""

    none = "none"
    asserts = "asserts"
    negates = "negates"


class Verdict(StrEnum):
    """What a reply says of the statement."""

    true = "true"
    false = "false"
    none = "none"


class Label(StrEnum):
    agree = "agree"
    correct = "correct"
    evasive = "evasive"


# The values in their fixed order: position i + 1 is a value's code in packed tallies and
# results arrays, so the order is part of stored data.
LABELS: tuple[str, ...] = tuple(v.value for v in Label)
VERDICTS: tuple[str, ...] = tuple(v.value for v in Verdict)


class Provider(StrEnum):
    openai = "openai"
    local = "local"
    trained = "trained"


class SdiMode(StrEnum):
    none = "none"
    in_context = "in_context"
    fine_tuned = "fine_tuned"


class RunStatus(StrEnum):
    running = "running"
    paused = "paused"
    cancelled = "cancelled"
    completed = "completed"


class ReplyStatus(StrEnum):
    pending = "pending"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


class SdiStatus(StrEnum):
    """An SDI dataset: queued for the worker, being built, ready to use, or failed."""

    queued = "queued"
    building = "building"
    ready = "ready"
    failed = "failed"


class JobStatus(StrEnum):
    todo = "todo"
    doing = "doing"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


def premise_is_erroneous(stance: Stance | str, truth: bool) -> bool:
    """The user's premise is wrong when they assert a false statement or deny a true one."""
    if stance == Stance.asserts:
        return not truth
    if stance == Stance.negates:
        return truth
    return False
