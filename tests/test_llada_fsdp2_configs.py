"""The paper's four LLaDA-8B configs run under FSDP2 on 8 x 80 GB (issue 12 part 7).

Each ``*_llada.yaml`` parses through the CLI and builds Lightning's ModelParallelStrategy with
one data-parallel rank per GPU, without a GPU and with the embedded tiny model in place of
LLaDA-8B; its header documents a per-GPU memory estimate and a multi-node launch whose flags
parse and keep the paper's 16 prompts per step.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from lightning.pytorch.strategies import ModelParallelStrategy

from bgpo_lightning import cli
from tests.test_cli import TINY_MODEL, in_tmp

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "experiments" / "configs"
LLADA = ["math_bgpo_llada", "code_bgpo_llada", "sudoku_bgpo_llada", "countdown_bgpo_llada"]
MODEL_PARALLEL = "lightning.pytorch.strategies.ModelParallelStrategy"
PROMPTS_PER_STEP = 16  # the paper's 16 prompts x G = 8 responses per optimizer step


def header(name: str) -> str:
    """The config's leading comment block, without the ``#`` marks."""
    lines = []
    for line in (CONFIGS / f"{name}.yaml").read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.removeprefix("#").removeprefix(" "))
    return "\n".join(lines)


def torchrun_arguments(text: str) -> list[str]:
    """The ``experiments.run`` arguments of the header's first torchrun line (continuations
    joined), e.g. ``["fit", "--config", ..., "--trainer.num_nodes", "2", ...]``."""
    start = re.search(r"^\s*torchrun ", text, flags=re.MULTILINE).start()
    command = []
    for line in text[start:].splitlines():
        command.append(line.strip().removesuffix("\\"))
        if not line.rstrip().endswith("\\"):
            break
    words = shlex.split(" ".join(command))
    return words[words.index("experiments.run") + 1 :]


def printed(args: list[str], capsys) -> dict:
    with pytest.raises(SystemExit) as info:
        cli.main([*args, "--print_config"])
    assert info.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("name", LLADA)
def test_llada_config_is_fsdp2_on_one_node_of_8_gpus(name, capsys):
    config = printed(["fit", "--config", str(CONFIGS / f"{name}.yaml")], capsys)
    trainer, policy = config["trainer"], config["model"]["init_args"]["policy"]
    assert trainer["strategy"]["class_path"] == MODEL_PARALLEL
    sizes = trainer["strategy"]["init_args"]
    assert sizes["data_parallel_size"] == 8 and sizes["tensor_parallel_size"] == 1
    assert sizes["save_distributed_checkpoint"] is True
    assert trainer["devices"] == 8 and trainer["num_nodes"] == 1
    assert trainer["precision"] == "bf16-mixed"
    # LLaDA loads natively; float32 weights make bf16-mixed keep float32 master weights.
    assert policy["trust_remote_code"] is False and policy["dtype"] == "float32"
    assert config["data"]["batch_size"] * trainer["devices"] == PROMPTS_PER_STEP
    callbacks = [c["class_path"] for c in trainer["callbacks"]]
    assert "bgpo_lightning.callbacks.HFExport" in callbacks


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
@pytest.mark.parametrize("name", LLADA)
def test_llada_config_builds_the_model_parallel_strategy(name, tmp_path):
    # The CPU stands in for the GPUs and the tiny model for LLaDA-8B; nothing is launched.
    args = ["--config", str(CONFIGS / f"{name}.yaml"), "--trainer.accelerator", "cpu",
            *TINY_MODEL, *in_tmp(tmp_path)]  # fmt: skip
    trainer = cli.build_cli(args, run=False).trainer  # run=False: no subcommand
    strategy = trainer.strategy
    # Its sizes are checked through --print_config above (Lightning keeps them private).
    assert isinstance(strategy, ModelParallelStrategy)
    assert trainer.num_devices == 8 and trainer.num_nodes == 1
    assert trainer.precision == "bf16-mixed"


@pytest.mark.parametrize("name", LLADA)
def test_llada_header_documents_the_per_gpu_memory_estimate(name):
    text = header(name)
    figure = re.search(r"Memory per GPU: [^.]*?(\d+) GiB", text)
    assert figure is not None, text
    assert int(figure.group(1)) < 80  # fits the 80 GB cards the config is for
    for needle in [
        "8 x 80 GB",
        "upper bound",
        "single-H200 measurement, not a measurement on 8 GPUs",
        "experiments.gpu_benchmark.sharded_estimate docs/benchmarks/memory_options_8b",
        "docs/benchmarks/memory_options_8b/fsdp2_estimate_8gpus_bf16-mixed.md",
        "micro_batch_size x sequence length",
    ]:
        assert needle in " ".join(text.split()), needle


@pytest.mark.parametrize("name", LLADA)
def test_llada_header_multi_node_example_parses_and_keeps_16_prompts(name, capsys):
    text = header(name)
    assert "--trainer.num_nodes 2" in text and "data_parallel_size 16" in text
    assert "--node_rank 1" in text and "MASTER_ADDR" in text and "NODE_RANK" in text
    args = torchrun_arguments(text)
    assert args[:3] == ["fit", "--config", f"experiments/configs/{name}.yaml"]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)  # the example's paths are relative to the repository root
        config = printed(args, capsys)
    trainer = config["trainer"]
    world = trainer["num_nodes"] * int(trainer["devices"])  # "8" from the command line
    assert (trainer["num_nodes"], world) == (2, 16)
    assert trainer["strategy"]["class_path"] == MODEL_PARALLEL
    assert trainer["strategy"]["init_args"]["data_parallel_size"] == world
    assert config["data"]["batch_size"] * world == PROMPTS_PER_STEP
