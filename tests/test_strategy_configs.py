"""The strategy overlays (experiments/configs/strategy/) compose with the task configs.

The 2-process FSDP2 training itself is tested in tests/modules/test_rl_fsdp.py; here only that
the YAML parses and builds Lightning's ModelParallelStrategy with the intended sizes.
"""

from pathlib import Path

import pytest
import yaml
from lightning.pytorch.strategies import ModelParallelStrategy

from bgpo_lightning import cli
from tests.test_cli import TINY_MODEL, in_tmp

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"
FSDP2 = CONFIGS / "strategy" / "fsdp2.yaml"
TASKS = ["sudoku_bgpo", "sudoku_sft", "math_bgpo_llada", "countdown_bgpo_llada"]


@pytest.mark.parametrize("task", TASKS)
def test_fsdp2_overlay_composes_with_the_task_config(task, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["fit", "--config", str(CONFIGS / f"{task}.yaml"), "--config", str(FSDP2),
                  "--print_config"])  # fmt: skip
    assert info.value.code == 0
    trainer = yaml.safe_load(capsys.readouterr().out)["trainer"]
    strategy = trainer["strategy"]
    assert strategy["class_path"] == "lightning.pytorch.strategies.ModelParallelStrategy"
    sizes = strategy["init_args"]
    assert sizes["tensor_parallel_size"] == 1  # plain FSDP2: no tensor parallelism
    if task.endswith("_llada"):  # the 8-GPU configs: one data-parallel rank per GPU
        assert sizes["data_parallel_size"] == trainer["devices"] == 8


def test_fsdp2_overlay_builds_the_strategy(tmp_path):
    args = ["--config", str(CONFIGS / "sudoku_bgpo.yaml"), "--config", str(FSDP2),
            "--trainer.strategy.init_args.data_parallel_size", "2",
            "--trainer.accelerator", "cpu", *TINY_MODEL, *in_tmp(tmp_path)]  # fmt: skip
    strategy = cli.build_cli(args, run=False).trainer.strategy  # run=False: no subcommand
    assert isinstance(strategy, ModelParallelStrategy)
