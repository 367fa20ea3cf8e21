"""Group-relative advantages over the G responses of one prompt."""

from __future__ import annotations

import torch


def group_advantages(
    rewards: torch.Tensor, group_size: int, normalize_std: bool = True, eps: float = 1e-4
) -> torch.Tensor:
    """``A_i = (r_i - mean(r)) / (std(r) + eps)`` within each group of ``group_size``.

    Args:
        rewards: ``(B * G,)`` rewards, the G responses of a prompt adjacent.
        group_size: G.
        normalize_std: divide by the group's standard deviation (GRPO, BGPO) or only
            centre (diffu-GRPO).
        eps: keeps groups with equal rewards at advantage 0 instead of 0/0.

    Returns:
        ``(B * G,)`` advantages in the dtype of ``rewards``.
    """
    if rewards.ndim != 1 or rewards.numel() % group_size != 0:
        raise ValueError(
            f"rewards must be 1-D with a multiple of group_size={group_size} entries, "
            f"got shape {tuple(rewards.shape)}"
        )
    groups = rewards.view(-1, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if normalize_std:
        # Unbiased std as in GRPO; a single-response group has no spread, so use 0.
        std = groups.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(centred)
        centred = centred / (std + eps)
    return centred.reshape(-1)
