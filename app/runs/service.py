"""Runs: create (render variants, one reply slot per prompt x arm x sample, one job each),
progress, cancel, resume, retry. Services flush; the caller commits (jobs go out then)."""

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, case, func, insert, select, update
from sqlmodel import Session, col

from app.jobs import queue
from app.llm import statement_verdicts
from app.metrics import snapshots
from app.model_configs.service import build_spec, is_imported_placeholder
from app.models import (
    ModelConfig,
    PromptVariant,
    Question,
    QuestionSet,
    Response,
    ResponseStatus,
    Run,
    RunArm,
    RunStatus,
    Stance,
    VariantKind,
    VariantTemplate,
    utcnow,
)
from app.rating import tallies
from app.runs.schemas import ArmProgress, RunCreate, RunProgress
from app.variants.render import render_variant

GENERATE_TASK = "runs.generate"
BATCH_TASK = "runs.batch"
RESPONSES = Response.__table__  # type: ignore[attr-defined]
VARIANTS = PromptVariant.__table__  # type: ignore[attr-defined]
RUNS = Run.__table__  # type: ignore[attr-defined]
PENDING, DONE, FAILED, CANCELLED = (s.value for s in ResponseStatus)
# Rows per multi-row insert; keeps statements below the drivers' parameter limits.
CHUNK = 2000
RATE_WINDOW_S = 60
# Seconds between polls of a Batch API batch (tests shorten it).
BATCH_POLL_S = 30.0


class RunError(ValueError):
    """A run that cannot be created or changed as asked."""


def group_key(run_id: int) -> str:
    return f"run:{run_id}"


def _chunks(rows: list[dict[str, Any]]) -> Any:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]


def _insert_returning_ids(session: Session, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    ids: list[int] = []
    stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    for chunk in _chunks(rows):
        ids.extend(int(i) for i in session.execute(stmt, chunk).scalars())
    return ids


def _questions(
    session: Session, question_set_id: int, limit: int | None, seed: int
) -> list[Question]:
    questions = list(
        session.scalars(
            select(Question)
            .where(col(Question.question_set_id) == question_set_id)
            .order_by(col(Question.position))
        )
    )
    if limit is not None and limit < len(questions):
        chosen = random.Random(seed).sample(questions, limit)
        questions = sorted(chosen, key=lambda q: q.position)
    return questions


def _templates(session: Session, template_ids: list[int] | None) -> list[VariantTemplate]:
    query = select(VariantTemplate).order_by(col(VariantTemplate.id))
    if template_ids is None:
        query = query.where(col(VariantTemplate.is_active).is_(True))
    else:
        query = query.where(col(VariantTemplate.id).in_(template_ids))
    templates = list(session.scalars(query))
    if template_ids is not None:
        missing = set(template_ids) - {t.id for t in templates}
        if missing:
            raise RunError(f"unknown template id(s): {sorted(missing)}")
    return templates


def create_run(session: Session, data: RunCreate, created_by: int | None = None) -> Run:
    """Render the prompts, create every reply slot pending, and enqueue one job per slot."""
    question_set = session.get(QuestionSet, data.question_set_id)
    if question_set is None:
        raise RunError(f"question set {data.question_set_id} does not exist")
    configs: list[ModelConfig] = []
    for arm in data.arms:
        config = session.get(ModelConfig, arm.model_config_id)
        if config is None:
            raise RunError(f"model config {arm.model_config_id} does not exist")
        if is_imported_placeholder(config):
            raise RunError(
                f"model config {config.name!r} only holds imported replies: "
                "there is no model to call"
            )
        configs.append(config)
    questions = _questions(session, question_set.id or 0, data.limit, data.seed)
    if not questions:
        raise RunError(f"question set {question_set.name!r} has no statements")
    templates = _templates(session, data.template_ids)
    if not templates:
        raise RunError("no templates: choose at least one (or activate some)")

    specs = [build_spec(session, config) for config in configs]
    arm_config = [
        {
            "label": arm.label,
            "model_config_id": config.id,
            "max_concurrency": config.max_concurrency,
            "spec": spec.model_dump(mode="json"),
        }
        for arm, config, spec in zip(data.arms, configs, specs, strict=True)
    ]
    run = Run(
        name=data.name.strip() or f"{question_set.name} · {' vs '.join(c.name for c in configs)}",
        question_set_id=question_set.id or 0,
        seed=data.seed,
        samples=data.samples,
        question_limit=data.limit,
        show_reference=data.show_reference,
        use_batch_api=data.use_batch_api,
        created_by=created_by,
        config={
            "question_set": question_set.name,
            "question_ids": [q.id for q in questions],
            "seed": data.seed,
            "limit": data.limit,
            "samples": data.samples,
            "use_batch_api": data.use_batch_api,
            "templates": [
                {
                    "id": t.id,
                    "name": t.name,
                    "kind": t.kind,
                    "stance": t.stance,
                    "text": t.text,
                    "followup": t.followup,
                }
                for t in templates
            ],
            "arms": arm_config,
        },
    )
    session.add(run)
    session.flush()
    assert run.id is not None
    arms = []
    for position, (arm, config, spec) in enumerate(zip(data.arms, configs, specs, strict=True)):
        row = RunArm(
            run_id=run.id,
            model_config_id=config.id or 0,
            label=arm.label,
            position=position,
            snapshot={
                **spec.model_dump(mode="json"),
                "model_config_id": config.id,
                "max_concurrency": config.max_concurrency,
            },
        )
        session.add(row)
        arms.append(row)
    session.flush()

    variant_rows = []
    for question in questions:
        for template in templates:
            rendered = render_variant(template, question)
            variant_rows.append(
                {
                    "run_id": run.id,
                    "question_id": question.id,
                    "template_id": template.id,
                    "kind": rendered.kind,
                    "stance": rendered.stance,
                    "premise_erroneous": rendered.premise_erroneous,
                    "messages": rendered.messages,
                    "followup": rendered.followup,
                }
            )
    variant_ids = _insert_returning_ids(session, VARIANTS, variant_rows)

    now = utcnow()
    slots = [
        (variant_id, arm, sample)
        for variant_id in variant_ids
        for arm in arms
        for sample in range(data.samples)
    ]
    response_ids = _insert_returning_ids(
        session,
        RESPONSES,
        [
            {
                "run_id": run.id,
                "prompt_variant_id": variant_id,
                "arm_id": arm.id,
                "sample_index": sample,
                "status": PENDING,
                "transcript": [],
                "created_at": now,
            }
            for variant_id, arm, sample in slots
        ],
    )
    if data.use_batch_api:
        _enqueue_batches(session, run, arms)
    else:
        _enqueue_generate(session, run, response_ids, [arm for _v, arm, _s in slots])
    return run


def generate_job(run_id: int, response_id: int, arm: RunArm) -> dict[str, Any]:
    snapshot = arm.snapshot
    return {
        "task": GENERATE_TASK,
        "args": {
            "response_id": response_id,
            "max_concurrency": int(snapshot.get("max_concurrency", 4)),
            # Two calls for pushback, each up to the model's timeout.
            "timeout_s": 2 * float(snapshot.get("timeout_s", 120.0)) + 30.0,
        },
        "lock_key": f"response:{response_id}",
        "concurrency_key": f"model:{arm.model_config_id}",
        "group_key": group_key(run_id),
    }


def _enqueue_generate(
    session: Session, run: Run, response_ids: list[int], arms: list[RunArm]
) -> None:
    assert run.id is not None
    jobs = [generate_job(run.id, rid, arm) for rid, arm in zip(response_ids, arms, strict=True)]
    for chunk in _chunks(jobs):
        queue.enqueue_many(session, chunk)


def _enqueue_batches(session: Session, run: Run, arms: list[RunArm]) -> None:
    assert run.id is not None
    for arm in arms:
        queue.enqueue(
            session,
            BATCH_TASK,
            {"run_id": run.id, "arm_id": arm.id, "poll_s": BATCH_POLL_S},
            lock_key=f"batch:{run.id}:{arm.id}",
            group_key=group_key(run.id),
            concurrency_key=f"model:{arm.model_config_id}",
            max_attempts=20,
        )


# -- reading -----------------------------------------------------------------------------------


def list_runs(session: Session, limit: int = 200) -> list[Run]:
    return list(session.scalars(select(Run).order_by(col(Run.id).desc()).limit(limit)))


def arms_of(session: Session, run_id: int) -> list[RunArm]:
    return list(
        session.scalars(
            select(RunArm).where(col(RunArm.run_id) == run_id).order_by(col(RunArm.position))
        )
    )


def status_counts(session: Session, run_ids: list[int]) -> dict[int, dict[str, int]]:
    """{run id: {status: replies}} for a page of runs, in one query."""
    counts: dict[int, dict[str, int]] = {rid: {} for rid in run_ids}
    if not run_ids:
        return counts
    rows = session.execute(
        select(RESPONSES.c.run_id, RESPONSES.c.status, func.count())
        .where(RESPONSES.c.run_id.in_(run_ids))
        .group_by(RESPONSES.c.run_id, RESPONSES.c.status)
    ).all()
    for run_id, status, n in rows:
        counts[run_id][status] = int(n)
    return counts


def progress(session: Session, run: Run) -> RunProgress:
    assert run.id is not None
    arms = arms_of(session, run.id)
    result = RunProgress(run_id=run.id, status=run.status)
    per_arm = {
        arm.id: ArmProgress(
            arm_id=arm.id or 0, label=arm.label, model=str(arm.snapshot.get("name", ""))
        )
        for arm in arms
    }
    rows = session.execute(
        select(
            RESPONSES.c.arm_id,
            RESPONSES.c.status,
            func.count(),
            func.coalesce(func.sum(RESPONSES.c.tokens_in), 0),
            func.coalesce(func.sum(RESPONSES.c.tokens_out), 0),
            func.coalesce(func.sum(RESPONSES.c.cost_usd), 0.0),
            func.sum(case((RESPONSES.c.error != "", 1), else_=0)),
        )
        .where(RESPONSES.c.run_id == run.id)
        .group_by(RESPONSES.c.arm_id, RESPONSES.c.status)
    ).all()
    for arm_id, status, n, tin, tout, cost, with_error in rows:
        n, tin, tout, cost = int(n), int(tin), int(tout), float(cost)
        arm_progress = per_arm.get(arm_id)
        result.total += n
        if status in (DONE, FAILED, PENDING, CANCELLED):
            setattr(result, status, getattr(result, status) + n)
        if status == PENDING:
            result.retrying += int(with_error or 0)
        result.tokens_in += tin
        result.tokens_out += tout
        result.cost_usd += cost
        if arm_progress is not None:
            if status in (DONE, FAILED, PENDING):
                setattr(arm_progress, status, getattr(arm_progress, status) + n)
            arm_progress.tokens_in += tin
            arm_progress.tokens_out += tout
            arm_progress.cost_usd += cost
    result.arms = list(per_arm.values())
    if run.status == RunStatus.running.value and result.pending:
        since = utcnow() - timedelta(seconds=RATE_WINDOW_S)
        recent = session.execute(
            select(func.count(), func.min(RESPONSES.c.completed_at)).where(
                RESPONSES.c.run_id == run.id,
                RESPONSES.c.status == DONE,
                RESPONSES.c.completed_at >= since,
            )
        ).one()
        done_recently = int(recent[0])
        if done_recently:
            window = max(1.0, (utcnow() - max(since, run.created_at)).total_seconds())
            result.rate_per_s = done_recently / window
            result.eta_s = result.pending / result.rate_per_s
    return result


@dataclass
class ReplyRow:
    id: int
    status: str
    arm: str
    kind: str
    stance: str
    prompt: str
    text: str
    verdict: str
    sample_index: int
    error: str
    attempts: int


def replies(
    session: Session, run_id: int, *, status: str | None = None, page: int = 1, per_page: int = 50
) -> tuple[list[ReplyRow], int]:
    """A page of a run's replies with their prompt and arm; and the number of matching rows."""
    where = [RESPONSES.c.run_id == run_id]
    if status:
        where.append(RESPONSES.c.status == status)
    total = int(session.execute(select(func.count()).where(*where)).scalar_one())
    arms = RunArm.__table__  # type: ignore[attr-defined]
    rows = session.execute(
        select(
            RESPONSES.c.id,
            RESPONSES.c.status,
            arms.c.label,
            VARIANTS.c.kind,
            VARIANTS.c.stance,
            VARIANTS.c.messages,
            RESPONSES.c.text,
            RESPONSES.c.verdict,
            RESPONSES.c.sample_index,
            RESPONSES.c.error,
            RESPONSES.c.attempts,
        )
        .join(VARIANTS, VARIANTS.c.id == RESPONSES.c.prompt_variant_id)
        .join(arms, arms.c.id == RESPONSES.c.arm_id)
        .where(*where)
        .order_by(RESPONSES.c.prompt_variant_id, arms.c.position, RESPONSES.c.sample_index)
        .limit(per_page)
        .offset((max(1, page) - 1) * per_page)
    ).all()
    out = [
        ReplyRow(
            id=r[0],
            status=r[1],
            arm=r[2],
            kind=r[3],
            stance=r[4],
            prompt=str((r[5] or [{}])[-1].get("content", "")),
            text=r[6],
            verdict=r[7],
            sample_index=r[8],
            error=r[9],
            attempts=r[10],
        )
        for r in rows
    ]
    return out, total


# -- control -----------------------------------------------------------------------------------


def _responses(session: Session, run_id: int, from_status: str, **values: Any) -> int:
    result = session.execute(
        update(RESPONSES)
        .where(RESPONSES.c.run_id == run_id, RESPONSES.c.status == from_status)
        .values(**values)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def cancel_run(session: Session, run: Run) -> int:
    """Stop a run: its queued jobs are cancelled, its pending replies marked cancelled."""
    assert run.id is not None
    if run.status == RunStatus.completed.value:
        raise RunError("the run has completed")
    queue.cancel_group(session, group_key(run.id))
    n = _responses(session, run.id, PENDING, status=CANCELLED)
    run.status = RunStatus.cancelled.value
    run.finished_at = utcnow()
    session.add(run)
    session.flush()
    return n


def resume_run(session: Session, run: Run) -> int:
    """Continue a cancelled run where it stopped."""
    assert run.id is not None
    if run.status != RunStatus.cancelled.value:
        raise RunError("only a cancelled run can be resumed")
    n = _responses(session, run.id, CANCELLED, status=PENDING)
    queue.resume_group(session, group_key(run.id))
    _reopen(session, run, n)
    return n


def retry_failed(session: Session, run: Run) -> int:
    """Send a run's failed replies back to the queue with a fresh attempt budget."""
    assert run.id is not None
    if run.status == RunStatus.cancelled.value:
        raise RunError("the run is cancelled: resume it first")
    n = _responses(session, run.id, FAILED, status=PENDING, attempts=0)
    queue.retry_failed(session, group_key(run.id))
    if n:
        _reopen(session, run, n)
    return n


def _reopen(session: Session, run: Run, pending: int) -> None:
    run.status = RunStatus.running.value if pending else RunStatus.completed.value
    run.finished_at = None if pending else utcnow()
    session.add(run)
    session.flush()


def complete_if_finished(engine: Engine, run_id: int) -> bool:
    """Mark a running run completed once none of its replies is pending.

    Called by each job after its own commit: the last job to commit sees no pending reply,
    so no run is left running, on SQLite and on Postgres alike.
    """
    with engine.connect() as conn:
        pending = conn.execute(
            select(RESPONSES.c.id)
            .where(RESPONSES.c.run_id == run_id, RESPONSES.c.status == PENDING)
            .limit(1)
        ).first()
        if pending is not None:
            return False
    if engine.dialect.name == "sqlite":
        conn = engine.connect().execution_options(sqlite_immediate=True)
    else:
        conn = engine.connect()
    with conn, conn.begin():
        result = conn.execute(
            update(RUNS)
            .where(
                RUNS.c.id == run_id,
                RUNS.c.status == RunStatus.running.value,
                ~select(RESPONSES.c.id)
                .where(RESPONSES.c.run_id == run_id, RESPONSES.c.status == PENDING)
                .exists(),
            )
            .values(status=RunStatus.completed.value, finished_at=utcnow())
        )
        return bool(result.rowcount)


@dataclass(frozen=True)
class Reparsed:
    replies: int  # done replies read
    changed: int  # replies whose verdict or first verdict changed


def reparse_verdicts(session: Session, run_id: int) -> Reparsed:
    """Read every done reply's verdicts again with the current parser (after the parser
    improved; raters' own readings of the verdict are ratings and stay as they are).

    The changed replies are stamped for the results and the run's stored results dropped:
    neither would see a verdict edited in place otherwise.
    """
    rows = session.execute(
        select(
            RESPONSES.c.id,
            RESPONSES.c.text,
            RESPONSES.c.first_text,
            RESPONSES.c.verdict,
            RESPONSES.c.first_verdict,
            VARIANTS.c.stance,
            VARIANTS.c.kind,
        )
        .select_from(RESPONSES.join(VARIANTS, VARIANTS.c.id == RESPONSES.c.prompt_variant_id))
        .where(RESPONSES.c.run_id == run_id, RESPONSES.c.status == DONE)
        .order_by(RESPONSES.c.id)
    ).all()
    updates = []
    for response_id, text, first_text, verdict, first_verdict, stance, kind in rows:
        pushback = kind == VariantKind.pushback.value
        new, new_first = statement_verdicts(
            text, stance == Stance.negates.value, first_text if pushback else None
        )
        new_first_value = new_first.value if new_first is not None else None
        if (new.value, new_first_value) != (verdict, first_verdict):
            updates.append({"_id": response_id, "verdict": new.value, "first": new_first_value})
    if updates:
        statement = (
            update(RESPONSES)
            .where(RESPONSES.c.id == bindparam("_id"))
            .values(verdict=bindparam("verdict"), first_verdict=bindparam("first"))
        )
        for chunk in _chunks(updates):
            session.connection().execute(statement, chunk)
        tallies.touch(session, run_id, [u["_id"] for u in updates])
        snapshots.forget(session, run_id)
    session.flush()
    return Reparsed(replies=len(rows), changed=len(updates))
