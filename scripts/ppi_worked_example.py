"""The human side of the README's worked PPI example (see scripts/ppi_worked_example.sh).

``sheet OUT.csv``: the sampled round's replies as a blind rating sheet (no arm, model or reply
id; rows in the order of an opaque key), for a person to fill in.
``rate RATINGS.csv``: the filled sheet recorded as one rater's ratings of the round, through the
rating service as the rating page records them. A row is matched to its reply by its key, a
hash of the prompt and the reply: a reply that came out different (another machine, another
llama.cpp build) has another key, and its row is reported and left out, not applied to it.

The database is the one SDILAB_DATABASE_URL names.
"""

import csv
import hashlib
import sys
from pathlib import Path

from sqlmodel import Session, col, select

from app.db import session_scope
from app.models import (
    Label,
    PromptVariant,
    Question,
    RatingItem,
    RatingRound,
    Reply,
    Role,
    Verdict,
)
from app.rating.schemas import RatingInput

RATER = "ppi-example-rater@sdilab.local"
COLUMNS = ["key", "truth", "statement", "prompt", "reply", "label", "verdict", "helpfulness"]


def reply_key(prompt: str, reply: str) -> str:
    return hashlib.sha256(f"{prompt}\0{reply}".encode()).hexdigest()[:16]


def _sampled_round(session: Session) -> RatingRound:
    round_ = session.exec(
        select(RatingRound).where(col(RatingRound.sample_size).is_not(None))
    ).first()
    if round_ is None:
        sys.exit("No sampled rating round in this database (run the experiment first).")
    return round_


def _items(session: Session, round_: RatingRound) -> dict[str, tuple[int, dict[str, str]]]:
    """The round's replies by key: (reply id, the sheet's row without the rating)."""
    rows = session.exec(
        select(Reply, PromptVariant, Question)
        .join(RatingItem, col(RatingItem.reply_id) == col(Reply.id))
        .join(PromptVariant, col(PromptVariant.id) == col(Reply.prompt_variant_id))
        .join(Question, col(Question.id) == col(PromptVariant.question_id))
        .where(RatingItem.round_id == round_.id)
    ).all()
    items = {}
    for reply, variant, question in rows:
        prompt = "\n".join(str(m["content"]) for m in variant.messages if m["role"] == "user")
        key = reply_key(prompt, reply.text)
        items[key] = (
            reply.id or 0,
            {
                "key": key,
                "truth": "true" if question.truth else "false",
                "statement": question.statement,
                "prompt": prompt,
                "reply": reply.text,
            },
        )
    return items


def sheet(out: Path) -> None:
    with session_scope() as session:
        items = _items(session, _sampled_round(session))
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, COLUMNS)
        writer.writeheader()
        for key in sorted(items):
            writer.writerow({**items[key][1], "label": "", "verdict": "", "helpfulness": ""})
    print(f"{len(items)} replies written to {out}")


def rate(ratings: Path) -> None:
    from app.demo.service import ensure_user
    from app.rating import leases, submissions

    with ratings.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"].strip()]
    with session_scope() as session:
        round_ = _sampled_round(session)
        items = _items(session, round_)
        rater = ensure_user(session, RATER, Role.rater, "not-used-" + "x" * 16)
        assert rater.id is not None
        leases.start(session, round_, rater.id)
        recorded, unmatched = 0, []
        for row in rows:
            found = items.get(row["key"])
            if found is None:
                unmatched.append(row["key"])
                continue
            data = RatingInput(
                label=Label(row["label"].strip()),
                verdict=Verdict(row["verdict"].strip() or "none"),
                helpfulness=int(row["helpfulness"]),
            )
            submissions.submit(session, round_, rater.id, found[0], data)
            recorded += 1
    print(f"{recorded} ratings recorded on round #{round_.id} ({len(items)} sampled replies)")
    if unmatched:
        print(
            f"{len(unmatched)} rows match no sampled reply (the reply came out different here) "
            f"and were left out: {', '.join(unmatched[:5])}{' ...' if len(unmatched) > 5 else ''}"
        )


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("sheet", "rate"):
        sys.exit(__doc__)
    {"sheet": sheet, "rate": rate}[sys.argv[1]](Path(sys.argv[2]))
