"""wd1: weighted log-likelihood policy optimization, ratio-free (arXiv 2507.08838).

Within each prompt's group of G responses, with advantages ``A_i``,

    w+_i = softmax_i(A_i),   w-_i = softmax_i(-A_i)
    loss = -sum_i w+_i log pi_hat(o_i|q) + sum_i w-_i log pi_hat(o_i|q),

averaged over prompts, where ``log pi_hat`` is d1's one-step estimate: one forward with the
whole completion masked (and the prompt lightly masked), summed over the completion tokens up
to and including the first EOS. There is no ratio, so the old policy is never used.

As in the official code (``xiaohangt/wd1``, ``wd1/trainers/rev_grpo_trainer.py``):

* ``A_i = r_i - mean(r)`` without std division. The softmax is shift-invariant, so this is
  ``softmax(r)`` of the raw rewards, temperature 1; ``normalize_std`` would act as an adaptive
  temperature.
* Each of the ``num_iterations`` inner updates (12 in its scripts) re-draws the one-step mask
  from its own seed, fixed at rollout time: one fresh draw per update, as in d1.
* No KL term (its YAML sets ``beta: 0.04``, but the loss never uses the reference).

Because the weights need a whole group, :meth:`WD1.advantages` returns the per-response
coefficient ``G * (w+_i - w-_i)``: the loss of a micro-batch is then
``-sum_i c_i log pi_hat_i / N``, which sums over the batch to the mean over prompts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.objectives.advantages import group_advantages
from bgpo_lightning.objectives.base import Objective
from bgpo_lightning.objectives.registry import register
from bgpo_lightning.objectives.terms import LossContext, SampleTerms


def wd1_weights(
    rewards: torch.Tensor, group_size: int, normalize_std: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """wd1's weights ``(w+, w-)``, each summing to 1 over every group.

    Args:
        rewards: ``(B * G,)``, the G responses of a prompt adjacent.
        group_size: G.
        normalize_std: divide the centred rewards by the group's std first (wd1: no).

    Returns:
        ``softmax(A)`` and ``softmax(-A)`` within each group, both ``(B * G,)``.
    """
    advantages = group_advantages(rewards, group_size, normalize_std=normalize_std)
    groups = advantages.view(-1, group_size)
    positive = torch.softmax(groups, dim=1).reshape(-1)
    negative = torch.softmax(-groups, dim=1).reshape(-1)
    return positive, negative


def one_step_log_likelihood(terms: SampleTerms, completion_mask: torch.Tensor) -> torch.Tensor:
    """``log pi_hat = weight * sum`` of the masked completion tokens' log-probs, ``(n,)``.

    With the one-step estimator (whole completion masked, weight 1) this is wd1's sum over
    the completion up to the first EOS; other estimators give their weighted analogue.
    """
    scored = terms.mask & completion_mask.bool()
    total = (terms.log_probs * scored).sum(dim=-1)
    return terms.weight.to(total.dtype) * total


@dataclass(frozen=True)
class WD1Settings:
    """Settings of ``wd1``.

    Attributes:
        normalize_std: divide the centred rewards by the group's std before the softmax
            (wd1: no, the softmax sees ``r - mean(r)``).
        use_negative: keep the ``+ sum_i w-_i log pi_hat`` term (wd1: yes; False is its
            positive-only ablation, ``wll_d1_pos_only``).
    """

    normalize_std: bool = False
    use_negative: bool = True

    def __post_init__(self) -> None:
        for name in ("normalize_std", "use_negative"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"wd1 {name} must be true or false, got {getattr(self, name)!r}")


@register("wd1")
class WD1(Objective):
    """wd1: group-softmax weighted log-likelihood of the one-step estimate, no ratio."""

    coupled = False
    fresh_draws_per_update = True
    default_estimator = "one_step"
    uses_old = False
    Settings = WD1Settings

    def advantages(self, rewards: torch.Tensor, group_size: int) -> torch.Tensor:
        """Each response's coefficient ``G * (w+_i - w-_i)`` (sums to 0 over a group).

        Without ``use_negative`` it is ``G * w+_i``.
        """
        s = self.settings
        positive, negative = wd1_weights(rewards, group_size, s.normalize_std)
        net = positive - negative if s.use_negative else positive
        return group_size * net

    def num_samples(self, num_mc_samples: int, num_inner_updates: int) -> int:
        # One fresh one-step draw per inner update (d1's per-iteration mask seed).
        return num_inner_updates

    def sample_loss(
        self, j: int, new: SampleTerms, old: SampleTerms, ctx: LossContext
    ) -> torch.Tensor:
        # Ratio-free: ``old`` is unused. Each update scores exactly one draw, so the
        # estimator's combination weight ``ctx.coef`` (1/S over all updates) does not apply.
        log_likelihood = one_step_log_likelihood(new, ctx.completion_mask)
        coefficients = ctx.advantages.to(log_likelihood.dtype)
        return -(coefficients * log_likelihood).sum() / ctx.num_responses
