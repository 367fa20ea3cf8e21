"""BGPO: a lower bound of the ELBO-based objective that is linear in the MC samples.

With ``d_j = l_theta(j) - l_old(j)`` on the same masked sample ``j``, advantage ``A`` and the
estimator's weights ``c_j`` (``1/n_t`` for plain Monte Carlo, quadrature weights for SDMC):

    A >= 0:  exp(sum_j c_j d_j) * A >= sum_j c_j (1 + d_j) * A     (tangent line, e^x >= 1 + x)
    A <  0:  exp(sum_j c_j d_j) * A >= sum_j c_j exp(d_j) * A      (Jensen, weights sum to 1)

Each term depends on a single sample, so the loop over samples can back-propagate and free
one graph at a time. At ``theta == theta_old`` value and gradient equal those of VRPO-OL.

Off-policy (``num_inner_updates > 1``) two optional extras of the official port act on the
per-sample ratio ``rho_j`` (``1 + d_j`` on the tangent side, ``exp(d_j)`` on the Jensen side):
PPO's clip ``min(rho A, clip(rho, 1 - eps, 1 + eps) A)`` and, for ``A < 0``, the dual clip
``max(., c A)``. On-policy ``rho_j = 1``: both are inactive. ``bound`` selects the paper's
Table 3 ablation: ``tangent`` or ``jensen`` for both signs (no longer a lower bound).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.objectives.base import Objective
from bgpo_lightning.objectives.registry import register
from bgpo_lightning.objectives.terms import LossContext, SampleTerms

BOUNDS = ("both", "tangent", "jensen")


def bgpo_term(
    d: torch.Tensor,
    advantages: torch.Tensor,
    bound: str = "both",
    clip_eps: float | None = None,
    dual_clip: float | None = None,
) -> torch.Tensor:
    """The bound's factor times ``A`` for one sample, before its weight ``c_j``.

    Args:
        d: ``(N,)`` ``l_theta - l_old`` of one sample (differentiable).
        advantages: ``(N,)``.
        bound: ``both`` (the paper), ``tangent`` or ``jensen`` (Table 3's ablations).
        clip_eps: PPO clip of the per-sample ratio, or None.
        dual_clip: lower limit ``c * A`` for ``A < 0`` (``c > 1``), or None.
    """
    if bound == "both":
        jensen_side = advantages < 0
    else:
        jensen_side = torch.full_like(advantages, bound == "jensen", dtype=torch.bool)
    # 1 + d directly (log(1 + d), as some ports write, is NaN for d < -1). exp() only sees the
    # entries that use it, so a large d on the tangent side cannot make inf * 0 = NaN.
    exp_d = torch.exp(torch.where(jensen_side, d, torch.zeros_like(d)))
    ratio = torch.where(jensen_side, exp_d, 1 + d)
    term = ratio * advantages
    if clip_eps is not None:
        clipped = ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages
        term = torch.minimum(term, clipped)
    if dual_clip is not None:
        term = torch.where(advantages < 0, torch.maximum(term, dual_clip * advantages), term)
    return term


def bgpo_sample_term(
    elbo: torch.Tensor, elbo_old: torch.Tensor, advantages: torch.Tensor, num_samples: int
) -> torch.Tensor:
    """The paper's bound's contribution ``g_j`` of one MC sample, per response.

    Args:
        elbo: ``(N,)`` ``l_theta`` of sample ``j`` (differentiable).
        elbo_old: ``(N,)`` ``l_old`` of the same sample (no gradient flows through it).
        advantages: ``(N,)``.
        num_samples: n_t (plain Monte Carlo weights ``1/n_t``).

    Returns:
        ``(N,)`` ``g_j``; summing over ``j`` gives the bound of each response.
    """
    return bgpo_term(elbo - elbo_old.detach(), advantages) / num_samples


def bgpo_bound(
    elbos: torch.Tensor, elbos_old: torch.Tensor, advantages: torch.Tensor
) -> torch.Tensor:
    """The whole bound ``sum_j g_j`` per response, for ``(N, n_t)`` inputs."""
    num_samples = elbos.shape[-1]
    terms = bgpo_sample_term(elbos, elbos_old, advantages.unsqueeze(-1), num_samples)
    return terms.sum(dim=-1)


@dataclass(frozen=True)
class BGPOSettings:
    """Settings of ``bgpo``.

    Attributes:
        bound: ``both`` (the paper), ``tangent`` or ``jensen`` for both signs (Table 3).
        clip_eps: PPO clip of the per-sample ratio off-policy (official port: 0.2), or None.
        dual_clip: dual clip ``c`` for negative advantages (official port: 3.0), or None.
        kl_coef: k3 KL to the frozen initial policy, per sample (paper: 0, no reference).
        normalize_std: divide advantages by the group's std (paper: yes).
    """

    bound: str = "both"
    clip_eps: float | None = None
    dual_clip: float | None = None
    kl_coef: float = 0.0
    normalize_std: bool = True

    def __post_init__(self) -> None:
        if self.bound not in BOUNDS:
            raise ConfigError(f"bgpo bound must be one of {', '.join(BOUNDS)}, got {self.bound!r}")
        if self.clip_eps is not None and not 0 < self.clip_eps < 1:
            raise ConfigError(f"bgpo clip_eps must be in (0, 1), got {self.clip_eps}")
        if self.dual_clip is not None and self.dual_clip <= 1:
            raise ConfigError(f"bgpo dual_clip must be > 1, got {self.dual_clip}")
        if self.kl_coef < 0:
            raise ConfigError(f"bgpo kl_coef must be >= 0, got {self.kl_coef}")


@register("bgpo")
class BGPO(Objective):
    """Boundary-Guided Policy Optimization: one backward per sample, memory flat in n_t."""

    coupled = False
    Settings = BGPOSettings

    def sample_loss(
        self, j: int, new: SampleTerms, old: SampleTerms, ctx: LossContext
    ) -> torch.Tensor:
        s = self.settings
        d = new.elbo - old.elbo.to(new.elbo.dtype)
        term = bgpo_term(d, ctx.advantages.to(d.dtype), s.bound, s.clip_eps, s.dual_clip)
        loss = -ctx.coef[j].to(d.dtype) * term.sum() / ctx.num_responses
        return loss + self.elbo_kl(j, new, ctx)
