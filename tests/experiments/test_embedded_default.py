"""The embedded default end to end at toy size: paired results, summary, curves, cache, help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments import embedded_default, run

TINY = [
    "model.init_args.policy.tiny.num_layers=1",
    "model.init_args.policy.tiny.hidden_size=16",
    "model.init_args.policy.tiny.num_heads=2",
    "model.init_args.policy.tiny.intermediate_size=32",
]
DATA = ["data.num_train=16", "data.num_val=4", "data.num_test=6", "data.batch_size=4"]
SFT = [*TINY, *DATA, "trainer.max_steps=2", "trainer.val_check_interval=2"]
RL = [*DATA, "trainer.max_steps=2", "trainer.val_check_interval=2", "data.batch_size=2"]


def test_two_seeds_then_a_cached_rerun(tmp_path, capsys):
    results = embedded_default.run_embedded_default(tmp_path, [0, 1], SFT, RL)
    assert [r.seed for r in results] == [0, 1]
    for r in results:
        assert r.num_test == 6 and not r.warm_start_cached
        assert r.gain == pytest.approx(r.accuracy_after - r.accuracy_before, abs=1e-12)
        assert r.paired_se >= 0
        written = json.loads((tmp_path / f"seed_{r.seed}" / "results.json").read_text())
        assert written["seed"] == r.seed
        assert all(Path(p).exists() for p in (r.curves, r.hf_checkpoint, r.log_dir))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [row["seed"] for row in summary["results"]] == [0, 1]
    printed = capsys.readouterr().out
    assert "| seed | before | after | gain | paired SE | gain / SE | time (s) |" in printed
    assert "Tip:" not in printed
    again = embedded_default.run_embedded_default(tmp_path, [1], SFT, RL)
    assert again[0].warm_start_cached


def test_help_lists_what_a_user_can_change(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--seeds", "--root", "--set-sft", "--set-rl", "trainer.max_steps", "fit"):
        assert option in text


def test_malformed_override_is_one_line():
    with pytest.raises(SystemExit, match="not KEY=VALUE"):
        embedded_default.as_cli_args(["trainer.max_steps"])
