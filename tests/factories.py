"""Small builders for test data."""

import itertools
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.accounts import service
from app.accounts.schemas import UserCreate
from app.models import (
    ModelConfig,
    PromptVariant,
    Question,
    QuestionSet,
    Reply,
    Role,
    Run,
    RunArm,
    User,
    VariantTemplate,
    premise_is_erroneous,
    utcnow,
)
from app.questions.dedupe import norm_hash

_counter = itertools.count(1)
PASSWORD = "correct horse battery"


@dataclass
class UserWithPassword:
    user: User
    password: str

    @property
    def id(self) -> int:
        assert self.user.id is not None
        return self.user.id

    @property
    def email(self) -> str:
        return self.user.email


def make_user(session: Session, role: str = "rater", email: str | None = None) -> UserWithPassword:
    n = next(_counter)
    user = service.create_user(
        session,
        UserCreate(email=email or f"{role}{n}@example.org", password=PASSWORD, role=Role(role)),
    )
    return UserWithPassword(user=user, password=PASSWORD)


def login(client: TestClient, who: UserWithPassword) -> None:
    response = client.post(
        "/login", data={"email": who.email, "password": who.password}, follow_redirects=False
    )
    assert response.status_code == 303, response.text


# (statement, truth, negation, category, explanation)
QuestionRow = tuple[str, bool, str, str, str]


def _generated_rows(n: int, category: str) -> list[QuestionRow]:
    rows = []
    for i in range(n):
        truth = i % 2 == 0
        verdict = "right" if truth else "wrong"
        rows.append(
            (
                f"Statement number {i} about {category} is {verdict}.",
                truth,
                f"It is not the case that statement number {i} about {category} is {verdict}.",
                category,
                f"Explanation {i}.",
            )
        )
    return rows


def make_question_set(
    session: Session,
    n: int = 6,
    name: str | None = None,
    category: str = "science",
    *,
    rows: list[QuestionRow] | None = None,
) -> QuestionSet:
    """A set of ``rows``; without them, n statements alternating true and false, each with a
    negation. Rows are added directly (see ``imported_question_set`` for the importer's way)."""
    qs = QuestionSet(name=name or f"set-{next(_counter)}")
    session.add(qs)
    session.flush()
    for position, (statement, truth, negation, cat, explanation) in enumerate(
        rows if rows is not None else _generated_rows(n, category), start=1
    ):
        session.add(
            Question(
                question_set_id=qs.id,
                position=position,
                source_id=f"q{position}",
                statement=statement,
                negation=negation,
                truth=truth,
                category=cat,
                explanation=explanation,
                norm_hash=norm_hash(statement),
            )
        )
    session.flush()
    return qs


def imported_question_set(
    session: Session, n: int = 6, name: str = "facts", seed: int = 3
) -> QuestionSet:
    """n distinct statements imported through the question importer, with ids s1..sn; odd
    ids true, even ids false."""
    from app.questions import service as questions
    from tests.questions.helpers import csv_bytes, distinct_statements

    rows = [
        {"id": f"s{i}", "statement": text, "truth": "true" if i % 2 else "false"}
        for i, text in enumerate(distinct_statements(n, seed=seed), start=1)
    ]
    parsed = questions.parse_upload(csv_bytes(rows), "facts.csv")
    assert parsed.ok, parsed.errors
    return questions.import_question_set(session, name, parsed)


def make_template(
    session: Session,
    kind: str = "neutral",
    stance: str = "none",
    text: str = "Is it true that {claim_clause}?",
    followup: str = "",
) -> VariantTemplate:
    template = VariantTemplate(
        name=f"{kind}-{stance}-{next(_counter)}",
        kind=kind,
        stance=stance,
        text=text,
        followup=followup,
    )
    session.add(template)
    session.flush()
    return template


def make_model_config(
    session: Session, name: str | None = None, provider: str = "openai", **fields: Any
) -> ModelConfig:
    config = ModelConfig(
        name=name or f"model-{next(_counter)}", provider=provider, model_id="test-model", **fields
    )
    session.add(config)
    session.flush()
    return config


def make_run(
    session: Session,
    question_set: QuestionSet | None = None,
    *,
    arms: tuple[str, ...] = ("baseline", "sdi"),
    kinds: tuple[tuple[str, str], ...] = (("neutral", "none"), ("biased", "asserts")),
    samples: int = 1,
    status: str = "completed",
    reply: str = "False. That is not correct.",
) -> Run:
    """A finished run: one prompt variant per question x (kind, stance), every reply done."""
    question_set = question_set or make_question_set(session)
    run = Run(
        name=f"run-{next(_counter)}",
        question_set_id=question_set.id,
        status=status,
        samples=samples,
    )
    session.add(run)
    session.flush()
    arm_rows = []
    for position, label in enumerate(arms):
        config = make_model_config(session)
        arm = RunArm(
            run_id=run.id,
            model_config_id=config.id,
            label=label,
            position=position,
            snapshot={"name": config.name, "provider": config.provider},
        )
        session.add(arm)
        arm_rows.append(arm)
    session.flush()
    questions = session.exec(
        select(Question).where(Question.question_set_id == question_set.id)
    ).all()
    for question in questions:
        for kind, stance in kinds:
            template = make_template(session, kind=kind, stance=stance)
            variant = PromptVariant(
                run_id=run.id,
                question_id=question.id,
                template_id=template.id,
                kind=kind,
                stance=stance,
                premise_erroneous=premise_is_erroneous(stance, question.truth),
                messages=[{"role": "user", "content": f"{kind}: {question.statement}"}],
            )
            session.add(variant)
            session.flush()
            for arm in arm_rows:
                for sample in range(samples):
                    session.add(
                        Reply(
                            run_id=run.id,
                            prompt_variant_id=variant.id,
                            arm_id=arm.id,
                            sample_index=sample,
                            status="done",
                            text=reply,
                            verdict=parse_like_reply(reply),
                            completed_at=utcnow(),
                        )
                    )
    session.flush()
    return run


def parse_like_reply(reply: str) -> str:
    lowered = reply.lower()
    if lowered.startswith(("false", "no")):
        return "false"
    if lowered.startswith(("true", "yes")):
        return "true"
    return "none"
