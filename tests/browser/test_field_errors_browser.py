"""The forms of the Training page, the SDI build and model forms and the rating round form in
Chromium: a refused value's message is *visible* beside its field, in plain words (no pydantic
"Input should be..." or "List should have at least 1 item"), the form keeps what was typed,
and nothing was saved."""

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.models import ModelConfig, RatingRound, SdiDataset, SdiFineTune, TrainingRun
from tests import factories
from tests.browser.test_form_errors_browser import _count, _logged_in_admin, expect_message
from tests.training.sdi_like import make_dataset

pytestmark = pytest.mark.browser

TECHNICAL = re.compile(r"Input should|List should|Field required|Value error|\bloc\b")


def expect_beside(page: Page, field_error_id: str, text: str | re.Pattern[str]) -> None:
    """The message ``#error-<id>`` is visible inside the label (or fieldset) of its field and
    says ``text``; no technical wording anywhere in the page's text."""
    message = page.locator(f"#error-{field_error_id}")
    expect(message).to_be_visible()
    expect(message).to_contain_text(text)
    assert page.evaluate(
        "id => !!document.getElementById(id).closest('label, fieldset')", f"error-{field_error_id}"
    )
    assert not TECHNICAL.search(page.locator("main").inner_text())


def _set_values(page: Page, form: str, values: dict[str, str]) -> None:
    """Type values the browser's own checks would stop (the server must refuse them too)."""
    page.eval_on_selector(
        form,
        """(form, values) => {
            form.noValidate = true;
            for (const [name, value] of Object.entries(values)) {
                const field = form.elements[name];
                if (field.type === "number") { field.type = "text"; }
                field.value = value;
            }
        }""",
        values,
    )


# -- the Training page -----------------------------------------------------------------------


@pytest.fixture
def training_page(
    committed_db: Engine, page: Page, monkeypatch: pytest.MonkeyPatch
) -> tuple[Page, int]:
    """The Training page of an admin, training installed (the Start button enabled), one SDI
    dataset with training examples."""
    from app.training import loading

    monkeypatch.setattr(loading, "available", lambda: True)
    with Session(committed_db) as s:
        dataset = make_dataset(s, factories.make_question_set(s, n=2), n_train=3, n_val=1)
        s.commit()
        assert dataset.id is not None
        dataset_id = dataset.id
    _logged_in_admin(committed_db, page)
    page.goto("/training")
    return page, dataset_id


TRAINING_FORM = "form.training-form"


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        pytest.param({"rank": "0"}, "rank", "a whole number from 1 to 256", id="rank-zero"),
        pytest.param({"alpha": "lots"}, "alpha", "a whole number from 1 to 1024", id="alpha"),
        pytest.param({"dropout": "1.5"}, "dropout", "from 0 up to", id="dropout"),
        pytest.param({"learning_rate": "0"}, "learning_rate", "above 0", id="lr"),
        pytest.param({"epochs": "2.5"}, "epochs", "whole number of epochs", id="epochs"),
        pytest.param({"max_length": "8"}, "max_length", "from 16 to 8192", id="max-length"),
        pytest.param({"seed": "x"}, "seed", "a whole number", id="seed"),
    ],
)
def test_training_with_a_bad_setting_says_which_beside_it(
    committed_db: Engine,
    training_page: tuple[Page, int],
    values: dict[str, str],
    field: str,
    message: str,
) -> None:
    page, _ = training_page
    page.fill(f"{TRAINING_FORM} input[name=name]", "kept-name")
    _set_values(page, TRAINING_FORM, values)
    page.click(f"{TRAINING_FORM} button[type=submit]")
    expect_beside(page, field, message)
    expect_message(page, "The training was not started")
    expect(page.locator(f"{TRAINING_FORM} input[name=name]")).to_have_value("kept-name")
    # Sent back as typed (a number field shows a non-number as empty, but keeps it).
    expect(page.locator(f"{TRAINING_FORM} input[name={field}]")).to_have_attribute(
        "value", values[field]
    )
    assert _count(committed_db, TrainingRun) == 0


def test_training_without_a_target_module_says_so(
    committed_db: Engine, training_page: tuple[Page, int]
) -> None:
    page, _ = training_page
    page.fill(f"{TRAINING_FORM} input[name=name]", "no-modules")
    for box in page.locator(f"{TRAINING_FORM} input[name=target_modules]").all():
        box.uncheck()
    page.click(f"{TRAINING_FORM} button[type=submit]")
    expect_beside(page, "target_modules", "choose at least one target module")
    # The boxes stay as the researcher left them (none ticked), not back to the defaults.
    expect(page.locator(f"{TRAINING_FORM} input[name=target_modules]:checked")).to_have_count(0)
    assert _count(committed_db, TrainingRun) == 0


def test_training_under_a_name_taken_shows_beside_the_name(
    committed_db: Engine, training_page: tuple[Page, int]
) -> None:
    page, dataset_id = training_page
    with Session(committed_db) as s:
        s.add(TrainingRun(name="taken-model", dataset_id=dataset_id, status="running"))
        s.commit()
    page.fill(f"{TRAINING_FORM} input[name=name]", "taken-model")
    page.click(f"{TRAINING_FORM} button[type=submit]")
    expect_beside(page, "name", "a model named 'taken-model' already exists or is training")
    expect(page.locator(f"{TRAINING_FORM} input[name=name]")).to_have_value("taken-model")
    assert _count(committed_db, TrainingRun) == 1


def test_training_without_a_name_says_so_beside_it(
    committed_db: Engine, training_page: tuple[Page, int]
) -> None:
    page, _ = training_page
    _set_values(page, TRAINING_FORM, {"name": "   "})
    page.click(f"{TRAINING_FORM} button[type=submit]")
    expect_beside(page, "name", "give the model a name")
    assert _count(committed_db, TrainingRun) == 0


# -- an SDI dataset's page: in-context model and OpenAI fine-tuning --------------------------


def _dataset_page(engine: Engine, page: Page) -> int:
    with Session(engine) as s:
        dataset = make_dataset(s, factories.make_question_set(s, n=2), n_train=3, n_val=1)
        factories.make_model_config(s, name="smol", provider="local")
        factories.make_model_config(s, name="remote", provider="openai")
        s.commit()
        assert dataset.id is not None
        dataset_id = dataset.id
    _logged_in_admin(engine, page)
    page.goto(f"/sdi/{dataset_id}")
    return dataset_id


IN_CONTEXT = "form.in-context-form"
FINE_TUNE = "form.fine-tune-form"


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        pytest.param({"shots": "500"}, "ic-shots", "from 1 to 200", id="too-many-shots"),
        pytest.param({"shots": "a few"}, "ic-shots", "from 1 to 200", id="shots-not-a-number"),
        pytest.param({"seed": "1.5"}, "ic-seed", "a whole number", id="seed"),
    ],
)
def test_in_context_model_with_a_bad_number_says_which(
    committed_db: Engine, page: Page, values: dict[str, str], field: str, message: str
) -> None:
    _dataset_page(committed_db, page)
    models_before = _count(committed_db, ModelConfig)
    page.fill(f"{IN_CONTEXT} input[name=name]", "kept sdi model")
    _set_values(page, IN_CONTEXT, values)
    page.click(f"{IN_CONTEXT} button[type=submit]")
    expect_beside(page, field, message)
    form = page.locator(IN_CONTEXT)
    expect(form.locator(".error").first).to_contain_text("Nothing was created")
    expect(form.locator("input[name=name]")).to_have_value("kept sdi model")
    assert _count(committed_db, ModelConfig) == models_before


def test_in_context_model_under_a_name_taken_shows_beside_the_name(
    committed_db: Engine, page: Page
) -> None:
    _dataset_page(committed_db, page)
    models_before = _count(committed_db, ModelConfig)
    page.fill(f"{IN_CONTEXT} input[name=name]", "remote")  # an existing model's name
    page.click(f"{IN_CONTEXT} button[type=submit]")
    expect_beside(page, "ic-name", "a model named 'remote' already exists")
    assert _count(committed_db, ModelConfig) == models_before


def test_in_context_model_error_shows_without_javascript_too(
    committed_db: Engine, page_no_js: Page
) -> None:
    """A plain post: the page comes back scrolled to the forms, the message inside its form."""
    page = page_no_js
    _dataset_page(committed_db, page)
    page.fill(f"{IN_CONTEXT} input[name=name]", "remote")  # an existing model's name
    page.click(f"{IN_CONTEXT} button[type=submit]")
    expect(page).to_have_url(re.compile(r"#make-model$"))
    message = page.locator(f"{IN_CONTEXT} #error-ic-name")
    expect(message).to_contain_text("a model named 'remote' already exists")
    expect(message).to_be_in_viewport()


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        pytest.param({"epochs": "99"}, "ft-epochs", "from 1 to 50", id="epochs"),
        pytest.param({"epochs": "three"}, "ft-epochs", "from 1 to 50", id="epochs-word"),
        pytest.param({"seed": "abc"}, "ft-seed", "a whole number", id="seed"),
        pytest.param({"suffix": "s" * 80}, "ft-suffix", "at most 64 characters", id="suffix"),
    ],
)
def test_fine_tune_with_a_bad_setting_says_which(
    committed_db: Engine, page: Page, values: dict[str, str], field: str, message: str
) -> None:
    _dataset_page(committed_db, page)
    page.fill(f"{FINE_TUNE} input[name=name]", "kept ft")
    _set_values(page, FINE_TUNE, values)
    page.click(f"{FINE_TUNE} button[type=submit]")
    expect_beside(page, field, message)
    expect(page.locator(f"{FINE_TUNE} input[name=name]")).to_have_value("kept ft")
    assert _count(committed_db, SdiFineTune) == 0


def test_fine_tune_without_an_account_says_so(committed_db: Engine, page: Page) -> None:
    _dataset_page(committed_db, page)
    page.eval_on_selector(
        FINE_TUNE,
        """form => {
            form.noValidate = true;
            form.elements.base_model_id.add(new Option("none", ""));
            form.elements.base_model_id.value = "";
        }""",
    )
    page.click(f"{FINE_TUNE} button[type=submit]")
    expect_beside(page, "ft-base_model_id", "choose an OpenAI-compatible model config")
    assert _count(committed_db, SdiFineTune) == 0


# -- building SDI data -----------------------------------------------------------------------

BUILD = "form[action='/sdi']"


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        pytest.param({"size": "many"}, "size", "a whole number of examples", id="size"),
        pytest.param({"seed": "4.2"}, "seed", "a whole number", id="seed"),
        pytest.param({"rate_noise": "2"}, "rate_noise", "a share from 0 to 1", id="rate"),
        pytest.param(
            {"validation_fraction": "0.9"}, "validation_fraction", "from 0 to 0.5", id="val"
        ),
    ],
)
def test_sdi_build_with_a_bad_number_says_which(
    committed_db: Engine, page: Page, values: dict[str, str], field: str, message: str
) -> None:
    with Session(committed_db) as s:
        factories.make_question_set(s, n=4, name="sdi set")
        s.commit()
    _logged_in_admin(committed_db, page)
    page.goto("/sdi/new")
    page.fill(f"{BUILD} input[name=name]", "kept build")
    _set_values(page, BUILD, values)
    page.click(f"{BUILD} button[type=submit]")
    expect_beside(page, field, message)
    expect_message(page, "Nothing was built")
    expect(page.locator(f"{BUILD} input[name=name]")).to_have_value("kept build")
    assert _count(committed_db, SdiDataset) == 0


def test_sdi_build_without_a_variant_kind_says_so(committed_db: Engine, page: Page) -> None:
    with Session(committed_db) as s:
        factories.make_question_set(s, n=4, name="sdi set")
        s.commit()
    _logged_in_admin(committed_db, page)
    page.goto("/sdi/new")
    page.fill(f"{BUILD} input[name=name]", "no kinds")
    # Unticking every kind builds with all of them (the form's documented default); a kind
    # the pipeline does not know is refused beside the kinds.
    page.eval_on_selector(
        f"{BUILD} input[name=kinds]", "box => { box.value = 'sarcastic'; box.checked = true; }"
    )
    page.click(f"{BUILD} button[type=submit]")
    expect_beside(page, "kinds", re.compile(r"one of"))
    assert _count(committed_db, SdiDataset) == 0


# -- the rating round form (issue 17, item 11) -----------------------------------------------

ROUND = "form[action='/rating/rounds']"


def _finished_run(engine: Engine) -> int:
    with Session(engine) as s:
        run = factories.make_run(s)
        s.commit()
        assert run.id is not None
        return run.id


def test_round_without_a_run_says_choose_one_beside_the_runs(
    committed_db: Engine, page: Page
) -> None:
    _finished_run(committed_db)
    _logged_in_admin(committed_db, page)
    page.goto("/rating/rounds")
    page.fill(f"{ROUND} input[name=name]", "kept round")
    page.click(f"{ROUND} button[type=submit]")
    expect_beside(page, "run_ids", "choose at least one run")
    expect(page.locator("fieldset:has(legend:text('Runs')) #error-run_ids")).to_be_visible()
    expect(page.locator(f"{ROUND} input[name=name]")).to_have_value("kept round")
    assert _count(committed_db, RatingRound) == 0


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        pytest.param({"sample_size": "0"}, "sample_size", "1 or more", id="sample-zero"),
        pytest.param({"sample_size": "lots"}, "sample_size", "a whole number", id="sample-word"),
        pytest.param({"raters_per_reply": "0"}, "raters_per_reply", "from 1 to 20", id="raters"),
        pytest.param({"lease_minutes": "9999"}, "lease_minutes", "1 to 1440", id="lease"),
        pytest.param({"seed": "x"}, "seed", "a whole number", id="seed"),
        pytest.param({"name": "  "}, "name", "give the round a name", id="no-name"),
    ],
)
def test_round_with_a_bad_setting_says_which_beside_it(
    committed_db: Engine, page: Page, values: dict[str, str], field: str, message: str
) -> None:
    run_id = _finished_run(committed_db)
    _logged_in_admin(committed_db, page)
    page.goto("/rating/rounds")
    page.check(f"input[name=run_ids][value='{run_id}']")
    _set_values(page, ROUND, values)
    page.click(f"{ROUND} button[type=submit]")
    expect_beside(page, field, message)
    expect_message(page, "The round was not opened")
    # What was chosen is kept: the run stays ticked.
    expect(page.locator(f"input[name=run_ids][value='{run_id}']")).to_be_checked()
    assert _count(committed_db, RatingRound) == 0


# -- deletes refused, and a rating revised without a choice ----------------------------------


def test_deleting_a_model_a_run_started_on_meanwhile_shows_why(
    committed_db: Engine, page: Page
) -> None:
    from app.models import RunArm

    with Session(committed_db) as s:
        config_id = factories.make_model_config(s, name="soon used").id
        s.commit()
    _logged_in_admin(committed_db, page)
    page.goto("/models")
    delete = page.locator(f"form[action='/models/{config_id}/delete'] button[type=submit]")
    expect(delete).to_be_visible()
    with Session(committed_db) as s:  # a run starts with the model while its page is open
        run = factories.make_run(s)
        arm = s.exec(select(RunArm).where(RunArm.run_id == run.id)).first()
        assert arm is not None
        arm.model_config_id = config_id or 0
        s.add(arm)
        s.commit()
    models_before = _count(committed_db, ModelConfig)
    page.on("dialog", lambda dialog: dialog.accept())
    delete.click()
    expect_message(page, "'soon used' is used by a run and cannot be deleted")
    assert _count(committed_db, ModelConfig) == models_before


def test_deleting_an_sdi_dataset_a_model_uses_shows_why(committed_db: Engine, page: Page) -> None:
    from app.sdi import service as sdi

    with Session(committed_db) as s:
        dataset = make_dataset(s, factories.make_question_set(s, n=2), n_train=3, n_val=1)
        base = factories.make_model_config(s, name="smol", provider="local")
        sdi.create_in_context_model(s, base=base, dataset=dataset, shots=2, seed=0, name="smol+sdi")
        s.commit()
        dataset_id = dataset.id
    _logged_in_admin(committed_db, page)
    page.goto(f"/sdi/{dataset_id}")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click(f"form[action='/sdi/{dataset_id}/delete'] button[type=submit]")
    expect_message(page, "is used by 1 model config(s)")
    assert _count(committed_db, SdiDataset) == 1


def test_revising_a_rating_without_a_label_shows_why_above_the_form(
    committed_db: Engine, page: Page
) -> None:
    from app.models import Rating
    from app.rating import leases, submissions
    from tests.browser.conftest import browser_login
    from tests.rating.helpers import make_round, rating_input

    with Session(committed_db, expire_on_commit=False) as s:
        round_, _ = make_round(s, k=1, questions=1)
        rater = factories.make_user(s)
        reply_id = leases.next_for(s, round_, rater.id)
        assert reply_id is not None
        submissions.submit(s, round_, rater.id, reply_id, rating_input("agree", 2))
        s.commit()
        rating = s.exec(select(Rating)).one()
    browser_login(page, rater)
    page.goto(f"/rate/mine/{rating.id}")
    form = f"form[action='/rate/mine/{rating.id}']"
    page.eval_on_selector(
        form,
        """form => {
            form.noValidate = true;
            form.querySelectorAll("input[name=label]").forEach(box => { box.checked = false; });
        }""",
    )
    page.click(f"{form} button[type=submit]")
    expect_message(page, "Please choose a label.")
    expect(page.locator(form)).to_be_visible()  # the form is still there to fix it
    with Session(committed_db) as s:
        assert s.exec(select(Rating.label)).one() == "agree"


def test_rating_a_reply_without_every_choice_says_which_and_keeps_the_others(
    committed_db: Engine, page: Page
) -> None:
    """The browser stops a rating with a choice missing (the fields are required); one that
    reaches the server anyway comes back with the message and the choices already made."""
    from app.models import Rating
    from tests.browser.conftest import browser_login
    from tests.rating.helpers import make_round

    with Session(committed_db, expire_on_commit=False) as s:
        make_round(s, k=1, questions=1)
        rater = factories.make_user(s)
        s.commit()
    browser_login(page, rater)
    page.goto("/rate")
    page.locator("[data-rating-start] button").click()
    page.wait_for_selector("[data-rating-form]")
    page.keyboard.press("4")  # helpfulness only
    page.keyboard.press("Enter")
    assert page.eval_on_selector("[data-rating-form]", "f => !f.checkValidity()")
    page.eval_on_selector("[data-rating-form]", "f => { f.noValidate = true; }")
    page.keyboard.press("t")
    page.keyboard.press("Enter")
    expect_message(page, "Please choose a label.")
    expect(page.locator("[data-rating-form] input[name=helpfulness][value='4']")).to_be_checked()
    expect(page.locator("[data-rating-form] input[name=verdict][value='true']")).to_be_checked()
    assert _count(committed_db, Rating) == 0


def test_resuming_a_run_resumed_meanwhile_shows_why(committed_db: Engine, page: Page) -> None:
    from app.models import Run

    with Session(committed_db) as s:
        run_id = factories.make_run(s, status="cancelled").id
        s.commit()
    _logged_in_admin(committed_db, page)
    page.goto(f"/runs/{run_id}")
    resume = page.locator(f"form[action='/runs/{run_id}/resume'] button")
    expect(resume).to_be_visible()
    with Session(committed_db) as s:  # another admin resumes it, and it finishes
        run = s.get(Run, run_id)
        assert run is not None
        run.status = "completed"
        s.add(run)
        s.commit()
    resume.click()
    expect_message(page, "only a cancelled run can be resumed")
    with Session(committed_db) as s:
        assert s.get(Run, run_id).status == "completed"  # type: ignore[union-attr]


def test_a_column_choice_that_leaves_out_a_needed_field_says_which(
    committed_db: Engine, page: Page
) -> None:
    from app.models import QuestionSet

    _logged_in_admin(committed_db, page)
    page.goto("/sets/upload")
    page.fill("input[name=name]", "choose again")
    data = b"claim,label\nThe Sun is a star.,yes\nWhales are fish.,no\n"
    page.set_input_files(
        "input[name=file]", files=[{"name": "c.csv", "mimeType": "text/csv", "buffer": data}]
    )
    page.click("main button[type=submit]")
    expect(page.locator("select[name=map_statement]")).to_have_value("claim")
    page.select_option("select[name=map_statement]", "")  # no column for the statement
    page.click("form.columns-map button[type=submit]")
    expect_message(page, "Missing required column(s): statement")
    expect(page.locator("form.columns-map")).to_be_visible()  # to choose again
    page.select_option("select[name=map_statement]", "claim")
    page.click("form.columns-map button[type=submit]")
    expect(page.get_by_role("button", name="Import 2 statements")).to_be_visible()
    assert _count(committed_db, QuestionSet) == 0
