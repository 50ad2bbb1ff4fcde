"""The LLM judge: a model config labels each done reply of a run (agree / correct / evasive,
helpfulness 1-5, verdict) with a fixed, versioned rubric (``rubric``).

Labels go to ``judge_labels``, apart from human ratings: the rating pages never read them, and
the results report each judge as a separate "rater" with its kappa against the human label.
One job per reply (task ``judging.judge``); its lock key names the reply, the judge and the
rubric version, so the same labelling is never queued twice and a retried job never writes a
second label (the table is unique on the same three).
"""

from dataclasses import dataclass, field

from sqlalchemy import Connection, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from app.jobs import queue
from app.judging.rubric import RUBRIC_VERSION
from app.llm.types import ModelSpec
from app.model_configs.service import build_spec
from app.model_configs.service import is_imported_placeholder as is_placeholder
from app.models import (
    Job,
    JobStatus,
    JudgeBatch,
    JudgeLabel,
    ModelConfig,
    Reply,
    ReplyStatus,
    Run,
    utcnow,
)

JUDGE_TASK = "judging.judge"
BATCH_TASK = "judging.batch"
# Seconds between polls of a Batch API batch (tests shorten it).
BATCH_POLL_S = 30.0
JOBS = Job.__table__  # type: ignore[attr-defined]
FINISHED = (JobStatus.succeeded.value, JobStatus.failed.value, JobStatus.cancelled.value)
MAX_RAW_CHARS = 20_000
# Extra seconds a job may take beyond the judge's own call timeout.
JOB_SLACK_S = 30.0


class JudgeError(ValueError):
    """Judging cannot start as asked; the message says why."""


def judge_spec(session: Session, config: ModelConfig) -> ModelSpec:
    """The judge's spec with the rubric as its only instruction."""
    return build_spec(session, config).model_copy(
        update={"system_prompt": "", "prefix_messages": ()}
    )


# --- Starting a judge on a run ---------------------------------------------------------------


def group_key(run_id: int) -> str:
    return f"judge:{run_id}"


def lock_key(reply_id: int, judge_id: int, rubric_version: str = RUBRIC_VERSION) -> str:
    return f"judge:{reply_id}:{judge_id}:{rubric_version}"


def judge_choices(session: Session) -> list[ModelConfig]:
    configs = session.exec(sm_select(ModelConfig).order_by(col(ModelConfig.name))).all()
    return [c for c in configs if not is_placeholder(c)]


@dataclass
class StartResult:
    queued: int = 0  # new jobs, and succeeded jobs whose label is gone sent back to the queue
    already_labelled: int = 0
    already_queued: int = 0
    retried: int = 0
    batch: bool = False  # the replies go to the judge in one Batch API job


def batch_lock_key(run_id: int, judge_id: int, rubric_version: str = RUBRIC_VERSION) -> str:
    return f"judge-batch:{run_id}:{judge_id}:{rubric_version}"


_REQUEUED = {
    "status": JobStatus.todo.value,
    "attempts": 0,
    "finished_at": None,
    "worker_id": "",
    "last_error": "",
    "result": None,
}


def _requeue(
    bind: Session | Connection, keys: list[str], statuses: tuple[str, ...] = FINISHED
) -> None:
    """Send finished jobs (by lock key) back to the queue: a lock key holds the jobs table's
    unique slot, so the job is reused, not inserted again."""
    for start in range(0, len(keys), 2000):
        bind.execute(
            update(JOBS)
            .where(
                JOBS.c.lock_key.in_(keys[start : start + 2000]),
                JOBS.c.status.in_(statuses),
            )
            .values(scheduled_at=utcnow(), **_REQUEUED)
        )


def reply_jobs(
    bind: Session | Connection,
    run_id: int,
    judge_id: int,
    reply_ids: list[int],
    rubric_version: str = RUBRIC_VERSION,
) -> tuple[int, int]:
    """Queue a per-reply judge job for each reply (a succeeded or failed job of the same
    reply, judge and rubric goes back to the queue; a cancelled one waits to be resumed);
    (queued, already queued)."""
    mc = ModelConfig.__table__  # type: ignore[attr-defined]
    config = bind.execute(
        select(mc.c.timeout_s, mc.c.max_concurrency).where(mc.c.id == judge_id)
    ).first()
    if config is None:
        return 0, 0
    keys = {lock_key(i, judge_id, rubric_version): i for i in reply_ids}
    found: dict[str, str] = {}
    keyed = list(keys)
    for start in range(0, len(keyed), 2000):
        found.update(
            bind.execute(
                select(JOBS.c.lock_key, JOBS.c.status).where(
                    JOBS.c.lock_key.in_(keyed[start : start + 2000])
                )
            ).all()
        )
    args = {
        "judge_id": judge_id,
        "rubric_version": rubric_version,
        "timeout_s": config.timeout_s + JOB_SLACK_S,
    }
    new = [
        {
            "task": JUDGE_TASK,
            "args": {"reply_id": reply_id, **args},
            "lock_key": key,
            "concurrency_key": f"model:{judge_id}",
            "concurrency_limit": config.max_concurrency,
            "group_key": group_key(run_id),
        }
        for key, reply_id in keys.items()
        if key not in found
    ]
    again = (JobStatus.succeeded.value, JobStatus.failed.value)
    requeue = [key for key, status in found.items() if status in again]
    _requeue(bind, requeue, again)
    for start in range(0, len(new), 2000):
        queue.enqueue_many(bind, new[start : start + 2000])
    return len(new) + len(requeue), len(found) - len(requeue)


def start_judging(
    session: Session, run_id: int, judge_id: int, *, batch: bool = False
) -> StartResult:
    """Queue one job per done reply of the run that this judge has not labelled (under the
    current rubric) and that is not queued already; failed judge jobs of the run go back to
    the queue. A succeeded job whose label is gone (deleted) goes back to the queue too.
    With ``batch``, the replies go to the judge in one job through the OpenAI Batch API
    (task ``judging.batch``) instead. While a batch of this judge is under way nothing new
    is queued for it. The caller commits."""
    if session.get(Run, run_id) is None:
        raise JudgeError(f"No run {run_id}.")
    config = session.get(ModelConfig, judge_id)
    if config is None:
        raise JudgeError("Choose a judge model.")
    if is_placeholder(config):
        raise JudgeError(f"{config.name!r} stands for imported replies and cannot be called.")
    spec = judge_spec(session, config)  # fails now, not in every job, if the config is unusable
    if batch and spec.provider != "openai":
        raise JudgeError(
            f"{config.name!r} is a {spec.provider} model: the Batch API needs an OpenAI "
            "(or OpenAI-compatible) server."
        )
    group = group_key(run_id)
    labelled = set(
        session.exec(
            sm_select(JudgeLabel.reply_id)
            .join(Reply, col(Reply.id) == col(JudgeLabel.reply_id))
            .where(
                Reply.run_id == run_id,
                JudgeLabel.judge_model_id == judge_id,
                JudgeLabel.rubric_version == RUBRIC_VERSION,
            )
        )
    )
    done = session.exec(
        sm_select(Reply.id)
        .where(Reply.run_id == run_id, Reply.status == ReplyStatus.done.value)
        .order_by(col(Reply.id))
    ).all()
    todo = [i for i in done if i is not None and i not in labelled]
    result = StartResult(already_labelled=len(labelled), batch=batch)
    result.retried = queue.retry_failed(session, group)
    batch_key = batch_lock_key(run_id, judge_id)
    batch_status = session.execute(
        select(JOBS.c.status).where(JOBS.c.lock_key == batch_key)
    ).scalar()
    if batch_status in (JobStatus.todo.value, JobStatus.doing.value):
        result.already_queued = len(todo)  # the batch under way labels them, or queues them
        return result
    try:
        with session.begin_nested():
            if not batch:
                result.queued, result.already_queued = reply_jobs(session, run_id, judge_id, todo)
            elif todo:
                result.queued = len(todo)
                if batch_status is None:
                    queue.enqueue(
                        session,
                        BATCH_TASK,
                        {
                            "run_id": run_id,
                            "judge_id": judge_id,
                            "rubric_version": RUBRIC_VERSION,
                            "poll_s": BATCH_POLL_S,
                        },
                        lock_key=batch_key,
                        group_key=group,
                        max_attempts=20,
                    )
                else:
                    _requeue(session, [batch_key])
    except IntegrityError as exc:
        raise JudgeError(
            "Some of these replies were queued for this judge at the same moment; try again."
        ) from exc
    return result


def cancel_judging(session: Session, run_id: int) -> int:
    """Cancel the run's unfinished judge jobs; a call in flight still stores its label."""
    return queue.cancel_group(session, group_key(run_id))


def resume_judging(session: Session, run_id: int) -> int:
    """Send the run's cancelled judge jobs back to the queue."""
    return queue.resume_group(session, group_key(run_id))


# --- What the results page shows -------------------------------------------------------------


@dataclass
class JudgeSummary:
    judge: str
    rubric_version: str
    labelled: int
    unreadable: int  # answers stored with no label (raw text kept)
    usage: "Usage | None" = None


@dataclass
class Usage:
    """What a judge's labels of a run cost: the calls behind them (labels read from the LLM
    cache made none), their tokens, and the cost at the judge's prices when each was made."""

    calls: int = 0
    from_cache: int = 0
    via_batch: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0


def usage(session: Session, run_id: int) -> dict[tuple[int, str], Usage]:
    """Per judge id x rubric version: the usage of its labels of the run."""
    j = JudgeLabel.__table__  # type: ignore[attr-defined]
    r = Reply.__table__  # type: ignore[attr-defined]
    cached = func.sum(case((j.c.from_cache, 1), else_=0))
    batched = func.sum(case((j.c.via_batch, 1), else_=0))
    rows = session.execute(
        select(
            j.c.judge_model_id,
            j.c.rubric_version,
            func.count(),
            cached,
            batched,
            func.coalesce(func.sum(j.c.tokens_in), 0),
            func.coalesce(func.sum(j.c.tokens_out), 0),
            func.coalesce(func.sum(j.c.cost_usd), 0.0),
        )
        .select_from(j.join(r, r.c.id == j.c.reply_id))
        .where(r.c.run_id == run_id)
        .group_by(j.c.judge_model_id, j.c.rubric_version)
    ).all()
    return {
        (int(judge_id), str(version)): Usage(
            calls=int(n) - int(hits or 0),
            from_cache=int(hits or 0),
            via_batch=int(via or 0),
            tokens_in=int(tin),
            tokens_out=int(tout),
            cost_usd=float(cost),
        )
        for judge_id, version, n, hits, via, tin, tout, cost in rows
    }


@dataclass
class BatchView:
    judge: str
    rubric_version: str
    batch_id: str
    status: str
    requests: int


@dataclass
class JudgePanel:
    run_id: int
    done_replies: int
    choices: list[ModelConfig]
    summaries: list[JudgeSummary]
    jobs: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    batches: list[BatchView] = field(default_factory=list)  # Batch API batches under way

    @property
    def working(self) -> int:
        return self.jobs.get(JobStatus.todo.value, 0) + self.jobs.get(JobStatus.doing.value, 0)


LabelCount = tuple[int, str, int, int, int]  # judge id, rubric version, labels, labelled, last id


def label_counts(session: Session, run_id: int) -> list[LabelCount]:
    """Per judge x rubric version of the run: its labels, those with a label, the last label id.
    One scan of the run's replies, which the results page shares between its parts."""
    j = JudgeLabel.__table__  # type: ignore[attr-defined]
    r = Reply.__table__  # type: ignore[attr-defined]
    # Counted per judge id, named afterwards: with model_configs in the join, SQLite's plan
    # scans the run's replies once per config.
    rows = session.execute(
        select(
            j.c.judge_model_id,
            j.c.rubric_version,
            func.count(),
            func.count(j.c.label),
            func.max(j.c.id),
        )
        .select_from(j.join(r, r.c.id == j.c.reply_id))
        .where(r.c.run_id == run_id)
        .group_by(j.c.judge_model_id, j.c.rubric_version)
        .order_by(j.c.judge_model_id, j.c.rubric_version)
    ).all()
    return [(int(a), str(b), int(c), int(d), int(e)) for a, b, c, d, e in rows]


def panel(
    session: Session,
    run_id: int,
    done_replies: int | None = None,
    counted: list[LabelCount] | None = None,
) -> JudgePanel:
    """The run's judges, their labels and jobs. ``done_replies`` and ``counted``
    (``label_counts``): what the caller has counted already (the results page has)."""
    r = Reply.__table__  # type: ignore[attr-defined]
    mc = ModelConfig.__table__  # type: ignore[attr-defined]
    found = label_counts(session, run_id) if counted is None else counted
    counts = [
        (judge_id, version, total, labelled) for judge_id, version, total, labelled, _ in found
    ]
    judge_ids = sorted({judge_id for judge_id, *_ in counts})
    names: dict[int, str] = (
        dict(session.execute(select(mc.c.id, mc.c.name).where(mc.c.id.in_(judge_ids))).all())
        if judge_ids
        else {}
    )
    used = usage(session, run_id) if counts else {}
    rows = sorted(
        (names[judge_id], version, total, labelled, used.get((judge_id, version)))
        for judge_id, version, total, labelled in counts
    )
    done = (
        done_replies
        if done_replies is not None
        else session.execute(
            select(func.count()).where(r.c.run_id == run_id, r.c.status == ReplyStatus.done.value)
        ).scalar_one()
    )
    group = group_key(run_id)
    return JudgePanel(
        run_id=run_id,
        done_replies=int(done),
        choices=judge_choices(session),
        summaries=[
            JudgeSummary(name, version, int(total), int(total) - int(with_label), spent)
            for name, version, total, with_label, spent in rows
        ],
        jobs=queue.group_counts(session, group),
        errors=[error for _id, error in queue.group_errors(session, group, limit=5)],
        batches=_open_batches(session, run_id),
    )


def _open_batches(session: Session, run_id: int) -> list[BatchView]:
    rows = session.exec(
        sm_select(JudgeBatch, ModelConfig.name)
        .join(ModelConfig, col(ModelConfig.id) == col(JudgeBatch.judge_model_id))
        .where(JudgeBatch.run_id == run_id, col(JudgeBatch.finished_at).is_(None))
        .order_by(col(JudgeBatch.id))
    ).all()
    return [
        BatchView(name, b.rubric_version, b.batch_id, b.status or "submitting", len(b.reply_ids))
        for b, name in rows
        if b.batch_id
    ]
