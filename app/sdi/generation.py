"""Stage 1, generation: scenario identification, prompting, response crafting."""

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from app.models import Stance, VariantKind
from app.sdi import banks
from app.sdi.text import clause, negation_of, sentence, true_fact
from app.sdi.types import Draft, Message, QuestionData, StageLog, Writer

# (question, persona) -> (first user turn, pushback follow-up or "")
Renderer = Callable[[QuestionData, str], tuple[str, str]]
VerdictParser = Callable[[str], str]

OVERSAMPLE = 1.3  # generate a margin over the target so QA drops do not starve a cell
MAX_PER_SCENARIO = 12


@dataclass(frozen=True)
class PromptOption:
    """A way of asking: one of SDI's bank templates, or a variant template of the app."""

    name: str
    kind: str
    stance: str
    render: Renderer
    uses_persona: bool = False


def claim_truth(stance: str, truth: bool) -> bool:
    """Whether the claim the user puts forward is true (stance none: the statement itself)."""
    return not truth if stance == Stance.negates else truth


def bank_options() -> list[PromptOption]:
    options = []
    for (kind, stance), texts in banks.PROMPTS.items():
        for index, text in enumerate(texts):
            options.append(
                PromptOption(
                    name=f"bank:{kind}:{stance}:{index}",
                    kind=str(kind),
                    stance=str(stance),
                    render=_bank_renderer(text, str(kind), str(stance), index),
                    uses_persona="{persona}" in text,
                )
            )
    return options


def _bank_renderer(text: str, kind: str, stance: str, index: int) -> Renderer:
    followups = banks.PUSHBACK_FOLLOWUPS

    def render(question: QuestionData, persona: str) -> tuple[str, str]:
        claim = negation_of(question) if stance == Stance.negates else question.statement
        prompt = text.format(
            statement=clause(question.statement),
            Statement=sentence(question.statement),
            claim=clause(claim),
            persona=persona,
        )
        followup = followups[index % len(followups)] if kind == VariantKind.pushback else ""
        return prompt, followup

    return render


def _fill(phrasing: str, question: QuestionData) -> str:
    fact = true_fact(question)
    reply = phrasing.format(
        fact=fact, fact_clause=clause(fact), reason=sentence(question.explanation)
    )
    return " ".join(reply.split())


def craft_reply(question: QuestionData, stance: str, rng: random.Random) -> str:
    """The reply the model should give to the first user turn."""
    bank: tuple[str, ...]
    if stance == Stance.none:
        bank = banks.REPLY_NEUTRAL_TRUE if question.truth else banks.REPLY_NEUTRAL_FALSE
    else:
        bank = banks.REPLY_CONFIRM if claim_truth(stance, question.truth) else banks.REPLY_CORRECT
    return _fill(rng.choice(bank), question)


def craft_pushback_reply(question: QuestionData, rng: random.Random) -> str:
    bank = banks.REPLY_PUSHBACK_TRUE if question.truth else banks.REPLY_PUSHBACK_FALSE
    return _fill(rng.choice(bank), question)


def scenario_pairs(kinds: list[str], options: list[PromptOption]) -> list[tuple[str, str]]:
    available = {(o.kind, o.stance) for o in options}
    return [
        (str(kind), str(stance))
        for kind in kinds
        for stance in Stance
        if (str(kind), str(stance)) in available
    ]


def per_scenario(size: int | None, pairs: int, questions: list[QuestionData]) -> int:
    """How many prompts per statement x kind x stance reach the wanted size after balancing."""
    if size is None or pairs == 0:
        return 1
    truths = [q.truth for q in questions]
    smallest = min(truths.count(True), truths.count(False)) or max(len(truths), 1)
    cells = pairs * (2 if truths.count(True) and truths.count(False) else 1)
    wanted = math.ceil(size / cells) * OVERSAMPLE
    return max(1, min(MAX_PER_SCENARIO, math.ceil(wanted / smallest)))


def generate(
    questions: list[QuestionData],
    kinds: list[str],
    options: list[PromptOption],
    size: int | None,
    rng: random.Random,
    log: StageLog,
) -> list[Draft]:
    """Scenario identification and prompting: statement x kind x stance x persona/template."""
    log.count_in = len(questions)
    usable = []
    for question in questions:
        if question.conflicting:
            reason = "statement repeats another with the opposite truth label"
            log.drop(reason, statement=question.statement)
            continue
        usable.append(question)
    pairs = scenario_pairs(kinds, options)
    missing = [str(k) for k in kinds if not any(p[0] == str(k) for p in pairs)]
    repeat = per_scenario(size, len(pairs), usable)
    by_pair: dict[tuple[str, str], list[PromptOption]] = {p: [] for p in pairs}
    for option in options:
        if (option.kind, option.stance) in by_pair:
            by_pair[(option.kind, option.stance)].append(option)
    drafts = []
    for question in usable:
        for pair in pairs:
            combos = [
                (option, persona)
                for option in by_pair[pair]
                for persona in (banks.PERSONAS if option.uses_persona else ("",))
            ]
            for option, persona in rng.sample(combos, min(repeat, len(combos))):
                first, followup = option.render(question, persona)
                messages: list[Message] = [{"role": "user", "content": first}]
                if followup:
                    messages.append({"role": "user", "content": followup})
                drafts.append(
                    Draft(
                        messages=messages,
                        kind=pair[0],
                        stance=pair[1],
                        truth=question.truth,
                        question=question,
                        persona=persona,
                        template=option.name,
                    )
                )
    log.count_out = len(drafts)
    log.details = {
        "statements_used": len(usable),
        "scenarios": [f"{k}/{s}" for k, s in pairs],
        "prompts_per_scenario": repeat,
        "kinds_without_templates": missing,
        "template_options": len(options),
    }
    return drafts


def attach_template_replies(drafts: list[Draft], rng: random.Random) -> None:
    """Reply crafting from the reply bank; pushback gets the kept answer after the doubt."""
    for draft in drafts:
        assert draft.question is not None
        first = draft.messages[0]
        followups = draft.messages[1:]
        reply = craft_reply(draft.question, draft.stance, rng)
        messages: list[Message] = [first, {"role": "assistant", "content": reply}]
        for followup in followups:
            messages.append(followup)
            messages.append(
                {"role": "assistant", "content": craft_pushback_reply(draft.question, rng)}
            )
        draft.messages = messages


def has_hedge(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in banks.HEDGE_MARKERS)


def attach_teacher_replies(
    drafts: list[Draft], teacher: Writer, parse_verdict: VerdictParser, log: StageLog
) -> list[Draft]:
    """Replies written by a teacher model, kept only with the right verdict and no hedging."""
    kept = []
    for draft in drafts:
        assert draft.question is not None
        expected = "true" if claim_truth(draft.stance, draft.question.truth) else "false"
        conversation: list[Message] = []
        ok = True
        for turn, user in enumerate(draft.messages):
            conversation.append(user)
            try:
                reply = teacher(list(conversation)).strip()
            except Exception as exc:  # a failed call drops the example, never the build
                log.drop("teacher call failed", draft, str(exc)[:200])
                ok = False
                break
            verdict = parse_verdict(reply)
            if not reply:
                log.drop("teacher reply empty", draft)
                ok = False
            elif turn == 0 and verdict != expected:
                log.drop("teacher reply has the wrong verdict", draft, f"{verdict}: {reply[:80]}")
                ok = False
            elif turn > 0 and verdict not in (expected, "none"):
                log.drop("teacher gave in to pushback", draft, reply[:80])
                ok = False
            elif has_hedge(reply):
                log.drop("teacher reply hedges on a settled fact", draft, reply[:80])
                ok = False
            if not ok:
                break
            conversation.append({"role": "assistant", "content": reply})
        if ok:
            draft.messages = conversation
            draft.origin = "teacher"
            kept.append(draft)
    return kept
