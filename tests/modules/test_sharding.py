"""The FSDP2 helpers on one process: a world-size-1 gloo group and CPU meshes.

The 2-rank behaviour (reduce-scatters, parity with one process, checkpoints) is in
test_rl_fsdp.py; here each helper's contract, in float64.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from lightning.fabric.plugins.environments.lightning import find_free_network_port
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor, Shard, distribute_tensor

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.modules import DiffusionRLModule
from bgpo_lightning.modules.sharding import (
    data_parallel_mesh,
    decoder_layers,
    full_state_dict,
    full_tensor,
    gradient_sync,
    is_sharded,
    shard_model,
    sharded_roots,
)
from bgpo_lightning.policy import PolicySpec
from bgpo_lightning.policy.lora import LoraSpec
from tests.helpers import TINY, random_sequences, tiny_policy
from tests.modules.conftest import rl_kwargs

needs_gloo = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo"
)


@pytest.fixture(scope="module")
def mesh():
    """A 1-D CPU mesh over a world-size-1 gloo group, torn down after this module's tests."""
    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    port = find_free_network_port()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.experts = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])


class RemoteCodeShaped(nn.Module):
    """LLaDA's layout: ``transformer.blocks`` inside a ModuleDict, a list inside each block."""

    def __init__(self):
        super().__init__()
        self.transformer = nn.ModuleDict({"wte": nn.Embedding(4, 2), "blocks": nn.ModuleList()})
        self.transformer["blocks"].extend([Block(), Block(), Block()])


def test_decoder_layers_are_the_outermost_module_lists_children():
    model = tiny_policy().model
    assert decoder_layers(model) == list(model.model.layers) and len(model.model.layers) == 2
    remote = RemoteCodeShaped()
    assert decoder_layers(remote) == list(remote.transformer["blocks"])
    assert decoder_layers(nn.Linear(2, 2)) == []


class TensorParallelMesh:
    """The shape of Lightning's mesh with 4-way tensor parallelism, without processes."""

    mesh_dim_names = ("data_parallel", "tensor_parallel")
    sizes = {"data_parallel": 2, "tensor_parallel": 4}

    def size(self) -> int:
        return 8

    def __getitem__(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(size=lambda: self.sizes[name])


def test_data_parallel_mesh_refuses_tensor_parallelism():
    with pytest.raises(ConfigError, match="tensor_parallel_size=1"):
        data_parallel_mesh(TensorParallelMesh())


@needs_gloo
def test_data_parallel_mesh_of_lightnings_two_dimensional_mesh(mesh):
    names = ("data_parallel", "tensor_parallel")
    grid = init_device_mesh("cpu", (1, 1), mesh_dim_names=names)
    assert data_parallel_mesh(grid).mesh_dim_names == ("data_parallel",)
    assert data_parallel_mesh(mesh) is mesh  # an unnamed 1-D mesh is used as it is


@needs_gloo
def test_shard_model_wraps_layers_then_root_once(mesh):
    policy = tiny_policy()
    model = policy.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert not is_sharded(policy) and sharded_roots(policy) == []
    assert shard_model(model, mesh) is model
    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    assert units == [model, *model.model.layers]
    assert all(isinstance(p, DTensor) for p in model.parameters())
    assert is_sharded(policy) and sharded_roots(policy) == [model]
    shard_model(model, mesh)  # a second configure_model call changes nothing
    assert [m for m in model.modules() if isinstance(m, FSDPModule)] == units
    full = full_state_dict(model)
    assert set(full) == set(before)
    for name, value in full.items():
        assert type(value) is torch.Tensor and value.device.type == "cpu"
        assert torch.equal(value, before[name]), name


def test_full_state_dict_of_an_unsharded_model_is_its_own_on_the_cpu():
    model = tiny_policy().model
    state = full_state_dict(model)
    assert set(state) == set(model.state_dict())
    for name, value in model.state_dict().items():
        assert state[name].device.type == "cpu" and not state[name].requires_grad
        assert torch.equal(state[name], value), name


@needs_gloo
def test_full_tensor_gathers_a_dtensor_and_passes_a_tensor_through(mesh):
    value = torch.arange(6.0, dtype=torch.float64).reshape(3, 2)
    sharded = distribute_tensor(value, mesh, [Shard(0)])
    assert type(full_tensor(sharded)) is torch.Tensor
    assert torch.equal(full_tensor(sharded), value)
    assert full_tensor(value) is value


def _loss(policy, ids):
    return policy(ids).logsumexp(-1).mean()


@needs_gloo
def test_gradient_sync_accumulates_unsynced_backwards_into_the_synced_one(mesh):
    policy = tiny_policy()
    reference = copy.deepcopy(policy)
    shard_model(policy.model, mesh)
    first, second = random_sequences(2, 3, 5, seed=1), random_sequences(2, 3, 5, seed=2)
    with gradient_sync(policy, enabled=False):
        _loss(policy, first).backward()
    # Not reduced yet: FSDP2 keeps the unsharded sum to itself; no sharded gradient.
    assert all(p.grad is None for p in policy.parameters())
    with gradient_sync(policy, enabled=True):
        _loss(policy, second).backward()
    (_loss(reference, first) + _loss(reference, second)).backward()
    for p, q in zip(policy.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(full_tensor(p.grad), q.grad, rtol=1e-12, atol=1e-14)
    # On exit syncing is back on: a plain backward produces sharded gradients again.
    policy.zero_grad(set_to_none=True)
    with gradient_sync(policy, enabled=False):
        pass
    _loss(policy, first).backward()
    assert all(p.grad is not None for p in policy.parameters())


def test_gradient_sync_and_configure_model_are_no_ops_without_fsdp2():
    module = DiffusionRLModule(**rl_kwargs())
    module.configure_model()  # no trainer, no device mesh: nothing to shard
    assert not is_sharded(module)
    with gradient_sync(module, enabled=False):
        _loss(module.policy, random_sequences(1, 2, 3)).backward()
    assert all(p.grad is not None for p in module.policy.parameters())


def meshed_module(mesh, **overrides) -> DiffusionRLModule:
    """The RL module as ModelParallelStrategy hands it over: with a device mesh."""

    class Meshed(DiffusionRLModule):
        device_mesh = property(lambda self: mesh)

    torch.manual_seed(0)
    return Meshed(**rl_kwargs(objective_settings={"kl_coef": 0.1}, **overrides))


def fsdp_units(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, FSDPModule)]


@needs_gloo
def test_configure_model_shards_the_policy_and_the_reference_copy_once(mesh):
    module = meshed_module(mesh)
    reference = module.__dict__["reference"]
    module.configure_model()
    policy_units, reference_units = fsdp_units(module.policy), fsdp_units(reference)
    assert policy_units == [module.policy.model, *module.policy.model.model.layers]
    assert reference_units == [reference.model, *reference.model.model.layers]
    assert not any(m is reference for m in module.modules())  # still not registered
    assert sharded_roots(module) == [module.policy.model]  # what gradient_sync toggles
    assert not any(p.requires_grad for p in reference.parameters())
    module.configure_model()  # Lightning may call it again
    assert fsdp_units(module.policy) == policy_units and fsdp_units(reference) == reference_units
    ids = random_sequences(2, 3, 5)
    torch.testing.assert_close(reference(ids), module.policy(ids), rtol=0, atol=0)


@needs_gloo
def test_configure_model_leaves_a_lora_reference_to_the_sharded_policy(mesh):
    lora = PolicySpec(tiny=TINY, lora=LoraSpec(r=2, alpha=4.0))
    module = meshed_module(mesh, policy=lora)
    module.configure_model()  # the reference is the policy with its adapter off: no copy
    assert fsdp_units(module.policy)[0] is module.policy.model
    ids = random_sequences(2, 3, 5)
    torch.testing.assert_close(module.__dict__["reference"](ids), module.policy(ids))
    module.policy(ids).logsumexp(-1).mean().backward()
    for p in module.policy.parameters():
        assert (p.grad is not None) == p.requires_grad  # the adapter trains, the base does not
