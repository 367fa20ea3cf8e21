"""diffu-GRPO (d1, arXiv 2504.12216): token-level PPO on one-step log-probabilities.

The one-step estimator masks the whole completion (and each prompt token with p = 0.15), so
one forward gives ``log pi(o^k | q')`` at every completion position ``k``. Inner update ``m``
uses its own mask draw ``m``; the old and reference log-probs come from the same masked input.
With ratio ``r^k = exp(log pi_theta(o^k) - log pi_old(o^k))`` the loss per completion token is

    -min(r^k A, clip(r^k, 1 - eps, 1 + eps) A) + beta * k3,    k3 = exp(u) - u - 1,
    u = log pi_ref(o^k) - log pi_theta(o^k),

averaged over the completion tokens (up to and including the first EOS) of the whole batch.

What d1's code does (``diffu-grpo/diffu_grpo_trainer.py`` in dllm-reasoning/d1):

* ``compute_loss`` divides ``(per_token_loss * completion_mask).sum()`` by
  ``completion_mask.sum()``: one token mean over all sequences of a micro-batch, not a mean
  per sequence then over sequences. Micro-batches are then averaged (gradient accumulation,
  devices). Here the sum is divided by the rollout batch's count instead, so splitting the
  batch into micro-batches does not change the loss; the two agree when every micro-batch
  holds the same number of completion tokens.
* ``forward_process`` masks every completion token and each prompt token with
  ``p_mask_prompt``; ``_get_per_token_logps`` reads the log-probs at the completion positions
  of that one forward. Old and reference log-probs are computed at rollout time with the same
  per-iteration seeds, i.e. on the same masked input (the reference with the LoRA adapter
  disabled). On-policy (one iteration) the old log-probs are the current ones, detached.
* Advantages are ``R - mean(R)`` per group of rewards (no std); ``epsilon`` 0.5, ``beta`` 0.04,
  ``num_iterations`` 12 in its training config.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.objectives.base import Objective
from bgpo_lightning.objectives.clipping import ppo_clipped
from bgpo_lightning.objectives.registry import register
from bgpo_lightning.objectives.terms import LossContext, SampleTerms


def diffu_grpo_token_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    clip_eps: float,
    kl_coef: float = 0.0,
    ref_log_probs: torch.Tensor | None = None,
) -> torch.Tensor:
    """diffu-GRPO's loss per token, zero outside the completion.

    Args:
        log_probs: ``(n, L)`` current policy's one-step log-probs (differentiable).
        old_log_probs: ``(n, L)`` rollout-time policy's, same masked input (no gradient).
        advantages: ``(n,)``.
        completion_mask: ``(n, L)`` bool, the tokens that count.
        clip_eps: PPO's trust-region half-width.
        kl_coef: beta, the weight of the k3 penalty (0: no penalty, no reference needed).
        ref_log_probs: ``(n, L)`` frozen reference's, same masked input; needed if beta > 0.

    Returns:
        ``(n, L)`` per-token losses; sum and divide by a token count to get the loss.
    """
    zero = torch.zeros_like(log_probs)
    # Positions outside the completion are zeroed before exp(): a large difference there
    # would otherwise give inf * 0 = NaN in the sum.
    log_ratio = torch.where(completion_mask, log_probs - old_log_probs.detach(), zero)
    per_token = -ppo_clipped(torch.exp(log_ratio), advantages.unsqueeze(-1), clip_eps)
    if kl_coef > 0:
        if ref_log_probs is None:
            raise ValueError("diffu_grpo with kl_coef > 0 needs the reference's log-probs")
        u = torch.where(completion_mask, ref_log_probs.detach() - log_probs, zero)
        per_token = per_token + kl_coef * (torch.exp(u) - u - 1)
    return torch.where(completion_mask, per_token, zero)


@dataclass(frozen=True)
class DiffuGRPOSettings:
    """Settings of ``diffu_grpo``.

    Attributes:
        clip_eps: PPO clip of the per-token ratio (d1: 0.5).
        kl_coef: beta of the per-token k3 KL to the frozen reference (d1: 0.04).
        normalize_std: divide advantages by the group's std (d1: no, only centre).
    """

    clip_eps: float = 0.5
    kl_coef: float = 0.04
    normalize_std: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.clip_eps < 1:
            raise ConfigError(f"diffu_grpo clip_eps must be in (0, 1), got {self.clip_eps}")
        if self.kl_coef < 0:
            raise ConfigError(f"diffu_grpo kl_coef must be >= 0, got {self.kl_coef}")


@register("diffu_grpo")
class DiffuGRPO(Objective):
    """d1's diffu-GRPO: one fresh one-step mask per inner update, token-level PPO.

    The estimator's ``coef`` is not used: each inner update's single sample is the whole
    estimate for that update. ``num_mc_samples`` is ignored for the same reason.
    """

    coupled = False
    fresh_draws_per_update = True
    default_estimator = "one_step"
    estimators = ("one_step",)
    Settings = DiffuGRPOSettings

    def num_samples(self, num_mc_samples: int, num_inner_updates: int) -> int:
        # One mask draw (d1: one seed) per inner update.
        return num_inner_updates

    def sample_loss(
        self, j: int, new: SampleTerms, old: SampleTerms, ctx: LossContext
    ) -> torch.Tensor:
        s = self.settings
        log_probs = new.log_probs
        per_token = diffu_grpo_token_loss(
            log_probs,
            old.log_probs.to(log_probs.dtype),
            ctx.advantages.to(log_probs.dtype),
            ctx.completion_mask,
            s.clip_eps,
            s.kl_coef,
            None if new.ref_log_probs is None else new.ref_log_probs.to(log_probs.dtype),
        )
        return per_token.sum() / ctx.num_completion_tokens
