"""d1's one-step estimator (diffu-GRPO): the whole response masked, the prompt lightly."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bgpo_lightning.diffusion.estimators.base import MaskEstimator, check_interval
from bgpo_lightning.diffusion.estimators.registry import register_estimator
from bgpo_lightning.diffusion.masking import MaskSamples


@dataclass(frozen=True)
class OneStepSettings:
    """Settings of the ``one_step`` estimator.

    Attributes:
        prompt_mask_prob: probability that each prompt token is masked (d1: 0.15).
    """

    prompt_mask_prob: float = 0.15

    def __post_init__(self) -> None:
        check_interval("estimator 'one_step'", "prompt_mask_prob", self.prompt_mask_prob, 0.0, 1.0)


@register_estimator("one_step")
class OneStepEstimator(MaskEstimator):
    """Every response token masked (weight 1); each prompt token masked w.p. ``prompt_mask_prob``.

    One forward pass gives ``log p(y^i | x', all-[MASK])`` for every response token ``i``, and
    ``l_j`` is their mean: the mean-field (single-step) log-likelihood d1 uses for its
    token-level ratios. This targets a different quantity than the ELBO (it is not a bound
    on ``log pi(y|x)``), so it is not interchangeable with the ELBO estimators. The random
    prompt masks are a regulariser: sample ``m`` is an independent draw meant for inner update
    ``m`` (d1 draws a new seed per inner update), not for averaging, although ``coef = 1/S``.
    ``prompt_mask`` is ``(S, N, P)`` for ``P = prompt_length``, which callers must pass.
    """

    Settings = OneStepSettings

    def _draw(self, num_responses, response_length, num_samples, generator, device, prompt_length):
        probability = self.settings.prompt_mask_prob
        if probability > 0 and prompt_length < 1:
            raise ValueError("estimator 'one_step' masks the prompt: pass prompt_length >= 1")
        shape = (num_samples, num_responses)
        mask = torch.ones(*shape, response_length, dtype=torch.bool, device=device)
        weight = torch.ones(shape, dtype=torch.float64, device=device)
        scores = torch.rand(*shape, prompt_length, generator=generator, device=device)
        return MaskSamples(mask, weight, prompt_mask=scores < probability)
