"""BGPO: a lower bound of the ELBO-based objective that is linear in the MC samples.

With ``d_j = l_theta(j) - l_old(j)`` on the same masked sample ``j`` and advantage ``A``:

    A >= 0:  exp(mean_j d_j) * A >= sum_j (1 + d_j) * A / n_t    (tangent line, e^x >= 1 + x)
    A <  0:  exp(mean_j d_j) * A >= sum_j exp(d_j) * A / n_t     (Jensen, exp(mean) <= mean exp)

Each term depends on a single sample, so the loop over samples can back-propagate and free
one graph at a time. At ``theta == theta_old`` value and gradient equal those of VRPO-OL.
"""

from __future__ import annotations

import torch


def bgpo_sample_term(
    elbo: torch.Tensor, elbo_old: torch.Tensor, advantages: torch.Tensor, num_samples: int
) -> torch.Tensor:
    """The bound's contribution ``g_j`` of one MC sample, per response.

    Args:
        elbo: ``(N,)`` ``l_theta`` of sample ``j`` (differentiable).
        elbo_old: ``(N,)`` ``l_old`` of the same sample (no gradient flows through it).
        advantages: ``(N,)``.
        num_samples: n_t.

    Returns:
        ``(N,)`` ``g_j``; summing over ``j`` gives the bound of each response.
    """
    d = elbo - elbo_old.detach()
    negative = advantages < 0
    # 1 + d directly (never log1p-style tricks: log(1 + d) is NaN for d < -1). exp() only sees
    # the entries that use it, so a large d on the tangent side cannot make inf * 0 = NaN.
    jensen = torch.exp(torch.where(negative, d, torch.zeros_like(d)))
    factor = torch.where(negative, jensen, 1 + d)
    return factor * advantages / num_samples


def bgpo_bound(
    elbos: torch.Tensor, elbos_old: torch.Tensor, advantages: torch.Tensor
) -> torch.Tensor:
    """The whole bound ``sum_j g_j`` per response, for ``(N, n_t)`` inputs."""
    num_samples = elbos.shape[-1]
    terms = bgpo_sample_term(elbos, elbos_old, advantages.unsqueeze(-1), num_samples)
    return terms.sum(dim=-1)
