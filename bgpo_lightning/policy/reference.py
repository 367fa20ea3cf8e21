"""The frozen reference policy for a KL penalty."""

from __future__ import annotations

import copy

from torch import nn


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy in eval mode with gradients off: never trained, never in the optimizer."""
    reference = copy.deepcopy(module)
    reference.requires_grad_(False)
    return reference.eval()
