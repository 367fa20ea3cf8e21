"""PPO's clipped surrogate, shared by the token-level (diffu-GRPO) and sequence-level (GDPO)
objectives."""

from __future__ import annotations

import torch


def ppo_clipped(ratio: torch.Tensor, advantages: torch.Tensor, eps: float) -> torch.Tensor:
    """``min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A)``, elementwise (to be maximised).

    The minimum picks the clipped branch exactly when the ratio has left the trust region in
    the direction the advantage rewards (above ``1 + eps`` for ``A > 0``, below ``1 - eps`` for
    ``A < 0``); that branch is constant in the ratio, so those entries get no gradient.

    Args:
        ratio: importance ratios, any shape.
        advantages: broadcastable to ``ratio``.
        eps: half-width of the trust region, in (0, 1).
    """
    unclipped = ratio * advantages
    clipped = ratio.clamp(1 - eps, 1 + eps) * advantages
    return torch.minimum(unclipped, clipped)
