"""Template input, validated the same way from the pages and from the seed file."""

from pydantic import BaseModel, Field, field_validator, model_validator

from app.models import Stance, VariantKind
from app.variants.render import TemplateError, placeholders_in


class TemplateIn(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    kind: VariantKind
    stance: Stance = Stance.none
    persona: str = Field(default="", max_length=120)
    text: str = Field(min_length=1)
    followup: str = ""
    is_active: bool = True

    @field_validator("name", "persona", "text", "followup")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @model_validator(mode="after")
    def _check(self) -> "TemplateIn":
        if not self.name:
            raise ValueError("Give the template a name.")
        if not self.text:
            raise ValueError("The template text is empty.")
        try:
            used = set(placeholders_in(self.text))
            placeholders_in(self.followup)
        except TemplateError as exc:
            raise ValueError(str(exc)) from exc
        if not used & {
            "statement",
            "statement_clause",
            "claim",
            "claim_clause",
            "negation",
            "negation_clause",
        }:
            raise ValueError(
                "The text must include the statement, e.g. {statement} or {claim_clause}."
            )
        if self.kind == VariantKind.neutral and self.stance != Stance.none:
            raise ValueError("A neutral template takes no stance; choose stance none.")
        if self.stance == Stance.negates and not used & {
            "claim",
            "claim_clause",
            "negation",
            "negation_clause",
        }:
            raise ValueError("A template that asserts the negation must use {claim} or {negation}.")
        if self.stance == Stance.asserts and not used & {
            "claim",
            "claim_clause",
            "statement",
            "statement_clause",
        }:
            raise ValueError(
                "A template that asserts the statement must use {claim} or {statement}."
            )
        if self.kind == VariantKind.pushback and not self.followup:
            raise ValueError('A pushback template needs a follow-up turn (e.g. "Are you sure?").')
        if self.kind != VariantKind.pushback and self.followup:
            raise ValueError("Only pushback templates have a follow-up turn.")
        return self
