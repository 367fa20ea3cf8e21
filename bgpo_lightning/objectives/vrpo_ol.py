"""VRPO-OL: the ELBO-based on-policy objective ``exp(B_hat_theta - B_hat_old) * A``.

The exponential of the mean over samples couples all ``n_t`` samples, so the backward needs
every sample's graph at once: memory grows linearly in ``n_t``. This is the baseline that
BGPO's bound replaces.
"""

from __future__ import annotations

import torch


def vrpo_ol_objective(
    elbos: torch.Tensor, elbos_old: torch.Tensor, advantages: torch.Tensor
) -> torch.Tensor:
    """``exp(mean_j (l_theta(j) - l_old(j))) * A`` per response.

    Args:
        elbos: ``(N, n_t)`` per-sample ELBO terms of the current policy.
        elbos_old: ``(N, n_t)`` the same samples under the old policy (no gradient).
        advantages: ``(N,)``.
    """
    d = (elbos - elbos_old.detach()).mean(dim=-1)
    return torch.exp(d) * advantages
