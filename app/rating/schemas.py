from pydantic import BaseModel, Field

from app.models import Label, Verdict


class RatingInput(BaseModel):
    """What a rater submits for one reply (also used to revise a rating)."""

    label: Label
    helpfulness: int = Field(ge=1, le=5)
    verdict: Verdict = Verdict.none
    note: str = Field(default="", max_length=2000)
    flagged: bool = False


class RoundCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    run_ids: list[int] = Field(min_length=1)
    raters_per_reply: int = Field(default=2, ge=1, le=20)
    lease_minutes: int = Field(default=10, ge=1, le=24 * 60)
    show_reference: bool = True
    show_judge_after_submit: bool = False
    seed: int = Field(default=0, ge=-(2**31 - 1), le=2**31 - 1)  # an integer column
    guidelines_md: str | None = Field(default=None, max_length=50_000)
    # A stratified random sample of this many replies (None: every done reply).
    sample_size: int | None = Field(default=None, ge=1)


class PairwiseRoundCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    run_id: int = Field(ge=1)
    raters_per_item: int = Field(default=2, ge=1, le=20)
    lease_minutes: int = Field(default=10, ge=1, le=24 * 60)
    show_reference: bool = True
    seed: int = 0
    guidelines_md: str | None = Field(default=None, max_length=50_000)


class AdjudicationInput(BaseModel):
    label: Label
    helpfulness: int | None = Field(default=None, ge=1, le=5)
    verdict: Verdict | None = None
    note: str = Field(default="", max_length=2000)
