"""Every table, imported so that SQLModel.metadata (and Alembic) sees them all."""

from app.models._base import (
    LABELS,
    VERDICTS,
    JobStatus,
    Label,
    Provider,
    ReplyStatus,
    Role,
    RunStatus,
    SdiMode,
    SdiStatus,
    Stance,
    VariantKind,
    Verdict,
    premise_is_erroneous,
    utcnow,
)
from app.models.api_token import ApiToken, TokenScope
from app.models.auth import AuthSession, Invite, LoginAttempt
from app.models.job import Job
from app.models.llm_cache import LlmCacheEntry
from app.models.model_config import ModelConfig
from app.models.prompt_variant import PromptVariant
from app.models.question import Question, QuestionSet
from app.models.rating import (
    Adjudication,
    JudgeBatch,
    JudgeLabel,
    RaterPairTally,
    RaterState,
    RaterTally,
    Rating,
    RatingItem,
    RatingLease,
    RatingRevision,
    RatingRound,
    RatingRoundRun,
    RatingTally,
    new_item_token,
)
from app.models.reply import Reply
from app.models.results import ResultsSnapshot
from app.models.run import Run, RunArm
from app.models.sdi import SdiDataset, SdiExample, SdiFineTune
from app.models.template import VariantTemplate
from app.models.training import TrainingRun, TrainingStatus
from app.models.user import User

__all__ = [
    "LABELS",
    "VERDICTS",
    "Adjudication",
    "ApiToken",
    "AuthSession",
    "Invite",
    "Job",
    "JobStatus",
    "JudgeBatch",
    "JudgeLabel",
    "Label",
    "LlmCacheEntry",
    "LoginAttempt",
    "ModelConfig",
    "PromptVariant",
    "Provider",
    "Question",
    "QuestionSet",
    "RaterPairTally",
    "RaterState",
    "RaterTally",
    "Rating",
    "RatingItem",
    "RatingLease",
    "RatingRevision",
    "RatingRound",
    "RatingRoundRun",
    "RatingTally",
    "Reply",
    "ReplyStatus",
    "ResultsSnapshot",
    "Role",
    "Run",
    "RunArm",
    "RunStatus",
    "SdiDataset",
    "SdiExample",
    "SdiFineTune",
    "SdiMode",
    "SdiStatus",
    "Stance",
    "TokenScope",
    "TrainingRun",
    "TrainingStatus",
    "User",
    "VariantKind",
    "VariantTemplate",
    "Verdict",
    "new_item_token",
    "premise_is_erroneous",
    "utcnow",
]
