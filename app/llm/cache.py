"""The cache key of a call: a hash of everything that changes the output."""

import hashlib
import json

from app.llm.types import ModelSpec

# Fields that do not change what the model says: excluded so renaming, repricing or
# re-keying a model keeps its cache.
_IGNORED = {"name", "price_input_per_1k", "price_output_per_1k", "timeout_s", "api_key_env"}


def cache_key(spec: ModelSpec, messages: list[dict[str, str]], sample_index: int) -> str:
    payload = {
        "spec": spec.model_dump(mode="json", exclude=_IGNORED),
        "messages": messages,
        "sample_index": sample_index,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()
