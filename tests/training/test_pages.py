"""The training pages, as a plain browser and as HTMX."""

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Job, TrainingRun
from app.training import loading
from app.training.chart import loss_chart
from tests import factories
from tests.training.sdi_like import make_dataset


def _dataset(db: Session) -> int:
    dataset = make_dataset(db, factories.make_question_set(db, n=2), n_train=3, n_val=1)
    assert dataset.id is not None
    return dataset.id


def test_list_page_shows_runs_and_the_form(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    dataset_id = _dataset(db)
    run = TrainingRun(
        name="listed-model", dataset_id=dataset_id, status="running", step=3, total_steps=10
    )
    db.add(run)
    db.flush()
    page = admin_client.get("/training", headers=htmx_headers)
    assert page.status_code == 200
    assert "listed-model" in page.text and "3 / 10" in page.text
    assert 'action="/training"' in page.text and 'name="target_modules"' in page.text
    assert ("<html" in page.text) == (not htmx_headers)
    assert "Training is not installed" not in page.text


def test_without_torch_the_page_says_how_to_install(
    admin_client: TestClient,
    db: Session,
    monkeypatch: pytest.MonkeyPatch,
    htmx_headers: dict[str, str],
) -> None:
    _dataset(db)
    monkeypatch.setattr(loading, "missing_packages", lambda: ["torch", "peft"])
    page = admin_client.get("/training", headers=htmx_headers)
    assert page.status_code == 200
    assert "Training is not installed" in page.text
    assert "pip install -e &#39;.[train]&#39;" in page.text
    assert "torch, peft missing" in page.text
    refused = admin_client.post(
        "/training",
        data={"dataset_id": str(_dataset(db)), "name": "no-torch", "target_modules": "q_proj"},
        headers=htmx_headers,
    )
    assert refused.status_code == 422, refused.text
    assert "train extra" in refused.text, refused.text[refused.text.find("alert") :][:300]


def test_starting_a_training_queues_a_job(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    dataset_id = _dataset(db)
    response = admin_client.post(
        "/training",
        data={
            "dataset_id": str(dataset_id),
            "name": "form-model",
            "rank": "4",
            "alpha": "8",
            "dropout": "0.1",
            "target_modules": ["q_proj", "v_proj"],
            "epochs": "3",
            "learning_rate": "0.001",
            "batch_size": "2",
            "max_length": "128",
            "seed": "5",
        },
        headers=htmx_headers,
        follow_redirects=False,
    )
    run = db.exec(select(TrainingRun).where(TrainingRun.name == "form-model")).one()
    target = f"/training/{run.id}"
    if htmx_headers:
        assert response.status_code == 200 and response.headers["HX-Redirect"] == target
    else:
        assert response.status_code == 303 and response.headers["location"] == target
    assert run.params["rank"] == 4 and run.params["target_modules"] == ["q_proj", "v_proj"]
    assert run.params["learning_rate"] == 0.001 and run.params["seed"] == 5
    job = db.get(Job, run.job_id)
    assert job is not None and job.task == "training.train" and job.status == "todo"


def test_invalid_settings_are_shown_with_the_form_kept(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    dataset_id = _dataset(db)
    response = admin_client.post(
        "/training",
        data={"dataset_id": str(dataset_id), "name": "kept-name", "rank": "0"},
        headers=htmx_headers,
    )
    assert response.status_code == 422
    assert "rank" in response.text and 'value="kept-name"' in response.text


def test_detail_page_polls_while_active_and_shows_the_chart(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    dataset_id = _dataset(db)
    run = TrainingRun(
        name="chart-model",
        dataset_id=dataset_id,
        status="running",
        step=4,
        total_steps=8,
        epoch=1,
        train_loss=1.5,
        val_loss=1.7,
        tokens_per_s=123.4,
        eta_s=75,
        loss_history=[
            {"step": 0, "val_loss": 2.1},
            {"step": 2, "train_loss": 1.9},
            {"step": 4, "train_loss": 1.5},
            {"step": 4, "val_loss": 1.7},
        ],
    )
    db.add(run)
    db.flush()
    page = admin_client.get(f"/training/{run.id}", headers=htmx_headers)
    assert page.status_code == 200
    assert f'hx-get="/training/{run.id}/progress"' in page.text
    assert "<polyline" in page.text and "1 min 15 s" in page.text and "123" in page.text
    assert 'action="/training/' in page.text and "Cancel training" in page.text
    assert "style=" not in page.text and "<script>" not in page.text
    partial = admin_client.get(f"/training/{run.id}/progress", headers=htmx_headers)
    assert partial.status_code == 200 and "<html" not in partial.text
    assert (
        'id="training-progress"' in partial.text and '<progress max="8" value="4"' in partial.text
    )


def test_finished_run_stops_polling_and_links_its_model(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    dataset_id = _dataset(db)
    config = factories.make_model_config(db, name="result-model", provider="trained")
    run = TrainingRun(
        name="result-model",
        dataset_id=dataset_id,
        status="succeeded",
        step=2,
        total_steps=2,
        model_config_id=config.id,
        merged_path="training/1/model.gguf",
        merged_format="gguf",
    )
    db.add(run)
    db.flush()
    page = admin_client.get(f"/training/{run.id}", headers=htmx_headers)
    assert "hx-trigger" not in page.text and "Cancel training" not in page.text
    assert "result-model" in page.text and "training/1/model.gguf" in page.text


def test_failed_run_shows_its_error(admin_client: TestClient, db: Session) -> None:
    run = TrainingRun(
        name="broken", dataset_id=_dataset(db), status="failed", error="out of memory"
    )
    db.add(run)
    db.flush()
    assert "Failed: out of memory" in admin_client.get(f"/training/{run.id}").text


def test_cancel_from_the_page(
    admin_client: TestClient, db: Session, htmx_headers: dict[str, str]
) -> None:
    run = TrainingRun(name="to-cancel", dataset_id=_dataset(db), status="running")
    db.add(run)
    db.flush()
    response = admin_client.post(
        f"/training/{run.id}/cancel", headers=htmx_headers, follow_redirects=False
    )
    assert response.status_code in (200, 303)
    db.refresh(run)
    assert run.cancel_requested and run.status == "running"
    assert "cancelling at the next step" in admin_client.get(f"/training/{run.id}").text


def test_pages_are_for_admins(rater_client: TestClient, db: Session) -> None:
    run = TrainingRun(name="private", dataset_id=_dataset(db))
    db.add(run)
    db.flush()
    assert rater_client.get("/training").status_code == 403
    assert rater_client.get(f"/training/{run.id}").status_code == 403
    assert rater_client.post(f"/training/{run.id}/cancel").status_code == 403


def test_unknown_run_is_404(admin_client: TestClient) -> None:
    assert admin_client.get("/training/999999").status_code == 404


def test_loss_chart_scales_points_into_the_plot() -> None:
    chart = loss_chart(
        [
            {"step": 0, "val_loss": 3.0},
            {"step": 5, "train_loss": 2.0},
            {"step": 10, "train_loss": 1.0},
        ],
        total_steps=10,
    )
    assert chart is not None
    left, top, right, bottom = chart.plot
    train = next(s for s in chart.series if s.label == "train")
    val = next(s for s in chart.series if s.label == "validation")
    assert val.dots == [(left, top)]  # step 0, highest loss
    assert train.dots[-1] == (right, bottom)  # last step, lowest loss
    assert train.points == " ".join(f"{x},{y}" for x, y in train.dots)
    assert loss_chart([], 10) is None
