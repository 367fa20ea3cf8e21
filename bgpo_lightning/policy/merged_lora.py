"""Sampling with the LoRA adapter merged into stand-in weights (``SamplerConfig.merge_lora``).

An unmerged adapter adds two thin matrix products and an addition to every adapted projection
of every sampler forward, which made the exact sampler's rollout 2.5 times slower at 1.1B and
2.0 times at 8B on an H200 (docs/benchmarks.md, "A whole step: the rollout with each option").
A rollout needs no gradient, so each adapted layer can run as one plain linear layer of weight
``W + (alpha / r) B A``. peft's own merge writes that into ``W``, and in bf16 the unmerge after
it does not give ``W`` back exactly, so the frozen base would drift at every rollout. Here the
merged weight is a new tensor that stands in for ``W`` while sampling and is dropped afterwards:
the base is never written. The price is one copy of the adapted weights while the rollout runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from peft.tuners.lora import Linear as LoraLinear
from peft.tuners.lora import LoraLayer
from torch import nn

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.policy.diffusion_lm import DiffusionLM
from bgpo_lightning.policy.lora import adapter_disabled, adapter_of


def merged_weight(layer: LoraLinear) -> torch.Tensor:
    """``W + sum over active adapters of (alpha / r) B A``, summed in at least float32 and
    rounded once to ``W``'s dtype (a bf16 sum would round at every adapter)."""
    weight = layer.get_base_layer().weight
    dtype = torch.promote_types(weight.dtype, torch.float32)
    merged = weight.to(dtype)
    for name in layer.active_adapters:
        if name in layer.lora_A:
            merged = merged + layer.get_delta_weight(name).to(dtype)
    return merged.to(weight.dtype)


def _adapted_linears(model: nn.Module) -> list[LoraLinear]:
    """The model's LoRA layers, each checked to be one this module can merge. (LoRA is
    refused under FSDP2, so no weight here is a shard.)"""
    layers = []
    for name, module in model.named_modules():
        if not isinstance(module, LoraLayer):
            continue
        if not isinstance(module, LoraLinear):
            raise ConfigError(
                f"merge_lora merges adapters on linear layers only; {name} is "
                f"{type(module).__name__}"
            )
        layers.append(module)
    return layers


@contextmanager
def merged_adapter(policy: DiffusionLM, enabled: bool = True) -> Iterator[None]:
    """Inside, ``policy`` runs as if its adapter were merged into its weights.

    Each adapted layer's base weight is swapped for a merged copy and the adapter is turned
    off; on the way out the original weight tensors are put back (the very same objects, so
    optimizers and checkpoints see nothing). The merged copies hold the adapter's values at
    entry: a block that trains the adapter would not see its updates, so use it for sampling.
    """
    if not enabled:
        yield
        return
    if adapter_of(policy) is None:
        raise ConfigError("merge_lora needs a policy with a LoRA adapter (policy.lora)")
    swapped: list[tuple[nn.Module, nn.Parameter]] = []
    try:
        with torch.no_grad():
            for layer in _adapted_linears(policy.model):
                base = layer.get_base_layer()
                original = base.weight
                # Merged one layer at a time, so the float32 sum lives only for that layer.
                base.weight = nn.Parameter(merged_weight(layer), requires_grad=False)
                swapped.append((base, original))
        with adapter_disabled(policy):
            yield
    finally:
        for base, original in reversed(swapped):
            base.weight = original
