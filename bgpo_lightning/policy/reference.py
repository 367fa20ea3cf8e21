"""The frozen reference policy for a KL penalty."""

from __future__ import annotations

import copy

import torch
from torch import nn

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.policy.diffusion_lm import DiffusionLM
from bgpo_lightning.policy.lora import adapter_disabled, adapter_of

REFERENCE_DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def frozen_copy(module: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """A deep copy in eval mode with gradients off: never trained, never in the optimizer.

    ``dtype`` casts the copy's parameters only (bfloat16 halves a float32 reference's memory);
    buffers such as RoPE's inverse frequencies keep their precision.
    """
    reference = copy.deepcopy(module)
    reference.requires_grad_(False)
    if dtype is not None:
        for parameter in reference.parameters():
            parameter.data = parameter.data.to(dtype)
    return reference.eval()


class AdapterDisabledReference:
    """The reference of a LoRA policy: the policy itself with its adapter disabled.

    It shares the policy's (frozen) base weights, so there is no second copy to keep or to
    move; it is not an ``nn.Module`` for the same reason. Calls take ``DiffusionLM``'s
    arguments and run in eval mode under no_grad, as a frozen copy would.
    """

    def __init__(self, policy: DiffusionLM) -> None:
        if adapter_of(policy) is None:
            raise ValueError("the policy has no LoRA adapter")
        self.policy = policy

    @torch.no_grad()
    def __call__(self, *args, **kwargs) -> torch.Tensor:
        was_training = self.policy.training
        self.policy.eval()  # the base's own dropout (if any) is off, as in a frozen copy
        try:
            with adapter_disabled(self.policy):
                return self.policy(*args, **kwargs)
        finally:
            self.policy.train(was_training)


def parse_reference_dtype(name: str | None) -> torch.dtype | None:
    """The dtype a ``reference_dtype`` setting names (None: the policy's); a one-line error
    for an unknown name."""
    if name is None:
        return None
    if name not in REFERENCE_DTYPES:
        raise ConfigError(
            f"unknown reference_dtype {name!r}; choose one of: {', '.join(REFERENCE_DTYPES)}"
        )
    return REFERENCE_DTYPES[name]


def build_reference(
    policy: DiffusionLM, dtype: str | None = None
) -> nn.Module | AdapterDisabledReference:
    """The KL reference of ``policy`` at its initial weights.

    Args:
        policy: the policy, before training.
        dtype: weights' dtype of a separate reference copy (``bfloat16`` etc.); None keeps
            the policy's. A LoRA policy has no separate copy, so it takes none.
    """
    torch_dtype = parse_reference_dtype(dtype)
    if adapter_of(policy) is None:
        return frozen_copy(policy, torch_dtype)
    if torch_dtype is not None:
        raise ConfigError(
            "reference_dtype needs a separate reference copy; with policy.lora the "
            "reference is the policy's own base weights (set reference_dtype: null)"
        )
    return AdapterDisabledReference(policy)
