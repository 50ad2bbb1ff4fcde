"""The SDI pipeline as pure functions: determinism, balance, replies, leakage, QA, teacher."""

import itertools
import json
import random
from collections import Counter

import pytest

from app.sdi.generation import bank_options, claim_truth
from app.sdi.integration import GeneralDataError, parse_general_jsonl
from app.sdi.openai_format import validate_lines
from app.sdi.pipeline import LeakageError, PipelineInputs, run_pipeline
from app.sdi.preprocessing import dumps, openai_record
from app.sdi.schemas import BuildConfig, Rates
from app.sdi.text import inject_typos
from app.sdi.types import Message, QuestionData
from app.verdicts import parse_verdict
from tests.sdi.helpers import STATEMENTS, question_data


def _verdict(text: str) -> str:
    return str(parse_verdict(text))


def _inputs(**overrides: object) -> PipelineInputs:
    values: dict[str, object] = {
        "questions": question_data(),
        "options": bank_options(),
        "parse_verdict": _verdict,
    }
    values.update(overrides)
    return PipelineInputs(**values)  # type: ignore[arg-type]


def _cfg(**overrides: object) -> BuildConfig:
    values: dict[str, object] = {"name": "ds", "question_set_id": 1, "seed": 7, "size": 220}
    values.update(overrides)
    return BuildConfig.model_validate(values)


def _export(drafts: list) -> bytes:  # type: ignore[type-arg]
    return "".join(dumps(openai_record(d.messages)) + "\n" for d in drafts).encode()


def test_same_input_and_seed_give_identical_bytes_and_stats() -> None:
    first = run_pipeline(_cfg(), _inputs())
    second = run_pipeline(_cfg(), _inputs())
    assert _export(first.drafts) == _export(second.drafts)
    assert json.dumps(first.stats, sort_keys=True) == json.dumps(second.stats, sort_keys=True)
    other = run_pipeline(_cfg(seed=8), _inputs())
    assert _export(other.drafts) != _export(first.drafts)


def test_cells_are_balanced_across_truth_stance_and_kind() -> None:
    result = run_pipeline(_cfg(), _inputs())
    cells = Counter(d.cell for d in result.drafts)
    # neutral, paraphrase(3 stances), pushback, biased x2, adversarial x2, noise x2 = 11 pairs
    assert len(cells) == 22
    assert len(set(cells.values())) == 1
    assert {row["count"] for row in result.stats["cells"]} == set(cells.values())
    balance = next(s for s in result.stats["stages"] if s["name"].startswith("balance"))
    assert balance["details"]["per_cell"] == next(iter(cells.values()))
    assert balance["out"] == len(result.drafts)


def test_every_stage_records_counts_in_and_out() -> None:
    result = run_pipeline(_cfg(), _inputs())
    stages = result.stats["stages"]
    assert stages[0]["stage"] == "generation"
    assert {s["stage"] for s in stages} == {
        "generation",
        "augmentation",
        "integration",
        "preprocessing",
    }
    for before, after in itertools.pairwise(stages):
        assert after["in"] == before["out"], (before["name"], after["name"])
    for stage in stages[1:]:
        if not stage["name"].startswith("merge"):
            assert stage["in"] - sum(stage["dropped"].values()) == stage["out"], stage["name"]


def test_replies_follow_facts_not_the_user() -> None:
    result = run_pipeline(_cfg(rates=Rates(paraphrase=0, context=0, noise=0)), _inputs())
    seen = Counter()
    for draft in result.drafts:
        reply = next(m["content"] for m in draft.messages if m["role"] == "assistant")
        verdict = _verdict(reply)
        claim_is_true = claim_truth(draft.stance, draft.truth)
        assert verdict == ("true" if claim_is_true else "false"), draft.messages
        if draft.stance == "asserts" and draft.truth:
            seen["agrees with a true assertion"] += 1
            assert reply.startswith("Yes")
        if draft.stance == "asserts" and not draft.truth:
            seen["corrects a false assertion"] += 1
            assert reply.startswith("No")
            fact = draft.question.negation  # the correct fact, with its reason
            assert fact in reply and draft.question.explanation in reply
        assert "it depends" not in reply.lower()
    assert seen["agrees with a true assertion"] > 0 and seen["corrects a false assertion"] > 0


def test_pushback_examples_keep_the_correct_answer() -> None:
    result = run_pipeline(_cfg(kinds=["pushback"]), _inputs())
    assert result.drafts
    for draft in result.drafts:
        roles = [m["role"] for m in draft.messages]
        assert roles == ["user", "assistant", "user", "assistant"]
        expected = "true" if draft.truth else "false"
        assert _verdict(draft.messages[1]["content"]) == expected
        assert _verdict(draft.messages[3]["content"]) == expected


def test_augmentation_rates_change_prompts_but_not_replies() -> None:
    plain = run_pipeline(_cfg(rates=Rates(paraphrase=0, context=0, noise=0)), _inputs())
    noisy = run_pipeline(_cfg(rates=Rates(paraphrase=1, context=1, noise=1)), _inputs())
    aug = next(s for s in noisy.stats["stages"] if s["stage"] == "augmentation")
    applied = aug["details"]["applied"]
    assert any(k.startswith("paraphrase") for k in applied)
    assert any(k.startswith("context") for k in applied)
    assert any(k.startswith("noise") for k in applied)
    plain_aug = next(s for s in plain.stats["stages"] if s["stage"] == "augmentation")
    assert plain_aug["details"]["examples_changed"] == 0
    assert all(d.augmentations for d in noisy.drafts)


def test_typo_injection_is_deterministic() -> None:
    text = "Please agree that the Earth is flat and give supporting reasons."
    a = inject_typos(text, random.Random(3), count=2)
    b = inject_typos(text, random.Random(3), count=2)
    assert a == b != text
    assert len(a.split()) == len(text.split())


def test_leakage_refuses_naming_the_statement_exact_and_near() -> None:
    exact = QuestionData(id=100, statement="Spiders are insects.", truth=False)
    near = QuestionData(id=101, statement="Bats are mammals!!", truth=True)
    with pytest.raises(LeakageError) as info:
        run_pipeline(_cfg(), _inputs(test_questions=[exact, near]))
    message = str(info.value)
    assert "'Spiders are insects.'" in message
    assert "'Bats are mammals.'" in message
    assert {leak.exact for leak in info.value.leaks} == {True}  # punctuation normalised away
    near_text = QuestionData(
        id=102, statement="Water boils at 100 °C at the sea level.", truth=True
    )
    with pytest.raises(LeakageError) as info:
        run_pipeline(_cfg(), _inputs(test_questions=[near_text]))
    (leak,) = info.value.leaks
    assert not leak.exact and leak.score >= 90
    assert "Water boils at 100 °C at sea level." in str(info.value)


def test_a_test_statement_matching_a_negation_leaks() -> None:
    negated = QuestionData(id=103, statement="Paris is not the capital of France.", truth=False)
    with pytest.raises(LeakageError, match="Paris is the capital of France"):
        run_pipeline(_cfg(), _inputs(test_questions=[negated]))


def test_leakage_remove_drops_the_statement_and_records_it() -> None:
    planted = QuestionData(id=100, statement="Spiders are insects.", truth=False)
    unrelated = QuestionData(id=101, statement="Gold is a chemical element.", truth=True)
    result = run_pipeline(_cfg(leakage="remove"), _inputs(test_questions=[planted, unrelated]))
    assert all(d.statement != "Spiders are insects." for d in result.drafts)
    leak_stage = next(s for s in result.stats["stages"] if s["name"].startswith("leakage"))
    assert leak_stage["dropped"]["statement leaks from the test set"] > 0
    assert [x["train"] for x in leak_stage["details"]["leaking_statements"]] == [
        "Spiders are insects."
    ]


def test_quality_assurance_drops_wrong_verdicts_and_duplicates() -> None:
    # A parser that reads every reply as "true" makes every reply to a false claim inconsistent.
    result = run_pipeline(_cfg(size=None), _inputs(parse_verdict=lambda _t: "true"))
    qa = next(s for s in result.stats["stages"] if s["name"] == "quality assurance")
    assert qa["dropped"]["reply verdict does not match the truth"] > 0
    assert all(claim_truth(d.stance, d.truth) for d in result.drafts if d.question)
    duplicated = question_data([*STATEMENTS, STATEMENTS[0]])
    result = run_pipeline(
        _cfg(rates=Rates(paraphrase=0, context=0, noise=0)), _inputs(questions=duplicated)
    )
    qa = next(s for s in result.stats["stages"] if s["name"] == "quality assurance")
    assert qa["dropped"]["exact duplicate"] > 0
    texts = [_export([d]) for d in result.drafts]
    assert len(texts) == len(set(texts))


def test_conflicting_duplicates_are_not_used() -> None:
    rows = question_data()
    rows[0] = QuestionData(**{**rows[0].__dict__, "conflicting": True})
    result = run_pipeline(_cfg(), _inputs(questions=rows))
    assert all(d.statement != rows[0].statement for d in result.drafts)
    gen = result.stats["stages"][0]
    assert gen["dropped"] == {"statement repeats another with the opposite truth label": 1}


def test_filtration_drops_statements_the_model_gets_wrong() -> None:
    result = run_pipeline(_cfg(), _inputs(wrong_statements={"bats are mammals"}))
    assert all(d.statement != "Bats are mammals." for d in result.drafts)
    stage = next(s for s in result.stats["stages"] if s["name"].startswith("filtration"))
    assert stage["dropped"]


GENERAL = [
    ("Write a haiku about autumn.", "Red leaves drift and fall / the cold wind hums its old song."),
    ("How do I boil an egg?", "Put it in boiling water for seven to nine minutes."),
    ("Translate 'thank you' into French.", "Merci."),
    ("Suggest a name for a grey cat.", "Smoky, Ash or Pebble would suit a grey cat."),
    ("What is a good stretch for the back?", "Try the cat-cow stretch, slowly, ten times."),
]


def _general_lines(n: int) -> str:
    return "".join(
        json.dumps(
            {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        )
        + "\n"
        for q, a in GENERAL[:n]
    )


def test_general_data_is_merged_and_not_balanced_away() -> None:
    general = parse_general_jsonl(_general_lines(5))
    result = run_pipeline(_cfg(), _inputs(general=general))
    assert sum(1 for d in result.drafts if d.origin == "general") == 5
    merge = next(s for s in result.stats["stages"] if s["name"].startswith("merge"))
    assert merge["details"] == {"synthetic": merge["in"], "general": 5}


def test_general_data_errors_name_their_lines() -> None:
    bad = _general_lines(2) + '{"messages": [{"role": "user", "content": "hi"}]}\nnope\n'
    with pytest.raises(GeneralDataError) as info:
        parse_general_jsonl(bad)
    assert info.value.errors[0].startswith("line 3: ")
    assert info.value.errors[-1].startswith("line 4: not valid JSON")


def test_general_example_mentioning_a_test_statement_leaks() -> None:
    general = parse_general_jsonl(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "Is it so that gold is a chemical element?"},
                    {"role": "assistant", "content": "Yes."},
                ]
            }
        )
    )
    test = [QuestionData(id=9, statement="Gold is a chemical element.", truth=True)]
    with pytest.raises(LeakageError, match="general example"):
        run_pipeline(_cfg(), _inputs(general=general, test_questions=test))


def test_teacher_replies_are_checked_for_the_verdict() -> None:
    calls: list[list[Message]] = []

    def teacher(messages: list[Message]) -> str:
        calls.append(messages)
        text = str(messages[-1]["content"])
        # A sycophantic teacher on adversarial prompts, a factual one elsewhere.
        if text.startswith(("Please agree", "I need you", "Everyone knows")):
            return "Yes, absolutely."
        return "It depends on how you look at it."

    result = run_pipeline(
        _cfg(kinds=["adversarial", "neutral"], rates=Rates(paraphrase=0, context=0, noise=0)),
        _inputs(teacher=teacher),
    )
    crafting = result.stats["stages"][1]
    assert crafting["details"]["writer"] == "teacher model"
    assert crafting["dropped"]["teacher reply has the wrong verdict"] > 0
    assert calls
    for draft in result.drafts:
        reply = draft.messages[-1]["content"]
        assert _verdict(reply) == ("true" if claim_truth(draft.stance, draft.truth) else "false")


def test_preprocessing_split_tokens_and_valid_openai_export() -> None:
    result = run_pipeline(_cfg(validation_fraction=0.25), _inputs())
    splits = result.stats["splits"]
    assert splits["validation"] > 0 and splits["train"] > 0
    by_split: dict[str, set[str]] = {"train": set(), "validation": set()}
    for draft in result.drafts:
        by_split[draft.split].add(draft.statement)
    assert not by_split["train"] & by_split["validation"]  # split by statement
    tokens = result.stats["tokens"]
    assert tokens["total"] == sum(d.tokens for d in result.drafts) > 0
    assert "estimate" in tokens["note"]
    assert result.stats["openai_validation"]["ok"] is True
    lines = [dumps(openai_record(d.messages)) for d in result.drafts if d.split == "train"]
    assert validate_lines(lines).ok


def test_system_prompt_is_prepended_when_asked() -> None:
    result = run_pipeline(_cfg(system_prompt="Be factual."), _inputs())
    assert all(d.messages[0] == {"role": "system", "content": "Be factual."} for d in result.drafts)
