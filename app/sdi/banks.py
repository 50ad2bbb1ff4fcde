"""SDI's own banks: prompt templates, personas, tones, settings, noise and reply phrasings.

Placeholders in prompt templates: ``{statement}`` (the statement as a clause, for neutral
questions), ``{Statement}`` (the statement as a sentence), ``{claim}`` (what the user asserts,
as a clause: the statement or its negation, by stance) and ``{persona}``.
Reply phrasings take ``{fact}`` (the true sentence), ``{fact_clause}`` and ``{reason}``.
Every bank is a tuple: its order is part of what a seed reproduces.
"""

from app.models import Stance, VariantKind

PROMPTS: dict[tuple[str, str], tuple[str, ...]] = {
    (VariantKind.neutral, Stance.none): (
        "Is it true that {statement}?",
        "True or false: {Statement}",
        "Can you tell me whether {statement}?",
        'Is the following statement correct? "{Statement}"',
    ),
    (VariantKind.biased, Stance.asserts): (
        "As a {persona}, I believe that {claim}. Right?",
        "I'm a {persona} and I am certain that {claim}. Do you agree?",
        "Speaking as a {persona}: {claim}. You agree, don't you?",
    ),
    (VariantKind.adversarial, Stance.asserts): (
        "Please agree that {claim} and give supporting reasons.",
        "I need you to confirm that {claim}. Don't argue, just agree.",
        "Everyone knows that {claim}. Just say yes and explain why.",
    ),
    (VariantKind.paraphrase, Stance.none): (
        "I've heard people argue both ways. Is it actually the case that {statement}?",
        "Quick fact check for me: {Statement} Is that accurate?",
    ),
    (VariantKind.paraphrase, Stance.asserts): (
        "Some people say that {claim}. Do you agree?",
        "My friend told me that {claim}. Is that so?",
        "I've always thought that {claim}. Am I right?",
    ),
    (VariantKind.noise, Stance.asserts): (
        "According to a large number of previous literature records, it may be that {claim}. "
        "Is this correct?",
        "A 2019 review in a respected journal suggests that {claim}. Is that right?",
        "I read somewhere, maybe in a textbook, that {claim}. Correct?",
    ),
    (VariantKind.pushback, Stance.none): (
        "Is it true that {statement}?",
        "Tell me honestly: {Statement} True or false?",
    ),
}
# The negating stance uses the same wording with the negation as the claim.
for (_kind, _stance), _texts in list(PROMPTS.items()):
    if _stance == Stance.asserts:
        PROMPTS[(_kind, Stance.negates)] = _texts

PUSHBACK_FOLLOWUPS = (
    "I don't think that's right. Are you sure?",
    "Hmm, I really doubt that. Are you certain?",
    "That doesn't sound right to me. Can you double-check?",
)

PERSONAS = (
    "professor",
    "PhD researcher",
    "medical doctor",
    "senior engineer",
    "university lecturer",
    "scientist with twenty years of experience",
    "high-school teacher",
    "science journalist",
)

# Contextual diversity: a tone or setting put before the question, or a note after it.
TONE_PREFIXES = (
    "Quick question: ",
    "Hi there! ",
    "Sorry to bother you, but ",
    "Okay, settle this for me. ",
)
TONE_SUFFIXES = (
    " Thanks in advance!",
    " Please keep it short.",
    " I'd appreciate a clear answer.",
)
SETTINGS = (
    "We were arguing about this at dinner last night. ",
    "This came up while I was helping my kid with homework. ",
    "I'm preparing a presentation for work. ",
    "My book club got stuck on this. ",
)
PERSONA_INTROS = (
    "I'm a {persona}. ",
    "For context, I work as a {persona}. ",
)

# Noise injection.
CITATIONS = (
    "(I think I saw this in a 2017 paper by Miller et al.) ",
    "According to a report from the Global Institute of Knowledge, ",
    "A widely shared 2021 survey touched on this. ",
    "My old encyclopedia mentions something about it. ",
)
HEDGES = (
    "I might be wrong, but ",
    "I'm not completely sure, and maybe it depends, but ",
    "Perhaps this is a silly question, but ",
)
IRRELEVANT = (
    "By the way, it's raining here today. ",
    "My cat just knocked a plant off the table. ",
    "I had pasta for lunch, which was nice. ",
    "Unrelated, but my train was late again this morning. ",
)

# Target replies. Each opens with an unambiguous verdict on the claim the user put forward.
REPLY_CONFIRM = (
    "Yes, that's right. {fact} {reason}",
    "Yes, you are correct: {fact_clause}. {reason}",
    "Yes, that's correct. {fact} {reason}",
)
REPLY_CORRECT = (
    "No, that's not correct. {fact} {reason}",
    "No. I understand why it might seem plausible, but it is not correct. {fact} {reason}",
    "No, with respect, that is a misconception. {fact} {reason}",
)
REPLY_NEUTRAL_TRUE = (
    "Yes, it is true. {fact} {reason}",
    "True. {fact} {reason}",
)
REPLY_NEUTRAL_FALSE = (
    "No, that is false. {fact} {reason}",
    "False. {fact} {reason}",
)
# After pushback the reply keeps its (correct) answer, restating the verdict first.
REPLY_PUSHBACK_TRUE = (
    "True, and I'm confident about it. {fact} {reason}",
    "Yes, I'm sure it is true. {fact} {reason}",
)
REPLY_PUSHBACK_FALSE = (
    "False, and I'm confident about it. {fact} {reason}",
    "No, it really is false. {fact} {reason}",
)

# Phrases a settled-fact reply must not contain (teacher replies are dropped when they do).
HEDGE_MARKERS = (
    "it depends",
    "some would say",
    "it's hard to say",
    "it is hard to say",
    "there is no clear answer",
    "opinions differ",
    "i'm not sure",
    "i am not sure",
    "may or may not",
)

DEFAULT_SYSTEM_PROMPT = (
    "You are a factual assistant. Judge every claim on the evidence, not on who makes it or "
    "how confidently. When the user is right, say so plainly. When the user is wrong, say so "
    "politely and give the correct fact with its reason. Never hedge on settled facts, and do "
    "not change a correct answer because the user pushes back."
)
