"""What the results page, the JSON API and the CSV exports show."""

from pydantic import BaseModel, ConfigDict

from app.metrics import stats


class RateOut(BaseModel):
    """k of n with a Wilson 95 % CI (values are fractions, 0-1)."""

    model_config = ConfigDict(from_attributes=True)

    k: int
    n: int
    value: float | None
    low: float | None
    high: float | None

    @classmethod
    def wilson(cls, k: int, n: int) -> "RateOut":
        return cls.model_validate(stats.wilson(int(k), int(n)))


class EstimateOut(BaseModel):
    """A mean or a difference with a 95 % bootstrap CI clustered by statement."""

    model_config = ConfigDict(from_attributes=True)

    value: float | None
    low: float | None
    high: float | None
    n: int = 0
    clusters: int = 0


class ArmOut(BaseModel):
    id: int
    label: str
    model: str
    position: int
    is_baseline: bool


class MetricRow(BaseModel):
    """One arm x variant kind ("all" = every kind) of one run."""

    run_id: int
    arm: str
    model: str
    kind: str
    n: int
    rated: int
    unresolved: int
    unrated: int
    accuracy: RateOut
    sycophancy_all: RateOut
    sycophancy_erroneous: RateOut
    correction_all: RateOut
    correction_erroneous: RateOut
    agree_true_premise: RateOut
    evasion: RateOut
    helpfulness: EstimateOut


class PairedRow(BaseModel):
    """An arm against the baseline on the same prompt x sample."""

    arm: str
    baseline: str
    kind: str
    metric: str
    pairs: int
    baseline_value: float | None
    arm_value: float | None
    difference: EstimateOut
    test: str
    statistic: float | None
    p_value: float | None
    # Exact McNemar: pairs where only the baseline / only the arm had the outcome.
    baseline_only: int | None = None
    arm_only: int | None = None
    sentence: str


class FlipRow(BaseModel):
    """A variant kind against the neutral variant of the same statement, arm and sample."""

    arm: str
    kind: str
    pairs: int
    regressive: RateOut  # neutral right -> variant wrong, over pairs with neutral right
    progressive: RateOut  # neutral wrong -> variant right, over pairs with neutral wrong


class PushbackRow(BaseModel):
    """Pushback variant: the first answer against the final one after "Are you sure?"."""

    arm: str
    replies: int
    flipped_to_wrong: RateOut  # of first answers that were right
    flipped_to_right: RateOut  # of first answers that were wrong


class KappaPair(BaseModel):
    rater_a: str
    rater_b: str
    units: int
    observed: float | None
    kappa: float | None


class RaterRow(BaseModel):
    rater: str
    ratings: int
    with_final: RateOut  # same label as the reply's final (majority or adjudicated) label
    with_others: RateOut  # same label as the majority of the other raters of the reply
    label_agree: RateOut
    label_correct: RateOut
    label_evasive: RateOut
    mean_helpfulness: float | None


class JudgeRow(BaseModel):
    judge: str
    rubric_version: str
    units: int
    observed: float | None
    kappa: float | None


class AgreementOut(BaseModel):
    rated_replies: int
    multi_rated_replies: int
    alpha_label: EstimateOut
    alpha_helpfulness: EstimateOut
    fleiss_kappa: float | None
    fleiss_units: int
    fleiss_raters: int
    pairs: list[KappaPair]
    raters: list[RaterRow]
    judges: list[JudgeRow]


class RunResults(BaseModel):
    run_id: int
    run_name: str
    status: str
    arms: list[ArmOut]
    baseline: str | None
    replies_done: int
    replies_not_done: int
    metrics: list[MetricRow]
    paired: list[PairedRow]
    flips: list[FlipRow]
    pushback: list[PushbackRow]
    agreement: AgreementOut | None
    resamples: int
    seed: int
