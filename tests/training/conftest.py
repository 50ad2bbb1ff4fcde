"""One tiny real training for the whole session (a handful of examples, a few CPU steps)."""

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.training import trainer
from app.training.schemas import TrainingParams
from tests.training.sdi_like import make_messages

# Small enough for CI on two cores; large enough that the loss clearly moves.
TINY = TrainingParams(
    rank=4,
    alpha=16,
    dropout=0.0,
    epochs=3,
    batch_size=4,
    max_length=96,
    learning_rate=3e-3,
    warmup_ratio=0.0,
    seed=0,
    threads=1,
)


@dataclass
class Trained:
    result: trainer.TrainResult
    params: TrainingParams
    train: list[list[dict[str, Any]]]
    val: list[list[dict[str, Any]]]
    progress: list[trainer.Progress]


@pytest.fixture(scope="session")
def tiny_training() -> Trained:
    chats = make_messages(seed=0, n=12)
    train, val = chats[:8], chats[8:]
    progress: list[trainer.Progress] = []
    out = Path(tempfile.mkdtemp(prefix="sdilab-train-")) / "run"
    result = trainer.train(
        base_model="",
        params=TINY,
        train_examples=train,
        val_examples=val,
        output_dir=out,
        name="tiny-sdi",
        on_progress=progress.append,
    )
    return Trained(result, TINY, train, val, progress)
