"""The setups of the sampler accuracy check mirror the configs they stand for."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from experiments.embedded_default import RL_CONFIG
from experiments.estimator_study.batch import rl_settings
from experiments.paper_claims.entry import CONFIGS
from experiments.sampler_accuracy_setups import (
    EMBEDDED_DEFAULT,
    SHAPE,
    STUDY_COUNTDOWN,
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


@pytest.mark.parametrize("setup", [STUDY_SUDOKU, STUDY_COUNTDOWN], ids=lambda s: s.name)
def test_study_setup_is_the_study_rl_config(setup):
    rl_config = CONFIGS / f"{setup.task}_rl.yaml"
    settings = rl_settings(rl_config)
    rollout = settings["rollout"]
    assert settings["task"] == setup.task and settings["task_kwargs"] == {}
    assert dict(setup.task_kwargs) == {}  # d1's prompt and reward
    assert setup.shape == {"gen_length": 32, "block_length": 16, "steps": 16}
    assert setup.shape == {k: rollout[k] for k in SHAPE}
    assert setup.temperature == rollout["temperature"] == 0.9
    config = yaml.safe_load(rl_config.read_text())
    policy = config["model"]["init_args"]["policy"]
    assert Path(policy["path"]) == setup.warm_start
    assert policy["dtype"] == setup.dtype == "float32"
    assert Path(config["data"]["test_path"]) == setup.d1_test
    sft = yaml.safe_load((CONFIGS / f"{setup.task}_sft.yaml").read_text())
    assert Path(sft["model"]["init_args"]["policy"]["tokenizer_path"]) == setup.tokenizer
    assert f"{setup.task}_sft.yaml" in setup.policy and f"{setup.task}_rl.yaml" in (
        setup.sampler_source
    )


def test_each_study_setup_writes_its_own_report():
    assert STUDY_SUDOKU.doc == Path("docs/sampler_accuracy_study.md")
    assert STUDY_SUDOKU.csv_dir == Path("docs/sampler_accuracy_study")
    assert STUDY_COUNTDOWN.doc == Path("docs/sampler_accuracy_countdown.md")
    assert STUDY_COUNTDOWN.csv_dir == Path("docs/sampler_accuracy_countdown")
