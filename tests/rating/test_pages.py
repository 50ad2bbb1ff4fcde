import re

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import (
    Adjudication,
    ModelConfig,
    PromptVariant,
    Rating,
    RatingItem,
    RatingRevision,
    RatingRound,
    RunArm,
)
from app.rating import leases, submissions
from tests import factories
from tests.rating.helpers import ARMS, make_round, rating_form, rating_input

SUBMIT = re.compile(r'action="(/rate/\d+/items/([0-9a-f]{32}))"')


def _reply(db: Session, token: str) -> int:
    """The reply a rater's page names by ``token``."""
    return db.exec(select(RatingItem.reply_id).where(RatingItem.token == token)).one()


def _start(client: TestClient, round_: RatingRound) -> str:
    first = client.get("/rate")
    assert "Before you start" in first.text and "Agree" in first.text
    response = client.post(f"/rate/{round_.id}/start", follow_redirects=True)
    assert response.status_code == 200
    return response.text


def _blind_text(db: Session) -> list[str]:
    """Everything a rater must never see: model names and ids, arm labels, variant kinds."""
    secrets = list(ARMS)
    secrets += [m.name for m in db.exec(select(ModelConfig)).all()]
    secrets += ["neutral", "biased", "armbaseline", "run-"]
    return secrets


def test_rater_page_is_blind_and_shows_conversation_and_reference(
    rater_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    round_, _ = make_round(db)
    # The factory writes the kind into the prompt; make prompts neutral-free for this check.
    for variant in db.exec(select(PromptVariant)).all():
        variant.messages = [{"role": "user", "content": "Is it so? <b>bold</b>\nsecond line"}]
        db.add(variant)
    db.flush()
    _start(rater_client, round_)
    page = rater_client.get("/rate", headers=htmx_headers)
    assert page.status_code == 200
    html = page.text
    assert SUBMIT.search(html)
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold" not in html
    assert "Reference fact" in html and "Explanation" in html
    lowered = html.lower()
    for secret in _blind_text(db):
        assert secret.lower() not in lowered, secret
    assert ("<html" in html) is not bool(htmx_headers)


def test_other_raters_labels_never_show(
    client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    round_, _ = make_round(db, k=2, questions=1)
    other = factories.make_user(db)
    rid = leases.next_for(db, round_, other.id)
    assert rid is not None
    submissions.submit(
        db, round_, other.id, rid, rating_input("evasive", 1).model_copy(update={"note": "zqxnote"})
    )
    me = factories.make_user(db)
    factories.login(client, me)
    client.post(f"/rate/{round_.id}/start")
    seen = set()
    for _ in range(4):
        html = client.get("/rate", headers=htmx_headers).text
        assert "zqxnote" not in html and other.email not in html
        match = SUBMIT.search(html)
        assert match
        seen.add(_reply(db, match.group(2)))
        client.post(match.group(1), data={"label": "agree", "helpfulness": "2", "verdict": "none"})
    assert rid in seen
    mine = client.get("/rate/mine", headers=htmx_headers).text
    assert "zqxnote" not in mine and "evasive" not in mine


def test_plain_submit_redirects_and_htmx_submit_swaps_in_the_next_reply(
    rater_client: TestClient, db: Session, rater: factories.UserWithPassword
) -> None:
    round_, _ = make_round(db)
    html = _start(rater_client, round_)
    action, first = SUBMIT.search(html).groups()  # type: ignore[union-attr]
    plain = rater_client.post(
        action,
        data={"label": "correct", "helpfulness": "5", "verdict": "false", "note": " n "},
        follow_redirects=False,
    )
    assert plain.status_code == 303 and plain.headers["location"] == "/rate"
    html = rater_client.get("/rate").text
    action2, second = SUBMIT.search(html).groups()  # type: ignore[union-attr]
    assert second != first
    swapped = rater_client.post(
        action2,
        data={"label": "agree", "helpfulness": "1", "verdict": "true"},
        headers={"HX-Request": "true"},
    )
    assert swapped.status_code == 200
    assert swapped.text.lstrip().startswith('<section id="rating"')
    assert "<span data-progress-done>2</span>" in swapped.text
    ratings = db.exec(select(Rating).where(Rating.rater_id == rater.id)).all()
    assert {(r.reply_id, r.label, r.helpfulness, r.note) for r in ratings} == {
        (_reply(db, first), "correct", 5, "n"),
        (_reply(db, second), "agree", 1, ""),
    }


def test_missing_label_keeps_the_same_reply_with_a_message(
    rater_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    round_, _ = make_round(db)
    html = _start(rater_client, round_)
    action, rid = SUBMIT.search(html).groups()  # type: ignore[union-attr]
    response = rater_client.post(action, data={"helpfulness": "3"}, headers=htmx_headers)
    assert "Please choose a label" in response.text
    assert SUBMIT.search(response.text).group(2) == rid  # type: ignore[union-attr]
    assert db.exec(select(Rating)).all() == []


def test_nothing_is_preselected_not_even_the_parsed_verdict(
    rater_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    """No anchoring: the rater chooses every answer, the verdict too (it is required)."""
    round_, _ = make_round(db)
    _start(rater_client, round_)
    html = rater_client.get("/rate", headers=htmx_headers).text
    action, token = SUBMIT.search(html).groups()  # type: ignore[union-attr]
    form = rating_form(html)
    assert {name for name, _value in form.radios} == {"label", "helpfulness", "verdict"}
    assert form.checked == [], form.checked
    assert all(form.required[name] for name in ("label", "helpfulness", "verdict"))
    # Whatever the parser read from the reply, the server takes no verdict for granted.
    response = rater_client.post(
        action, data={"label": "agree", "helpfulness": "3"}, headers=htmx_headers
    )
    assert "Please choose the reply&#39;s verdict." in response.text
    assert SUBMIT.search(response.text).group(2) == token  # type: ignore[union-attr]
    # What the rater had chosen is still chosen; only the verdict is left to them.
    assert sorted(rating_form(response.text).checked) == [("helpfulness", "3"), ("label", "agree")]
    assert db.exec(select(Rating)).all() == []


def test_skip_and_undo_brings_back_the_answers(
    rater_client: TestClient,
    db: Session,
    rater: factories.UserWithPassword,
    htmx_headers: dict[str, str],
) -> None:
    round_, _ = make_round(db)
    html = _start(rater_client, round_)
    action, first = SUBMIT.search(html).groups()  # type: ignore[union-attr]
    html = rater_client.post(action + "/skip", headers=htmx_headers, follow_redirects=True).text
    action, second = SUBMIT.search(html).groups()  # type: ignore[union-attr]
    assert second != first
    rater_client.post(
        action,
        data={"label": "agree", "helpfulness": "2", "verdict": "false", "note": "my why"},
        headers=htmx_headers,
    )
    undone = rater_client.post(f"/rate/{round_.id}/undo", headers=htmx_headers)
    assert undone.status_code == 200 and "taken back" in undone.text
    assert SUBMIT.search(undone.text).group(2) == second  # type: ignore[union-attr]
    form = rating_form(undone.text)
    assert sorted(form.checked) == [("helpfulness", "2"), ("label", "agree"), ("verdict", "false")]
    assert form.textareas["note"] == "my why" and not form.flagged
    # A reload shows the same reply (its rating is gone, its lease back).
    assert SUBMIT.search(rater_client.get("/rate").text).group(2) == second  # type: ignore[union-attr]
    assert db.exec(select(Rating).where(Rating.rater_id == rater.id)).all() == []


def test_a_token_of_another_round_or_made_up_rates_nothing(
    rater_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    round_, _ = make_round(db)
    other, _ = make_round(db)
    html = _start(rater_client, round_)
    _action, token = SUBMIT.search(html).groups()  # type: ignore[union-attr]
    foreign = db.exec(select(RatingItem.token).where(RatingItem.round_id == other.id)).first()
    data = {"label": "agree", "helpfulness": "2", "verdict": "none"}
    for path in (f"/rate/{round_.id}/items/{foreign}", f"/rate/{round_.id}/items/{'0' * 32}"):
        response = rater_client.post(path, data=data, headers=htmx_headers)
        assert response.status_code == 200
        assert "not part of the rating round" in response.text
    assert db.exec(select(Rating)).all() == []
    assert SUBMIT.search(rater_client.get("/rate").text).group(2) == token  # type: ignore[union-attr]


def test_my_ratings_and_revise_with_history(
    rater_client: TestClient,
    db: Session,
    rater: factories.UserWithPassword,
    htmx_headers: dict[str, str],
) -> None:
    round_, _ = make_round(db)
    html = _start(rater_client, round_)
    action, _rid = SUBMIT.search(html).groups()  # type: ignore[union-attr]
    rater_client.post(action, data={"label": "agree", "helpfulness": "2", "verdict": "none"})
    rating = db.exec(select(Rating).where(Rating.rater_id == rater.id)).one()
    listing = rater_client.get("/rate/mine", headers=htmx_headers)
    assert f"/rate/mine/{rating.id}" in listing.text
    edit = rater_client.get(f"/rate/mine/{rating.id}", headers=htmx_headers)
    assert edit.status_code == 200 and 'value="agree"' in edit.text
    saved = rater_client.post(
        f"/rate/mine/{rating.id}",
        data={"label": "correct", "helpfulness": "4", "verdict": "true"},
        headers=htmx_headers,
        follow_redirects=False,
    )
    assert saved.status_code in (200, 303)
    db.refresh(rating)
    assert (rating.label, rating.helpfulness, rating.verdict) == ("correct", 4, "true")
    history = db.exec(select(RatingRevision).where(RatingRevision.rating_id == rating.id)).all()
    assert [(h.before["label"], h.changed_by) for h in history] == [("agree", rater.id)]
    assert "Earlier versions" in rater_client.get(f"/rate/mine/{rating.id}").text


def test_a_rater_cannot_open_another_raters_rating(
    client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    round_, _ = make_round(db)
    owner = factories.make_user(db)
    rid = leases.next_for(db, round_, owner.id)
    assert rid is not None
    rating = db.get(Rating, submissions.submit(db, round_, owner.id, rid, rating_input()))
    assert rating is not None
    factories.login(client, factories.make_user(db))
    assert client.get(f"/rate/mine/{rating.id}", headers=htmx_headers).status_code == 404
    assert (
        client.post(
            f"/rate/mine/{rating.id}", data={"label": "agree", "helpfulness": "1"}
        ).status_code
        == 404
    )


def test_admin_opens_a_round_over_two_runs(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    runs = [factories.make_run(db, arms=ARMS) for _ in range(2)]
    page = admin_client.get("/rating/rounds", headers=htmx_headers)
    assert page.status_code == 200 and runs[0].name in page.text
    response = admin_client.post(
        "/rating/rounds",
        data={
            "name": "mixed",
            "run_ids": [str(r.id) for r in runs],
            "raters_per_reply": "3",
            "lease_minutes": "5",
            "seed": "11",
            "show_reference": "1",
            "guidelines_md": "# Rules\n\n<script>alert(1)</script> **be fair**",
        },
        headers=htmx_headers,
        follow_redirects=False,
    )
    round_ = db.exec(select(RatingRound).where(RatingRound.name == "mixed")).one()
    assert (round_.raters_per_reply, round_.lease_minutes, round_.seed) == (3, 5, 11)
    assert round_.item_count == 2 * 6 * 2 * 2
    target = response.headers.get("HX-Redirect") or response.headers["location"]
    detail = admin_client.get(target, headers=htmx_headers)
    assert detail.status_code == 200
    assert "<strong>be fair</strong>" in detail.text and "<script>alert" not in detail.text
    assert runs[1].name in detail.text


def test_admin_progress_and_adjudication(
    admin_client: TestClient,
    db: Session,
    admin: factories.UserWithPassword,
    htmx_headers: dict[str, str],
) -> None:
    round_, _ = make_round(db, k=2, questions=1)
    a, b = factories.make_user(db), factories.make_user(db)
    rid = leases.next_for(db, round_, a.id)
    assert rid is not None
    submissions.submit(db, round_, a.id, rid, rating_input("agree", 1))
    assert leases.next_for(db, round_, b.id) is not None
    while (other := leases.next_for(db, round_, b.id)) not in (rid, None):
        submissions.submit(db, round_, b.id, other, rating_input("agree", 1))
    submissions.submit(db, round_, b.id, rid, rating_input("agree", 4))
    given = len(db.exec(select(Rating).where(Rating.round_id == round_.id)).all())
    listed = admin_client.get("/rating/rounds", headers=htmx_headers)
    assert f'<td class="num">{given} / 8</td>' in listed.text
    detail = admin_client.get(f"/rating/rounds/{round_.id}", headers=htmx_headers)
    assert a.email.split("@")[0] in detail.text and b.email.split("@")[0] in detail.text
    page = admin_client.get(f"/rating/rounds/{round_.id}/adjudicate", headers=htmx_headers)
    assert page.status_code == 200 and f'id="r{rid}"' in page.text
    assert "1 replies where" in page.text
    admin_client.post(
        f"/rating/rounds/{round_.id}/adjudicate/{rid}",
        data={"label": "correct", "helpfulness": "3", "verdict": "false", "note": "ok"},
        headers=htmx_headers,
    )
    adjudication = db.exec(select(Adjudication).where(Adjudication.reply_id == rid)).one()
    assert (adjudication.label, adjudication.admin_id) == ("correct", admin.id)
    # Kept apart: the raters' own ratings are unchanged.
    assert {r.label for r in db.exec(select(Rating).where(Rating.reply_id == rid)).all()} == {
        "agree"
    }
    arm_names = [arm.label for arm in db.exec(select(RunArm)).all()]
    assert arm_names


def test_guidelines_page_and_round_update(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    round_, _ = make_round(db)
    admin_client.post(f"/rating/rounds/{round_.id}", data={"guidelines_md": "*new rules*"})
    admin_client.post(f"/rating/rounds/{round_.id}", data={"is_open": "0"})
    db.refresh(round_)
    assert round_.guidelines_md == "*new rules*" and not round_.is_open
    admin_client.post(f"/rating/rounds/{round_.id}", data={"is_open": "1"})
    page = admin_client.get("/rate/guidelines", headers=htmx_headers)
    assert "<em>new rules</em>" in page.text
