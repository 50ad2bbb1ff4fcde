"""The README stays true: every setting is documented."""

from pathlib import Path

from app.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    missing = [
        f"SDILAB_{name.upper()}"
        for name in Settings.model_fields
        if f"SDILAB_{name.upper()}" not in README
    ]
    assert missing == []
