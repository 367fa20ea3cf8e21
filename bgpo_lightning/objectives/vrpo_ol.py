"""VRPO-OL: the ELBO-based on-policy objective ``exp(B_hat_theta - B_hat_old) * A``.

The exponential of the (weighted) mean over samples couples all ``n_t`` samples, so the
backward needs every sample's graph at once: memory grows linearly in ``n_t``. This is the
baseline that BGPO's bound replaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.objectives.base import Objective
from bgpo_lightning.objectives.bgpo import BGPO, BGPOSettings
from bgpo_lightning.objectives.registry import register
from bgpo_lightning.objectives.terms import LossContext, SampleTerms, stacked_elbos


def vrpo_ol_objective(
    elbos: torch.Tensor,
    elbos_old: torch.Tensor,
    advantages: torch.Tensor,
    coef: torch.Tensor | None = None,
) -> torch.Tensor:
    """``exp(sum_j c_j (l_theta(j) - l_old(j))) * A`` per response.

    Args:
        elbos: ``(N, n_t)`` per-sample ELBO terms of the current policy.
        elbos_old: ``(N, n_t)`` the same samples under the old policy (no gradient).
        advantages: ``(N,)``.
        coef: ``(n_t,)`` the estimator's weights; None is the plain mean (``1/n_t``).
    """
    diff = elbos - elbos_old.detach()
    d = diff.mean(dim=-1) if coef is None else (diff * coef.to(diff.dtype)).sum(dim=-1)
    return torch.exp(d) * advantages


@dataclass(frozen=True)
class VRPOOLSettings:
    """Settings of ``vrpo_ol``.

    Attributes:
        kl_coef: k3 KL to the frozen initial policy, per sample.
        normalize_std: divide advantages by the group's std.
    """

    kl_coef: float = 0.0
    normalize_std: bool = True

    def __post_init__(self) -> None:
        if self.kl_coef < 0:
            raise ConfigError(f"vrpo_ol kl_coef must be >= 0, got {self.kl_coef}")


@register("vrpo_ol")
class VRPOOL(Objective):
    """LLaDA 1.5's VRPO, online: every sample's graph kept, memory grows with n_t."""

    coupled = True
    Settings = VRPOOLSettings

    def on_policy_linear(self) -> Objective:
        # d/dtheta exp(sum_j c_j d_j) A = sum_j c_j A dl_j at d = 0: BGPO's tangent side, and
        # its Jensen side exp(d_j) has the same derivative there.
        return BGPO(BGPOSettings(kl_coef=self.settings.kl_coef))

    def coupled_loss(
        self,
        samples: Sequence[int],
        new: Sequence[SampleTerms],
        old: Sequence[SampleTerms],
        ctx: LossContext,
    ) -> torch.Tensor:
        elbos, olds = stacked_elbos(new, old)
        coef = ctx.coef[list(samples)]
        value = vrpo_ol_objective(elbos, olds, ctx.advantages.to(elbos.dtype), coef)
        loss = -value.sum() / ctx.num_responses
        for j, terms in zip(samples, new, strict=True):
            loss = loss + self.elbo_kl(j, terms, ctx)
        return loss
