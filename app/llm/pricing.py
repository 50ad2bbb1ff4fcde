"""Cost of a call from a spec's prices per 1k tokens."""

from app.llm.types import ModelSpec


def cost_usd(spec: ModelSpec, tokens_in: int, tokens_out: int) -> float:
    return (
        tokens_in * spec.price_input_per_1k / 1000.0
        + tokens_out * spec.price_output_per_1k / 1000.0
    )
