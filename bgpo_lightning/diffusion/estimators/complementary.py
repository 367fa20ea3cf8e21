"""Antithetic pairs of complementary masks (DiffuCoder's coupled-GRPO, ESPO)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bgpo_lightning.diffusion.estimators.base import MaskEstimator, check_interval
from bgpo_lightning.diffusion.estimators.registry import register_estimator
from bgpo_lightning.diffusion.masking import MaskSamples
from bgpo_lightning.errors import ConfigError


@dataclass(frozen=True)
class ComplementarySettings:
    """Settings of the ``complementary`` estimator.

    Attributes:
        min_t: timesteps are clamped to ``[min_t, 1 - min_t]`` so both weights ``1/t`` and
            ``1/(1-t)`` stay finite.
    """

    min_t: float = 1e-3

    def __post_init__(self) -> None:
        check_interval("estimator 'complementary'", "min_t", self.min_t, 0.0, 0.5, low_closed=False)


@register_estimator("complementary")
class ComplementaryEstimator(MaskEstimator):
    """``S/2`` pairs of masks; the second of a pair masks exactly what the first left clean.

    For pair ``p`` of ``P = S/2`` and one uniform offset ``u`` per response,
    ``t = clamp((p + u) / P, min_t, 1 - min_t)`` (stratified over the pairs). Sample ``2p``
    masks each token independently with probability ``t`` (weight ``1/t``); sample ``2p + 1``
    masks the complement (weight ``1/(1-t)``), so every token is scored exactly once per pair.

    Unbiased: ``t`` is uniform on ``[0, 1]`` (up to the clamp), and the complement of a
    Bernoulli(``t``) mask is a Bernoulli(``1-t``) mask with ``1-t`` also uniform, so each
    sample on its own is a draw of the ``iid`` estimator; the coupling only makes the pair's
    errors cancel (antithetic variates). Samples combine with ``coef = 1/S``.
    """

    Settings = ComplementarySettings

    def check_num_samples(self, num_samples: int) -> None:
        super().check_num_samples(num_samples)
        if num_samples % 2:
            raise ConfigError(
                f"estimator 'complementary' draws masks in pairs: num_samples must be even, "
                f"got {num_samples}"
            )

    def _draw(self, num_responses, response_length, num_samples, generator, device, prompt_length):
        pairs = num_samples // 2
        scores = torch.rand(
            pairs, num_responses, response_length, generator=generator, device=device
        )
        offset = torch.rand(
            1, num_responses, generator=generator, device=device, dtype=torch.float64
        )
        strata = torch.arange(pairs, device=device, dtype=torch.float64).unsqueeze(1)
        min_t = self.settings.min_t
        t = ((strata + offset) / pairs).clamp(min_t, 1 - min_t)  # (P, N)
        first = scores < t.unsqueeze(-1)
        # Interleave: sample 2p is a draw, sample 2p + 1 its complement.
        mask = torch.stack([first, ~first], dim=1).flatten(0, 1)
        weight = torch.stack([1.0 / t, 1.0 / (1.0 - t)], dim=1).flatten(0, 1)
        return MaskSamples(mask, weight)
