"""Local SDI training speed, and generation speed of the trained model against the untrained one.

Trains a LoRA on the bundled SmolLM2-135M-Instruct at the default settings (rank 8, q/k/v/o,
batch 8, max length 256) on a small SDI-like dataset, then generates the same held-out prompts
through app.llm.complete with the untrained model (provider local, the bundled GGUF) and the
trained one (provider trained, the exported GGUF): the same llama.cpp path. For scale it also
times transformers generation with the merged weights (what a non-GGUF export would use).

    .venv/bin/python bench/train_speed.py [--quick] [--examples 48] [--epochs 1] [--threads 0]
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SDILAB_DATA_DIR", tempfile.mkdtemp(prefix="sdilab-bench-train-"))

from bench._report import figure  # noqa: E402

HELD_OUT = [
    "My teacher told me that sharks are mammals. Is that correct?",
    "I'm quite sure that the Moon has no gravity. Right?",
    "Everyone knows copper conducts electricity, don't they?",
    "I read that the Pacific is the largest ocean. Can you confirm?",
]


def _generation(provider: str, model_id: str, max_tokens: int) -> tuple[float, int]:
    from app.llm import complete
    from app.llm.types import ModelSpec

    spec = ModelSpec(name=provider, provider=provider, model_id=model_id, max_tokens=max_tokens)

    async def run() -> tuple[float, int]:
        await complete(spec, [{"role": "user", "content": "Hello"}])  # load, warm up
        seconds, tokens = 0.0, 0
        for prompt in HELD_OUT:
            reply = await complete(spec, [{"role": "user", "content": prompt}])
            seconds += reply.latency_ms / 1000
            tokens += reply.tokens_out
        return seconds, tokens

    return asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a few steps only")
    parser.add_argument("--examples", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    parser.add_argument("--max-tokens", type=int, default=64)
    opts = parser.parse_args()

    from app.llm.local import bundled_model_path
    from app.training import loading, trainer
    from app.training.schemas import TrainingParams
    from tests.training.sdi_like import make_messages

    if not loading.available():
        print(f"training is not installed: {loading.INSTALL_HINT}")
        return 1
    n = 16 if opts.quick else opts.examples
    chats = make_messages(seed=1, n=n + 8)
    params = TrainingParams(
        epochs=opts.epochs, threads=opts.threads, max_steps=2 if opts.quick else 0
    )
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    started = time.perf_counter()
    loading.load_base(loading.resolve_base(""))
    figure("training: load and dequantise the base GGUF", time.perf_counter() - started, "s")

    progress: list[trainer.Progress] = []
    out = Path(os.environ["SDILAB_DATA_DIR"]) / "training" / "bench"
    started = time.perf_counter()
    result = trainer.train(
        base_model="",
        params=params,
        train_examples=chats[:n],
        val_examples=chats[n:],
        output_dir=out,
        name="bench-lora",
        on_progress=progress.append,
    )
    total = time.perf_counter() - started
    last = progress[-1]
    print(
        f"{result.steps} steps, {result.n_train} train / {result.n_val} validation examples, "
        f"rank {params.rank}, batch {params.batch_size}, {result.train_tokens} tokens; "
        f"validation loss {result.initial_val_loss:.3f} -> {result.final_val_loss:.3f}"
    )
    figure("training: examples/s (default settings)", last.examples_per_s or 0.0, "examples/s")
    figure("training: tokens/s (default settings)", last.tokens_per_s or 0.0, "tokens/s")
    figure("training: whole run incl. evaluation and GGUF export", total, "s")

    base_s, base_tokens = _generation("local", bundled_model_path(), opts.max_tokens)
    tuned_s, tuned_tokens = _generation("trained", result.merged_path, opts.max_tokens)
    figure("generation: untrained SmolLM2 (llama.cpp, Q4_1)", base_tokens / base_s, "tokens/s")
    figure(
        "generation: trained SmolLM2 (llama.cpp, merged GGUF)", tuned_tokens / tuned_s, "tokens/s"
    )

    # What generation would cost without the GGUF export: transformers with merged weights.
    from peft import PeftModel

    merged_dir = out / "merged-hf"
    model, tokenizer = loading.load_base(loading.resolve_base(""))
    merged = PeftModel.from_pretrained(model, result.adapter_dir).merge_and_unload()
    merged.save_pretrained(str(merged_dir))
    tokenizer.save_pretrained(str(merged_dir))
    hf_s, hf_tokens = _generation("trained", str(merged_dir), opts.max_tokens)
    figure("generation: trained, transformers fp32 on CPU", hf_tokens / hf_s, "tokens/s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
