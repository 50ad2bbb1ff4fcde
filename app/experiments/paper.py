"""The paper's experiment in one action.

Split a question set into training and test statements (seeded, stratified by truth and
category; duplicates stay on one side), build SDI data from the training part with the
leakage check against the test part, make the in-context SDI model from a base model, start
the baseline-vs-SDI run on the test part with every active variant template (or the chosen
ones), and open rating. ``prepare`` and ``start_run`` are the two halves, so that a caller can
add arms in between (a model trained on the SDI data: see ``sdilab experiment paper --train``).
"""

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from app.models import (
    ModelConfig,
    Question,
    QuestionSet,
    RatingRound,
    Run,
    SdiDataset,
    VariantTemplate,
)
from app.sdi import service
from app.sdi.schemas import BuildConfig


@dataclass
class ExperimentConfig:
    model_id: int
    set_id: int
    test_fraction: float = 0.3
    seed: int = 0
    limit: int | None = None  # statements of the test part sent to the models
    shots: int = 8
    size: int | None = None
    leakage: str = "remove"
    samples: int = 1
    raters_per_reply: int = 2
    # Humans rate a stratified random sample of this many replies, drawn once the replies are
    # done (``open_human_sample``), instead of every reply; None: every reply, as they finish.
    human_sample: int | None = None
    # Variant templates by name; None: every active template.
    template_names: list[str] | None = None


@dataclass
class Prepared:
    base: ModelConfig
    source: QuestionSet
    train_set: QuestionSet
    test_set: QuestionSet
    dataset: SdiDataset
    sdi_model: ModelConfig


@dataclass
class PaperExperiment:
    train_set: QuestionSet
    test_set: QuestionSet
    dataset: SdiDataset
    sdi_model: ModelConfig
    run: Run
    rating_round: RatingRound | None


def unique_name(session: Session, model: Any, base: str) -> str:
    name, n = base[:120], 2
    while session.exec(select(model).where(model.name == name)).first() is not None:
        suffix = f" ({n})"
        name, n = base[: 120 - len(suffix)] + suffix, n + 1
    return name


def _clusters(questions: list[Question]) -> list[list[Question]]:
    """Each statement with the rows that duplicate it (so a duplicate never crosses sides)."""
    by_id = {q.id: q for q in questions}

    def root(q: Question) -> Question:
        seen = set()
        while q.duplicate_of_id in by_id and q.id not in seen:
            seen.add(q.id)
            q = by_id[q.duplicate_of_id]
        return q

    groups: dict[int | None, list[Question]] = defaultdict(list)
    for q in questions:
        groups[root(q).id].append(q)
    return list(groups.values())


def split_questions(
    questions: list[Question], test_fraction: float, seed: int
) -> tuple[list[Question], list[Question]]:
    """Seeded split stratified by truth and category; sizes follow the fraction overall."""
    if not 0.0 < test_fraction < 1.0:
        raise service.SdiError("the test fraction must be between 0 and 1")
    rng = random.Random(seed)
    strata: dict[tuple[bool, str], list[list[Question]]] = defaultdict(list)
    for cluster in _clusters(questions):
        strata[(cluster[0].truth, cluster[0].category)].append(cluster)
    test_ids: set[int | None] = set()
    carried = 0.0
    for key in sorted(strata):
        clusters = strata[key]
        rng.shuffle(clusters)
        carried += len(clusters) * test_fraction
        take = math.floor(carried + 0.5)
        carried -= take
        for cluster in clusters[:take]:
            test_ids.update(q.id for q in cluster)
    train = [q for q in questions if q.id not in test_ids]
    test = [q for q in questions if q.id in test_ids]
    if not train or not test:
        raise service.SdiError("the set is too small to split into training and test parts")
    return train, test


def copy_set(
    session: Session, source: QuestionSet, questions: list[Question], name: str, note: str
) -> QuestionSet:
    copy = QuestionSet(
        name=unique_name(session, QuestionSet, name),
        description=note,
        source_filename=source.source_filename,
        created_by=source.created_by,
    )
    session.add(copy)
    session.flush()
    rows = []
    for position, q in enumerate(questions, start=1):
        row = Question(
            question_set_id=copy.id or 0,
            position=position,
            source_id=q.source_id,
            statement=q.statement,
            negation=q.negation,
            truth=q.truth,
            category=q.category,
            explanation=q.explanation,
            norm_hash=q.norm_hash,
            duplicate_similarity=q.duplicate_similarity,
            duplicate_conflict=q.duplicate_conflict,
        )
        session.add(row)
        rows.append((q, row))
    session.flush()
    new_ids = {q.id: row.id for q, row in rows}
    for q, row in rows:
        if q.duplicate_of_id in new_ids:
            row.duplicate_of_id = new_ids[q.duplicate_of_id]
            session.add(row)
    session.flush()
    return copy


def prepare(session: Session, cfg: ExperimentConfig, *, created_by: int | None = None) -> Prepared:
    """Split the set, build the SDI data from the training part, make the in-context model."""
    base = session.get(ModelConfig, cfg.model_id)
    if base is None:
        raise service.SdiError(f"no model config with id {cfg.model_id}")
    source = session.get(QuestionSet, cfg.set_id)
    if source is None:
        raise service.SdiError(f"no question set with id {cfg.set_id}")
    questions = list(
        session.exec(
            select(Question)
            .where(Question.question_set_id == source.id)
            .order_by(col(Question.position))
        ).all()
    )
    train_q, test_q = split_questions(questions, cfg.test_fraction, cfg.seed)
    tag = f"seed {cfg.seed}, test {cfg.test_fraction:g}"
    note = f"Split of {source.name!r} ({tag}), stratified by truth and category."
    train_set = copy_set(session, source, train_q, f"{source.name} · train ({tag})", note)
    test_set = copy_set(session, source, test_q, f"{source.name} · test ({tag})", note)

    dataset = service.build_dataset(
        session,
        BuildConfig(
            name=unique_name(session, SdiDataset, f"SDI · {train_set.name}"),
            question_set_id=train_set.id or 0,
            test_set_id=test_set.id,
            seed=cfg.seed,
            size=cfg.size,
            leakage="remove" if cfg.leakage == "remove" else "refuse",
        ),
        created_by=created_by,
    )
    sdi_model = service.create_in_context_model(
        session,
        base=base,
        dataset=dataset,
        shots=cfg.shots,
        seed=cfg.seed,
        name=unique_name(session, ModelConfig, f"{base.name} + SDI ({cfg.shots} shots)"),
    )
    return Prepared(base, source, train_set, test_set, dataset, sdi_model)


def _template_ids(session: Session, names: list[str] | None) -> list[int] | None:
    if names is None:
        return None
    found = {
        t.name: t.id
        for t in session.exec(
            select(VariantTemplate).where(col(VariantTemplate.name).in_(names))
        ).all()
    }
    missing = [n for n in names if n not in found]
    if missing:
        raise service.SdiError(f"no variant template named {', '.join(map(repr, missing))}")
    return [found[n] or 0 for n in names]


def start_run(
    session: Session,
    cfg: ExperimentConfig,
    prepared: Prepared,
    *,
    extra_arms: Sequence[tuple[ModelConfig, str]] = (),
    created_by: int | None = None,
) -> PaperExperiment:
    """The run on the test part (baseline, in-context SDI, then ``extra_arms``), and rating."""
    from app.rating.service import open_round
    from app.runs.schemas import ArmCreate, RunCreate
    from app.runs.service import create_run

    base, test_set, dataset, sdi_model = (
        prepared.base,
        prepared.test_set,
        prepared.dataset,
        prepared.sdi_model,
    )
    arms = [
        ArmCreate(model_config_id=base.id or 0, label="baseline"),
        ArmCreate(model_config_id=sdi_model.id or 0, label="sdi"),
        *[ArmCreate(model_config_id=m.id or 0, label=label) for m, label in extra_arms],
    ]
    run = create_run(
        session,
        RunCreate(
            question_set_id=test_set.id or 0,
            arms=arms,
            name=f"Paper experiment · {base.name} vs SDI · {test_set.name}",
            template_ids=_template_ids(session, cfg.template_names),
            limit=cfg.limit,
            samples=cfg.samples,
            seed=cfg.seed,
        ),
        created_by=created_by,
    )
    run.config = {
        **run.config,
        "experiment": {
            "kind": "paper",
            "source_set": prepared.source.name,
            "train_set": prepared.train_set.name,
            "test_set": test_set.name,
            "test_fraction": cfg.test_fraction,
            "seed": cfg.seed,
            "sdi_dataset": {"id": dataset.id, "name": dataset.name, "config": dataset.config},
            "sdi_model": {"id": sdi_model.id, "shots": cfg.shots, "seed": cfg.seed},
            "extra_arms": [{"label": label, "model_config_id": m.id} for m, label in extra_arms],
        },
    }
    session.add(run)
    session.flush()
    rating_round = None
    if cfg.human_sample is None:
        rating_round = open_round(
            session,
            run_ids=[run.id or 0],
            name=f"Paper experiment · {base.name}",
            raters_per_reply=cfg.raters_per_reply,
            seed=cfg.seed,
            created_by=created_by,
        )
    return PaperExperiment(prepared.train_set, test_set, dataset, sdi_model, run, rating_round)


def open_human_sample(
    session: Session, run: Run, cfg: ExperimentConfig, *, created_by: int | None = None
) -> RatingRound:
    """The human round of an experiment whose humans rate a sample: a stratified random sample
    (arm x variant kind) of the run's done replies, each with its inclusion probability, so
    that judge + humans (PPI) stay valid."""
    from app.rating.service import open_round

    assert cfg.human_sample is not None
    return open_round(
        session,
        run_ids=[run.id or 0],
        name=f"Paper experiment · human sample of {cfg.human_sample}",
        raters_per_reply=cfg.raters_per_reply,
        seed=cfg.seed,
        created_by=created_by,
        sample_size=cfg.human_sample,
    )


def run_paper_experiment(
    session: Session, cfg: ExperimentConfig, *, created_by: int | None = None
) -> PaperExperiment:
    return start_run(
        session, cfg, prepare(session, cfg, created_by=created_by), created_by=created_by
    )
