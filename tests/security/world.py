"""A database holding one of everything, with chosen text in every free-text field, and the
URL of every GET route filled in with real ids.

Used by the CSP/inline-script check, the secrets grep and the XSS browser test: ``text(slot)``
returns what to write into the field named ``slot`` (a payload, or an ordinary string).
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlmodel import Session, select

from app.models import (
    Job,
    Label,
    ModelConfig,
    PromptVariant,
    Question,
    Reply,
    RunArm,
    SdiDataset,
    SdiExample,
    TrainingRun,
    VariantTemplate,
    utcnow,
)
from app.rating import leases, oversight, submissions
from app.rating import service as rating_service
from app.rating.schemas import AdjudicationInput, RatingInput
from tests import factories
from tests.test_access_matrix import ENDPOINTS

Text = Callable[[str], str]


@dataclass
class World:
    admin: factories.UserWithPassword
    raters: list[factories.UserWithPassword]
    ids: dict[str, int] = field(default_factory=dict)

    def get_urls(self) -> list[str]:
        """Every GET route (API and docs included), with this world's ids in the path."""
        urls = []
        for ep in ENDPOINTS:
            if ep.method != "GET":
                continue
            url = fill_path(ep.path, self.ids)
            if url is not None:
                urls.extend(expand(url))
        return sorted(set(urls))


def expand(url: str) -> list[str]:
    """A route with a {what} becomes one URL per export, a harness {name} one per file."""
    if "/harness/{name}" in url:
        from app.imports.harness_export import FILES

        names = sorted({name for files in FILES.values() for name in files})
        return [url.replace("{name}", name) for name in names]
    if "{what}" not in url:
        return [url]
    whats = ("replies", "ratings") if url.startswith("/api/") else ("metrics", "replies", "ratings")
    return [url.replace("{what}", w) for w in whats]


def fill_path(path: str, ids: dict[str, int]) -> str | None:
    if path.startswith(("/training/", "/api/training/", "/api/v1/training/")):
        ids = {**ids, "run_id": ids["training_id"]}
    if path.startswith("/imports/runs/"):
        ids = {**ids, "run_id": ids["imported_run_id"]}
    out = path
    while "{" in out:
        start, end = out.index("{"), out.index("}")
        name = out[start + 1 : end]
        if name == "what" or (name == "name" and "/harness/" in path):
            return out  # expanded later
        if name == "token":
            return None  # invite/upload tokens: covered by their own tests
        if name not in ids:
            raise KeyError(f"no id for {{{name}}} in {path}")
        out = out[:start] + str(ids[name]) + out[end + 1 :]
    return out


def build_world(s: Session, text: Text, *, api_key_env: str = "", base_url: str = "") -> World:
    admin = factories.make_user(s, role="admin")
    raters = [factories.make_user(s, role="rater") for _ in range(2)]
    for n, r in enumerate(raters):
        r.user.display_name = text(f"rater{n}.display_name")
        s.add(r.user)
    qs = factories.make_question_set(s, n=3, name=text("set.name")[:200])
    qs.description = text("set.description")
    s.add(qs)
    for q in s.exec(select(Question).where(Question.question_set_id == qs.id)).all():
        q.statement = text(f"question{q.position}.statement")
        q.negation = text(f"question{q.position}.negation")
        q.explanation = text(f"question{q.position}.explanation")
        q.category = text(f"question{q.position}.category")[:80]
        s.add(q)
    s.flush()
    run = factories.make_run(s, qs, reply=text("reply"))
    run.name = text("run.name")[:200]
    s.add(run)
    imported = factories.make_run(s, factories.make_question_set(s, n=2), reply=text("imported"))
    imported.source = "imported"
    imported.name = text("imported.name")[:200]
    s.add(imported)
    for n, arm in enumerate(s.exec(select(RunArm).where(RunArm.run_id == run.id)).all()):
        config = s.get(ModelConfig, arm.model_config_id)
        assert config is not None
        config.name = text(f"model{n}.name")[:120]
        config.system_prompt = text(f"model{n}.system_prompt")
        config.api_key_env = api_key_env
        config.base_url = base_url
        s.add(config)
        arm.label = text(f"arm{n}.label")[:60]
        arm.snapshot = {**arm.snapshot, "name": config.name}
        s.add(arm)
    for n, template in enumerate(
        s.exec(
            select(VariantTemplate)
            .join(
                PromptVariant,
                PromptVariant.template_id == VariantTemplate.id,  # type: ignore[arg-type]
            )
            .where(PromptVariant.run_id == run.id)
        ).all()
    ):
        template.name = text(f"template{n}.name")[:120]
        template.text = text(f"template{n}.text") + " {statement_clause}?"
        s.add(template)
    for variant in s.exec(select(PromptVariant).where(PromptVariant.run_id == run.id)).all():
        variant.messages = [{"role": "user", "content": text("prompt")}]
        s.add(variant)
    failed = s.exec(select(Reply).where(Reply.run_id == run.id)).first()
    assert failed is not None
    job = Job(task="runs.generate", status="failed", last_error=text("job.last_error"), attempts=6)
    s.add(job)
    s.flush()
    s.flush()

    round_ = rating_service.open_round(
        s,
        run_ids=[run.id or 0],
        name=text("round.name")[:200],
        raters_per_reply=2,
        guidelines_md=text("round.guidelines"),
    )
    rated: list[int] = []
    for n, rater in enumerate(raters):
        for _ in range(4):
            rid = leases.next_for(s, round_, rater.id)
            if rid is None:
                break
            label = "correct" if n == 0 else "agree"
            submissions.submit(
                s,
                round_,
                rater.id,
                rid,
                RatingInput(label=Label(label), helpfulness=3, note=text(f"rater{n}.note")),
            )
            rated.append(rid)
    adjudicated = rated[0]
    oversight.adjudicate(
        s,
        adjudicated,
        admin.id,
        AdjudicationInput(label=Label.correct, note=text("adjudication.note")),
    )
    from app.models import Rating

    rating = s.exec(select(Rating).where(Rating.rater_id == raters[0].id)).first()
    assert rating is not None

    dataset = SdiDataset(
        name=text("sdi.name")[:120],
        question_set_id=qs.id or 0,
        status="ready",
        stats={"note": text("sdi.stats")},
        config={"source": text("sdi.config")},
    )
    s.add(dataset)
    s.flush()
    for position, split in enumerate(("train", "validation")):
        s.add(
            SdiExample(
                dataset_id=dataset.id or 0,
                position=position,
                split=split,
                kind="neutral",
                messages=[
                    {"role": "user", "content": text("sdi.example.user")},
                    {"role": "assistant", "content": text("sdi.example.assistant")},
                ],
            )
        )
    from app.models import SdiFineTune

    first_config = s.exec(select(ModelConfig)).first()
    assert first_config is not None
    fine_tune = SdiFineTune(
        dataset_id=dataset.id or 0,
        base_model_config_id=first_config.id or 0,
        base_model=text("finetune.base_model")[:255],
        status="failed",
        error=text("finetune.error"),
        events=[{"id": "e1", "created_at": 0, "level": "error", "message": text("finetune.event")}],
    )
    s.add(fine_tune)
    training = TrainingRun(
        name=text("training.name")[:120],
        dataset_id=dataset.id,
        status="failed",
        error=text("training.error"),
        loss_history=[{"step": 1, "train_loss": 1.0}],
        finished_at=utcnow(),
    )
    s.add(training)
    s.flush()
    world = World(admin=admin, raters=raters)
    world.ids.update(
        set_id=qs.id or 0,
        template_id=s.exec(select(VariantTemplate.id)).first() or 0,
        config_id=first_config.id or 0,
        run_id=run.id or 0,
        imported_run_id=imported.id or 0,
        round_id=round_.id or 0,
        rating_id=rating.id or 0,
        reply_id=adjudicated,
        dataset_id=dataset.id or 0,
        fine_tune_id=fine_tune.id or 0,
        training_id=training.id or 0,
        user_id=raters[0].id,
    )
    return world
