"""Admin pages for SDI datasets: list, build, browse, export, and turn into a model."""

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError
from sqlmodel import Session, col, select
from starlette.datastructures import FormData, UploadFile

from app.accounts.deps import AdminUser
from app.config import get_settings
from app.db import SessionDep
from app.model_configs import service as model_configs_service
from app.models import (
    ModelConfig,
    Provider,
    QuestionSet,
    Run,
    RunStatus,
    SdiDataset,
    SdiStatus,
    VariantKind,
)
from app.sdi import banks, finetuning, service
from app.sdi.integration import GeneralDataError
from app.sdi.pipeline import LeakageError
from app.sdi.schemas import BuildConfig, FineTuneCreate, Rates
from app.web import (
    MAX_DB_INT,
    DbId,
    FormFields,
    PageNumber,
    field_errors,
    get_or_404,
    is_htmx,
    plain_message,
    redirect,
    render,
    render_partial,
)

router = APIRouter(tags=["sdi"])


def _dataset_or_404(session: Session, dataset_id: DbId) -> SdiDataset:
    return get_or_404(session, SdiDataset, dataset_id, "No such SDI dataset.")


def _optional_int(value: Any) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.lstrip("-").isdigit() else None


def _form_context(session: Session) -> dict[str, Any]:
    return {
        "sets": service.question_sets(session),
        "models": model_configs_service.callable_model_configs(session),
        "finished_runs": list(
            session.exec(
                select(Run)
                .where(Run.status == RunStatus.completed.value)
                .order_by(col(Run.id).desc())
            ).all()
        ),
        "kinds": list(VariantKind),
        "defaults": BuildConfig(name="x", question_set_id=0),
        "default_rates": Rates(),
    }


@router.get("/sdi", name="sdi.datasets_page")
def datasets_page(request: Request, session: SessionDep, _admin: AdminUser) -> Response:
    sets = {s.id: s.name for s in service.question_sets(session)}
    return render(
        request,
        "sdi/index.html",
        {"datasets": service.list_datasets(session), "set_names": sets},
    )


@router.get("/sdi/new", name="sdi.new_page")
def new_page(request: Request, session: SessionDep, _admin: AdminUser) -> Response:
    return render(request, "sdi/new.html", {**_form_context(session), "form": {}})


def _general_upload(form: FormData) -> str | None:
    upload = form.get("general_data")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    raw = upload.file.read(get_settings().max_upload_bytes + 1)
    if len(raw) > get_settings().max_upload_bytes:
        raise service.SdiError("the general data file is too large")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise service.SdiError("the general data file is not UTF-8 text") from None


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


# The build form's fields in the researcher's words, keyed by the field they sit beside.
_BUILD_MESSAGES = {
    "name": "give the dataset a name (at most 120 characters)",
    "question_set_id": "choose a training question set",
    "size": "a whole number of examples from 1 to 1,000,000 (empty: the smallest cell decides)",
    "seed": "a whole number",
    "validation_fraction": "a number from 0 to 0.5",
}


def build_field_errors(exc: ValidationError) -> dict[str, str]:
    """The build form's field (``rate_noise`` for ``rates.noise``) and its message."""
    errors: dict[str, str] = {}
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if isinstance(p, str)]
        if not loc:  # a check of the whole form (the test set is the training set...)
            errors.setdefault("", plain_message(err))
            continue
        if loc[0] == "rates" and len(loc) > 1:
            errors.setdefault(f"rate_{loc[1]}", "a share from 0 to 1")
        else:
            errors.setdefault(loc[0], _BUILD_MESSAGES.get(loc[0]) or plain_message(err))
    return errors


def config_from_form(form: FormData) -> BuildConfig:
    """A BuildConfig from the build form (raises ValidationError)."""
    rates = {
        key: _text(form, f"rate_{key}") or default for key, default in Rates().model_dump().items()
    }
    values: dict[str, Any] = {
        "name": form.get("name") or "",
        "question_set_id": _optional_int(form.get("question_set_id")) or 0,
        "test_set_id": _optional_int(form.get("test_set_id")),
        "kinds": form.getlist("kinds") or [k.value for k in VariantKind],
        # As typed: a value that is not a whole number is a message beside its field.
        "size": _text(form, "size") or None,
        "seed": _text(form, "seed") or 0,
        "rates": rates,
        "template_source": form.get("template_source") or "both",
        "teacher_model_id": _optional_int(form.get("teacher_model_id")),
        "paraphrase_model_id": _optional_int(form.get("paraphrase_model_id")),
        "leakage": form.get("leakage") or "refuse",
        "filtration_run_id": _optional_int(form.get("filtration_run_id")),
        "validation_fraction": _text(form, "validation_fraction") or 0.1,
        "system_prompt": form.get("system_prompt") or "",
    }
    return BuildConfig.model_validate(values)


@router.post("/sdi", name="sdi.build")
def build(request: Request, session: SessionDep, admin: AdminUser, form: FormFields) -> Response:
    error = ""
    errors: dict[str, str] = {}
    try:
        cfg = config_from_form(form)
        general = _general_upload(form)
        if cfg.teacher_model_id is not None or cfg.paraphrase_model_id is not None:
            dataset = service.start_build(session, cfg, general_jsonl=general, created_by=admin.id)
        else:
            dataset = service.build_dataset(
                session, cfg, general_jsonl=general, created_by=admin.id
            )
    except ValidationError as exc:
        errors = build_field_errors(exc)
        error = "Nothing was built: " + (errors.pop("", "") or "see the marked fields below.")
    except GeneralDataError as exc:
        error = "General data: " + "; ".join(exc.errors[:20])
    except (service.SdiError, LeakageError) as exc:
        error = str(exc)
    if error:
        fields: dict[str, Any] = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        fields["kinds"] = [k for k in form.getlist("kinds") if isinstance(k, str)]
        return render(
            request,
            "sdi/new.html",
            {**_form_context(session), "form": fields, "error": error, "field_errors": errors},
            status_code=422,
        )
    return redirect(request, f"/sdi/{dataset.id}")


def _cell_table(stats: dict[str, Any]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for cell in stats.get("cells", []):
        row = rows.setdefault(
            (cell["kind"], cell["stance"]),
            {"kind": cell["kind"], "stance": cell["stance"], "true": 0, "false": 0},
        )
        row[cell["truth"]] = cell["count"]
    return list(rows.values())


def _detail_context(
    session: Session, dataset: SdiDataset, page: int, split: str, kind: str
) -> dict[str, Any]:
    assert dataset.id is not None
    models = model_configs_service.callable_model_configs(session)
    fine_tunes = finetuning.list_fine_tunes(session, dataset.id)
    return {
        "dataset": dataset,
        "training_set": session.get(QuestionSet, dataset.question_set_id),
        "test_set": session.get(QuestionSet, dataset.test_set_id) if dataset.test_set_id else None,
        "stats": dataset.stats or {},
        "cell_table": _cell_table(dataset.stats or {}),
        "examples": service.example_page(
            session, dataset.id, page=page, split=split or None, kind=kind or None
        ),
        "split": split,
        "kind": kind,
        "kinds": list(VariantKind),
        "models": [m for m in models if m.sdi_dataset_id is None],
        "openai_models": [
            m for m in models if m.provider == Provider.openai.value and m.sdi_dataset_id is None
        ],
        "sdi_models": [m for m in models if m.sdi_dataset_id == dataset.id],
        "fine_tunes": fine_tunes,
        "fine_tunes_active": any(f.status in finetuning.ACTIVE for f in fine_tunes),
        "default_system_prompt": banks.DEFAULT_SYSTEM_PROMPT,
    }


@router.get("/sdi/{dataset_id}", name="sdi.dataset_page")
def dataset_page(
    request: Request,
    session: SessionDep,
    _admin: AdminUser,
    dataset_id: DbId,
    page: PageNumber = 1,
    split: str = "",
    kind: str = "",
    message: str = "",
    error: str = "",
) -> Response:
    dataset = _dataset_or_404(session, dataset_id)
    ctx = _detail_context(session, dataset, page, split, kind)
    return render(request, "sdi/detail.html", {**ctx, "message": message, "error": error})


@router.get("/sdi/{dataset_id}/examples", name="sdi.examples_partial")
def examples_partial(
    request: Request,
    session: SessionDep,
    _admin: AdminUser,
    dataset_id: DbId,
    page: PageNumber = 1,
    split: str = "",
    kind: str = "",
) -> Response:
    if not is_htmx(request):
        query = f"page={page}&split={split}&kind={kind}"
        return redirect(request, f"/sdi/{dataset_id}?{query}#examples")
    dataset = _dataset_or_404(session, dataset_id)
    ctx = _detail_context(session, dataset, page, split, kind)
    return render_partial(request, "sdi/_examples.html", ctx)


@router.get("/sdi/{dataset_id}/status", name="sdi.status_partial")
def status_partial(
    request: Request, session: SessionDep, _admin: AdminUser, dataset_id: DbId
) -> Response:
    dataset = _dataset_or_404(session, dataset_id)
    if not is_htmx(request):
        return redirect(request, f"/sdi/{dataset_id}")
    headers = (
        {"HX-Refresh": "true"} if dataset.status in (SdiStatus.ready, SdiStatus.failed) else None
    )
    response = render_partial(request, "sdi/_status.html", {"dataset": dataset})
    if headers:
        response.headers.update(headers)
    return response


@router.get("/sdi/{dataset_id}/fine-tunes", name="sdi.fine_tunes_partial")
def fine_tunes_partial(
    request: Request, session: SessionDep, _admin: AdminUser, dataset_id: DbId
) -> Response:
    if not is_htmx(request):
        return redirect(request, f"/sdi/{dataset_id}#fine-tunes")
    dataset = _dataset_or_404(session, dataset_id)
    ctx = _detail_context(session, dataset, 1, "", "")
    return render_partial(request, "sdi/_finetunes.html", ctx)


@router.get("/sdi/{dataset_id}/export", name="sdi.export")
def export(
    session: SessionDep,
    _admin: AdminUser,
    dataset_id: DbId,
    format: str = "openai",
    split: str = "train",
) -> Response:
    dataset = _dataset_or_404(session, dataset_id)
    if format not in ("openai", "hf") or split not in (*service.SPLITS, "all"):
        raise HTTPException(400, "format must be openai or hf; split train, validation or all")
    lines = service.export_lines(
        session,
        dataset_id,
        "openai" if format == "openai" else "hf",
        None if split == "all" else split,
    )
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in dataset.name)
    filename = f"{safe}-{format}-{split}.jsonl"
    return StreamingResponse(
        lines,
        media_type="application/jsonl",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _back(request: Request, dataset_id: DbId, *, message: str = "", error: str = "") -> Response:
    from urllib.parse import urlencode

    query = urlencode({k: v for k, v in {"message": message, "error": error}.items() if v})
    return redirect(request, f"/sdi/{dataset_id}" + (f"?{query}" if query else ""))


def _make_model_refused(
    request: Request,
    session: Session,
    dataset: SdiDataset,
    which: str,
    *,
    form: FormData,
    error: str = "",
    errors: dict[str, str] | None = None,
) -> Response:
    """The dataset's page again, the refused form (``in_context`` or ``fine_tune``) keeping
    what was typed, with its message inside it and each field's message beside the field."""
    ctx = _detail_context(session, dataset, 1, "", "")
    kept = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    if errors and not error:
        error = "Nothing was created: see the marked fields below."
    ctx.update({f"{which}_form": kept, f"{which}_error": error, f"{which}_errors": errors or {}})
    return render(request, "sdi/detail.html", ctx, status_code=422)


def _whole(form: FormData, name: str, errors: dict[str, str], message: str) -> int | None:
    """The form's field ``name`` as an int (None when empty); a message in ``errors`` if it is
    not a whole number the database can hold."""
    text = str(form.get(name) or "").strip()
    if not text:
        return None
    if text.lstrip("-").isdigit() and abs(int(text)) <= MAX_DB_INT:
        return int(text)
    errors[name] = message
    return None


@router.post("/sdi/{dataset_id}/in-context", name="sdi.in_context")
def in_context(
    request: Request, session: SessionDep, _admin: AdminUser, dataset_id: DbId, form: FormFields
) -> Response:
    dataset = _dataset_or_404(session, dataset_id)
    errors: dict[str, str] = {}
    base_id = _whole(form, "base_model_id", errors, "choose a base model")
    base = session.get(ModelConfig, base_id) if base_id and base_id > 0 else None
    if base is None or model_configs_service.is_imported_placeholder(base):
        errors["base_model_id"] = "Choose a base model."
    shots = _whole(form, "shots", errors, "a whole number of shots from 1 to 200")
    if shots is not None and not 1 <= shots <= 200:
        errors["shots"] = "a whole number of shots from 1 to 200"
    seed = _whole(form, "seed", errors, "a whole number")
    name = str(form.get("name") or "").strip()
    if len(name) > 120:
        errors["name"] = "at most 120 characters"
    if errors or base is None:
        return _make_model_refused(
            request, session, dataset, "in_context", form=form, errors=errors
        )
    prompt = form.get("system_prompt")
    try:
        config = service.create_in_context_model(
            session,
            base=base,
            dataset=dataset,
            shots=shots or 8,
            seed=seed or 0,
            name=(name or f"{base.name} + SDI ({dataset.name})")[:120],
            system_prompt=prompt if isinstance(prompt, str) else None,
        )
    except service.SdiError as exc:
        return _make_model_refused(
            request,
            session,
            dataset,
            "in_context",
            form=form,
            error="" if exc.field else str(exc),
            errors={exc.field: str(exc)} if exc.field else None,
        )
    return _back(request, dataset_id, message=f"Created the in-context SDI model {config.name!r}.")


_FINE_TUNE_MESSAGES = {
    "base_model_id": "choose an OpenAI-compatible model config",
    "epochs": "a whole number of epochs from 1 to 50 (empty: auto)",
    "seed": "a whole number (empty: none)",
    "suffix": "at most 64 characters",
    "name": "at most 120 characters",
    "base_model": "at most 255 characters",
}


@router.post("/sdi/{dataset_id}/fine-tunes", name="sdi.start_fine_tune")
def start_fine_tune(
    request: Request, session: SessionDep, admin: AdminUser, dataset_id: DbId, form: FormFields
) -> Response:
    dataset = _dataset_or_404(session, dataset_id)

    def text(name: str) -> str:
        return str(form.get(name) or "").strip()

    try:
        data = FineTuneCreate.model_validate(
            {
                "base_model_id": text("base_model_id") or 0,
                "base_model": text("base_model"),
                "epochs": text("epochs") or None,
                "suffix": text("suffix") or "sdi",
                "seed": text("seed") or None,
                "name": text("name"),
            }
        )
        finetuning.start_fine_tune(session, dataset, data, created_by=admin.id)
    except ValidationError as exc:
        errors = field_errors(exc, _FINE_TUNE_MESSAGES)
        return _make_model_refused(request, session, dataset, "fine_tune", form=form, errors=errors)
    except service.SdiError as exc:
        return _make_model_refused(
            request, session, dataset, "fine_tune", form=form, error=str(exc)
        )
    return _back(
        request, dataset_id, message="Fine-tuning started; it is followed in the background."
    )


@router.post("/sdi/fine-tunes/{fine_tune_id}/cancel", name="sdi.cancel_fine_tune")
def cancel_fine_tune(
    request: Request, session: SessionDep, _admin: AdminUser, fine_tune_id: DbId
) -> Response:
    from app.models import SdiFineTune

    fine_tune = get_or_404(session, SdiFineTune, fine_tune_id, "No such fine-tuning job.")
    try:
        finetuning.cancel(session, fine_tune)
    except service.SdiError as exc:
        return _back(request, fine_tune.dataset_id, error=str(exc))
    return _back(request, fine_tune.dataset_id, message="Fine-tuning cancelled.")


@router.post("/sdi/{dataset_id}/delete", name="sdi.delete")
def delete(request: Request, session: SessionDep, _admin: AdminUser, dataset_id: DbId) -> Response:
    dataset = _dataset_or_404(session, dataset_id)
    try:
        service.delete_dataset(session, dataset)
    except service.SdiError as exc:
        return _back(request, dataset_id, error=str(exc))
    return redirect(request, "/sdi")
