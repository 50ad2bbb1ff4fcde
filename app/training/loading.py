"""The training extra and the base model: which packages training needs, and loading the base
model (a GGUF file or a transformers directory) without ever reaching a hub."""

import copy
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.training.schemas import TrainingError

TRAIN_PACKAGES = ("torch", "transformers", "peft", "gguf")
INSTALL_HINT = "pip install -e '.[train]'"


def missing_packages() -> list[str]:
    return [name for name in TRAIN_PACKAGES if importlib.util.find_spec(name) is None]


def available() -> bool:
    return not missing_packages()


def require_packages() -> None:
    missing = missing_packages()
    if missing:
        raise TrainingError(
            f"training needs {', '.join(missing)}: install the extra with `{INSTALL_HINT}`"
        )
    prepare_environment()


def prepare_environment() -> None:
    """Never reach a hub; no tqdm bars from transformers. Both are read when huggingface_hub
    and tqdm are first imported, so this runs before importing them."""
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        os.environ[key] = "1"
    os.environ.setdefault("TQDM_DISABLE", "1")


@dataclass(frozen=True)
class BaseModelRef:
    path: str  # the GGUF file, or the transformers directory
    kind: str  # "gguf" | "hf"


def resolve_base(base_model: str) -> BaseModelRef:
    """ "" is the bundled SmolLM2 GGUF; a .gguf file; or a local transformers directory."""
    if not base_model:
        from app.llm.local import bundled_model_path

        base_model = bundled_model_path()
    path = Path(base_model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return BaseModelRef(str(path.resolve()), "gguf")
    if path.is_dir() and (path / "config.json").is_file():
        return BaseModelRef(str(path.resolve()), "hf")
    raise TrainingError(
        f"base model not found: {base_model} (a .gguf file or a local transformers directory "
        "with config.json)"
    )


def load_base(ref: BaseModelRef) -> tuple[Any, Any]:
    """(a fresh copy of the model in float32, tokenizer), from local files only.

    The dequantised base is kept for the process (two models at most): a worker or a test session
    that trains again copies it in well under a second instead of dequantising again.
    """
    stat = os.stat(ref.path)
    model, tokenizer = _load_pristine(ref, (stat.st_mtime_ns, stat.st_size))
    return copy.deepcopy(model), tokenizer


@lru_cache(maxsize=2)
def _load_pristine(ref: BaseModelRef, _stamp: tuple[int, int]) -> tuple[Any, Any]:
    require_packages()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if ref.kind == "gguf":
        folder, name = str(Path(ref.path).parent), Path(ref.path).name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32, local_files_only=True
        )
    else:
        tokenizer = AutoTokenizer.from_pretrained(ref.path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            ref.path, local_files_only=True, dtype=torch.float32
        )
    if tokenizer.chat_template is None:
        raise TrainingError(f"the base model {ref.path} has no chat template")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model, "hf_quantizer", None) is not None:
        # The GGUF weights are dequantised to float32 already; without this marker the model
        # saves like any other (a transformers directory for non-GGUF exports).
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    model.requires_grad_(False)
    model.eval()
    return model, tokenizer


# -- data ---------------------------------------------------------------------------------
