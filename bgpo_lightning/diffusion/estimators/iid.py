"""The paper's estimator: i.i.d. timesteps, tokens masked independently."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bgpo_lightning.diffusion.estimators.base import MaskEstimator, check_interval
from bgpo_lightning.diffusion.estimators.registry import register_estimator
from bgpo_lightning.diffusion.masking import MaskSamples


@dataclass(frozen=True)
class IidSettings:
    """Settings of the ``iid`` estimator.

    Attributes:
        min_t: lower end of the timestep range, so the weight ``1/t`` stays finite.
    """

    min_t: float = 1e-3

    def __post_init__(self) -> None:
        check_interval("estimator 'iid'", "min_t", self.min_t, 0.0, 1.0, low_closed=False)


@register_estimator("iid")
class IidEstimator(MaskEstimator):
    """``t ~ U(min_t, 1)`` per (sample, response); each token masked with probability ``t``.

    The weight is ``1/t``, the BGPO paper's Monte Carlo form of the ELBO
    ``E_t E_{y_t} (1/t) sum_i 1[masked] log p_i``; it is unbiased up to the ``O(min_t)`` slice
    of timesteps below ``min_t``. Samples combine with ``coef = 1/S``.
    """

    Settings = IidSettings

    def _draw(self, num_responses, response_length, num_samples, generator, device, prompt_length):
        shape = (num_samples, num_responses)
        # Scores before t: the order in which draw_masks always consumed the generator.
        scores = torch.rand(*shape, response_length, generator=generator, device=device)
        t = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
        t = t * (1 - self.settings.min_t) + self.settings.min_t
        return MaskSamples(scores < t.unsqueeze(-1), 1.0 / t)
