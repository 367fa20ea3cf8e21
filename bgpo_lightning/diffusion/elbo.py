"""Per-sample ELBO terms of a masked diffusion LM from its logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_log_probs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log p(target)`` per position, computed in at least float32.

    Args:
        logits: ``(N, L, V)``.
        targets: ``(N, L)`` token ids.
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)
    flat = logits.reshape(-1, logits.shape[-1]).to(dtype)
    return -F.cross_entropy(flat, targets.reshape(-1), reduction="none").view_as(targets)


def elbo_term(
    response_logits: torch.Tensor,
    response: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
) -> torch.Tensor:
    """One Monte Carlo term ``l(y_t, t, y | x)`` per response, divided by the length ``L``.

    ``l = weight * sum_i 1[y_t^i = MASK] log p(y^i | y_t, x) / L`` where ``weight`` is ``1/t``
    or ``L/k`` (see :mod:`bgpo_lightning.diffusion.masking`).

    Args:
        response_logits: ``(N, L, V)`` logits at the response positions of the masked input.
        response: ``(N, L)`` clean response tokens.
        mask: ``(N, L)`` bool, which tokens were masked in the input.
        weight: ``(N,)`` ELBO weight of this sample.

    Returns:
        ``(N,)`` the per-token ELBO estimate of each response.
    """
    return elbo_from_log_probs(token_log_probs(response_logits, response), mask, weight)


def elbo_from_log_probs(
    log_probs: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """:func:`elbo_term` from per-token log-probs ``(N, L)`` (``log p(y^i | y_t, x)``)."""
    masked_sum = (log_probs * mask).sum(dim=-1)
    return weight.to(masked_sum.dtype) * masked_sum / log_probs.shape[-1]
