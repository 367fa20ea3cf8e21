"""TrainingCurves: what a fit logged, per step and per validation, as a CSV and a PNG."""

from __future__ import annotations

import csv

import lightning as L
import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringModel

from bgpo_lightning.callbacks import TrainingCurves
from bgpo_lightning.callbacks.training_curves import moving_average, write_curves


class LoggingModel(BoringModel):
    def training_step(self, batch, batch_idx):
        out = super().training_step(batch, batch_idx)
        self.log("train/reward", float(self.global_step), prog_bar=True)
        return out

    def validation_step(self, batch, batch_idx):
        self.log("val/accuracy", 0.5 + self.global_step / 100)


def test_fit_writes_one_row_per_step_and_per_validation(tmp_path):
    curves = TrainingCurves(train_metrics=["train/reward"], val_metrics=["val/accuracy"])
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        max_steps=7,
        val_check_interval=3,
        limit_val_batches=1,
        num_sanity_val_steps=1,
        callbacks=[curves],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(LoggingModel())
    rows = list(csv.DictReader((tmp_path / "lightning_logs/version_0/curves.csv").open()))
    rewards = [(int(r["step"]), float(r["value"])) for r in rows if r["metric"] == "train/reward"]
    # Logged before the step's optimizer update, recorded after it: step k holds k - 1.
    assert rewards == [(k, float(k - 1)) for k in range(1, 8)]
    val = [(int(r["step"]), float(r["value"])) for r in rows if r["metric"] == "val/accuracy"]
    assert [step for step, _ in val] == [3, 6]  # the sanity check is not recorded
    assert [value for _, value in val] == pytest.approx([0.53, 0.56])
    assert (tmp_path / "lightning_logs/version_0/curves.png").stat().st_size > 1000
    restored = TrainingCurves()
    restored.load_state_dict(curves.state_dict())
    assert restored.history == curves.history


def test_write_curves_and_moving_average(tmp_path):
    history = [(s, "train/reward", s / 40) for s in range(40)] + [(20, "val/accuracy", 0.4)]
    table, png = write_curves(history, tmp_path / "sub" / "c.png")
    assert table.name == "c.csv" and png.is_file()
    assert len(table.read_text().splitlines()) == 42
    assert moving_average([1.0, 3.0, float("nan"), 5.0], window=2) == [1.0, 2.0, 3.0, 5.0]
    assert torch.isnan(torch.tensor(moving_average([float("nan")], 3)[0]))
