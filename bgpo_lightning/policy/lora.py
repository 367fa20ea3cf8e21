"""LoRA adapters on the policy through peft: the base stays frozen, only the adapter trains.

The adapter's layers are injected into the transformers model in place, so ``DiffusionLM.model``
is still that model (the likelihood loop, the sampler and the block KV cache call it as before)
and its state-dict keys gain ``base_layer``/``lora_A``/``lora_B`` parts. The peft wrapper that
owns the adapter is kept beside it (see :func:`adapter_of`): it disables the adapter for the KL
reference and merges a copy for export.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.policy.diffusion_lm import DiffusionLM

#: Every attention and MLP projection of a Llama/Qwen2-shaped model (d1's choice).
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Not an nn.Module attribute: registering the wrapper would list every weight twice.
_ADAPTER_KEY = "peft_model"


@dataclass
class LoraSpec:
    """A LoRA adapter: ``W x + (alpha / r) B A x`` on each target layer, ``B`` starting at 0.

    Attributes:
        r: rank of ``A`` and ``B`` (d1: 128).
        alpha: scale numerator; the update is scaled by ``alpha / r`` (d1: 64).
        dropout: dropout on the adapter's input in training mode; 0 keeps the policy's
            forward deterministic, as the base model's is.
        target_modules: names of the linear layers that get an adapter; a layer matches when
            its module name is the key or ends with ``.key``.
    """

    r: int = 128
    alpha: float = 64.0
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))


def add_lora(policy: DiffusionLM, spec: LoraSpec) -> DiffusionLM:
    """Injects a fresh adapter into ``policy.model`` and freezes everything else (in place).

    The adapter starts at zero, so the policy's outputs are the base model's until it trains.
    """
    _check(spec, policy.model)
    config = LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=list(spec.target_modules),
        bias="none",
    )
    with warnings.catch_warnings():
        # peft reads a transformers property that transformers 5 renamed: noise, not news.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        wrapper = get_peft_model(policy.model, config)
    if wrapper.get_base_model() is not policy.model:
        raise RuntimeError("peft did not adapt the policy's model in place")
    policy.__dict__[_ADAPTER_KEY] = wrapper
    return policy


def _check(spec: LoraSpec, model: nn.Module) -> None:
    """One-line errors for settings peft would reject late or obscurely."""
    if spec.r < 1:
        raise ConfigError(f"policy.lora.r must be >= 1, got {spec.r}")
    if spec.alpha <= 0:
        raise ConfigError(f"policy.lora.alpha must be > 0, got {spec.alpha}")
    if not 0 <= spec.dropout < 1:
        raise ConfigError(f"policy.lora.dropout must be in [0, 1), got {spec.dropout}")
    if isinstance(spec.target_modules, str) or not spec.target_modules:
        raise ConfigError(
            f"policy.lora.target_modules must be a non-empty list of layer names, "
            f"got {spec.target_modules!r}"
        )
    names = [name for name, _ in model.named_modules()]
    for key in spec.target_modules:
        if not any(name == key or name.endswith("." + key) for name in names):
            raise ConfigError(
                f"policy.lora.target_modules entry {key!r} matches no layer of "
                f"{type(model).__name__} (e.g. {', '.join(DEFAULT_TARGETS[:3])})"
            )


def adapter_of(policy: DiffusionLM) -> PeftModel | None:
    """The peft wrapper of ``policy``'s adapter, or None for a policy without LoRA."""
    return policy.__dict__.get(_ADAPTER_KEY)


@contextmanager
def adapter_disabled(policy: DiffusionLM) -> Iterator[DiffusionLM]:
    """Inside, ``policy`` computes the frozen base model's outputs (peft's
    ``disable_adapter()``); a policy without LoRA is left as it is."""
    wrapper = adapter_of(policy)
    if wrapper is None:
        yield policy
        return
    with wrapper.disable_adapter():
        yield policy


@torch.no_grad()
def merged_model(policy: DiffusionLM) -> nn.Module:
    """A plain transformers model whose weights are the base plus the adapter's update.

    Merges a deep copy, so the live policy keeps its adapter and its exact base weights; the
    copy costs one model's memory while it lives.
    """
    wrapper = adapter_of(policy)
    if wrapper is None:
        raise ValueError("the policy has no LoRA adapter to merge")
    return copy.deepcopy(wrapper).merge_and_unload()


def save_adapter(policy: DiffusionLM, directory: str | Path) -> Path:
    """Writes the adapter alone in peft's format (``PeftModel.from_pretrained`` reads it)."""
    wrapper = adapter_of(policy)
    if wrapper is None:
        raise ValueError("the policy has no LoRA adapter to save")
    directory = Path(directory)
    wrapper.save_pretrained(directory)
    return directory
