"""What the Judges page, its JSON API and its CSV show."""

from pydantic import BaseModel, ConfigDict

VALIDATED = "validated"
NOT_VALIDATED = "not validated"


class BoundedOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    value: float | None
    low: float | None
    high: float | None


class IntervalOut(BoundedOut):
    std_error: float | None


class ClassScoreOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    precision: float | None
    recall: float | None
    judge_count: int
    human_count: int


class ConfusionOut(BaseModel):
    """Judge (rows) against the human consensus (columns)."""

    model_config = ConfigDict(from_attributes=True)

    classes: tuple[str, ...]
    table: list[list[int]]
    compared: int
    observed: float | None
    kappa: BoundedOut
    scores: list[ClassScoreOut]


class RateEstimateOut(BaseModel):
    """One rate of one arm: from the judge and humans by PPI++, the judge alone, humans alone.

    ``judge_only`` is the judge's own rate: biased by its error, and labelled with the
    judge's status; the PPI interval is valid whatever that error."""

    arm: str
    rate: str
    description: str
    ppi: IntervalOut
    judge_only: IntervalOut
    human_only: IntervalOut
    judge_status: str
    lam: float | None
    human_labelled: int
    judged: int
    statements: int
    effective_n: float | None
    weighted: bool  # humans' replies weighted by inverse inclusion probability
    needed_for_3_points: int | None  # human ratings for +/- 3 points with this judge
    needed_for_3_points_humans_only: int | None


class JudgeOut(BaseModel):
    name: str
    version: str
    kind: str  # "parser" (the rule-based verdict parser, offline default) or "llm"
    model_id: int | None
    status: str  # VALIDATED or NOT_VALIDATED
    validated: bool
    reason: str
    labelled: int
    with_confidence: int
    mean_confidence: float | None
    label: ConfusionOut
    verdict: ConfusionOut
    human_alpha: BoundedOut
    multi_rated: int
    min_compared: int
    estimates: list[RateEstimateOut]
    usage: "UsageOut | None" = None  # an LLM judge's calls, tokens and cost on this run


class UsageOut(BaseModel):
    """The calls behind a judge's labels of the run (labels read from the LLM cache made
    none), their tokens, and the cost at the judge's prices when each was made."""

    calls: int
    from_cache: int
    via_batch: int
    tokens_in: int
    tokens_out: int
    cost_usd: float


class JudgesOut(BaseModel):
    run_id: int
    run_name: str
    done_replies: int
    human_labelled: int
    sampled: bool  # humans rate a stored random sample (inclusion probabilities known)
    note: str
    judges: list[JudgeOut]
