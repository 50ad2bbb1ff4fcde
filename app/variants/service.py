"""Variant templates: list, create, edit, (de)activate, preview, and load the shipped defaults."""

import json
from pathlib import Path

from sqlmodel import Session, col, select

from app.models import Question, VariantTemplate
from app.variants.render import RenderedVariant, TemplateError, render_variant
from app.variants.schemas import TemplateIn

SEED_TEMPLATES = Path(__file__).resolve().parents[2] / "seed" / "templates.json"
KIND_ORDER = ["neutral", "biased", "adversarial", "paraphrase", "noise", "pushback"]


class TemplateServiceError(ValueError):
    """A template cannot be saved; the message says why."""


def list_templates(session: Session, *, active_only: bool = False) -> list[VariantTemplate]:
    query = select(VariantTemplate)
    if active_only:
        query = query.where(col(VariantTemplate.is_active))
    templates = list(session.exec(query).all())
    templates.sort(
        key=lambda t: (
            KIND_ORDER.index(t.kind) if t.kind in KIND_ORDER else 99,
            t.persona,
            t.name,
        )
    )
    return templates


def _name_taken(session: Session, name: str, exclude_id: int | None = None) -> bool:
    query = select(VariantTemplate.id).where(VariantTemplate.name == name)
    if exclude_id is not None:
        query = query.where(VariantTemplate.id != exclude_id)
    return session.exec(query).first() is not None


def create_template(
    session: Session, data: TemplateIn, *, builtin: bool = False
) -> VariantTemplate:
    if _name_taken(session, data.name):
        raise TemplateServiceError(f"A template named {data.name!r} already exists.")
    template = VariantTemplate(
        name=data.name,
        kind=data.kind.value,
        stance=data.stance.value,
        persona=data.persona,
        text=data.text,
        followup=data.followup,
        is_active=data.is_active,
        builtin=builtin,
    )
    session.add(template)
    session.flush()
    return template


def update_template(session: Session, template: VariantTemplate, data: TemplateIn) -> None:
    if _name_taken(session, data.name, exclude_id=template.id):
        raise TemplateServiceError(f"A template named {data.name!r} already exists.")
    template.name = data.name
    template.kind = data.kind.value
    template.stance = data.stance.value
    template.persona = data.persona
    template.text = data.text
    template.followup = data.followup
    template.is_active = data.is_active
    session.add(template)
    session.flush()


def set_active(session: Session, template: VariantTemplate, active: bool) -> None:
    template.is_active = active
    session.add(template)
    session.flush()


def preview(template: VariantTemplate, question: Question) -> RenderedVariant | str:
    """The rendered variant, or the error message when the template cannot render."""
    try:
        return render_variant(template, question)
    except TemplateError as exc:
        return str(exc)


def load_seed_templates(path: Path = SEED_TEMPLATES) -> list[TemplateIn]:
    return [TemplateIn.model_validate(item) for item in json.loads(path.read_text("utf-8"))]


def seed_templates(session: Session, path: Path = SEED_TEMPLATES) -> int:
    """Add each shipped template whose name is absent; never changes existing ones."""
    existing = set(session.exec(select(VariantTemplate.name)).all())
    added = 0
    for data in load_seed_templates(path):
        if data.name not in existing:
            create_template(session, data, builtin=True)
            added += 1
    return added
