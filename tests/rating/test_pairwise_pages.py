"""The pairwise pages: the admin opens a round, a rater reads the guidelines, compares, skips,
undoes; blind throughout; errors shown on the page."""

import re

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import (
    ModelConfig,
    PairwiseChoice,
    PairwiseItem,
    RatingRound,
    Reply,
    Run,
    RunArm,
)
from app.rating import pairwise
from tests import factories
from tests.html import parse
from tests.rating.helpers import ARMS, neutral_prompts
from tests.rating.test_pairwise import make_pairwise

SUBMIT = re.compile(r'action="(/rate/pairwise/(\d+)/items/([0-9a-f]{32}))"')
CHOOSE = {"factual": "left", "helpful": "tie"}
SIZES = {"tabindex", "maxlength", "rows", "min", "max"}


def _numbers_in_attributes(html: str, round_id: int) -> set[str]:
    found = set()
    for element in parse(html):
        for name, value in element.attrs.items():
            if name in SIZES or element.tag in ("meta", "progress"):
                continue
            value = value.replace(f"/rate/pairwise/{round_id}/", "/rate/pairwise/ROUND/")
            value = re.sub(r"/items/[0-9a-f]{32}", "/items/TOKEN", value)
            found.update(re.findall(r"\d+", value))
    return found


def _distinct_replies(db: Session) -> None:
    """Each reply a text of its own, with no id, arm or kind in it."""
    for n, reply in enumerate(db.exec(select(Reply)).all()):
        reply.text = f"Reply text {chr(65 + n % 26)}{chr(65 + n // 26 % 26)}: no, it is not."
        db.add(reply)
    db.flush()


def _start(client: TestClient, round_: RatingRound, headers: dict[str, str]) -> str:
    page = client.get("/rate/pairwise", headers=headers).text
    assert "Before you start comparing" in page
    return client.post(f"/rate/pairwise/{round_.id}/start", headers=headers).text


def test_guidelines_first_then_two_replies_side_by_side(
    rater_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    round_ = make_pairwise(db, k=1)
    _distinct_replies(db)
    page = _start(rater_client, round_, htmx_headers)
    if not htmx_headers:  # a plain browser is redirected to the page
        page = rater_client.get("/rate/pairwise").text
    match = SUBMIT.search(page)
    assert match and int(match.group(2)) == round_.id
    sides = [e for e in parse(page) if e.attrs.get("class") == "pair-side"]
    assert [e.attrs["data-side"] for e in sides] == ["left", "right"]
    item = db.exec(select(PairwiseItem).where(PairwiseItem.token == match.group(3))).one()
    a, b = db.get(Reply, item.reply_a_id), db.get(Reply, item.reply_b_id)
    assert a is not None and b is not None
    rater_id = db.exec(select(PairwiseChoice.rater_id)).first()  # none yet
    assert rater_id is None
    left, right = (a, b) if pairwise.a_on_left(round_.seed, item.id or 0, _me(db)) else (b, a)
    assert page.index(left.text) < page.index(right.text)
    radios = [
        (e.attrs["name"], e.attrs["value"]) for e in parse(page) if e.attrs.get("type") == "radio"
    ]
    assert radios == [(q, s) for q in ("factual", "helpful") for s in ("left", "right", "tie")]


def _me(db: Session) -> int:
    from app.models import User

    user = db.exec(select(User).where(User.role == "rater")).one()
    return user.id or 0


def test_a_choice_is_stored_by_side_and_the_next_item_follows(
    rater_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    round_ = make_pairwise(db, k=1, questions=2)
    _start(rater_client, round_, htmx_headers)
    page = rater_client.get("/rate/pairwise", headers=htmx_headers).text
    first = SUBMIT.search(page)
    assert first
    response = rater_client.post(
        first.group(1), data={"factual": "right", "helpful": "left"}, headers=htmx_headers
    )
    assert response.status_code in (200, 303)
    choice = db.exec(select(PairwiseChoice)).one()
    assert (choice.factual, choice.helpful) == ("right", "left")
    page = rater_client.get("/rate/pairwise", headers=htmx_headers).text
    second = SUBMIT.search(page)
    assert second and second.group(3) != first.group(3)


def test_a_missing_answer_is_said_and_the_other_kept(
    rater_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    round_ = make_pairwise(db)
    _start(rater_client, round_, htmx_headers)
    page = rater_client.get("/rate/pairwise", headers=htmx_headers).text
    match = SUBMIT.search(page)
    assert match
    response = rater_client.post(match.group(1), data={"factual": "tie"}, headers=htmx_headers)
    assert response.status_code == 422
    alerts = [e.text for e in parse(response.text) if e.attrs.get("role") == "alert"]
    assert alerts == ["Please choose which is more helpful (left, right or tie)."]
    checked = [
        (e.attrs["name"], e.attrs["value"]) for e in parse(response.text) if "checked" in e.attrs
    ]
    assert checked == [("factual", "tie")]
    assert SUBMIT.search(response.text).group(3) == match.group(3)  # type: ignore[union-attr]
    assert db.exec(select(PairwiseChoice)).all() == []
    bad = rater_client.post(
        match.group(1), data={"factual": "up", "helpful": "left"}, headers=htmx_headers
    )
    assert bad.status_code == 422 and "more factual" in bad.text


def test_skip_and_undo(rater_client: TestClient, db: Session, htmx_headers: dict[str, str]) -> None:
    round_ = make_pairwise(db, k=1, questions=2)
    _start(rater_client, round_, htmx_headers)
    page = rater_client.get("/rate/pairwise", headers=htmx_headers).text
    skipped = SUBMIT.search(page)
    assert skipped
    rater_client.post(skipped.group(1) + "/skip", headers=htmx_headers)
    page = rater_client.get("/rate/pairwise", headers=htmx_headers).text
    chosen = SUBMIT.search(page)
    assert chosen and chosen.group(3) != skipped.group(3)
    rater_client.post(chosen.group(1), data=CHOOSE, headers=htmx_headers)
    assert "data-pairwise-undo" in rater_client.get("/rate/pairwise", headers=htmx_headers).text
    undone = rater_client.post(f"/rate/pairwise/{round_.id}/undo", headers=htmx_headers)
    assert "Your last choice was taken back." in undone.text
    assert SUBMIT.search(undone.text).group(3) == chosen.group(3)  # type: ignore[union-attr]
    checked = [
        (e.attrs["name"], e.attrs["value"]) for e in parse(undone.text) if "checked" in e.attrs
    ]
    assert checked == [("factual", "left"), ("helpful", "tie")]
    assert db.exec(select(PairwiseChoice)).all() == []


def test_an_unknown_token_is_said(
    rater_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    round_ = make_pairwise(db)
    _start(rater_client, round_, htmx_headers)
    response = rater_client.post(
        f"/rate/pairwise/{round_.id}/items/{'0' * 32}", data=CHOOSE, headers=htmx_headers
    )
    assert response.status_code == 200
    assert "This item is not part of the round." in response.text


def test_a_single_round_is_not_a_pairwise_round(rater_client: TestClient, db: Session) -> None:
    from tests.rating.helpers import make_round

    single, _ = make_round(db)
    assert rater_client.post(f"/rate/pairwise/{single.id}/start").status_code == 404


def test_nothing_about_replies_arms_or_models_reaches_the_rater(
    rater_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    # Ids well above the page's own small numbers, so a leak cannot hide among them.
    factories.make_run(db, factories.make_question_set(db, n=30), arms=("armfillerx", "armfillery"))
    round_ = make_pairwise(db, k=1, questions=3)
    neutral_prompts(db)
    _distinct_replies(db)
    run_id = pairwise.run_of(db, round_)
    reply_ids = {str(i) for i in db.exec(select(Reply.id).where(Reply.run_id == run_id))}
    assert min(int(i) for i in reply_ids) > 100
    secret_ids = reply_ids | {str(r.id) for r in db.exec(select(Run)).all()}
    words = set(ARMS) | {r.name for r in db.exec(select(Run))}
    words |= {m.name for m in db.exec(select(ModelConfig))}
    words |= {a.label for a in db.exec(select(RunArm))} | {"neutral", "biased"}
    words = {w.lower() for w in words}
    pages = [_start(rater_client, round_, htmx_headers)]
    for _ in range(4):
        html = rater_client.get("/rate/pairwise", headers=htmx_headers).text
        pages.append(html)
        match = SUBMIT.search(html)
        assert match
        pages.append(rater_client.post(match.group(1), data=CHOOSE, headers=htmx_headers).text)
    pages.append(rater_client.post(f"/rate/pairwise/{round_.id}/undo", headers=htmx_headers).text)
    pages.append(rater_client.get("/rate/pairwise/mine", headers=htmx_headers).text)
    for html in pages:
        lowered = html.lower()
        assert not [w for w in words if w in lowered]
        numbers = _numbers_in_attributes(html, round_.id or 0)
        assert not numbers & secret_ids, numbers & secret_ids
        text = re.sub(r"<[^>]+>", " ", html)
        assert not set(re.findall(r"\b\d+\b", text)) & reply_ids


def test_history_lists_the_raters_own_choices(
    rater_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    round_ = make_pairwise(db)
    _start(rater_client, round_, htmx_headers)
    match = SUBMIT.search(rater_client.get("/rate/pairwise").text)
    assert match
    rater_client.post(match.group(1), data={"factual": "right", "helpful": "tie"})
    page = rater_client.get("/rate/pairwise/mine", headers=htmx_headers).text
    cells = [e.text for e in parse(page) if e.tag == "td"]
    assert cells[0] == "pairs" and cells[2:] == ["right", "tie"]
    round_.is_open = False  # a closed round's choices stay in the history
    db.add(round_)
    db.flush()
    page = rater_client.get("/rate/pairwise/mine", headers=htmx_headers).text
    assert [e.text for e in parse(page) if e.tag == "td"][2:] == ["right", "tie"]


# --- admin --------------------------------------------------------------------------------


def test_admin_opens_a_pairwise_round_from_the_rounds_page(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    run = factories.make_run(db, factories.make_question_set(db, n=2), arms=ARMS)
    lone = factories.make_run(db, arms=("alone",))
    page = admin_client.get("/rating/rounds", headers=htmx_headers).text
    form = [e for e in parse(page) if "data-pairwise-create" in e.attrs]
    assert form and form[0].attrs["action"] == "/rating/rounds/pairwise"
    choices = {e.attrs["value"] for e in parse(page) if e.attrs.get("name") == "run_id"}
    assert str(run.id) in choices and str(lone.id) not in choices
    response = admin_client.post(
        "/rating/rounds/pairwise",
        data={"name": "Side by side", "run_id": str(run.id), "raters_per_item": "3"},
        headers=htmx_headers,
        follow_redirects=False,
    )
    assert response.status_code in (200, 303)
    round_ = db.exec(select(RatingRound).where(RatingRound.name == "Side by side")).one()
    assert (round_.kind, round_.raters_per_reply, round_.item_count) == ("pairwise", 3, 4)
    detail = admin_client.get(f"/rating/rounds/{round_.id}", headers=htmx_headers).text
    cells = [e.text for e in parse(detail) if e.tag == "td"]
    assert "4" in cells and "0 / 12" in cells
    listing = admin_client.get("/rating/rounds").text
    assert "pairwise" in [e.text for e in parse(listing) if e.tag == "td"]


def test_opening_errors_are_shown_on_the_form(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    factories.make_run(db, factories.make_question_set(db, n=2), arms=ARMS)
    lone = factories.make_run(db, arms=("alone",))
    db.commit()  # the refused request rolls its transaction back
    for data, message in [
        ({"name": "x"}, "Choose a run with at least two arms."),
        (
            {"name": "x", "run_id": str(lone.id)},
            "A pairwise round needs a run with at least two arms.",
        ),
        ({"name": "x", "run_id": "999999"}, "Unknown run."),
    ]:
        response = admin_client.post("/rating/rounds/pairwise", data=data, headers=htmx_headers)
        assert response.status_code == 422
        alerts = [e.text for e in parse(response.text) if e.attrs.get("role") == "alert"]
        assert alerts == [message]
    assert db.exec(select(RatingRound)).all() == []


def test_the_single_reply_page_points_to_waiting_pairs(
    rater_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    page = rater_client.get("/rate", headers=htmx_headers).text
    assert "data-pairwise-waiting" not in page
    make_pairwise(db)
    page = rater_client.get("/rate", headers=htmx_headers).text
    links = [e.attrs.get("href") for e in parse(page) if e.tag == "a"]
    assert "data-pairwise-waiting" in page and "/rate/pairwise" in links


def test_pushback_shows_each_replys_own_first_answer(
    rater_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    from app.models import PromptVariant

    round_ = make_pairwise(db, k=1, questions=1)
    for variant in db.exec(select(PromptVariant)).all():
        variant.followup = "Are you sure about that?"
        db.add(variant)
    for reply in db.exec(select(Reply)).all():
        reply.first_text = f"First answer {reply.id * 7}."
        reply.text = "Final answer."
        db.add(reply)
    db.flush()
    _start(rater_client, round_, htmx_headers)
    page = rater_client.get("/rate/pairwise", headers=htmx_headers).text
    token = SUBMIT.search(page).group(3)  # type: ignore[union-attr]
    item = db.exec(select(PairwiseItem).where(PairwiseItem.token == token)).one()
    a, b = db.get(Reply, item.reply_a_id), db.get(Reply, item.reply_b_id)
    assert a is not None and b is not None
    sides = [e for e in parse(page) if e.attrs.get("class") == "pair-side"]
    assert len(sides) == 2
    left, right = (a, b) if pairwise.a_on_left(round_.seed, item.id or 0, _me(db)) else (b, a)
    assert left.first_text in sides[0].text and right.first_text in sides[1].text
    assert all("Are you sure about that?" in s.text for s in sides)
