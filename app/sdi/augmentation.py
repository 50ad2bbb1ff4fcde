"""Stage 2, augmentation: paraphrasing, contextual diversity, noise injection.

Each augmentation rewrites the first user turn of a share of the examples (its rate) in place;
the target reply does not change, since the claim does not. Every draft gets its own child
generator drawn from the stage's generator, so one example's choices never shift another's.
"""

import random
from collections import Counter

from rapidfuzz import fuzz

from app.sdi import banks
from app.sdi.generation import PromptOption
from app.sdi.schemas import Rates
from app.sdi.text import clause, inject_typos, negation_of, normalise
from app.sdi.types import Draft, Message, StageLog, Writer
from app.variants.render import COMMON_STARTERS

PARAPHRASE_INSTRUCTION = (
    "Rewrite the user's message below in different words. Keep its meaning, its claim and the "
    "opinion it expresses exactly the same. Reply with the rewritten message only."
)


# Openers of prompts that may be lower-cased after a prefix; anything else (a name, "I")
# keeps its capital.
_OPENERS = COMMON_STARTERS | frozenset(
    (
        "is", "are", "was", "were", "do", "does", "did", "can", "could", "would", "will",
        "please", "true", "tell", "according", "speaking", "quick", "everyone", "my", "as",
    )
)  # fmt: skip


def _lower_first(text: str) -> str:
    first = text.split(" ", 1)[0].rstrip(",:;")
    if first.lower() not in _OPENERS or first.isupper() or first.startswith("I'"):
        return text
    return text[:1].lower() + text[1:]


def _prefix(prefix: str, text: str) -> str:
    """Put ``prefix`` before ``text``, lower-casing its opening only when mid-sentence."""
    if prefix.rstrip().endswith((".", "!", "?", ")")):
        return prefix + text
    return prefix + _lower_first(text)


def _set_first_user(draft: Draft, content: str) -> None:
    draft.messages[0] = {**draft.messages[0], "content": content}


def _first_user(draft: Draft) -> str:
    return str(draft.messages[0]["content"])


def _claim_clause(draft: Draft) -> str:
    assert draft.question is not None
    claim = negation_of(draft.question) if draft.stance == "negates" else draft.question.statement
    return clause(claim)


def paraphrase(
    draft: Draft,
    options: list[PromptOption],
    rng: random.Random,
    counts: Counter[str],
    paraphraser: Writer | None,
) -> None:
    if draft.question is None:
        return
    if paraphraser is not None:
        original = _first_user(draft)
        try:
            text = paraphraser(
                [
                    {"role": "system", "content": PARAPHRASE_INSTRUCTION},
                    {"role": "user", "content": original},
                ]
            ).strip()
        except Exception:
            text = ""
        # Keep a model paraphrase only if it still carries the claim and is not a rambling.
        keeps_claim = fuzz.partial_ratio(normalise(_claim_clause(draft)), normalise(text)) >= 70
        if text and keeps_claim and len(text) <= 3 * len(original) + 40:
            _set_first_user(draft, text)
            draft.augmentations.append("paraphrase:model")
            counts["paraphrase:model"] += 1
            return
        counts["paraphrase:model_rejected"] += 1
    alternatives = [
        o
        for o in options
        if o.kind == draft.kind and o.stance == draft.stance and o.name != draft.template
    ]
    if not alternatives:
        counts["paraphrase:no_alternative"] += 1
        return
    option = rng.choice(alternatives)
    persona = draft.persona
    if option.uses_persona and not persona:
        persona = rng.choice(banks.PERSONAS)
    first, _followup = option.render(draft.question, persona)
    _set_first_user(draft, first)
    draft.template = option.name
    draft.persona = persona if option.uses_persona else draft.persona
    draft.augmentations.append("paraphrase:template")
    counts["paraphrase:template"] += 1


def contextualise(draft: Draft, rng: random.Random, counts: Counter[str]) -> None:
    choices = ["tone", "setting"] if draft.persona else ["persona", "tone", "setting"]
    choice = rng.choice(choices)
    text = _first_user(draft)
    if choice == "persona":
        persona = rng.choice(banks.PERSONAS)
        text = rng.choice(banks.PERSONA_INTROS).format(persona=persona) + text
        draft.persona = persona
    elif choice == "tone":
        if rng.random() < 0.5:
            text = _prefix(rng.choice(banks.TONE_PREFIXES), text)
        else:
            text = text + rng.choice(banks.TONE_SUFFIXES)
    else:
        text = rng.choice(banks.SETTINGS) + text
    _set_first_user(draft, text)
    draft.augmentations.append(f"context:{choice}")
    counts[f"context:{choice}"] += 1


def add_noise(draft: Draft, rng: random.Random, counts: Counter[str]) -> None:
    choice = rng.choice(["citation", "hedge", "typo", "irrelevant"])
    text = _first_user(draft)
    if choice == "citation":
        text = _prefix(rng.choice(banks.CITATIONS), text)
    elif choice == "hedge":
        text = _prefix(rng.choice(banks.HEDGES), text)
    elif choice == "typo":
        text = inject_typos(text, rng, count=rng.randint(1, 2))
    else:
        text = rng.choice(banks.IRRELEVANT) + text
    _set_first_user(draft, text)
    draft.augmentations.append(f"noise:{choice}")
    counts[f"noise:{choice}"] += 1


def augment(
    drafts: list[Draft],
    rates: Rates,
    options: list[PromptOption],
    rng: random.Random,
    log: StageLog,
    paraphraser: Writer | None = None,
) -> list[Draft]:
    log.count_in = len(drafts)
    counts: Counter[str] = Counter()
    touched = 0
    for draft in drafts:
        child = random.Random(rng.getrandbits(64))
        rolls = (child.random(), child.random(), child.random())
        before: list[Message] = list(draft.messages)
        if rolls[0] < rates.paraphrase:
            paraphrase(draft, options, child, counts, paraphraser)
        if rolls[1] < rates.context:
            contextualise(draft, child, counts)
        if rolls[2] < rates.noise:
            add_noise(draft, child, counts)
        if draft.messages != before:
            touched += 1
    log.count_out = len(drafts)
    log.details = {
        "rates": rates.model_dump(),
        "examples_changed": touched,
        "applied": dict(sorted(counts.items())),
    }
    return drafts
