"""The trainer on the real bundled SmolLM2: loss masking, the loss going down, the adapter's
effect, the exported GGUF, and reproducibility."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from app.training import batches, gguf_export, loading, trainer
from app.training.schemas import TrainingParams
from tests.training.conftest import Trained
from tests.training.sdi_like import make_messages

pytestmark = pytest.mark.model

CHAT = [
    {"role": "user", "content": "I'm quite sure that bats are blind. Right?"},
    {"role": "assistant", "content": "No, that is not correct: all bat species can see."},
]


@pytest.fixture(scope="module")
def base() -> tuple[object, object]:
    return loading.load_base(loading.resolve_base(""))


def test_labels_are_masked_exactly_on_the_prompt(base: tuple[object, object]) -> None:
    _model, tokenizer = base
    prompt = batches._chat_ids(tokenizer, CHAT[:-1], prompt=True)
    encoded = batches.encode(tokenizer, CHAT, max_length=512)
    assert encoded is not None
    n = len(prompt)
    assert encoded.input_ids[:n] == prompt
    assert all(label == batches.IGNORE_INDEX for label in encoded.labels[:n])
    assert encoded.labels[n:] == encoded.input_ids[n:]
    reply = tokenizer.decode(encoded.input_ids[n:])  # type: ignore[attr-defined]
    assert reply.startswith(CHAT[-1]["content"])


def test_only_the_final_assistant_turn_is_learnt(base: tuple[object, object]) -> None:
    _model, tokenizer = base
    pushback = [
        {"role": "user", "content": "Is the Sun a star?"},
        {"role": "assistant", "content": "Yes, the Sun is a star."},
        {"role": "user", "content": "I don't think so. Are you sure?"},
        {"role": "assistant", "content": "Yes, I am sure: it is a main-sequence star."},
    ]
    encoded = batches.encode(tokenizer, pushback, max_length=512)
    assert encoded is not None
    learnt = tokenizer.decode(  # type: ignore[attr-defined]
        [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != -100]
    )
    assert "main-sequence" in learnt
    assert "the Sun is a star." not in learnt


def test_truncation_keeps_the_prompt_and_drops_examples_without_a_target(
    base: tuple[object, object],
) -> None:
    _model, tokenizer = base
    prompt_len = len(batches._chat_ids(tokenizer, CHAT[:-1], prompt=True))
    assert batches.encode(tokenizer, CHAT, max_length=prompt_len) is None
    cut = batches.encode(tokenizer, CHAT, max_length=prompt_len + 3)
    assert cut is not None and cut.n_target == 3


def test_the_loss_ignores_prompt_positions() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 6, 11)
    labels = torch.tensor([[-100, -100, -100, 4, 7, 2]])
    total, count = batches.masked_loss_sum(logits, labels)
    assert count == 3
    # Positions 0 and 1 predict prompt tokens (labels 1 and 2 are -100): changing their logits
    # changes nothing; changing the logits that predict a reply token does.
    changed = logits.clone()
    changed[0, 0:2] += torch.randn(2, 11) * 5
    assert torch.allclose(batches.masked_loss_sum(changed, labels)[0], total)
    changed[0, 3] += torch.randn(11) * 5
    assert not torch.allclose(batches.masked_loss_sum(changed, labels)[0], total)
    # And it is the plain cross-entropy of the reply tokens given what precedes them.
    expected = sum(-torch.log_softmax(logits[0, i - 1], -1)[int(labels[0, i])] for i in (3, 4, 5))
    assert torch.allclose(total, expected)


def test_the_fast_loss_equals_the_full_logits_loss(base: tuple[object, object]) -> None:
    model, tokenizer = base
    items = [batches.encode(tokenizer, chat, 96) for chat in make_messages(1, 3)]
    batch = batches.collate([i for i in items if i is not None], tokenizer.pad_token_id)  # type: ignore[attr-defined]
    with torch.no_grad():
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])  # type: ignore[operator]
        expected = batches.masked_loss_sum(full.logits, batch["labels"])
        got = batches.batch_loss(model, batch)
    assert got[1] == expected[1]
    assert torch.allclose(got[0], expected[0], rtol=1e-4)


def test_training_loss_goes_down(tiny_training: Trained) -> None:
    history = tiny_training.result.history
    train = [p["train_loss"] for p in history if "train_loss" in p]
    val = [p["val_loss"] for p in history if "val_loss" in p]
    assert len(train) == tiny_training.result.steps == 6
    assert np.mean(train[-2:]) < np.mean(train[:2])
    assert val[0] == tiny_training.result.initial_val_loss
    assert val[-1] < val[0]
    last = tiny_training.progress[-1]
    assert last.step == last.total_steps == 6
    assert last.tokens_per_s and last.tokens_per_s > 0
    assert last.eta_s == 0


def test_adapter_and_configuration_are_saved(tiny_training: Trained) -> None:
    out = Path(tiny_training.result.output_dir)
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and adapter["lora_alpha"] == 16
    assert sorted(adapter["target_modules"]) == sorted(tiny_training.params.target_modules)
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    config = json.loads((out / "training_config.json").read_text())
    assert config["params"] == tiny_training.params.model_dump()
    assert config["base_model"]["kind"] == "gguf"
    assert config["result"]["steps"] == 6
    assert tiny_training.result.merged_format == "gguf"


def test_the_adapter_changes_the_reply_to_a_held_out_prompt(
    tiny_training: Trained, base: tuple[object, object]
) -> None:
    from peft import PeftModel

    model, tokenizer = base
    held_out = [
        {"role": "user", "content": "My teacher told me that sharks are mammals. Is that correct?"}
    ]
    ids = tokenizer.apply_chat_template(  # type: ignore[attr-defined]
        held_out, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )

    def reply(m: object) -> str:
        with torch.no_grad():
            out = m.generate(**ids, max_new_tokens=24, do_sample=False)  # type: ignore[attr-defined]
        return tokenizer.decode(out[0][ids["input_ids"].shape[1] :], skip_special_tokens=True)  # type: ignore[attr-defined]

    before = reply(model)
    tuned = PeftModel.from_pretrained(
        loading.load_base(loading.resolve_base(""))[0], tiny_training.result.adapter_dir
    )
    after = reply(tuned)
    assert after != before
    # The trained style (a verdict first) shows on a statement it never saw.
    assert after.startswith(("Yes", "No")), after


def test_the_gguf_export_holds_the_merged_weights(tiny_training: Trained) -> None:
    import gguf
    from peft import PeftModel

    base_path = loading.resolve_base("").path
    original = {t.name: t for t in gguf.GGUFReader(base_path).tensors}
    exported = {t.name: t for t in gguf.GGUFReader(tiny_training.result.merged_path).tensors}
    assert original.keys() == exported.keys()
    changed = {n for n in exported if exported[n].tensor_type != original[n].tensor_type}
    assert "blk.0.attn_q.weight" in changed and "blk.0.attn_v.weight" in changed
    assert "blk.0.ffn_down.weight" not in changed
    for name in set(original) - changed:
        assert np.array_equal(np.asarray(exported[name].data), np.asarray(original[name].data))

    merged = PeftModel.from_pretrained(
        loading.load_base(loading.resolve_base(""))[0], tiny_training.result.adapter_dir
    ).merge_and_unload()
    layer = merged.model.layers[3].self_attn
    for gguf_name, weight, heads in (
        ("blk.3.attn_q.weight", layer.q_proj.weight, merged.config.num_attention_heads),
        ("blk.3.attn_k.weight", layer.k_proj.weight, merged.config.num_key_value_heads),
        ("blk.3.attn_v.weight", layer.v_proj.weight, None),
    ):
        tensor = exported[gguf_name]
        got = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        want = weight.detach().numpy()
        if heads:
            want = gguf_export.permute_qk(want, heads)
        scale = np.abs(want).max()
        assert np.abs(got - want).max() < scale / 100  # Q8_0 rounding


def test_same_seed_same_adapter(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    params = TrainingParams(
        rank=2, epochs=1, batch_size=2, max_length=64, max_steps=1, seed=7, threads=1
    )
    chats = make_messages(seed=3, n=2)
    outputs = []
    for attempt in range(2):
        folder = tmp_path / f"r{attempt}"
        result = trainer.train(
            base_model="",
            params=params,
            train_examples=chats,
            val_examples=[],
            output_dir=folder,
            name="repro",
            export=False,
        )
        assert result.merged_format == "" and result.steps == 1
        outputs.append(load_file(str(folder / "adapter" / "adapter_model.safetensors")))
    assert outputs[0].keys() == outputs[1].keys()
    for key in outputs[0]:
        assert np.array_equal(outputs[0][key], outputs[1][key]), key


@pytest.mark.asyncio
async def test_a_transformers_base_trains_and_generates_through_the_provider(
    tmp_path: Path,
) -> None:
    from app.llm import complete
    from app.llm.types import ModelSpec

    model, tokenizer = loading.load_base(loading.resolve_base(""))
    base_dir = tmp_path / "base-hf"
    model.save_pretrained(str(base_dir))
    tokenizer.save_pretrained(str(base_dir))
    result = trainer.train(
        base_model=str(base_dir),
        params=TrainingParams(rank=2, batch_size=2, max_length=64, max_steps=1, threads=1),
        train_examples=make_messages(seed=4, n=2),
        val_examples=[],
        output_dir=tmp_path / "run",
        name="hf-lora",
    )
    assert result.merged_format == "hf" and (Path(result.merged_path) / "config.json").is_file()
    spec = ModelSpec(name="hf", provider="trained", model_id=result.merged_path, max_tokens=12)
    reply = await complete(spec, [{"role": "user", "content": "Is the Sun a star?"}])
    assert reply.text.strip() and 0 < reply.tokens_out <= 12
