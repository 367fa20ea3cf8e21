"""GDPO (arXiv 2510.08554): PPO with one ELBO-based ratio per sequence.

With the estimator's weights ``c_j`` (Gauss-Legendre weights over masks per node for the
semi-deterministic Monte Carlo estimator, ``sdmc``) and per-sample terms ``l_j``,

    B = sum_j c_j l_j,    r = exp(B_theta - B_old),
    loss = -(1/N) sum_i min(r_i A_i, clip(r_i, 1 - eps, 1 + eps) A_i),
    A = R - mean(R) over the group of each prompt (rewards R, no std division by default).

Our ``l_j`` is already divided by the response length, so ``B`` is GDPO's length-normalised
log-likelihood and ``r`` its per-sequence ratio (the normalisation sits inside the exponential;
the project page writes a ``1/|y_g|`` factor in front of the ``min`` instead). The loss
averages over sequences, as the paper's ``(1/G) sum_g`` does. The paper's objective has an
optional ``beta`` KL term; this one has none (no reference model is built).
The ratio needs every sample of a response at once: the objective is coupled, memory grows
with the number of samples.

Any ELBO estimator works (``estimators`` is None); ``sdmc`` is GDPO's. The ``one_step``
estimator (whole completion masked, weight 1) gives a different quantity: the mean one-step
token log-prob, the ``t = 1`` end of the ELBO's integral over ``t`` rather than the integral.

On-policy every ratio is 1 and the clip is inactive, so the gradient is
``-(1/N) sum_i A_i sum_j c_j dl_j``: BGPO's with the same weights, which is what
:meth:`GDPO.on_policy_linear` returns for memory-flat gradient measurements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.objectives.base import Objective
from bgpo_lightning.objectives.bgpo import BGPO, BGPOSettings
from bgpo_lightning.objectives.clipping import ppo_clipped
from bgpo_lightning.objectives.registry import register
from bgpo_lightning.objectives.terms import LossContext, SampleTerms, stacked_elbos


def gdpo_objective(
    elbos: torch.Tensor,
    elbos_old: torch.Tensor,
    advantages: torch.Tensor,
    coef: torch.Tensor,
    clip_eps: float,
) -> torch.Tensor:
    """``min(r A, clip(r, 1 - eps, 1 + eps) A)`` per response, ``r = exp(B_theta - B_old)``.

    Args:
        elbos: ``(N, n)`` per-sample ELBO terms of the current policy.
        elbos_old: ``(N, n)`` the same samples under the old policy (no gradient).
        advantages: ``(N,)``.
        coef: ``(n,)`` the estimator's weights: ``B = sum_j coef_j l_j``.
        clip_eps: PPO's trust-region half-width.
    """
    diff = (elbos - elbos_old.detach()) * coef.to(elbos.dtype)
    ratio = torch.exp(diff.sum(dim=-1))
    return ppo_clipped(ratio, advantages, clip_eps)


@dataclass(frozen=True)
class GDPOSettings:
    """Settings of ``gdpo``.

    Attributes:
        clip_eps: PPO clip of the per-sequence ratio (paper: 0.5).
        normalize_std: divide advantages by the group's std (paper: no, only centre).
    """

    clip_eps: float = 0.5
    normalize_std: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.clip_eps < 1:
            raise ConfigError(f"gdpo clip_eps must be in (0, 1), got {self.clip_eps}")


@register("gdpo")
class GDPO(Objective):
    """Group Diffusion Policy Optimization: a PPO-clipped ELBO ratio per sequence."""

    coupled = True
    default_estimator = "sdmc"
    Settings = GDPOSettings

    def on_policy_linear(self) -> Objective:
        # At theta == theta_old: r = 1 inside the clip range, d/dtheta r = sum_j c_j dl_j.
        return BGPO(BGPOSettings(normalize_std=self.settings.normalize_std))

    def coupled_loss(
        self,
        samples: Sequence[int],
        new: Sequence[SampleTerms],
        old: Sequence[SampleTerms],
        ctx: LossContext,
    ) -> torch.Tensor:
        elbos, olds = stacked_elbos(new, old)
        coef = ctx.coef[list(samples)]
        advantages = ctx.advantages.to(elbos.dtype)
        value = gdpo_objective(elbos, olds, advantages, coef, self.settings.clip_eps)
        return -value.sum() / ctx.num_responses
