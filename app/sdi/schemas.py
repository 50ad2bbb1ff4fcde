"""Inputs of the SDI pipeline and of turning a dataset into a model."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.models import VariantKind

ALL_KINDS: tuple[VariantKind, ...] = tuple(VariantKind)
_MAX_INT = 2**31 - 1  # what an integer column holds on both databases


class Rates(BaseModel):
    """Share of examples each augmentation touches (0 = off)."""

    model_config = ConfigDict(extra="forbid")

    paraphrase: float = Field(default=0.3, ge=0.0, le=1.0)
    context: float = Field(default=0.3, ge=0.0, le=1.0)
    noise: float = Field(default=0.2, ge=0.0, le=1.0)


class BuildConfig(BaseModel):
    """Everything a build depends on; stored on the dataset so it can be rebuilt."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    question_set_id: int
    test_set_id: int | None = None
    kinds: list[VariantKind] = Field(default_factory=lambda: list(ALL_KINDS), min_length=1)
    # Examples wanted after balancing (None: as many as the smallest cell allows).
    size: int | None = Field(default=None, ge=1, le=1_000_000)
    seed: int = Field(default=0, ge=-_MAX_INT, le=_MAX_INT)
    rates: Rates = Field(default_factory=Rates)
    # "bank": SDI's own prompt bank; "templates": the active variant templates; "both".
    template_source: Literal["bank", "templates", "both"] = "both"
    teacher_model_id: int | None = None
    paraphrase_model_id: int | None = None
    leakage: Literal["refuse", "remove"] = "refuse"
    leakage_threshold: float = Field(default=90.0, ge=50.0, le=100.0)
    near_duplicate_threshold: float = Field(default=95.0, ge=50.0, le=100.0)
    filtration_run_id: int | None = None
    validation_fraction: float = Field(default=0.1, ge=0.0, le=0.5)
    system_prompt: str = ""
    token_limit: int = Field(default=65_536, ge=64)

    @field_validator("kinds")
    @classmethod
    def _unique_kinds(cls, kinds: list[VariantKind]) -> list[VariantKind]:
        # Canonical order, so that the same choice always builds the same data.
        return [k for k in ALL_KINDS if k in set(kinds)]

    @field_validator("name")
    @classmethod
    def _strip_name(cls, name: str) -> str:
        name = name.strip()
        if not name:
            raise ValueError("a name is required")
        return name


class InContextCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model_id: int
    shots: int = Field(default=8, ge=1, le=200)
    seed: int = 0
    name: str = Field(min_length=1, max_length=120)
    system_prompt: str | None = None


class FineTuneCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model_id: int = Field(ge=1, le=_MAX_INT)
    base_model: str = Field(default="", max_length=255)  # provider's id; default: the config's
    epochs: int | None = Field(default=None, ge=1, le=50)
    suffix: str = Field(default="sdi", max_length=64)
    seed: int | None = Field(default=None, ge=-_MAX_INT, le=_MAX_INT)
    name: str = Field(default="", max_length=120)


class SdiError(ValueError):
    """A build or export that cannot be done as asked; ``field`` names the input at fault,
    where there is one, so a form can say it beside that field."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field
