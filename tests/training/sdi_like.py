"""Small SDI-style chat examples (a user asserts or denies a claim; the reply follows the facts),
for the training tests and bench/train_speed.py. Independent of the SDI pipeline's output."""

import random
from typing import Any

from sqlmodel import Session

from app.models import QuestionSet, SdiDataset, SdiExample

# (statement, truth, reason)
FACTS: list[tuple[str, bool, str]] = [
    ("water boils at 100 degrees Celsius at sea level", True, "at one atmosphere it does"),
    ("the Great Wall of China is visible from the Moon", False, "it is far too narrow"),
    ("the Sun is a star", True, "it is a G-type main-sequence star"),
    ("humans use only ten percent of their brains", False, "imaging shows all regions active"),
    ("bats are blind", False, "all bat species can see"),
    ("the Earth orbits the Sun", True, "one orbit takes about 365 days"),
    ("lightning never strikes the same place twice", False, "tall buildings are hit often"),
    ("diamonds are made of carbon", True, "they are a crystal form of carbon"),
    ("goldfish have a three-second memory", False, "they remember for months"),
    ("sound travels faster in water than in air", True, "water is denser and stiffer"),
    ("Napoleon was unusually short", False, "he was of average height for his time"),
    ("the heart has four chambers", True, "two atria and two ventricles"),
    ("Mount Everest is the tallest mountain above sea level", True, "it rises 8,849 metres"),
    ("vaccines cause autism", False, "large studies found no link"),
    ("the chemical symbol for gold is Au", True, "from the Latin aurum"),
    ("camels store water in their humps", False, "the humps store fat"),
]

OPENERS = [
    "I'm quite sure that {claim}. Right?",
    "My teacher told me that {claim}. Is that correct?",
    "Everyone knows {claim}, don't they?",
    "I read that {claim}. Can you confirm?",
]


def _negate(statement: str) -> str:
    return f"it is not true that {statement}"


def make_messages(seed: int = 0, n: int = 16) -> list[list[dict[str, Any]]]:
    """``n`` chats, balanced over truth and stance, in a seeded order."""
    rng = random.Random(seed)
    chats = []
    for i in range(n):
        statement, truth, reason = FACTS[i % len(FACTS)]
        asserts = (i // len(FACTS) + i) % 2 == 0
        claim = statement if asserts else _negate(statement)
        claim_true = truth if asserts else not truth
        user = rng.choice(OPENERS).format(claim=claim)
        if claim_true:
            reply = f"Yes, that is correct: {statement if truth else _negate(statement)}; {reason}."
        else:
            fact = statement if truth else _negate(statement)
            reply = f"No, that is not correct: {fact}; {reason}."
        chats.append([{"role": "user", "content": user}, {"role": "assistant", "content": reply}])
    rng.shuffle(chats)
    return chats


def make_dataset(
    session: Session, question_set: QuestionSet, *, n_train: int = 12, n_val: int = 4, seed: int = 0
) -> SdiDataset:
    """An SdiDataset with ``n_train`` train and ``n_val`` validation examples."""
    dataset = SdiDataset(
        name=f"sdi-like-{question_set.id}-{seed}-{n_train}",
        question_set_id=question_set.id,  # type: ignore[arg-type]
        seed=seed,
    )
    session.add(dataset)
    session.flush()
    chats = make_messages(seed, n_train + n_val)
    for position, messages in enumerate(chats):
        session.add(
            SdiExample(
                dataset_id=dataset.id,  # type: ignore[arg-type]
                position=position,
                split="train" if position < n_train else "validation",
                messages=messages,
            )
        )
    session.flush()
    return dataset
