"""Every shipped YAML config parses; the CPU-sized math and code configs train a step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from experiments import run
from experiments.data.catalog import SPLITS
from tests.test_cli import QUIET, TINY_MODEL, in_tmp

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "experiments" / "configs").glob("*.yaml"))
DATASETS = ROOT.parent / "shared" / "datasets"
needs_data = pytest.mark.skipif(not DATASETS.is_dir(), reason="../shared/datasets not present")
DATA_KEYS = ("train_path", "val_path", "test_path")


def data_paths(config: Path) -> dict[str, str | list[str]]:
    """The config's data paths that are set, by key."""
    data = yaml.safe_load(config.read_text())["data"]
    return {key: data[key] for key in DATA_KEYS if data.get(key) is not None}


def on_shared_data(config: Path) -> list[str]:
    """CLI overrides pointing the config's ``data/...`` files (what ``python -m
    experiments.data`` writes) at the same files in ../shared/datasets."""

    def shared(path: str) -> str:
        assert path.startswith("data/"), path
        return str(DATASETS / path.removeprefix("data/"))

    overrides = []
    for key, value in data_paths(config).items():
        moved = json.dumps([shared(p) for p in value]) if isinstance(value, list) else shared(value)
        overrides += [f"--data.{key}", moved]
    return overrides


def test_the_paper_and_cpu_configs_are_all_there():
    names = {c.name for c in CONFIGS}
    expected = {"math_bgpo_llada.yaml", "code_bgpo_llada.yaml"}
    assert expected | {"math_bgpo_cpu.yaml", "code_bgpo_cpu.yaml"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_config_parses_and_prints(config, capsys):
    with pytest.raises(SystemExit) as info:
        run.main(["fit", "--config", str(config), "--print_config"])
    assert info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"].startswith("bgpo_lightning.modules.")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_config_data_paths_are_files_that_experiments_data_writes(config):
    written = {f"data/{spec.relpath.as_posix()}" for spec in SPLITS}
    for value in data_paths(config).values():
        for path in value if isinstance(value, list) else [value]:
            assert path in written, path


@pytest.mark.parametrize("name", ["math_bgpo_llada.yaml", "code_bgpo_llada.yaml"])
def test_paper_configs_hold_the_paper_settings(name):
    config = yaml.safe_load((ROOT / "experiments" / "configs" / name).read_text())
    model = config["model"]["init_args"]
    assert model["objective"] == "bgpo" and model["num_mc_samples"] == 16
    assert model["group_size"] == 8
    assert config["data"]["batch_size"] * config["trainer"]["devices"] == 16
    assert model["optim"]["lr"] == 5e-7 and model["optim"]["grad_clip"] == 1.0
    assert model["rollout"]["temperature"] == 0.6 and model["eval_sampler"]["temperature"] == 0
    assert model["rollout"]["gen_length"] == 512 and model["rollout"]["block_length"] == 32
    assert model["policy"]["mask_token_id"] == 126336 and model["use_chat_template"]
    assert config["trainer"]["max_steps"] == (700 if name.startswith("math") else 560)


@needs_data
@pytest.mark.parametrize("name", ["math_bgpo_cpu.yaml", "code_bgpo_cpu.yaml"])
def test_cpu_configs_train_a_step_on_the_real_data(name, tmp_path):
    config = ROOT / "experiments" / "configs" / name
    data = ["--data.num_train", "4", "--data.batch_size", "2", *on_shared_data(config)]
    limits = ["--trainer.max_steps", "1", "--trainer.limit_val_batches", "0", *QUIET]
    # Run from the repository root, as the configs are written for.
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        run.main(["fit", "--config", str(config), *TINY_MODEL, *data, *limits, *in_tmp(tmp_path)])
    assert list(tmp_path.rglob("events.out.tfevents.*"))
