"""Pairwise statistics against hand-worked values and libraries (scipy, krippendorff,
statsmodels), and a fixture with a rater who always picks the left reply."""

import itertools

import krippendorff
import numpy as np
import pytest
import statsmodels.api as sm

from app.metrics import pairwise
from app.metrics.pairwise import Choice

_ids = itertools.count(1)


def choice(
    statement: int,
    *,
    winner: str,
    a_on_left: bool = True,
    rater: int = 1,
    item: int | None = None,
    kind: str = "neutral",
    helpful: str | None = None,
    arms: tuple[str, str] = ("base", "sdi"),
) -> Choice:
    """A choice whose factual winner is ``winner`` ("a", "b" or "tie"), shown as asked."""
    side = "tie" if winner == "tie" else ("left" if (winner == "a") == a_on_left else "right")
    return Choice(
        choice_id=next(_ids),
        item_id=item if item is not None else next(_ids),
        rater_id=rater,
        statement=statement,
        kind=kind,
        arm_a=arms[0],
        arm_b=arms[1],
        a_on_left=a_on_left,
        factual=side,
        helpful=helpful if helpful is not None else side,
    )


def test_sides_turn_into_winners() -> None:
    c = Choice(1, 1, 1, 1, "neutral", "base", "sdi", a_on_left=False, factual="left", helpful="tie")
    assert c.winner("factual") == "b" and pairwise.winner_arm(c, "factual") == "sdi"
    assert c.winner("helpful") == "tie"
    c = Choice(
        1, 1, 1, 1, "neutral", "base", "sdi", a_on_left=True, factual="right", helpful="left"
    )
    assert (c.winner("factual"), c.winner("helpful")) == ("b", "a")


def test_win_rates_ties_apart_and_the_sign_test_by_hand() -> None:
    # Six statements. Statement 1: a, a, b (leans a). Statements 2-6: b, b (lean b), and
    # statement 6 also has a tie. Choices: 3 + 5 x 2 + 1 = 14; a wins 2, b wins 11, ties 1.
    choices = [choice(1, winner="a"), choice(1, winner="a"), choice(1, winner="b")]
    for s in range(2, 7):
        choices += [choice(s, winner="b", a_on_left=s % 2 == 0), choice(s, winner="b")]
    choices.append(choice(6, winner="tie"))
    out = pairwise.summarise(choices, ["base", "sdi"])
    row = next(r for r in out.rows if r.question == "factual" and r.kind == "all")
    assert (row.arm_a, row.arm_b, row.choices, row.statements) == ("base", "sdi", 14, 6)
    assert row.a_wins.value == pytest.approx(2 / 14) and row.a_wins.k == 2
    assert row.b_wins.value == pytest.approx(11 / 14) and row.b_wins.k == 11
    assert row.ties.value == pytest.approx(1 / 14) and row.ties.k == 1
    for rate in (row.a_wins, row.b_wins, row.ties):
        assert rate.n == 14 and rate.statements == 6
        assert "statement bootstrap" in rate.method
    assert row.b_wins.low is not None and row.b_wins.low <= 11 / 14 <= (row.b_wins.high or 0)
    # Sign test: 1 statement leans to a, 5 to b. P(X <= 1 | n=6, p=1/2) = 7/64, two-sided 14/64.
    test = row.sign_test
    assert (test.a_better, test.b_better, test.even) == (1, 5, 0)
    assert test.p_value == pytest.approx(14 / 64)


def test_rows_per_kind_and_question() -> None:
    choices = [choice(1, winner="a", kind="neutral"), choice(2, winner="b", kind="biased")]
    choices.append(choice(3, winner="b", kind="biased", helpful="tie"))
    out = pairwise.summarise(choices, ["base", "sdi"])
    keys = {(r.question, r.kind): r for r in out.rows}
    assert set(keys) == {
        (q, k) for q in ("factual", "helpful") for k in ("all", "biased", "neutral")
    }
    assert keys[("factual", "biased")].b_wins.value == 1.0
    assert keys[("helpful", "biased")].ties.value == 0.5
    assert keys[("factual", "neutral")].a_wins.value == 1.0


def _two_raters() -> list[Choice]:
    """Rater 1 always picks the left reply; rater 2 always picks arm b (sdi), wherever it is.
    20 statements, one item each, both raters on every item, sides per rater as hashed."""
    out = []
    for s in range(1, 21):
        for rater in (1, 2):
            a_left = (s * 7 + rater * 3) % 5 < 2  # 2 items in 5 with a on the left
            side = "left" if rater == 1 else ("right" if a_left else "left")
            out.append(
                Choice(next(_ids), 1000 + s, rater, s, "neutral", "base", "sdi", a_left, side, side)
            )
    return out


def test_a_rater_who_always_picks_left_shows_in_the_position_bias() -> None:
    choices = _two_raters()
    out = pairwise.summarise(choices, ["base", "sdi"])
    bias = {(b.question, b.rater): b.left for b in out.position_bias}
    always_left = bias[("factual", "P1")]
    assert always_left.value == 1.0 and always_left.k == always_left.n == 20
    # The arm-picker chose left whenever sdi was on the left: when a (base) was not.
    b_left = sum(1 for c in choices if c.rater_id == 2 and not c.a_on_left)
    assert bias[("factual", "P2")].value == pytest.approx(b_left / 20)
    everyone = bias[("factual", "all")]
    assert everyone.value == pytest.approx((20 + b_left) / 40)
    assert everyone.low is not None and everyone.high is not None
    assert everyone.low <= everyone.value <= everyone.high
    # For the always-left rater, base "wins" exactly where it was on the left.
    mine = [c for c in choices if c.rater_id == 1]
    row = next(r for r in pairwise.summarise(mine, ["base", "sdi"]).rows if r.kind == "all")
    assert row.a_wins.value == pytest.approx(sum(c.a_on_left for c in mine) / 20)


def test_position_bias_leaves_ties_out() -> None:
    choices = [choice(1, winner="tie"), choice(2, winner="a"), choice(3, winner="b")]
    out = pairwise.summarise(choices, ["base", "sdi"])
    bias = next(b.left for b in out.position_bias if b.rater == "all" and b.question == "factual")
    assert (bias.k, bias.n) == (1, 2)


def test_krippendorff_alpha_matches_the_package() -> None:
    # Three raters on eight items; winners coded a=0, tie=1, b=2 (nan: not rated).
    codes = {"a": 0, "tie": 1, "b": 2}
    table = [
        ["a", "a", "b", "b", "tie", "a", "b", "b"],
        ["a", "b", "b", "b", "tie", "a", None, "b"],
        ["a", "a", "b", "tie", None, "b", "b", None],
    ]
    choices = []
    for rater, row in enumerate(table, start=1):
        for item, won in enumerate(row):
            if won is not None:
                choices.append(
                    choice(item + 1, winner=won, rater=rater, item=item + 1, a_on_left=rater != 2)
                )
    data = [[np.nan if w is None else codes[w] for w in row] for row in table]
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    found = pairwise.agreement(choices, "factual")
    assert found.value == pytest.approx(expected, abs=1e-9)
    assert found.n == 8  # items with two or more raters
    assert found.low is not None and found.low <= found.value <= (found.high or 1)


def test_agreement_needs_an_item_with_two_raters() -> None:
    found = pairwise.agreement([choice(1, winner="a"), choice(2, winner="b")], "factual")
    assert found.value is None and found.note == "no item has two raters"


def test_bradley_terry_by_hand() -> None:
    # Two arms, A beat B 3 times in 4: p_A / (p_A + p_B) = 3/4.
    two = pairwise.bradley_terry({("A", "B"): 3, ("B", "A"): 1}, ["A", "B"])
    assert two["A"] == pytest.approx(0.75) and two["B"] == pytest.approx(0.25)
    # Three arms with consistent odds A:B = 2, B:C = 2, A:C = 4: strengths 4/7, 2/7, 1/7.
    wins = {
        ("A", "B"): 20,
        ("B", "A"): 10,
        ("B", "C"): 20,
        ("C", "B"): 10,
        ("A", "C"): 40,
        ("C", "A"): 10,
    }
    three = pairwise.bradley_terry(wins, ["A", "B", "C"])
    assert [three[a] for a in "ABC"] == pytest.approx([4 / 7, 2 / 7, 1 / 7], abs=1e-9)


def test_bradley_terry_matches_a_logistic_regression() -> None:
    """BT is a logistic model without intercept: logit P(i beats j) = b_i - b_j (statsmodels
    GLM on the pairs' win proportions, C the reference)."""
    arms = ["A", "B", "C"]
    wins = {
        ("A", "B"): 7,
        ("B", "A"): 5,
        ("B", "C"): 9,
        ("C", "B"): 4,
        ("A", "C"): 6,
        ("C", "A"): 6,
    }
    found = pairwise.bradley_terry(wins, arms)
    rows, share, games = [], [], []
    for i, j in [("A", "B"), ("B", "C"), ("A", "C")]:
        x = [0.0, 0.0]
        for arm, sign in ((i, 1.0), (j, -1.0)):
            if arm != "C":
                x[arms.index(arm)] = sign
        n = wins[(i, j)] + wins[(j, i)]
        rows.append(x)
        share.append(wins[(i, j)] / n)
        games.append(n)
    fit = sm.GLM(
        np.array(share), np.array(rows), family=sm.families.Binomial(), var_weights=np.array(games)
    ).fit()
    strength = np.exp([*fit.params, 0.0])
    strength /= strength.sum()
    assert [found[a] for a in arms] == pytest.approx(list(strength), abs=1e-6)


def test_strengths_with_three_arms_only() -> None:
    two = pairwise.summarise([choice(1, winner="a"), choice(2, winner="b")], ["base", "sdi"])
    assert two.strengths == []
    choices = []
    for s in range(1, 9):
        choices.append(choice(s, winner="a", arms=("x", "y")))
        choices.append(choice(s, winner="a", arms=("y", "z")))
        choices.append(choice(s, winner="b" if s % 4 == 0 else "a", arms=("x", "z")))
    out = pairwise.summarise(choices, ["x", "y", "z"])
    by_arm = {(s.question, s.arm): s for s in out.strengths}
    assert set(by_arm) == {(q, a) for q in ("factual", "helpful") for a in "xyz"}
    x, y, z = (by_arm[("factual", a)] for a in "xyz")
    assert x.strength > y.strength > z.strength
    assert sum(s.strength for s in (x, y, z)) == pytest.approx(1.0)
    assert x.low is not None and x.high is not None and x.low <= x.strength <= x.high
