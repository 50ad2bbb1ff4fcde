from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
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
    NOT_FOUND,
    DbId,
    DbInt,
    api_router,
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
        **_availability(),
        **extra,
    }


@router.get("/training", name="training.training_list")
def training_list(request: Request, session: SessionDep, _user: AdminUser) -> Response:
    return render(request, "training/list.html", _list_context(session))


@router.post("/training", name="training.training_create")
def training_create(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    dataset_id: Annotated[DbInt, Form()],
    name: Annotated[str, Form(max_length=120)],
    base_model: Annotated[str, Form(max_length=500)] = "",
    rank: Annotated[DbInt, Form()] = 8,
    alpha: Annotated[DbInt, Form()] = 16,
    dropout: Annotated[float, Form()] = 0.05,
    target_modules: Annotated[list[str] | None, Form()] = None,
    epochs: Annotated[DbInt, Form()] = 2,
    learning_rate: Annotated[float, Form()] = 5e-4,
    batch_size: Annotated[DbInt, Form()] = 8,
    max_length: Annotated[DbInt, Form()] = 256,
    seed: Annotated[DbInt, Form()] = 0,
) -> Response:
    form = {
        "dataset_id": dataset_id,
        "name": name,
        "base_model": base_model,
        "rank": rank,
        "alpha": alpha,
        "dropout": dropout,
        "target_modules": target_modules or [],
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "max_length": max_length,
        "seed": seed,
    }
    try:
        params = TrainingParams(
            rank=rank,
            alpha=alpha,
            dropout=dropout,
            target_modules=target_modules or [],
            epochs=epochs,
            learning_rate=learning_rate,
            batch_size=batch_size,
            max_length=max_length,
            seed=seed,
        )
        data = TrainingCreate(
            dataset_id=dataset_id, name=name, base_model=base_model, params=params
        )
        if not loading.available():
            raise service.TrainingServiceError(
                f"training needs the train extra: {loading.INSTALL_HINT}"
            )
        run = service.create_training(session, data, user_id=user.id)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return render(
            request,
            "training/list.html",
            _list_context(session, form=form, error=problems),
            status_code=422,
        )
    except service.TrainingServiceError as exc:
        return render(
            request,
            "training/list.html",
            _list_context(session, form=form, error=str(exc)),
            status_code=422,
        )
    return redirect(request, f"/training/{run.id}")


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
    service.request_cancel(session, run)
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
