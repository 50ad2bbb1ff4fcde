"""Input and output shapes of runs; validation lives on the fields."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ArmCreate(BaseModel):
    model_config_id: int
    label: str = Field(min_length=1, max_length=60)

    @field_validator("label")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("an arm needs a label")
        return value


class RunCreate(BaseModel):
    question_set_id: int
    arms: list[ArmCreate] = Field(min_length=1)
    name: str = Field(default="", max_length=200)
    # None: every active template.
    template_ids: list[int] | None = None
    # A random subset of this many statements, drawn with ``seed``; None: the whole set.
    limit: int | None = Field(default=None, ge=1)
    samples: int = Field(default=1, ge=1, le=100)
    seed: int = 0
    use_batch_api: bool = False
    show_reference: bool = True
    # Run even though an SDI arm has seen some of the run's statements; the run is marked.
    accept_contamination: bool = False
    # auto: replay only calls that repeat (temperature 0 or a seed); use / refresh / off.
    cache_policy: Literal["auto", "use", "refresh", "off"] = "auto"

    @model_validator(mode="after")
    def _distinct_arms(self) -> "RunCreate":
        labels = [a.label for a in self.arms]
        if len(set(labels)) != len(labels):
            raise ValueError("arm labels must be distinct")
        models = [a.model_config_id for a in self.arms]
        if len(set(models)) != len(models):
            raise ValueError("each model can be one arm only")
        return self


class ArmProgress(BaseModel):
    arm_id: int
    label: str
    model: str
    done: int = 0
    failed: int = 0
    pending: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0


class RunProgress(BaseModel):
    run_id: int
    status: str
    total: int = 0
    done: int = 0
    failed: int = 0
    pending: int = 0
    cancelled: int = 0
    retrying: int = 0  # pending replies whose last attempt failed
    rate_per_s: float | None = None
    eta_s: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    arms: list[ArmProgress] = Field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.cancelled

    @property
    def percent(self) -> float:
        return 100.0 * self.finished / self.total if self.total else 100.0


class RunPublic(BaseModel):
    """A run; ``progress`` counts its replies by status, per arm, with tokens and cost."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "name": "SDI vs baseline, 200 statements",
                    "status": "running",
                    "question_set_id": 2,
                    "samples": 1,
                    "seed": 0,
                    "question_limit": 200,
                    "use_batch_api": False,
                    "created_at": "2026-12-01T09:00:00",
                    "finished_at": None,
                    "progress": {
                        "run_id": 7,
                        "status": "running",
                        "total": 4000,
                        "done": 2612,
                        "failed": 3,
                        "pending": 1385,
                        "cancelled": 0,
                        "retrying": 1,
                        "rate_per_s": 4.2,
                        "eta_s": 330.0,
                        "tokens_in": 391800,
                        "tokens_out": 522400,
                        "cost_usd": 0.37,
                        "arms": [],
                    },
                }
            ]
        }
    )

    id: int
    name: str
    status: str
    question_set_id: int
    samples: int
    seed: int
    question_limit: int | None
    use_batch_api: bool
    created_at: datetime
    finished_at: datetime | None
    progress: RunProgress | None = None


class ArmPublic(BaseModel):
    id: int
    label: str
    model_config_id: int


class RunDetail(RunPublic):
    """A run with its progress, its arms and the settings it was created with."""

    config: dict[str, Any] = Field(description="The run's settings as created (RunCreate)")
    arms: list[ArmPublic]
    running: bool
