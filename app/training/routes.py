from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.accounts.deps import AdminUser
from app.db import SessionDep
from app.models import ModelConfig, SdiDataset, TrainingRun
from app.training import loading, service
from app.training.chart import loss_chart
from app.training.schemas import (
    LINEAR_MODULES,
    TrainingCreate,
    TrainingParams,
    TrainingRunPublic,
)
from app.web import (
    INVALID,
    MAX_DB_INT,
    NOT_FOUND,
    DbId,
    FormFields,
    api_router,
    field_errors,
    get_or_404,
    redirect,
    render,
    render_partial,
)

router = APIRouter(tags=["training"])


def _availability() -> dict[str, Any]:
    return {
        "train_available": loading.available(),
        "missing_packages": loading.missing_packages(),
        "install_hint": loading.INSTALL_HINT,
    }


def _list_context(session: SessionDep, **extra: Any) -> dict[str, Any]:
    return {
        "runs": service.list_runs(session),
        "datasets": service.datasets(session),
        "defaults": TrainingParams(),
        "modules": LINEAR_MODULES,
        "form": {},
        "error": "",
        "field_errors": {},
        **_availability(),
        **extra,
    }


@router.get("/training", name="training.training_list")
def training_list(request: Request, session: SessionDep, _user: AdminUser) -> Response:
    return render(request, "training/list.html", _list_context(session))


# The form's fields in the researcher's words, keyed by the field they sit beside.
_TRAINING_MESSAGES = {
    "dataset_id": "choose an SDI dataset",
    "name": "give the model a name (at most 120 characters)",
    "rank": "a whole number from 1 to 256",
    "alpha": "a whole number from 1 to 1024",
    "dropout": "a number from 0 up to (not including) 1",
    "epochs": "a whole number of epochs from 1 to 100",
    "learning_rate": "a number above 0, at most 1",
    "batch_size": "a whole number from 1 to 512",
    "max_length": "a whole number of tokens from 16 to 8192",
}
_PARAM_FIELDS = (
    "rank",
    "alpha",
    "dropout",
    "epochs",
    "learning_rate",
    "batch_size",
    "max_length",
    "seed",
)


@router.post("/training", name="training.training_create")
def training_create(
    request: Request, session: SessionDep, user: AdminUser, form: FormFields
) -> Response:
    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    # Empty number fields take their defaults; the rest go to the schemas as typed, so a
    # value that is not a number is a message beside its field, not a bare 422.
    params: dict[str, Any] = {name: text(name) for name in _PARAM_FIELDS if text(name)}
    params["target_modules"] = [m for m in form.getlist("target_modules") if isinstance(m, str)]
    raw_dataset = text("dataset_id")
    dataset_id = int(raw_dataset) if raw_dataset.isdigit() else 0
    kept = {
        **params,
        "dataset_id": dataset_id,
        "name": text("name"),
        "base_model": text("base_model"),
    }
    errors: dict[str, str] = {}
    message = ""
    if not 1 <= dataset_id <= MAX_DB_INT:
        errors["dataset_id"] = _TRAINING_MESSAGES["dataset_id"]
    try:
        data = TrainingCreate.model_validate(
            {
                "dataset_id": dataset_id,
                "name": kept["name"],
                "base_model": kept["base_model"],
                "params": params,
            }
        )
    except ValidationError as exc:
        errors.update(field_errors(exc, _TRAINING_MESSAGES))
    if not errors:
        try:
            if not loading.available():
                raise service.TrainingServiceError(
                    f"training needs the train extra: {loading.INSTALL_HINT}"
                )
            run = service.create_training(session, data, user_id=user.id)
            return redirect(request, f"/training/{run.id}")
        except service.TrainingServiceError as exc:
            if exc.field:
                errors[exc.field] = str(exc)
            else:
                message = str(exc)
    if errors and not message:
        message = "The training was not started: see the marked fields below."
    return render(
        request,
        "training/list.html",
        _list_context(session, form=kept, error=message, field_errors=errors),
        status_code=422,
    )


def _detail_context(session: SessionDep, run: TrainingRun) -> dict[str, Any]:
    dataset = session.get(SdiDataset, run.dataset_id) if run.dataset_id else None
    config = session.get(ModelConfig, run.model_config_id) if run.model_config_id else None
    return {
        "run": run,
        "dataset": dataset,
        "model_config": config,
        "chart": loss_chart(run.loss_history, run.total_steps),
        "active": run.status in service.ACTIVE,
        "params": TrainingParams.model_validate(run.params),
    }


def _get_run(session: SessionDep, run_id: DbId) -> TrainingRun:
    return get_or_404(session, TrainingRun, run_id, "No such training run")


@router.get("/training/{run_id}", name="training.training_detail")
def training_detail(
    request: Request, session: SessionDep, _user: AdminUser, run_id: DbId
) -> Response:
    run = _get_run(session, run_id)
    return render(request, "training/detail.html", _detail_context(session, run))


@router.get("/training/{run_id}/progress", name="training.training_progress")
def training_progress(
    request: Request, session: SessionDep, _user: AdminUser, run_id: DbId
) -> Response:
    run = _get_run(session, run_id)
    return render_partial(request, "training/_progress.html", _detail_context(session, run))


@router.post("/training/{run_id}/cancel", name="training.training_cancel")
def training_cancel(
    request: Request, session: SessionDep, _user: AdminUser, run_id: DbId
) -> Response:
    run = _get_run(session, run_id)
    try:
        service.request_cancel(session, run)
    except service.TrainingServiceError as exc:
        raise HTTPException(409, str(exc)) from None
    return redirect(request, f"/training/{run_id}")


@router.get("/api/training/{run_id}", name="training.training_api")
def training_api(session: SessionDep, _user: AdminUser, run_id: DbId) -> dict[str, Any]:
    run = _get_run(session, run_id)
    return run.model_dump(mode="json")


# -- /api/v1 -----------------------------------------------------------------------------------

api = api_router("training")


@api.get(
    "/training/{run_id}",
    name="training.v1_training",
    responses={**NOT_FOUND, **INVALID},
    summary="A local training run: progress, losses, the adapter and model it made",
)
def v1_training(
    session: SessionDep,
    _user: AdminUser,
    run_id: Annotated[DbId, Path(description="A training run's id, as in /training/3")],
) -> TrainingRunPublic:
    return TrainingRunPublic.model_validate(_get_run(session, run_id))
