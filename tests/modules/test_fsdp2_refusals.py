"""What is refused under FSDP2 (Lightning's ModelParallelStrategy), with one clear line.

On one process: a world-size-1 gloo group that the Trainer starts, so the module's hooks run
exactly as they would on more ranks (Lightning sets the mesh, then calls ``setup`` and
``configure_model``), torn down after each test.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta

import lightning as L
import pytest
import torch.distributed as dist
from lightning.fabric.plugins.environments.lightning import find_free_network_port
from lightning.pytorch.strategies import ModelParallelStrategy

from bgpo_lightning.callbacks import GradientStatistics
from bgpo_lightning.errors import ConfigError
from bgpo_lightning.modules import DiffusionRLModule
from bgpo_lightning.modules.sharding import is_sharded
from bgpo_lightning.policy import PolicySpec
from bgpo_lightning.policy.lora import LoraSpec
from tests.helpers import TINY
from tests.modules.conftest import GREEDY, rl_kwargs

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo"
)


@pytest.fixture
def one_rank_fsdp2():
    """Builds a Trainer under a 1-rank ModelParallelStrategy; the group is destroyed after."""
    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    # Lightning writes the rendezvous address and LOCAL_RANK (which would make a later Trainer
    # think it was launched by torchrun) into the environment: all restored after the test.
    saved = dict(os.environ)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(find_free_network_port()))

    def trainer(tmp_path, callbacks=()) -> L.Trainer:
        return L.Trainer(
            default_root_dir=tmp_path,
            accelerator="cpu",
            devices=1,
            strategy=ModelParallelStrategy(
                data_parallel_size=1,
                tensor_parallel_size=1,
                process_group_backend="gloo",
                timeout=timedelta(seconds=60),
            ),
            max_steps=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            callbacks=list(callbacks),
        )

    try:
        yield trainer
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        os.environ.clear()
        os.environ.update(saved)


def test_lora_is_refused_before_the_policy_is_sharded(one_rank_fsdp2, tmp_path, sudoku_data):
    policy = PolicySpec(tiny=TINY, lora=LoraSpec(r=2, alpha=4.0))
    model = DiffusionRLModule(**rl_kwargs(policy=policy))
    with pytest.raises(ConfigError, match=r"^policy\.lora is not supported under FSDP2 "):
        one_rank_fsdp2(tmp_path).fit(model, sudoku_data)
    assert not is_sharded(model.policy)


def test_gradient_statistics_refuses_a_sharded_policy(one_rank_fsdp2, tmp_path, sudoku_data):
    model = DiffusionRLModule(**rl_kwargs())
    stats = GradientStatistics(every_n_steps=1, num_mc_samples=[1], repeats=2)
    with pytest.raises(ConfigError, match="does not support FSDP2-sharded parameters"):
        one_rank_fsdp2(tmp_path, [stats]).fit(model, sudoku_data)
    # Refused at the start of fit, once configure_model had sharded the policy ...
    assert is_sharded(model.policy) and model.global_step == 0
    # ... and by policy_gradient itself, which would return zeros (the check comes first, so
    # no rollout is needed to reach it).
    with pytest.raises(ConfigError, match="does not support FSDP2-sharded parameters"):
        model.policy_gradient(None, 1, generator=None)


@pytest.mark.parametrize("key", ["rollout", "eval_sampler"])
def test_a_cuda_graph_without_gathered_weights_is_refused_before_sharding(
    one_rank_fsdp2, tmp_path, sudoku_data, key
):
    graphed = dataclasses.replace(GREEDY, cache="dual", cuda_graph=True)
    model = DiffusionRLModule(**rl_kwargs(**{key: graphed}))
    expected = rf"^{key}\.cuda_graph under FSDP2 needs {key}\.gather_weights: true "
    with pytest.raises(ConfigError, match=expected):
        one_rank_fsdp2(tmp_path).fit(model, sudoku_data)
    assert not is_sharded(model.policy)


def test_a_cuda_graph_with_gathered_weights_passes_the_fsdp2_checks():
    class Meshed(DiffusionRLModule):
        device_mesh = property(lambda self: "a mesh")  # what the checks look at

    graphed = dataclasses.replace(GREEDY, cache="dual", cuda_graph=True, gather_weights=True)
    Meshed(**rl_kwargs(rollout=graphed, eval_sampler=graphed)).setup("fit")
    without = dataclasses.replace(graphed, gather_weights=False)
    with pytest.raises(ConfigError, match=r"^rollout\.cuda_graph under FSDP2"):
        Meshed(**rl_kwargs(rollout=without)).setup("fit")
