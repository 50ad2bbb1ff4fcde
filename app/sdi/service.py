"""SDI datasets: gather the pipeline's inputs from the database, build, store, export, browse."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, insert
from sqlmodel import Session, col, select

from app.models import (
    ModelConfig,
    QuestionSet,
    SdiDataset,
    SdiExample,
    SdiMode,
    SdiStatus,
)
from app.sdi import banks, preprocessing
from app.sdi.inputs import (
    load_general_data,
    load_questions,
    model_writer,
    prompt_options,
    store_general_data,
    token_counter,
    verdict_parser,
    wrong_statements,
)
from app.sdi.integration import GeneralDataError
from app.sdi.pipeline import (
    LeakageError,
    PipelineInputs,
    PipelineResult,
    check_leakage,
    run_pipeline,
)
from app.sdi.schemas import BuildConfig, SdiError
from app.sdi.text import conversation_hash
from app.sdi.types import Draft

__all__ = [
    "GeneralDataError",
    "LeakageError",
    "SdiError",
    "build_dataset",
    "create_in_context_model",
    "export_lines",
]

ExportFormat = Literal["openai", "hf"]
SPLITS = ("train", "validation")


def get(session: Session, dataset_id: int) -> SdiDataset | None:
    return session.get(SdiDataset, dataset_id)


def get_by_name(session: Session, name: str) -> SdiDataset | None:
    return session.exec(select(SdiDataset).where(SdiDataset.name == name)).first()


def list_datasets(session: Session) -> list[SdiDataset]:
    return list(session.exec(select(SdiDataset).order_by(col(SdiDataset.id).desc())).all())


def question_sets(session: Session) -> list[QuestionSet]:
    return list(session.exec(select(QuestionSet).order_by(col(QuestionSet.name))).all())


def _validate(session: Session, cfg: BuildConfig) -> None:
    if get_by_name(session, cfg.name) is not None:
        raise SdiError(f"an SDI dataset named {cfg.name!r} already exists")
    if session.get(QuestionSet, cfg.question_set_id) is None:
        raise SdiError(f"no question set with id {cfg.question_set_id}")
    if cfg.test_set_id is not None:
        if cfg.test_set_id == cfg.question_set_id:
            raise SdiError(
                "the training set must not be the test set: split the set first "
                "(the paper experiment does this) or choose another test set"
            )
        if session.get(QuestionSet, cfg.test_set_id) is None:
            raise SdiError(f"no question set with id {cfg.test_set_id} (test set)")
    for label, model_id in (
        ("teacher", cfg.teacher_model_id),
        ("paraphrase", cfg.paraphrase_model_id),
    ):
        if model_id is not None and session.get(ModelConfig, model_id) is None:
            raise SdiError(f"no model config with id {model_id} ({label} model)")


def gather_inputs(
    session: Session, cfg: BuildConfig, general: list[Draft] | None = None
) -> PipelineInputs:
    questions = load_questions(session, cfg.question_set_id)
    if not questions:
        raise SdiError("the training question set has no statements")
    tests = load_questions(session, cfg.test_set_id) if cfg.test_set_id is not None else []
    options = prompt_options(session, cfg.template_source)
    if not options:
        raise SdiError("no prompt templates to build from (no active templates)")
    counter, label = token_counter()
    return PipelineInputs(
        questions=questions,
        options=options,
        parse_verdict=verdict_parser(),
        test_questions=tests,
        general=general or [],
        wrong_statements=(
            wrong_statements(session, cfg.filtration_run_id)
            if cfg.filtration_run_id is not None
            else None
        ),
        count_tokens=counter,
        tokenizer_label=label,
    )


def prepare(
    session: Session, cfg: BuildConfig, general_jsonl: str | None = None
) -> tuple[dict[str, Any], list[Draft]]:
    """Checks a build can run (names, sets, leakage in refuse mode, general data) before
    anything is stored; returns the config to store and the parsed general examples."""
    _validate(session, cfg)
    stored = cfg.model_dump(mode="json")
    general: list[Draft] = []
    if general_jsonl:
        digest, count = store_general_data(general_jsonl)
        stored["general_data"] = {"sha256": digest, "examples": count}
        general = load_general_data(digest)
    check_leakage(cfg, gather_inputs(session, cfg, general))
    return stored, general


def _example_rows(dataset_id: int, drafts: list[Draft]) -> list[dict[str, Any]]:
    rows = []
    for position, draft in enumerate(drafts, start=1):
        kinds = sorted({a.split(":", 1)[0] for a in draft.augmentations})
        origin = draft.origin + ("+" + ",".join(kinds) if kinds else "")
        rows.append(
            {
                "dataset_id": dataset_id,
                "position": position,
                "question_id": draft.question.id if draft.question else None,
                "kind": draft.kind,
                "stance": draft.stance,
                "truth": draft.truth,
                "origin": origin[:40],
                "split": draft.split,
                "messages": draft.messages,
                "norm_hash": conversation_hash(draft.messages),
            }
        )
    return rows


def compute_build(
    session: Session, dataset: SdiDataset, general: list[Draft] | None = None
) -> PipelineResult:
    """Run the pipeline for a stored dataset row (reads only; may call a teacher model)."""
    cfg = BuildConfig.model_validate(
        {k: v for k, v in dataset.config.items() if k != "general_data"}
    )
    if general is None and dataset.config.get("general_data"):
        general = load_general_data(dataset.config["general_data"]["sha256"])
    inputs = gather_inputs(session, cfg, general)
    if cfg.teacher_model_id is not None:
        inputs.teacher = model_writer(session, cfg.teacher_model_id)
    if cfg.paraphrase_model_id is not None:
        inputs.paraphraser = model_writer(session, cfg.paraphrase_model_id)
    result = run_pipeline(cfg, inputs)
    if not result.drafts:
        drops = {
            reason: n for stage in result.stats["stages"] for reason, n in stage["dropped"].items()
        }
        reasons = "; ".join(f"{n} x {reason}" for reason, n in drops.items()) or "no scenario"
        raise SdiError(f"no example survived the pipeline ({reasons})")
    return result


def store_build(session: Session, dataset: SdiDataset, result: PipelineResult) -> None:
    assert dataset.id is not None
    rows = _example_rows(dataset.id, result.drafts)
    for start in range(0, len(rows), 500):
        session.execute(insert(SdiExample), rows[start : start + 500])
    dataset.stats = result.stats
    dataset.status = SdiStatus.ready
    session.add(dataset)
    session.flush()


def build_dataset(
    session: Session,
    cfg: BuildConfig,
    *,
    general_jsonl: str | None = None,
    created_by: int | None = None,
) -> SdiDataset:
    """Build an SDI dataset now (raises SdiError, LeakageError or GeneralDataError)."""
    stored, general = prepare(session, cfg, general_jsonl)
    dataset = _new_dataset(session, cfg, stored, created_by, status=SdiStatus.building)
    store_build(session, dataset, compute_build(session, dataset, general))
    return dataset


def start_build(
    session: Session,
    cfg: BuildConfig,
    *,
    general_jsonl: str | None = None,
    created_by: int | None = None,
) -> SdiDataset:
    """Check the build, store the dataset row and queue the build as a background job
    (for builds that call a model: a teacher or a paraphraser)."""
    from app.jobs.queue import enqueue

    stored, _general = prepare(session, cfg, general_jsonl)
    dataset = _new_dataset(session, cfg, stored, created_by, status=SdiStatus.queued)
    enqueue(
        session,
        "sdi.build",
        {"dataset_id": dataset.id},
        lock_key=f"sdi.build:{dataset.id}",
        group_key=f"sdi:{dataset.id}",
        max_attempts=1,
    )
    return dataset


def _new_dataset(
    session: Session,
    cfg: BuildConfig,
    stored: dict[str, Any],
    created_by: int | None,
    status: SdiStatus,
) -> SdiDataset:
    dataset = SdiDataset(
        name=cfg.name,
        question_set_id=cfg.question_set_id,
        test_set_id=cfg.test_set_id,
        seed=cfg.seed,
        status=status,
        config=stored,
        stats={},
        created_by=created_by,
    )
    session.add(dataset)
    session.flush()
    return dataset


def mark_failed(session: Session, dataset: SdiDataset, error: str) -> None:
    dataset.status = SdiStatus.failed
    dataset.stats = {**(dataset.stats or {}), "error": error[:2000]}
    session.add(dataset)
    session.flush()


def delete_dataset(session: Session, dataset: SdiDataset) -> None:
    in_use = session.exec(
        select(func.count())
        .select_from(ModelConfig)
        .where(ModelConfig.sdi_dataset_id == dataset.id)
    ).one()
    if in_use:
        raise SdiError(f"dataset {dataset.name!r} is used by {in_use} model config(s)")
    session.delete(dataset)
    session.flush()


# Export and browsing


def export_lines(
    session: Session, dataset_id: int, fmt: ExportFormat, split: str | None = "train"
) -> Iterator[str]:
    """The dataset as JSONL lines (each ending in a newline), in position order."""
    if fmt not in ("openai", "hf"):
        raise SdiError(f"unknown export format {fmt!r}: openai or hf")
    if split is not None and split not in SPLITS:
        raise SdiError(f"unknown split {split!r}: train or validation")
    query = select(SdiExample).where(SdiExample.dataset_id == dataset_id)
    if split is not None:
        query = query.where(SdiExample.split == split)
    query = query.order_by(col(SdiExample.position)).execution_options(yield_per=500)
    for example in session.exec(query):
        if fmt == "openai":
            record = preprocessing.openai_record(example.messages)
        else:
            record = preprocessing.hf_record(
                example.messages, example.kind, example.stance, example.truth, example.origin
            )
        yield preprocessing.dumps(record) + "\n"


def export_text(session: Session, dataset_id: int, fmt: ExportFormat, split: str | None) -> str:
    return "".join(export_lines(session, dataset_id, fmt, split))


@dataclass
class ExamplePage:
    examples: list[SdiExample]
    page: int
    pages: int
    total: int


def example_page(
    session: Session,
    dataset_id: int,
    page: int = 1,
    per_page: int = 20,
    split: str | None = None,
    kind: str | None = None,
) -> ExamplePage:
    conditions = [SdiExample.dataset_id == dataset_id]
    if split:
        conditions.append(SdiExample.split == split)
    if kind:
        conditions.append(SdiExample.kind == kind)
    total = session.exec(select(func.count()).select_from(SdiExample).where(*conditions)).one()
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = session.exec(
        select(SdiExample)
        .where(*conditions)
        .order_by(col(SdiExample.position))
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return ExamplePage(examples=list(rows), page=page, pages=pages, total=total)


def train_count(session: Session, dataset_id: int) -> int:
    return session.exec(
        select(func.count())
        .select_from(SdiExample)
        .where(SdiExample.dataset_id == dataset_id, SdiExample.split == "train")
    ).one()


# In-context SDI model


def create_in_context_model(
    session: Session,
    *,
    base: ModelConfig,
    dataset: SdiDataset,
    shots: int,
    seed: int,
    name: str,
    system_prompt: str | None = None,
) -> ModelConfig:
    """An SDI model config: the base model with a system prompt and ``shots`` synthetic turns
    drawn (seeded) from the dataset's training split. Decoding settings are the base's."""
    if dataset.status != SdiStatus.ready:
        raise SdiError(f"dataset {dataset.name!r} is not ready ({dataset.status})")
    if train_count(session, dataset.id or 0) == 0:
        raise SdiError(f"dataset {dataset.name!r} has no training examples")
    if session.exec(select(ModelConfig).where(ModelConfig.name == name)).first() is not None:
        raise SdiError(f"a model named {name!r} already exists", field="name")
    copied = {
        field: getattr(base, field)
        for field in (
            "provider",
            "model_id",
            "base_url",
            "api_key_env",
            "temperature",
            "max_tokens",
            "top_p",
            "seed",
            "price_input_per_1k",
            "price_output_per_1k",
            "max_concurrency",
            "timeout_s",
        )
    }
    if base.sdi_mode == SdiMode.fine_tuned.value and base.fine_tuned_model_id:
        copied["model_id"] = base.fine_tuned_model_id
    config = ModelConfig(
        name=name,
        **copied,
        system_prompt=banks.DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt,
        sdi_mode=SdiMode.in_context.value,
        sdi_dataset_id=dataset.id,
        sdi_shots=shots,
        sdi_seed=seed,
        extra={**(base.extra or {}), "sdi_base_model_config_id": base.id},
    )
    session.add(config)
    session.flush()
    return config
