"""Streaming statistics of repeated flat gradient estimates, in float64.

A gradient estimator is measured by drawing it ``R`` times and comparing the draws with each
other (spread) and with a reference ("golden") estimate of many more samples. Storing ``R``
copies of a model-sized gradient is what this avoids: :class:`RunningMoments` keeps two flat
buffers however large ``R`` is.
"""

from __future__ import annotations

import torch


class RunningMoments:
    """Running mean and sum of squared deviations of flat vectors (Welford's update).

    This is the running sum / sum of squares formulation rearranged so that the variance is not
    a difference of two large numbers (``sum x^2 - R mean^2`` cancels badly when the spread is
    small next to the mean, as it is for gradients at large n_t).

    Args:
        numel: length of the flat vectors.
        device: where the two float64 buffers live (the parameters' device).
    """

    def __init__(self, numel: int, device: torch.device | str = "cpu") -> None:
        self.mean = torch.zeros(numel, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(numel, dtype=torch.float64, device=device)
        self.reset()

    def reset(self) -> None:
        """Forgets every draw, keeping the buffers (no new allocation)."""
        self.count = 0
        self.mean.zero_()
        self.m2.zero_()
        self._cosine_sum = 0.0

    def update(self, sample: torch.Tensor, reference: torch.Tensor | None = None) -> None:
        """Adds one draw. ``sample`` is used as scratch space and overwritten.

        Args:
            sample: flat float64 draw, same length as the buffers.
            reference: if given, the draw's cosine similarity to it is accumulated too
                (see :attr:`mean_cosine`).
        """
        if reference is not None:
            self._cosine_sum += cosine_similarity(sample, reference)
        self.count += 1
        delta = sample.sub_(self.mean)  # in place: no third buffer
        self.mean.add_(delta, alpha=1.0 / self.count)
        # delta * (x - new_mean) = delta^2 * (k - 1) / k
        self.m2.addcmul_(delta, delta, value=(self.count - 1) / self.count)

    def variance(self) -> torch.Tensor:
        """Per-entry sample variance with Bessel's correction (``R - 1`` in the denominator)."""
        if self.count < 2:
            raise ValueError(f"the variance needs at least 2 draws, got {self.count}")
        return self.m2 / (self.count - 1)

    def mean_std(self) -> float:
        """The per-entry standard deviations across the draws, averaged over the entries."""
        return self.variance().clamp_min_(0).sqrt_().mean().item()

    @property
    def mean_cosine(self) -> float:
        """Average cosine similarity of the single draws to the ``reference`` they were given."""
        return self._cosine_sum / self.count if self.count else float("nan")


def relative_error(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    """``||estimate - reference|| / ||reference||``; NaN when the reference is zero."""
    norm = reference.norm().item()
    if norm == 0:
        return float("nan")
    return torch.dist(estimate, reference).item() / norm


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine of the angle between two flat vectors; NaN when either is zero."""
    norms = a.norm().item() * b.norm().item()
    if norms == 0:
        return float("nan")
    return torch.dot(a, b).item() / norms
