"""The loss chart: the run's loss history as SVG polyline points (no script, no style)."""

from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT = 600, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 28


@dataclass(frozen=True)
class Series:
    label: str
    points: str  # "x,y x,y ..." in SVG coordinates
    dots: list[tuple[float, float]]


@dataclass(frozen=True)
class LossChart:
    width: int
    height: int
    series: list[Series]
    y_ticks: list[tuple[float, str]]  # (y, label)
    x_ticks: list[tuple[float, str]]
    plot: tuple[int, int, int, int]  # left, top, right, bottom


def loss_chart(history: list[dict[str, Any]], total_steps: int) -> LossChart | None:
    values = [
        (int(p["step"]), float(p[key]), key)
        for p in history
        for key in ("train_loss", "val_loss")
        if p.get(key) is not None
    ]
    if not values:
        return None
    losses = [v for _, v, _ in values]
    low, high = min(losses), max(losses)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    last_step = max(total_steps, max(s for s, _, _ in values), 1)
    right, bottom = WIDTH - RIGHT, HEIGHT - BOTTOM

    def x(step: int) -> float:
        return round(LEFT + (right - LEFT) * step / last_step, 1)

    def y(loss: float) -> float:
        return round(bottom - (bottom - TOP) * (loss - low) / (high - low), 1)

    series = []
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        coords = [(x(s), y(v)) for s, v, k in values if k == key]
        if coords:
            series.append(Series(label, " ".join(f"{a},{b}" for a, b in coords), coords))
    y_ticks = [
        (y(low + (high - low) * i / 4), f"{low + (high - low) * i / 4:.2f}") for i in range(5)
    ]
    x_ticks = [(x(round(last_step * i / 4)), str(round(last_step * i / 4))) for i in range(5)]
    return LossChart(WIDTH, HEIGHT, series, y_ticks, x_ticks, (LEFT, TOP, right, bottom))
