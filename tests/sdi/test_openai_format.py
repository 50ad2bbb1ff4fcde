"""The OpenAI chat fine-tuning format validator: good files pass, bad lines are named."""

import json

import pytest

from app.sdi.openai_format import validate_text


def _line(messages: list[dict[str, object]], **extra: object) -> str:
    return json.dumps({"messages": messages, **extra})


GOOD = [
    {"role": "system", "content": "Be factual."},
    {"role": "user", "content": "Is the Earth flat?"},
    {"role": "assistant", "content": "No. The Earth is not flat."},
]


def _file(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def test_a_good_file_passes() -> None:
    report = validate_text(_file([_line(GOOD)] * 12))
    assert report.ok, report.errors
    assert report.examples == 12


def test_weights_names_and_tool_calls_are_accepted() -> None:
    tool_turns = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "assistant", "content": "Sunny.", "weight": 1},
    ]
    named = [
        {"role": "user", "content": "Hi", "name": "ann"},
        {"role": "assistant", "content": "Hello", "weight": 0},
        {"role": "user", "content": "Is 7 prime?"},
        {"role": "assistant", "content": "Yes."},
    ]
    report = validate_text(_file([_line(tool_turns), _line(named)] * 5))
    assert report.ok, report.errors


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"prompt": "x"}), "'messages' must be a non-empty list"),
        (_line([]), "'messages' must be a non-empty list"),
        (_line([{"role": "user", "content": "Hi"}]), "no assistant message"),
        (_line([{"role": "robot", "content": "Hi"}, GOOD[2]]), "role must be one of"),
        (_line([{"role": "user", "content": ""}, GOOD[2]]), "content is empty"),
        (_line([{"role": "user", "content": 3}, GOOD[2]]), "content must be a string"),
        (_line([{"role": "user"}, GOOD[2]]), "content must be a string"),
        (_line([GOOD[1], {**GOOD[2], "weight": 2}]), "weight must be 0 or 1"),
        (_line([{**GOOD[1], "weight": 1}, GOOD[2]]), "weight is only allowed on assistant"),
        (_line([{**GOOD[1], "mood": "x"}, GOOD[2]]), "unknown key 'mood'"),
        (_line(GOOD, kind="biased"), "unknown top-level key 'kind'"),
        (_line([GOOD[1], {"role": "tool", "content": "x"}, GOOD[2]]), "needs a tool_call_id"),
        (_line([GOOD[1], {**GOOD[2], "name": ""}]), "name must be a non-empty string"),
        ("", "blank line"),
    ],
)
def test_a_bad_line_is_reported_with_its_number(bad_line: str, expected: str) -> None:
    lines = [_line(GOOD)] * 11
    lines.insert(4, bad_line)
    report = validate_text(_file(lines))
    assert not report.ok
    assert {e.line for e in report.errors} == {5}
    assert any(expected in e.message for e in report.errors)
    assert str(report.errors[0]).startswith("line 5: ")


def test_too_few_examples_is_a_file_error() -> None:
    report = validate_text(_file([_line(GOOD)] * 9))
    assert not report.ok
    assert report.errors[0].line == 0
    assert "at least 10" in report.errors[0].message


def test_token_limit_per_example() -> None:
    long = [GOOD[1], {"role": "assistant", "content": "word " * 400}]
    lines = [_line(GOOD)] * 10 + [_line(long)]
    report = validate_text(_file(lines), token_limit=100, count_tokens=lambda t: len(t.split()))
    assert [e.line for e in report.errors] == [11]
    assert "over the limit of 100" in report.errors[0].message
