"""Stage 3, integration: leakage check, filtration, quality assurance, balance, merge."""

import json
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from rapidfuzz import fuzz

from app.sdi.generation import claim_truth
from app.sdi.openai_format import example_errors
from app.sdi.text import conversation_hash, conversation_text, negation_of, normalise
from app.sdi.types import Draft, QuestionData, StageLog

VerdictParser = Callable[[str], str]


class GeneralDataError(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors[:10]))
        self.errors = errors


@dataclass(frozen=True)
class Leak:
    train_statement: str
    test_statement: str
    score: float
    exact: bool


def _forms(question: QuestionData) -> list[str]:
    """The statement and its negation: a test fact leaks through either."""
    forms = [normalise(question.statement)]
    if question.negation.strip():
        forms.append(normalise(negation_of(question)))
    return forms


def find_leaks(
    train: list[QuestionData], test: list[QuestionData], threshold: float
) -> dict[str, Leak]:
    """Training statements that match a test statement (normalised equal, or similar enough)."""
    test_forms = [(form, q) for q in test for form in _forms(q)]
    exact_index = {form: q for form, q in test_forms}
    leaks: dict[str, Leak] = {}
    for question in train:
        best: Leak | None = None
        for form in _forms(question):
            if form in exact_index:
                best = Leak(question.statement, exact_index[form].statement, 100.0, True)
                break
            for test_form, test_q in test_forms:
                score = fuzz.ratio(form, test_form)
                if score >= threshold and (best is None or score > best.score):
                    best = Leak(question.statement, test_q.statement, round(score, 1), False)
        if best is not None:
            leaks[question.statement] = best
    return leaks


def general_example_leaks(
    drafts: list[Draft], test: list[QuestionData], threshold: float
) -> dict[int, str]:
    """General examples whose text contains (nearly) a test statement, by index."""
    forms = [(normalise(q.statement), q.statement) for q in test]
    found = {}
    for index, draft in enumerate(drafts):
        text = normalise(conversation_text(draft.messages))
        for form, statement in forms:
            if form and (form in text or fuzz.partial_ratio(form, text) >= threshold):
                found[index] = statement
                break
    return found


def remove_leaks(
    drafts: list[Draft], leaks: dict[str, Leak], general_leaks: dict[int, str], log: StageLog
) -> list[Draft]:
    log.count_in = len(drafts)
    kept = []
    for index, draft in enumerate(drafts):
        if draft.question is not None and draft.question.statement in leaks:
            leak = leaks[draft.question.statement]
            log.drop("statement leaks from the test set", draft, f"matches: {leak.test_statement}")
        elif draft.question is None and index in general_leaks:
            log.drop(
                "general example mentions a test statement",
                note=general_leaks[index],
                statement=general_leaks[index],
            )
        else:
            kept.append(draft)
    log.count_out = len(kept)
    log.details = {
        "leaking_statements": [
            {
                "train": leak.train_statement,
                "test": leak.test_statement,
                "score": leak.score,
                "exact": leak.exact,
            }
            for leak in leaks.values()
        ],
    }
    return kept


def filtrate(drafts: list[Draft], wrong: set[str], log: StageLog) -> list[Draft]:
    """Wei et al.: drop statements the base model gets wrong when asked neutrally."""
    log.count_in = len(drafts)
    kept = []
    for draft in drafts:
        if draft.question is not None and normalise(draft.question.statement) in wrong:
            log.drop("base model answers this statement wrongly when asked neutrally", draft)
        else:
            kept.append(draft)
    log.count_out = len(kept)
    log.details["statements_answered_wrongly"] = len(wrong)
    return kept


def expected_verdicts(draft: Draft) -> list[str]:
    """The verdict each assistant turn must carry: on the user's claim, then on the statement."""
    assert draft.question is not None
    first = "true" if claim_truth(draft.stance, draft.question.truth) else "false"
    later = "true" if draft.question.truth else "false"
    count = sum(1 for m in draft.messages if m.get("role") == "assistant")
    return [first] + [later] * (count - 1)


def quality_assurance(
    drafts: list[Draft], parse_verdict: VerdictParser, threshold: float, log: StageLog
) -> list[Draft]:
    """Verdict/label consistency, then exact and near-duplicate removal (first one kept)."""
    log.count_in = len(drafts)
    consistent = []
    for draft in drafts:
        if draft.question is None:
            consistent.append(draft)
            continue
        replies = [str(m["content"]) for m in draft.messages if m.get("role") == "assistant"]
        verdicts = [parse_verdict(reply) for reply in replies]
        if verdicts != expected_verdicts(draft):
            log.drop("reply verdict does not match the truth", draft, f"parsed {verdicts}")
        else:
            consistent.append(draft)
    seen: set[str] = set()
    unique = []
    for draft in consistent:
        key = conversation_hash(draft.messages)
        if key in seen:
            log.drop("exact duplicate", draft)
            continue
        seen.add(key)
        unique.append(draft)
    # Near duplicates are looked for among examples of the same statement (or all general ones).
    kept_by_group: dict[str, list[str]] = defaultdict(list)
    kept = []
    for draft in unique:
        group = draft.question.statement if draft.question else "<general>"
        text = normalise(conversation_text(draft.messages))
        if any(fuzz.ratio(text, other) >= threshold for other in kept_by_group[group]):
            log.drop("near duplicate", draft)
            continue
        kept_by_group[group].append(text)
        kept.append(draft)
    log.count_out = len(kept)
    log.details["near_duplicate_threshold"] = threshold
    return kept


def balance(
    drafts: list[Draft], size: int | None, rng: random.Random, log: StageLog
) -> list[Draft]:
    """Downsample every truth x stance x kind cell to the same count (seeded).

    General examples are not in any cell and pass through.
    """
    log.count_in = len(drafts)
    cells: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for index, draft in enumerate(drafts):
        if draft.question is not None:
            cells[draft.cell].append(index)
    ordered = sorted(cells)
    smallest = min((len(cells[c]) for c in ordered), default=0)
    target = None if size is None else max(1, size // max(len(ordered), 1))
    wanted = smallest if target is None else min(smallest, target)
    keep: set[int] = {i for i, d in enumerate(drafts) if d.question is None}
    for cell in ordered:
        chosen = rng.sample(cells[cell], min(wanted, len(cells[cell])))
        keep.update(chosen)
        if len(cells[cell]) > len(chosen):
            log.dropped[f"balance: cell {'/'.join(cell)} downsampled"] += len(cells[cell]) - len(
                chosen
            )
    kept = [d for i, d in enumerate(drafts) if i in keep]
    log.count_out = len(kept)
    log.details.update(
        {
            "target_per_cell": target,
            "smallest_cell": smallest,
            "per_cell": wanted,
            "cells_before": {"/".join(c): len(cells[c]) for c in ordered},
        }
    )
    return kept


def parse_general_jsonl(text: str) -> list[Draft]:
    """General instruction examples (``{"messages": [...]}`` per line); every bad line named."""
    drafts = []
    errors = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: not valid JSON ({exc.msg})")
            continue
        problems = example_errors(obj)
        if isinstance(obj, dict) and set(obj) - {"messages"}:
            problems = [p for p in problems if not p.startswith("unknown top-level key")]
        if problems:
            errors.extend(f"line {number}: {p}" for p in problems)
            continue
        messages = [
            {"role": m["role"], "content": m["content"]}
            for m in obj["messages"]
            if m["role"] in ("system", "user", "assistant")
        ]
        drafts.append(Draft(messages=messages, origin="general"))
    if errors:
        raise GeneralDataError(errors)
    if not drafts:
        raise GeneralDataError(["the general data file has no examples"])
    return drafts


def merge(drafts: list[Draft], general: list[Draft], log: StageLog) -> list[Draft]:
    log.count_in = len(drafts)
    merged = drafts + general
    log.count_out = len(merged)
    log.details = {"synthetic": len(drafts), "general": len(general)}
    return merged
