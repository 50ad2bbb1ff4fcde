"""What an SDI build reads: the question set, the prompt templates, the statements a model got
wrong (filtration), the general data, and the model configs that write and paraphrase."""

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from app.config import get_settings
from app.models import (
    ModelConfig,
    PromptVariant,
    Question,
    Reply,
    ReplyStatus,
    Run,
    RunArm,
    RunStatus,
    VariantTemplate,
)
from app.sdi.generation import PromptOption, bank_options
from app.sdi.integration import parse_general_jsonl
from app.sdi.openai_format import rough_token_count
from app.sdi.schemas import SdiError
from app.sdi.text import normalise
from app.sdi.types import Draft, Message, QuestionData, Writer


def load_questions(session: Session, set_id: int) -> list[QuestionData]:
    rows = session.exec(
        select(Question).where(Question.question_set_id == set_id).order_by(col(Question.position))
    ).all()
    return [
        QuestionData(
            id=q.id,
            statement=q.statement,
            truth=q.truth,
            negation=q.negation,
            category=q.category,
            explanation=q.explanation,
            source_id=q.source_id,
            conflicting=q.duplicate_conflict,
        )
        for q in rows
    ]


def _transient_question(data: QuestionData) -> Question:
    return Question(
        question_set_id=0,
        position=0,
        statement=data.statement,
        negation=data.negation,
        truth=data.truth,
        category=data.category,
        explanation=data.explanation,
        norm_hash="",
    )


def _template_option(template: VariantTemplate) -> PromptOption:
    from app.variants.render import render_variant

    def render(question: QuestionData, _persona: str) -> tuple[str, str]:
        rendered = render_variant(template, _transient_question(question))
        return str(rendered.messages[0]["content"]), rendered.followup

    return PromptOption(
        name=f"template:{template.name}", kind=template.kind, stance=template.stance, render=render
    )


def prompt_options(session: Session, source: str) -> list[PromptOption]:
    """SDI's prompt bank and/or the app's active variant templates (ordered by name)."""
    options = bank_options() if source in ("bank", "both") else []
    if source in ("templates", "both"):
        templates = session.exec(
            select(VariantTemplate)
            .where(VariantTemplate.is_active == True)  # noqa: E712
            .order_by(col(VariantTemplate.name))
        ).all()
        options += [_template_option(t) for t in templates]
    return options


def wrong_statements(session: Session, run_id: int) -> set[str]:
    """Statements a finished run's model got wrong asked neutrally (verdict != truth).

    Matched by normalised statement text, so a run on another copy of the set works too.
    The baseline arm is used when there is one, else every arm.
    """
    run = session.get(Run, run_id)
    if run is None:
        raise SdiError(f"no run with id {run_id} for filtration")
    if run.status != RunStatus.completed.value:
        raise SdiError(f"run {run.name!r} is not finished ({run.status}); filtration needs one")
    arms = session.exec(select(RunArm).where(RunArm.run_id == run_id)).all()
    arm_ids = [a.id for a in arms if a.label == "baseline"] or [a.id for a in arms]
    rows = session.exec(
        select(Question.statement, Question.truth, Reply.verdict)
        .join(PromptVariant, col(PromptVariant.question_id) == col(Question.id))
        .join(Reply, col(Reply.prompt_variant_id) == col(PromptVariant.id))
        .where(
            Reply.run_id == run_id,
            PromptVariant.kind == "neutral",
            Reply.status == ReplyStatus.done.value,
            col(Reply.arm_id).in_(arm_ids),
        )
    ).all()
    if not rows:
        raise SdiError(f"run {run.name!r} has no finished neutral replies to filter with")
    wrong = set()
    for statement, truth, verdict in rows:
        if verdict != ("true" if truth else "false"):
            wrong.add(normalise(statement))
    return wrong


def verdict_parser() -> Any:
    from app.verdicts import parse_verdict

    return lambda text: str(parse_verdict(text))


def token_counter() -> tuple[Any, str]:
    """The local model's tokenizer through llama.cpp, or a character estimate without it."""
    try:
        from app.llm.local import count_tokens

        count_tokens("probe")
    except Exception:
        return rough_token_count, "about 4 characters per token (local tokenizer unavailable)"
    return count_tokens, "SmolLM2 tokenizer (llama.cpp)"


def model_writer(session: Session, model_config_id: int) -> Writer:
    """A blocking callable that asks a model config for a reply (teacher, paraphraser)."""
    from app.llm import complete
    from app.model_configs.service import build_spec

    config = session.get(ModelConfig, model_config_id)
    if config is None:
        raise SdiError(f"no model config with id {model_config_id}")
    spec = build_spec(session, config)

    def write(messages: list[Message]) -> str:
        turns = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
        return asyncio.run(complete(spec, turns)).text

    return write


def _general_dir() -> Path:
    path = get_settings().data_dir / "sdi"
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_general_data(text: str) -> tuple[str, int]:
    """Validate and keep an uploaded general-data JSONL (by content hash, for rebuilds)."""
    drafts = parse_general_jsonl(text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    (_general_dir() / f"general-{digest}.jsonl").write_text(text, encoding="utf-8")
    return digest, len(drafts)


def load_general_data(digest: str) -> list[Draft]:
    path = _general_dir() / f"general-{digest}.jsonl"
    if not path.is_file():
        raise SdiError(f"the general data file {digest[:12]} is no longer stored")
    return parse_general_jsonl(path.read_text(encoding="utf-8"))
