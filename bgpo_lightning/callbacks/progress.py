"""A progress bar over optimizer steps that shows the metrics a person watches."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


class StepProgressBar(TQDMProgressBar):
    """TQDM bar labelled by phase (``SFT``, ``BGPO``), with short metric names.

    Lightning's bar is labelled by epoch, which means nothing when a run is measured in steps,
    and shows metrics under their full logged names plus the logger's version number. This one
    shows what modules log with ``prog_bar=True`` (reward, accuracy, loss) under their last
    name component: ``train/reward`` -> ``reward``, ``val/accuracy`` -> ``val_accuracy``.

    Args:
        description: label of the training bar.
        refresh_rate: update every this many steps.
    """

    def __init__(self, description: str = "train", refresh_rate: int = 1) -> None:
        super().__init__(refresh_rate=refresh_rate)
        self.description = description

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(self.description)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return {short_name(name): value for name, value in metrics.items()}


def short_name(name: str) -> str:
    """``train/reward`` -> ``reward``; other prefixes stay, joined: ``val/x`` -> ``val_x``."""
    prefix, _, rest = name.partition("/")
    if not rest:
        return name
    return rest if prefix == "train" else f"{prefix}_{rest}"
