"""Does an arm's SDI data contain statements of the run's question set?

In-context SDI pastes statements with their correct answers into every prompt, and a trained
or fine-tuned arm has learnt its dataset's statements: an arm that has seen a test statement
(the same text, a near-duplicate, or its negation) answers it from memory, which inflates its
figures. ``check`` lists such statements per arm; a run with any is refused unless the admin
accepts it, and is then marked contaminated.
"""

from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from app.config import get_settings
from app.model_configs.service import in_context_examples
from app.models import ModelConfig, Question, SdiDataset, SdiExample, SdiMode

MAX_LISTED = 10
NEGATION_FLOOR = 60.0


@dataclass
class Leak:
    statement: str  # the run's statement
    seen: str  # what the arm's data holds
    how: str  # "same statement", "near-duplicate (93)" or "negation"


@dataclass
class ArmCheck:
    label: str
    dataset: str  # the SDI dataset's name, "" for an arm without one
    scope: str  # what was compared: "12 in-context shots", "the whole training set (240)"
    leaks: list[Leak] = field(default_factory=list)

    def public(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "scope": self.scope,
            "leaked": len(self.leaks),
            "examples": [
                {"statement": x.statement, "seen": x.seen, "how": x.how}
                for x in self.leaks[:MAX_LISTED]
            ],
        }


def _seen_statements(session: Session, config: ModelConfig) -> tuple[str, str, list[str]]:
    """(dataset name, scope, statements) of the SDI data an arm has seen; no dataset: ""."""
    if config.sdi_dataset_id is None:
        return "", "", []
    dataset = session.get(SdiDataset, config.sdi_dataset_id)
    name = dataset.name if dataset else f"#{config.sdi_dataset_id}"
    if config.sdi_mode == SdiMode.in_context.value:
        examples = in_context_examples(
            session, config.sdi_dataset_id, config.sdi_shots, config.sdi_seed
        )
        scope = f"{len(examples)} in-context shots"
        ids = [e.question_id for e in examples if e.question_id is not None]
    else:
        ids = [
            i
            for i in session.exec(
                select(SdiExample.question_id).where(
                    SdiExample.dataset_id == config.sdi_dataset_id,
                    col(SdiExample.question_id).is_not(None),
                )
            ).all()
            if i is not None
        ]
        scope = f"the whole SDI dataset ({len(ids)} examples)"
    if not ids:
        return name, scope, []
    rows = session.exec(
        select(Question.statement).where(col(Question.id).in_(sorted({int(i) for i in ids if i})))
    ).all()
    return name, scope, list(rows)


def _leaks(statements: list[str], seen: list[str], threshold: float) -> list[Leak]:
    if not statements or not seen:
        return []
    # Only arms with SDI data get here: numpy and rapidfuzz stay out of a plain run's start-up.
    import numpy as np
    from rapidfuzz import fuzz, process

    from app.questions.dedupe import is_negated_pair, normalise

    a = [normalise(s) for s in statements]
    b = sorted(set(normalise(s) for s in seen))
    original = {normalise(s): s for s in seen}
    scores = process.cdist(a, b, scorer=fuzz.ratio, dtype=np.float32, workers=1)
    leaks = []
    for i, text in enumerate(a):
        j = int(np.argmax(scores[i]))
        score = float(scores[i, j])
        if score == 100.0:
            leaks.append(Leak(statements[i], original[b[j]], "same statement"))
            continue
        # A negation scores high too ("X is Y" / "X is not Y"): only close texts are tried.
        close = np.nonzero(scores[i] >= NEGATION_FLOOR)[0]
        negated = next((int(k) for k in close if is_negated_pair(text, b[k])), None)
        if negated is not None:
            leaks.append(Leak(statements[i], original[b[negated]], "negation"))
        elif score >= threshold:
            leaks.append(Leak(statements[i], original[b[j]], f"near-duplicate ({score:.0f})"))
    return leaks


def check(
    session: Session, questions: list[Question], arms: list[tuple[str, ModelConfig]]
) -> list[ArmCheck]:
    """One check per arm that has SDI data; each lists the run's statements it has seen."""
    threshold = get_settings().near_duplicate_threshold
    statements = [q.statement for q in questions]
    checks = []
    for label, config in arms:
        dataset, scope, seen = _seen_statements(session, config)
        if not dataset:
            continue
        checks.append(ArmCheck(label, dataset, scope, _leaks(statements, seen, threshold)))
    return checks


def refusal(checks: list[ArmCheck]) -> str:
    """The message that refuses a contaminated run, naming the leaked statements."""
    parts = []
    for c in checks:
        if not c.leaks:
            continue
        listed = "; ".join(f"{x.statement!r} ({x.how})" for x in c.leaks[:MAX_LISTED])
        more = f"; and {len(c.leaks) - MAX_LISTED} more" if len(c.leaks) > MAX_LISTED else ""
        parts.append(
            f"arm {c.label!r} has seen {len(c.leaks)} of the run's statements in SDI dataset "
            f"{c.dataset!r} ({c.scope}): {listed}{more}"
        )
    return (
        "Test statements leak into SDI arms — "
        + " | ".join(parts)
        + ". Build the SDI data from another set (or a train split), or accept the "
        "contamination explicitly; the run and its results are then marked contaminated."
    )
