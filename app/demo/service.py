"""Everything the demo needs in the database: seed data, accounts, the local model, a run."""

import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, select

from app.accounts import service as accounts
from app.accounts.schemas import UserCreate
from app.config import get_settings
from app.model_configs import service as model_configs
from app.model_configs.schemas import ModelConfigCreate
from app.models import ModelConfig, Provider, QuestionSet, Role, Run, User
from app.questions import service as questions
from app.variants import service as variants

ADMIN_EMAIL = "admin@sdilab.local"
RATER_EMAILS = ("rater1@sdilab.local", "rater2@sdilab.local")
LOCAL_MODEL_NAME = "SmolLM2-135M (local)"


@dataclass
class DemoState:
    password: str
    run: Run | None
    created_run: bool


def demo_password() -> str:
    """The demo accounts' password: SDILAB_DEMO_PASSWORD, else one generated and kept in the
    data dir so it can be printed again on the next start."""
    import os

    if os.environ.get("SDILAB_DEMO_PASSWORD"):
        return os.environ["SDILAB_DEMO_PASSWORD"]
    path = Path(get_settings().data_dir) / "demo-password.txt"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(9)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


def ensure_user(session: Session, email: str, role: Role, password: str) -> User:
    user = accounts.get_user_by_email(session, email)
    if user is None:
        user = accounts.create_user(session, UserCreate(email=email, password=password, role=role))
    return user


def ensure_local_model(session: Session) -> ModelConfig:
    config = model_configs.get_by_name(session, LOCAL_MODEL_NAME)
    if config is None:
        config = model_configs.create_model_config(
            session,
            ModelConfigCreate(
                name=LOCAL_MODEL_NAME,
                provider=Provider.local,
                model_id="",
                temperature=0.0,
                max_tokens=80,
                seed=0,
                max_concurrency=1,
            ),
        )
    return config


def prepare(session: Session, *, start_run: bool, limit: int) -> DemoState:
    password = demo_password()
    questions.seed_question_set(session)
    variants.seed_templates(session)
    ensure_user(session, ADMIN_EMAIL, Role.admin, password)
    for email in RATER_EMAILS:
        ensure_user(session, email, Role.rater, password)
    model = ensure_local_model(session)
    existing = session.exec(select(Run).order_by(Run.id)).first()  # type: ignore[arg-type]
    if existing is not None or not start_run:
        return DemoState(password, existing, created_run=False)

    from app.experiments.paper import ExperimentConfig, run_paper_experiment

    seed_set = session.exec(select(QuestionSet).where(QuestionSet.name == "seed")).one()
    experiment = run_paper_experiment(
        session,
        ExperimentConfig(
            model_id=model.id or 0, set_id=seed_set.id or 0, limit=limit, shots=4, seed=0
        ),
    )
    return DemoState(password, experiment.run, created_run=True)
