"""Training reward and validation accuracy against the step: a CSV and a PNG per run."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L


class TrainingCurves(L.Callback):
    """Records chosen metrics per optimizer step and per validation; writes them at fit end.

    Reads ``trainer.callback_metrics`` (what the module logged) after every training batch
    and every validation run, so it works with any module. The history is part of the
    checkpoint, so a resumed run draws its whole curve. Files go to the log directory:
    ``curves.csv`` (``step, metric, value``) and ``curves.png``.

    Args:
        train_metrics: metrics logged on training steps, one panel each.
        val_metrics: metrics logged by validation, one panel each.
        filename: the PNG's name; the CSV takes the same stem.
    """

    def __init__(
        self,
        train_metrics: Sequence[str] = ("train/reward", "train/loss"),
        val_metrics: Sequence[str] = ("val/accuracy",),
        filename: str = "curves.png",
    ) -> None:
        self.train_metrics = list(train_metrics)
        self.val_metrics = list(val_metrics)
        self.filename = filename
        self.history: list[tuple[int, str, float]] = []
        self.written: list[Path] = []

    def _record(self, trainer: L.Trainer, names: Sequence[str]) -> None:
        for name in names:
            value = trainer.callback_metrics.get(name)
            if value is not None:
                self.history.append((trainer.global_step, name, float(value)))

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._record(trainer, self.train_metrics)

    def on_validation_end(self, trainer: L.Trainer, *args: Any) -> None:
        if not trainer.sanity_checking:
            self._record(trainer, self.val_metrics)

    def on_fit_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.is_global_zero and self.history:
            directory = Path(trainer.log_dir or trainer.default_root_dir)
            self.written = write_curves(self.history, directory / self.filename)

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = [tuple(row) for row in state_dict.get("history", [])]


def write_curves(history: Sequence[tuple[int, str, float]], png: Path) -> list[Path]:
    """Writes ``history`` as ``<stem>.csv`` and a PNG with one panel per metric."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display is needed or wanted
    import matplotlib.pyplot as plt

    png.parent.mkdir(parents=True, exist_ok=True)
    table = png.with_suffix(".csv")
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "metric", "value"])
        writer.writerows(history)
    names = list(dict.fromkeys(name for _, name, _ in history))
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        points = [(step, value) for step, metric, value in history if metric == name]
        steps, values = zip(*points, strict=True)
        axis.plot(steps, values, marker="o" if len(points) < 30 else None, linewidth=1)
        if len(values) >= 30:
            window = len(values) // 10
            smoothed = moving_average(values, window)
            axis.plot(steps, smoothed, linewidth=2, label=f"mean of {window}")
            axis.legend(loc="best", fontsize=8)
        axis.set(title=name, xlabel="optimizer step")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(png, dpi=110)
    plt.close(figure)
    return [table, png]


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` finite values (the first ones over fewer)."""
    out: list[float] = []
    for i in range(len(values)):
        recent = [v for v in values[max(0, i - window + 1) : i + 1] if math.isfinite(v)]
        out.append(sum(recent) / len(recent) if recent else math.nan)
    return out
