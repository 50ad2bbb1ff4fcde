"""What an upload parses into, and what the JSON API returns."""

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from app.uploads.mapping import Field
from app.uploads.schemas import RowError

REQUIRED_COLUMNS = ("statement", "truth")
OPTIONAL_COLUMNS = ("id", "category", "explanation", "negation")
KNOWN_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
FIELDS = (
    Field("statement", ("claim", "question", "text", "sentence", "fact", "prompt"), "required"),
    Field(
        "truth",
        (
            "label",
            "answer",
            "is_true",
            "ground_truth",
            "correct",
            "truth_value",
            "gold",
            "target",
            "is_correct",
            "true_false",
            "value",
        ),
        "required: true or false",
    ),
    Field("id", ("qid", "question_id", "statement_id", "uid", "key", "idx"), "your own id"),
    Field("category", ("topic", "subject", "domain", "type", "group"), "for balance tables"),
    Field("explanation", ("rationale", "reason", "justification", "note", "notes")),
    Field("negation", ("negated", "opposite", "negated_statement")),
)


@dataclass(slots=True)
class ParsedRow:
    position: int  # 1-based data row
    statement: str
    truth: bool
    source_id: str = ""
    category: str = ""
    explanation: str = ""
    negation: str = ""
    norm_hash: str = ""
    normalised: str = ""  # the text norm_hash is taken of; not stored
    # Filled by duplicate detection: the earlier row this one repeats.
    duplicate_of: int | None = None  # position of the earlier row
    similarity: float | None = None
    conflict: bool = False
    # A near-duplicate with the opposite label that differs only in a number, a date or a
    # name ("... in 1967" true, "... in 1997" false): a contrast pair, not a duplicate.
    contrast_of: int | None = None


@dataclass
class ParsedUpload:
    filename: str
    format: str = ""  # "csv", "jsonl" or "parquet"
    delimiter: str = ""
    detected: str = ""  # the public dataset format recognised, e.g. "TruthfulQA"
    detected_rule: str = ""  # how that format's rows became statements
    rows: list[ParsedRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    size_bytes: int = 0
    columns: list[str] = field(default_factory=list)  # the file's header, casefolded
    mapping: dict[str, str] = field(default_factory=dict)  # field -> the column read for it

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.rows)

    @property
    def duplicates(self) -> list[ParsedRow]:
        return [r for r in self.rows if r.duplicate_of is not None]

    @property
    def conflicts(self) -> list[ParsedRow]:
        return [r for r in self.rows if r.conflict]

    @property
    def contrasts(self) -> list[ParsedRow]:
        return [r for r in self.rows if r.contrast_of is not None]

    @property
    def true_count(self) -> int:
        return sum(1 for r in self.rows if r.truth)


class QuestionSetPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 2,
                    "name": "Common misconceptions",
                    "description": "200 true/false statements",
                    "source_filename": "misconceptions.csv",
                    "questions": 200,
                    "true_count": 100,
                    "false_count": 100,
                    "duplicates": 1,
                    "conflicts": 0,
                    "runs": 3,
                }
            ]
        }
    )

    id: int
    name: str
    description: str
    source_filename: str
    questions: int
    true_count: int
    false_count: int
    duplicates: int
    conflicts: int
    runs: int


class QuestionPublic(BaseModel):
    id: int
    position: int
    source_id: str
    statement: str
    negation: str
    truth: bool
    category: str
    explanation: str
    duplicate_of_id: int | None
    duplicate_similarity: float | None
    duplicate_conflict: bool


class QuestionPage(BaseModel):
    set_id: int
    total: int
    offset: int
    limit: int
    questions: list[QuestionPublic]
