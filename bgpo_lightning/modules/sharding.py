"""FSDP2 (``fully_shard``) for the policy, as Lightning's ``ModelParallelStrategy`` runs it.

The strategy builds a 2-D device mesh (``data_parallel`` x ``tensor_parallel``) and calls the
module's ``configure_model``, which shards with these helpers: each decoder layer, then the
root of the Hugging Face model, over the data-parallel mesh (plain FSDP2; tensor parallelism
is not implemented, so ``tensor_parallel_size`` must be 1). The helpers take modules and
meshes, not Lightning objects, and are no-ops on unsharded modules.

With sharded parameters, gradients and the global norm are DTensors; the per-sample
backwards of BGPO reduce-scatter only on the step's last backward (:func:`gradient_sync`);
the Hugging Face export needs the full weights gathered on rank 0 (:func:`full_state_dict`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor

from bgpo_lightning.errors import ConfigError

#: The names Lightning's ModelParallelStrategy gives the dimensions of its mesh.
DATA_PARALLEL, TENSOR_PARALLEL = "data_parallel", "tensor_parallel"


def data_parallel_mesh(mesh: DeviceMesh) -> DeviceMesh:
    """The data-parallel sub-mesh of Lightning's mesh (a 1-D mesh is returned as it is).

    Raises:
        ConfigError: the mesh has a tensor-parallel dimension of size > 1.
    """
    names = mesh.mesh_dim_names or ()
    if TENSOR_PARALLEL in names and mesh[TENSOR_PARALLEL].size() > 1:
        raise ConfigError(
            "ModelParallelStrategy: tensor parallelism is not implemented; set "
            f"tensor_parallel_size=1 and data_parallel_size to the world size ({mesh.size()})"
        )
    return mesh[DATA_PARALLEL] if DATA_PARALLEL in names else mesh


def _outermost(model: nn.Module, kind: type) -> list[nn.Module]:
    """The modules of type ``kind`` in ``model`` that are not inside another one."""
    found: list[nn.Module] = []
    prefixes: list[str] = []
    for name, module in model.named_modules():
        if isinstance(module, kind) and not any(name.startswith(p) for p in prefixes):
            found.append(module)
            prefixes.append(f"{name}." if name else "")
    return found


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The repeated transformer blocks: the children of the outermost ``nn.ModuleList`` objects.

    That is ``model.layers`` of a transformers Llama/Qwen2 model and ``transformer.blocks`` of
    LLaDA's remote code; lists nested inside a block (experts, say) stay with their block.
    """
    return [layer for layers in _outermost(model, nn.ModuleList) for layer in layers]


def shard_model(
    model: nn.Module, mesh: DeviceMesh, reshard_after_forward: bool | None = None
) -> nn.Module:
    """Applies ``fully_shard`` to each decoder layer, then to ``model`` itself (in place).

    Each layer is one all-gather/reduce-scatter unit, so a forward holds one layer's full
    parameters at a time; the root unit keeps what is left (embeddings, final norm, output
    head). Idempotent: a model that is already sharded is returned unchanged (Lightning may
    call ``configure_model`` more than once).

    Args:
        model: the module to shard (a Hugging Face model).
        mesh: the 1-D data-parallel mesh.
        reshard_after_forward: FSDP2's setting; None is its default (layers free their full
            parameters after forward, the root keeps them for the backward). True for a
            frozen model that only runs forwards.
    """
    if isinstance(model, FSDPModule):
        return model
    settings = {"mesh": mesh}
    if reshard_after_forward is not None:  # else FSDP2's default, whatever the torch version
        settings["reshard_after_forward"] = reshard_after_forward
    for layer in decoder_layers(model):
        if not isinstance(layer, FSDPModule):
            fully_shard(layer, **settings)
    fully_shard(model, **settings)
    return model


def sharded_roots(module: nn.Module) -> list[FSDPModule]:
    """The outermost FSDP2 modules in ``module`` (``module`` itself if it is one)."""
    return _outermost(module, FSDPModule)


def is_sharded(module: nn.Module) -> bool:
    """Whether ``module`` holds FSDP2-sharded parameters."""
    return bool(sharded_roots(module))


@contextmanager
def gradient_sync(module: nn.Module, enabled: bool) -> Iterator[None]:
    """Within the block, the FSDP2 modules in ``module`` reduce-scatter gradients only if
    ``enabled`` (FSDP2's ``set_requires_gradient_sync``, FSDP1's ``no_sync``).

    Without sync, FSDP2 accumulates the *unsharded* gradients locally (the memory of a full
    gradient per rank) and reduce-scatters the sum at the next synced backward. On exit
    syncing is switched back on, FSDP2's default. A no-op for a module without FSDP2.
    """
    roots = sharded_roots(module)
    for root in roots:
        root.set_requires_gradient_sync(enabled)
    try:
        yield
    finally:
        for root in roots:
            root.set_requires_gradient_sync(True)


@contextmanager
def gathered_weights(module: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Within the block the FSDP2 units in ``module`` all-gather their parameters once, on
    entry, and keep them for every forward, instead of gathering each unit at each forward.

    A rollout runs hundreds of no-grad forwards; a cached step computes little, so gathering
    8B weights per step would cost more than the step. This costs the full weights on every
    rank for the block. On exit the units take back the setting :func:`shard_model` leaves by
    default, and the state a forward leaves with it: decoder layers reshard after forward, so
    they free their weights now; the root does not, so it keeps them until the next backward.
    A no-op without FSDP2 modules or when not ``enabled``.
    """
    roots = sharded_roots(module) if enabled else []
    units = [unit for root in roots for unit in root.modules() if isinstance(unit, FSDPModule)]
    for root in roots:
        root.set_reshard_after_forward(False)  # FSDP2's documented switch for evaluation
    for unit in units:
        unit.unshard()
    try:
        yield
    finally:
        for root in roots:
            root.set_reshard_after_forward(True)
            root.set_reshard_after_forward(False, recurse=False)
        for unit in units:
            if not any(unit is root for root in roots):
                unit.reshard()


def full_tensor(value: torch.Tensor) -> torch.Tensor:
    """A plain tensor of ``value``'s global value (DTensors are gathered, others unchanged).

    ``clip_grad_norm_`` over DTensor gradients returns the global norm as a replicated DTensor;
    loggers and ``torch.isfinite`` checks want a plain tensor.
    """
    return value.full_tensor() if isinstance(value, DTensor) else value


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor] | None:
    """The full (unsharded) state dict on CPU on global rank 0, None on the other ranks.

    A collective under FSDP2: every rank must call it, or rank 0 waits forever. An unsharded
    model's own state dict (on CPU) is returned on every rank, so a DDP rank 0 gets its
    weights without communication.
    """
    if not is_sharded(model):
        return {name: value.detach().cpu() for name, value in model.state_dict().items()}
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(model, options=options)
    return state if dist.get_rank() == 0 else None
