"""StepProgressBar: labelled by phase, short metric names; the CLI adds it unless bars are off."""

from __future__ import annotations

from bgpo_lightning.callbacks import StepProgressBar
from bgpo_lightning.callbacks.progress import short_name
from bgpo_lightning.cli import build_cli
from tests.test_cli import BGPO, TINY_MODEL, in_tmp


def test_short_names():
    assert short_name("train/reward") == "reward"
    assert short_name("val/accuracy") == "val_accuracy"
    assert short_name("loss") == "loss"


def bars(trainer):
    return [c for c in trainer.callbacks if isinstance(c, StepProgressBar)]


def test_cli_adds_a_labelled_bar_unless_bars_are_off(tmp_path):
    args = ["--config", BGPO, *TINY_MODEL, *in_tmp(tmp_path)]
    (bar,) = bars(build_cli(args, run=False).trainer)
    assert bar.description == "BGPO"
    off = [*args, "--trainer.enable_progress_bar", "false"]
    assert bars(build_cli(off, run=False).trainer) == []
