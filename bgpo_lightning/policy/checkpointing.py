"""Gradient (activation) checkpointing of the policy's decoder layers.

Each decoder layer keeps only its input for backward and runs again during backward, trading
one more forward of the layers per backward for activation memory that no longer grows with the
number of layers. The non-reentrant form is used: it works with ``manual_backward``, with
parameters (LoRA's) that are the only ones needing gradients, and with ``torch.autograd.grad``.

transformers checkpoints a layer only in training mode with gradients enabled, so the no-grad
sampler (block KV cache included) and the eval-mode reference run the layers as they are.
"""

from __future__ import annotations

from torch import nn

from bgpo_lightning.errors import ConfigError

_NON_REENTRANT = {"use_reentrant": False}


def enable_gradient_checkpointing(model: nn.Module) -> nn.Module:
    """Turns on non-reentrant checkpointing of every decoder layer of a transformers model."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ConfigError(
            f"policy.gradient_checkpointing: {type(model).__name__} does not support it "
            "(LLaDA's remote modelling code has none)"
        )
    # transformers 5 renamed the method; the old name still works there but warns.
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs=dict(_NON_REENTRANT))
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=dict(_NON_REENTRANT))
    return model


def disable_gradient_checkpointing(model: nn.Module) -> nn.Module:
    """Turns checkpointing off again (a no-op where it was never on)."""
    disable = getattr(model, "activation_checkpointing_disable", None)
    if disable is None:  # transformers before the rename
        disable = model.gradient_checkpointing_disable
    disable()
    return model
