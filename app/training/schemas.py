"""What a training run is asked to do: LoRA and optimisation hyper-parameters."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Linear projections of a Llama-style decoder block (SmolLM2 is one).
LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


class TrainingParams(BaseModel):
    """Hyper-parameters, stored verbatim on the TrainingRun and beside the adapter."""

    model_config = ConfigDict(extra="forbid")

    rank: int = Field(default=8, ge=1, le=256)
    alpha: int = Field(default=16, ge=1, le=1024)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_TARGETS))
    epochs: int = Field(default=2, ge=1, le=100)
    learning_rate: float = Field(default=5e-4, gt=0, le=1.0)
    batch_size: int = Field(default=8, ge=1, le=512)
    max_length: int = Field(default=256, ge=16, le=8192)
    warmup_ratio: float = Field(default=0.05, ge=0.0, le=0.5)
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    seed: int = 0
    # Stop after this many optimiser steps (0: run every epoch); for smoke tests and benches.
    max_steps: int = Field(default=0, ge=0)
    # Validation loss every N steps (0: after each epoch only); always at step 0 and the end.
    eval_every: int = Field(default=0, ge=0)
    # Use at most this many examples of each split (0: all).
    max_train_examples: int = Field(default=0, ge=0)
    max_val_examples: int = Field(default=0, ge=0)
    threads: int = Field(default=0, ge=0, le=256)  # 0: torch's default
    # How the merged weights are exported: a GGUF for llama.cpp (LoRA-touched tensors in this
    # type, the others copied as they are) or, for non-GGUF bases, a transformers directory.
    export_type: Literal["q8_0", "f16", "f32"] = "q8_0"

    @field_validator("target_modules")
    @classmethod
    def _known_modules(cls, value: list[str]) -> list[str]:
        cleaned = [m.strip() for m in value if m.strip()]
        unknown = sorted(set(cleaned) - set(LINEAR_MODULES))
        if unknown:
            raise ValueError(f"unknown target modules {unknown}; choose from {LINEAR_MODULES}")
        if not cleaned:
            raise ValueError("choose at least one target module")
        return sorted(set(cleaned), key=LINEAR_MODULES.index)


class TrainingCreate(BaseModel):
    """A request to train: which data, which base, which model name, which settings."""

    dataset_id: int
    name: str = Field(min_length=1, max_length=120)
    base_model: str = Field(default="", max_length=500)
    params: TrainingParams = Field(default_factory=TrainingParams)

    @field_validator("name", "base_model")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


class TrainingError(Exception):
    """Training cannot go on (bad input, missing packages, unusable base model)."""


class TrainingRunPublic(BaseModel):
    """A local LoRA training run: its settings, progress, losses and what it produced."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    dataset_id: int | None
    base_model: str = Field(description='A GGUF file or a model directory; "": SmolLM2')
    params: dict[str, Any] = Field(description="The hyper-parameters (TrainingParams)")
    status: str
    cancel_requested: bool
    step: int
    total_steps: int
    epoch: int
    train_loss: float | None
    val_loss: float | None
    tokens_per_s: float | None
    examples_per_s: float | None
    eta_s: float | None
    n_train: int
    n_val: int
    loss_history: list[dict[str, Any]] = Field(
        description='[{"step": n, "train_loss": x} or {"step": n, "val_loss": y}, ...]'
    )
    output_dir: str
    adapter_path: str
    merged_path: str
    merged_format: str
    error: str
    model_config_id: int | None = Field(description="The model config made on success")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
