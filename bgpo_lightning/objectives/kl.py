"""KL penalty to a frozen reference, on the masked tokens of one MC sample."""

from __future__ import annotations

import torch


def k3_kl(log_p: torch.Tensor, log_p_ref: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator ``exp(r) - r - 1``, ``r = log p_ref - log p``, per response.

    It is non-negative and unbiased for ``KL(p || p_ref)`` when tokens are drawn from ``p``.
    Averaged over the masked tokens of the sample (the positions the ELBO term scores).

    Args:
        log_p: ``(N, L)`` policy log-probabilities of the response tokens.
        log_p_ref: ``(N, L)`` reference log-probabilities (no gradient).
        mask: ``(N, L)`` bool, masked positions of this sample.
    """
    r = log_p_ref.detach() - log_p
    per_token = torch.exp(r) - r - 1
    count = mask.sum(dim=-1).clamp_min(1)
    return (per_token * mask).sum(dim=-1) / count
