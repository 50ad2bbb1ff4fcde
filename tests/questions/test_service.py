"""Importing sets all-or-nothing, listing, balance, deleting, and the seed set."""

import gc

import pytest
from sqlmodel import Session, col, func, select

from app.models import Question, QuestionSet, VariantTemplate
from app.questions import service
from app.questions.dedupe import norm_hash
from app.uploads import staging
from app.variants import service as variants
from tests import factories
from tests.conftest import IS_POSTGRES
from tests.questions.helpers import csv_bytes, distinct_statements, rows_for


def _count(db: Session, model: type[Question] | type[QuestionSet]) -> int:
    return db.exec(select(func.count()).select_from(model)).one()


def test_import_saves_every_row_with_duplicates_linked(db: Session) -> None:
    rows = rows_for(["The Sun is a star.", "Whales are fish.", "the sun is a star"])
    rows[2]["truth"] = "false"
    parsed = service.parse_upload(csv_bytes(rows), "three.csv")
    qs = service.import_question_set(db, "three", parsed, description="d", created_by=None)
    questions = db.exec(
        select(Question).where(Question.question_set_id == qs.id).order_by(col(Question.position))
    ).all()
    assert [q.statement for q in questions] == [r["statement"] for r in rows]
    assert [q.truth for q in questions] == [True, False, False]
    assert questions[0].norm_hash == norm_hash("The Sun is a star.")
    assert questions[2].duplicate_of_id == questions[0].id
    assert questions[2].duplicate_similarity == 100.0
    assert questions[2].duplicate_conflict is True
    assert questions[1].duplicate_of_id is None
    assert qs.source_filename == "three.csv" and qs.description == "d"


def test_duplicates_link_to_their_own_set_when_sets_follow_each_other(db: Session) -> None:
    statements = distinct_statements(30)
    statements[20] = statements[4].upper()  # exact
    statements[25] = statements[9].replace(" ", "  ").rstrip(".") + "s."  # near
    statements[28] = statements[25] + "."  # an exact repeat of the near duplicate
    sets = [
        service.import_question_set(
            db, name, service.parse_upload(csv_bytes(rows_for(statements)), f"{name}.csv")
        )
        for name in ("first", "second")
    ]
    factories.make_question_set(db)  # ids drawn afterwards do not collide with the reserved
    for qs in sets:
        questions = db.exec(select(Question).where(Question.question_set_id == qs.id)).all()
        id_at = {q.position: q.id for q in questions}
        links = {q.position: q.duplicate_of_id for q in questions if q.duplicate_of_id}
        assert links == {21: id_at[5], 26: id_at[10], 29: id_at[26]}


def test_one_bad_row_among_thousands_saves_nothing(db: Session) -> None:
    rows = rows_for(distinct_statements(2000))
    rows[1234]["truth"] = "perhaps"
    parsed = service.parse_upload(csv_bytes(rows), "bad.csv")
    assert [(e.row, e.column) for e in parsed.errors] == [(1235, "truth")]
    before = (_count(db, QuestionSet), _count(db, Question))
    with pytest.raises(service.QuestionSetError, match="row 1235"):
        service.import_question_set(db, "bad", parsed)
    assert (_count(db, QuestionSet), _count(db, Question)) == before


def test_names_are_unique_and_required(db: Session) -> None:
    parsed = service.parse_upload(csv_bytes(rows_for(["A fact."])), "a.csv")
    service.import_question_set(db, "unique-name", parsed)
    with pytest.raises(service.QuestionSetError, match="already exists"):
        service.import_question_set(db, " unique-name ", parsed)
    with pytest.raises(service.QuestionSetError, match="name"):
        service.import_question_set(db, "  ", parsed)


def test_list_sets_counts_balance_and_runs(db: Session) -> None:
    rows = rows_for(["One fact.", "one fact", "Two facts.", "Three facts."])
    qs = service.import_question_set(db, "counted", service.parse_upload(csv_bytes(rows), "c.csv"))
    summary = service.get_summary(db, qs.id or 0)
    assert summary is not None
    assert (summary.questions, summary.true_count, summary.false_count) == (4, 2, 2)
    assert (summary.duplicates, summary.conflicts, summary.runs) == (1, 1, 0)
    factories.make_run(db, qs)
    summary = service.get_summary(db, qs.id or 0)
    assert summary is not None and summary.runs == 1


def test_category_balance(db: Session) -> None:
    rows = [
        {"statement": "A1.", "truth": "1", "category": "a"},
        {"statement": "A2.", "truth": "0", "category": "a"},
        {"statement": "A3.", "truth": "1", "category": "a"},
        {"statement": "B1.", "truth": "0", "category": "b"},
    ]
    qs = service.import_question_set(db, "cats", service.parse_upload(csv_bytes(rows), "c.csv"))
    balance = service.category_balance(db, qs.id or 0)
    assert [(b.category, b.questions, b.true_count, b.false_count) for b in balance] == [
        ("a", 3, 2, 1),
        ("b", 1, 0, 1),
    ]


def test_question_page_and_flagged_filter(db: Session) -> None:
    statements = distinct_statements(120)
    statements[100] = statements[3]
    qs = service.import_question_set(
        db, "paged", service.parse_upload(csv_bytes(rows_for(statements)), "p.csv")
    )
    total, page = service.question_page(db, qs.id or 0, offset=50, limit=50)
    assert total == 120 and [q.position for q in page] == list(range(51, 101))
    total, flagged = service.question_page(db, qs.id or 0, flagged=True)
    assert total == 1 and flagged[0].position == 101


def test_delete_refused_while_a_run_uses_the_set(db: Session) -> None:
    qs = factories.make_question_set(db)
    factories.make_run(db, qs)
    with pytest.raises(service.QuestionSetError, match="used by 1 run"):
        service.delete_set(db, qs.id or 0)
    assert db.get(QuestionSet, qs.id) is not None


def test_delete_removes_set_and_questions(db: Session) -> None:
    statements = ["Same thing.", "Same thing!"]
    qs = service.import_question_set(
        db, "gone", service.parse_upload(csv_bytes(rows_for(statements)), "g.csv")
    )
    set_id = qs.id
    service.delete_set(db, set_id or 0)
    assert db.get(QuestionSet, set_id) is None
    assert db.exec(select(Question).where(Question.question_set_id == set_id)).all() == []


def test_seed_is_idempotent(db: Session) -> None:
    first = service.seed_question_set(db)
    added = variants.seed_templates(db)
    assert first is not None and first.name == "seed"
    assert added == len(variants.load_seed_templates())
    texts = {t.name: t.text for t in db.exec(select(VariantTemplate)).all()}
    assert service.seed_question_set(db) is None
    assert variants.seed_templates(db) == 0
    assert {t.name: t.text for t in db.exec(select(VariantTemplate)).all()} == texts
    seed_sets = db.exec(select(QuestionSet).where(QuestionSet.name == "seed")).all()
    assert len(seed_sets) == 1
    count = db.exec(
        select(func.count()).select_from(Question).where(Question.question_set_id == first.id)
    ).one()
    assert count == 100


def test_seed_keeps_an_edited_template(db: Session) -> None:
    variants.seed_templates(db)
    template = db.exec(
        select(VariantTemplate).where(VariantTemplate.name == "neutral-true-or-false")
    ).one()
    template.text = "Edited: {statement}"
    db.add(template)
    db.flush()
    variants.seed_templates(db)
    db.refresh(template)
    assert template.text == "Edited: {statement}"


def test_pending_uploads_round_trip_and_reject_bad_tokens() -> None:
    token = staging.store_pending(b"statement,truth\nA.,1\n", "../../etc/x.csv")
    assert staging.load_pending(token) == (b"statement,truth\nA.,1\n", "x.csv")
    staging.discard_pending(token)
    for bad in (token, "../../../etc/passwd", "short"):
        with pytest.raises(staging.UploadExpired, match="expired"):
            staging.load_pending(bad)


@pytest.mark.skipif(IS_POSTGRES, reason="an SQLite connection setting")
def test_the_larger_page_cache_ends_with_the_import(db: Session) -> None:
    connection = db.connection()
    before = connection.exec_driver_sql("PRAGMA cache_size").scalar()
    parsed = service.parse_upload(csv_bytes(rows_for(["A fact."])), "a.csv")
    service.import_question_set(db, "cached", parsed)
    assert connection.exec_driver_sql("PRAGMA cache_size").scalar() == before


@pytest.mark.parametrize("enabled", [True, False])
def test_the_cycle_collector_is_left_as_it_was(enabled: bool) -> None:
    data = csv_bytes(rows_for(distinct_statements(50)))
    (gc.enable if enabled else gc.disable)()
    try:
        service.parse_upload(data, "a.csv")
        assert gc.isenabled() is enabled
    finally:
        gc.enable()
