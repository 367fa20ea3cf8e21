"""The setups of the sampler accuracy check mirror the configs they stand for."""

from __future__ import annotations

from pathlib import Path

import yaml

from experiments.embedded_default import RL_CONFIG
from experiments.estimator_study.batch import rl_settings
from experiments.sampler_accuracy_setups import (
    EMBEDDED_DEFAULT,
    SHAPE,
    STUDY_CONFIG,
    STUDY_SUDOKU,
    TASK_KWARGS,
)


def test_embedded_setup_is_the_embedded_bgpo_config():
    settings = rl_settings(RL_CONFIG)
    rollout = settings["rollout"]
    assert EMBEDDED_DEFAULT.shape == SHAPE == {k: rollout[k] for k in SHAPE}
    assert EMBEDDED_DEFAULT.temperature == rollout["temperature"] == 1.0
    assert EMBEDDED_DEFAULT.task_kwargs == TASK_KWARGS
    assert {k: settings["task_kwargs"][k] for k in TASK_KWARGS} == TASK_KWARGS
    assert EMBEDDED_DEFAULT.tokenizer is None and EMBEDDED_DEFAULT.dtype is None
    assert EMBEDDED_DEFAULT.doc == Path("docs/sampler_accuracy.md")


def test_study_setup_is_the_study_rl_config():
    settings = rl_settings(STUDY_CONFIG)
    rollout = settings["rollout"]
    assert settings["task"] == "sudoku" and settings["task_kwargs"] == {}
    assert dict(STUDY_SUDOKU.task_kwargs) == {}  # d1's prompt and reward
    assert STUDY_SUDOKU.shape == {"gen_length": 32, "block_length": 16, "steps": 16}
    assert STUDY_SUDOKU.shape == {k: rollout[k] for k in SHAPE}
    assert STUDY_SUDOKU.temperature == rollout["temperature"] == 0.9
    config = yaml.safe_load(STUDY_CONFIG.read_text())
    policy = config["model"]["init_args"]["policy"]
    assert Path(policy["path"]) == STUDY_SUDOKU.warm_start
    assert policy["dtype"] == STUDY_SUDOKU.dtype == "float32"
    assert Path(config["data"]["test_path"]) == STUDY_SUDOKU.d1_test
    sft = yaml.safe_load(STUDY_CONFIG.with_name("sudoku_sft.yaml").read_text())
    assert Path(sft["model"]["init_args"]["policy"]["tokenizer_path"]) == STUDY_SUDOKU.tokenizer
    assert STUDY_SUDOKU.doc == Path("docs/sampler_accuracy_study.md")
    assert STUDY_SUDOKU.csv_dir == Path("docs/sampler_accuracy_study")
