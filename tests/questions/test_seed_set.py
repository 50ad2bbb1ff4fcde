"""The shipped seed set and templates: the invariants the research depends on."""

import csv
import re
from collections import Counter

from app.models import Question, VariantTemplate
from app.questions.dedupe import normalise
from app.questions.schemas import ParsedUpload
from app.questions.service import SEED_QUESTIONS, parse_upload
from app.variants.render import COMMON_STARTERS, clause, render_variant
from app.variants.service import load_seed_templates

# Seed sentences that start with a name or acronym, which a clause must keep capitalised.
PROPER_STARTERS = {
    "Alexander", "Canada", "Charles", "Frida", "GPS", "HTML", "Homer", "Iceland", "Japan",
    "Julius", "Jupiter", "Leonardo", "Ludwig", "Mars", "Michelangelo", "Mount", "Napoleon",
    "Neil", "Pablo", "Paris", "Saturn", "Sydney", "USB", "Venus", "Wi-Fi", "William",
    "Wolfgang", "World",
}  # fmt: skip


def _parsed() -> ParsedUpload:
    return parse_upload(SEED_QUESTIONS.read_bytes(), SEED_QUESTIONS.name)


def test_seed_parses_cleanly_with_100_rows() -> None:
    parsed = _parsed()
    assert parsed.errors == [] and parsed.warnings == []
    assert len(parsed.rows) == 100


def test_truth_is_balanced() -> None:
    true_count = _parsed().true_count
    assert 45 <= true_count <= 55


def test_at_least_eight_categories_each_balanced_enough() -> None:
    rows = _parsed().rows
    categories = Counter(r.category for r in rows)
    assert len(categories) >= 8
    assert "" not in categories
    for category in categories:
        truths = [r.truth for r in rows if r.category == category]
        assert 0.3 <= sum(truths) / len(truths) <= 0.7, category


def test_no_duplicates_or_near_duplicates() -> None:
    rows = _parsed().rows
    assert [r.position for r in rows if r.duplicate_of is not None] == []
    assert len({r.norm_hash for r in rows}) == 100


def test_every_row_has_id_explanation_and_a_real_negation() -> None:
    rows = _parsed().rows
    assert len({r.source_id for r in rows}) == 100
    for row in rows:
        assert row.explanation.endswith("."), row.position
        assert row.negation and normalise(row.negation) != normalise(row.statement)
        assert row.statement.endswith(".") and row.negation.endswith(".")


def test_negation_adds_a_negation_word() -> None:
    negations = re.compile(r"\b(not|cannot|n't)\b")
    for row in _parsed().rows:
        assert negations.search(row.negation) and not negations.search(row.statement), row.statement


def test_first_words_are_known_starters_or_names() -> None:
    for row in _parsed().rows:
        for sentence in (row.statement, row.negation):
            first = re.match(r"[^\W\d_][\w'-]*", sentence)
            assert first is not None
            word = first.group(0)
            assert word.lower() in COMMON_STARTERS or word in PROPER_STARTERS, word
            if word in PROPER_STARTERS:
                assert clause(sentence).startswith(word)
            else:
                assert clause(sentence)[0].islower()


def test_file_is_utf8_csv_with_the_documented_columns() -> None:
    with SEED_QUESTIONS.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    assert header == ["id", "category", "statement", "truth", "negation", "explanation"]


def test_templates_cover_every_kind_and_both_stances() -> None:
    templates = load_seed_templates()
    kinds = Counter(t.kind.value for t in templates)
    assert kinds["neutral"] >= 3
    assert set(kinds) == {"neutral", "biased", "adversarial", "paraphrase", "noise", "pushback"}
    for kind in ("biased", "adversarial", "paraphrase", "noise"):
        stances = {t.stance.value for t in templates if t.kind.value == kind}
        assert {"asserts", "negates"} <= stances, kind
    personas = {t.persona for t in templates if t.kind.value == "biased"}
    assert len(personas) >= 4
    for kind in ("biased", "adversarial", "noise"):
        pairs = Counter(t.text for t in templates if t.kind.value == kind)
        assert all(n == 2 for n in pairs.values()), kind  # each text in both stances
    pushback = [t for t in templates if t.kind.value == "pushback"]
    assert pushback and all(t.stance.value == "none" for t in pushback)
    assert all("Are you sure?" in t.followup for t in pushback)


def test_every_template_renders_every_seed_row() -> None:
    templates = load_seed_templates()
    for row in _parsed().rows:
        question = Question(
            question_set_id=1,
            position=row.position,
            statement=row.statement,
            negation=row.negation,
            truth=row.truth,
            category=row.category,
            norm_hash=row.norm_hash,
        )
        for data in templates:
            template = VariantTemplate(**data.model_dump(mode="json"))
            rendered = render_variant(template, question)
            content = rendered.messages[0]["content"]
            assert "{" not in content and ".." not in content and ". ." not in content
            if data.stance.value == "negates":
                assert clause(row.negation) in content
            elif "{claim_clause}" in data.text:
                assert clause(row.statement) in content
