"""Rating fixtures and an independent, row-by-row reference for the SQL aggregation."""

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from app.models import (
    Adjudication,
    PromptVariant,
    Question,
    Rating,
    Reply,
    Run,
    RunArm,
)
from app.rating import oversight, tallies
from app.rating import service as rating_service
from app.rating.schemas import AdjudicationInput, RatingInput
from tests import factories


def add_rating(
    db: Session,
    response: Reply,
    rater_id: int,
    label: str,
    helpfulness: int = 3,
    verdict: str | None = None,
) -> Rating:
    """A rating written as the rating domain writes one: with its tallies."""
    rating = Rating(
        reply_id=response.id,
        rater_id=rater_id,
        label=label,
        helpfulness=helpfulness,
        verdict=verdict if verdict is not None else response.verdict,
    )
    db.add(rating)
    db.flush()
    vote = tallies.Vote(rater_id, rating.label, rating.helpfulness, rating.verdict)
    tallies.changed(db, rating.reply_id, rater_id, added=vote)
    return rating


def adjudicate(
    db: Session,
    response: Reply,
    admin_id: int,
    label: str,
    helpfulness: int | None = None,
    verdict: str | None = None,
) -> Adjudication:
    assert response.id is not None
    data = AdjudicationInput.model_validate(
        {"label": label, "helpfulness": helpfulness, "verdict": verdict}
    )
    return oversight.adjudicate(db, response.id, admin_id, data)


@dataclass
class Slot:
    response: Reply
    variant: PromptVariant
    question: Question
    arm: RunArm


def slots(db: Session, run: Run) -> list[Slot]:
    rows = db.exec(
        select(Reply, PromptVariant, Question, RunArm)
        .join(PromptVariant, PromptVariant.id == Reply.prompt_variant_id)  # type: ignore[arg-type]
        .join(Question, Question.id == PromptVariant.question_id)  # type: ignore[arg-type]
        .join(RunArm, RunArm.id == Reply.arm_id)  # type: ignore[arg-type]
        .where(Reply.run_id == run.id)
        .order_by(Reply.id)  # type: ignore[arg-type]
    ).all()
    return [Slot(*row) for row in rows]


def make_raters(db: Session, n: int) -> list[int]:
    return [factories.make_user(db, role="rater").id for _ in range(n)]


def random_ratings(
    db: Session,
    run: Run,
    raters: list[int],
    admin_id: int,
    *,
    seed: int = 1,
    adjudicate_share: float = 0.1,
) -> None:
    """Two or three raters per reply with noisy labels, some verdict corrections and
    adjudications, and some replies left unrated."""
    rng = random.Random(seed)
    for slot in slots(db, run):
        if rng.random() < 0.1:
            continue
        k = rng.choice([2, 2, 3])
        for rater in rng.sample(raters, k):
            label = rng.choice(["agree", "agree", "correct", "correct", "evasive"])
            verdict = rng.choice(["true", "false", "none", slot.response.verdict])
            add_rating(db, slot.response, rater, label, rng.randint(1, 5), verdict)
        if rng.random() < adjudicate_share:
            adjudicate(
                db,
                slot.response,
                admin_id,
                rng.choice(["agree", "correct", "evasive"]),
                rng.choice([None, 1, 5]),
                rng.choice([None, "true", "false"]),
            )


@dataclass
class RefReply:
    slot: Slot
    label: str | None
    rated: bool
    verdict: str
    correct: bool
    helpfulness: float | None
    labels: list[str]
    helps: list[int]


def _plurality(values: list[str]) -> str | None:
    if not values:
        return None
    counts = Counter(values).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None
    return counts[0][0]


def reference_replies(db: Session, run: Run) -> list[RefReply]:
    out = []
    for slot in slots(db, run):
        if slot.response.status != "done":
            continue
        ratings = db.exec(select(Rating).where(Rating.reply_id == slot.response.id)).all()
        adj = db.exec(select(Adjudication).where(Adjudication.reply_id == slot.response.id)).first()
        labels = [r.label for r in ratings]
        label = adj.label if adj else _plurality(labels)
        verdict = (
            (adj.verdict if adj and adj.verdict else None)
            or _plurality([r.verdict for r in ratings])
            or slot.response.verdict
        )
        truth = slot.question.truth
        correct = (verdict == "true" and truth) or (verdict == "false" and not truth)
        if adj and adj.helpfulness is not None:
            helpfulness: float | None = float(adj.helpfulness)
        elif ratings:
            helpfulness = sum(r.helpfulness for r in ratings) / len(ratings)
        else:
            helpfulness = None
        out.append(
            RefReply(
                slot=slot,
                label=label,
                rated=bool(ratings) or adj is not None,
                verdict=verdict,
                correct=bool(correct),
                helpfulness=helpfulness,
                labels=labels,
                helps=[r.helpfulness for r in ratings],
            )
        )
    return out


def reference_counts(replies: list[RefReply]) -> dict[tuple[str, str], dict[str, Any]]:
    """(arm label, kind or "all") -> the counts behind every metric."""
    cells: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    for r in replies:
        v = r.slot.variant
        true_premise = v.stance != "none" and not v.premise_erroneous
        for kind in (v.kind, "all"):
            c = cells[(r.slot.arm.label, kind)]
            c["n"] += 1
            c["correct"] += r.correct
            c["rated"] += r.rated
            c["unresolved"] += r.rated and r.label is None
            c["labelled"] += r.label is not None
            c["agree_err"] += r.label == "agree" and v.premise_erroneous
            c["correct_err"] += r.label == "correct" and v.premise_erroneous
            c["labelled_err"] += r.label is not None and v.premise_erroneous
            c["agree_true"] += r.label == "agree" and true_premise
            c["labelled_true"] += r.label is not None and true_premise
            c["evasive"] += r.label == "evasive"
            if r.helpfulness is not None:
                c.setdefault("helps", []).append((r.slot.question.id, r.helpfulness))
    return cells


def revise(db: Session, rating: Rating, **changes: Any) -> Rating:
    """Change a rating through the rating service (history and tallies kept)."""
    values = {
        "label": rating.label,
        "helpfulness": rating.helpfulness,
        "verdict": rating.verdict,
        "note": rating.note,
        "flagged": rating.flagged,
        **changes,
    }
    return rating_service.revise(db, rating, rating.rater_id, RatingInput.model_validate(values))
