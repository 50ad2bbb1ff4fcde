"""Input for model configs; validation lives on the fields."""

import re
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from app.models._base import Provider, SdiMode

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ModelConfigBase(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    provider: Provider
    model_id: str = Field(default="", max_length=255)
    base_url: str = Field(default="", max_length=500)
    api_key_env: str = Field(default="", max_length=120)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=256, ge=1, le=100_000)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = 0
    system_prompt: str = ""
    price_input_per_1k: float = Field(default=0.0, ge=0.0)
    price_output_per_1k: float = Field(default=0.0, ge=0.0)
    max_concurrency: int = Field(default=4, ge=1, le=1024)
    timeout_s: float = Field(default=120.0, gt=0.0, le=3600.0)
    sdi_mode: SdiMode = SdiMode.none
    sdi_dataset_id: int | None = None
    sdi_shots: int = Field(default=0, ge=0, le=1000)
    sdi_seed: int = 0
    fine_tuned_model_id: str = Field(default="", max_length=255)
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name", "model_id", "base_url", "api_key_env", "fine_tuned_model_id")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("base URL must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if value and not _ENV_NAME.match(value):
            raise ValueError(
                "the key variable must be an environment variable NAME (letters, digits, _), "
                "not the key itself"
            )
        return value

    @model_validator(mode="after")
    def _provider_needs(self) -> "ModelConfigBase":
        if self.provider == Provider.openai and not self.model_id:
            raise ValueError("an openai provider needs a model id")
        if self.sdi_mode == SdiMode.in_context and (
            self.sdi_dataset_id is None or self.sdi_shots < 1
        ):
            raise ValueError("in-context SDI needs a dataset and at least one shot")
        if self.sdi_mode == SdiMode.fine_tuned and not self.fine_tuned_model_id:
            raise ValueError("fine-tuned SDI needs the fine-tuned model id")
        return self


class ModelConfigCreate(ModelConfigBase):
    pass


class ModelConfigUpdate(ModelConfigBase):
    pass
