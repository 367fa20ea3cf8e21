"""Masks with an exact number of masked tokens, chosen uniformly at random."""

from __future__ import annotations

import torch


def lowest_k(scores: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """True at the ``k`` positions with the smallest scores along the last dimension.

    With i.i.d. uniform scores the chosen set is a uniform random ``k``-subset.

    Args:
        scores: ``(..., L)`` random scores.
        k: ``(...)`` integer counts in ``0..L``, broadcastable to ``scores.shape[:-1]``.

    Returns:
        ``(..., L)`` bool.
    """
    # The rank of each position among its row; argsort twice keeps the draw bit-identical to
    # the masks that runs before the estimator registry recorded.
    ranks = scores.argsort(dim=-1).argsort(dim=-1)
    return ranks < k.unsqueeze(-1)
