"""Merged LoRA weights written back into a GGUF file of the base model, so llama.cpp runs the
trained model (llama.cpp's own convert script is not shipped)."""

import os
from pathlib import Path
from typing import Any

from app.training.schemas import TrainingError

# Architectures whose q/k weights transformers permutes when it reads a GGUF.
PERMUTED_QK_ARCHS = ("llama",)


def gguf_arch(path: str) -> str:
    import gguf

    field_ = gguf.GGUFReader(path).get_field(gguf.Keys.General.ARCHITECTURE)
    return str(field_.contents()) if field_ is not None else ""


def permute_qk(weights: Any, n_head: int) -> Any:
    """The inverse of transformers' reverse permutation of llama.cpp's q/k layout."""
    dim = weights.shape[0] // n_head // 2
    return weights.reshape(n_head, 2, dim, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def export_gguf(
    merged: Any,
    base_path: str,
    out_path: Path,
    export_type: str,
    target_modules: list[str],
    *,
    name: str,
) -> None:
    """Copy the base GGUF, replacing the tensors LoRA changed by the merged weights.

    Untouched tensors keep their original bytes (no requantisation loss); the changed ones are
    written as ``export_type``. Verified by loading the result in llama.cpp (tests).
    """
    import gguf
    import numpy as np

    qtypes = {
        "q8_0": gguf.GGMLQuantizationType.Q8_0,
        "f16": gguf.GGMLQuantizationType.F16,
        "f32": gguf.GGMLQuantizationType.F32,
    }
    qtype = qtypes[export_type]
    reader = gguf.GGUFReader(base_path)
    arch = str(reader.get_field(gguf.Keys.General.ARCHITECTURE).contents())  # type: ignore[union-attr]
    arch_enum = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[arch]
    config = merged.config
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads
    name_map = gguf.get_tensor_name_map(arch_enum, config.num_hidden_layers)

    replaced: dict[str, Any] = {}
    for hf_name, param in merged.named_parameters():
        module = hf_name.rsplit(".", 2)[-2] if hf_name.endswith(".weight") else ""
        if module not in target_modules:
            continue
        gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise TrainingError(f"no GGUF tensor for {hf_name}")
        weights = param.detach().to("cpu").float().numpy()
        if module == "q_proj":
            weights = permute_qk(weights, n_head)
        elif module == "k_proj":
            weights = permute_qk(weights, n_kv)
        if qtype == gguf.GGMLQuantizationType.F32:
            replaced[gguf_name] = np.ascontiguousarray(weights, dtype=np.float32)
        elif qtype == gguf.GGMLQuantizationType.F16:
            replaced[gguf_name] = np.ascontiguousarray(weights, dtype=np.float16)
        else:
            replaced[gguf_name] = gguf.quants.quantize(weights, qtype)
    missing = set(replaced) - {t.name for t in reader.tensors}
    if missing:
        raise TrainingError(f"tensors not in the base GGUF: {sorted(missing)}")

    tmp_path = out_path.with_suffix(".gguf.part")
    writer = gguf.GGUFWriter(str(tmp_path), arch=arch, endianess=reader.endianess)
    alignment = reader.get_field(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = int(alignment.contents())
    for fld in reader.fields.values():
        if fld.name == gguf.Keys.General.ARCHITECTURE or fld.name.startswith("GGUF."):
            continue
        value = name if fld.name == gguf.Keys.General.NAME else fld.contents()
        val_type = fld.types[0]
        sub_type = fld.types[-1] if val_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(fld.name, value, val_type, sub_type=sub_type)
    for tensor in reader.tensors:
        data = replaced.get(tensor.name)
        if data is None:
            writer.add_tensor_info(
                tensor.name,
                tensor.data.shape,
                tensor.data.dtype,
                tensor.data.nbytes,
                tensor.tensor_type,
            )
        else:
            writer.add_tensor_info(tensor.name, data.shape, data.dtype, data.nbytes, qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        data = replaced.get(tensor.name)
        writer.write_tensor_data(
            tensor.data if data is None else data, tensor_endianess=reader.endianess
        )
    writer.close()
    os.replace(tmp_path, out_path)
