"""The before/after difference of per-example scores, with its paired standard error, and the
mean and standard error of one list of scores."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PairedDifference:
    """``mean(after - before)`` over the same examples and the standard error of that mean.

    The error is ``std(after_i - before_i) / sqrt(n)`` with the unbiased sample standard
    deviation: pairing removes the spread between examples that both runs share, so it is
    smaller than the unpaired ``sqrt(se_before^2 + se_after^2)`` whenever the two runs agree
    more often than chance.
    """

    before: float
    after: float
    gain: float
    se: float
    n: int

    @property
    def z(self) -> float:
        """The gain in standard errors (infinite when every difference is the same)."""
        if self.se > 0:
            return self.gain / self.se
        return math.copysign(math.inf, self.gain) if self.gain else 0.0


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (unbiased standard deviation over sqrt(n); NaN
    for fewer than 2 values)."""
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, float("nan")
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)


def paired_difference(before: Sequence[float], after: Sequence[float]) -> PairedDifference:
    """Paired statistics of two score lists over the same examples, in the same order."""
    if len(before) != len(after):
        raise ValueError(f"paired scores need equal lengths, got {len(before)} and {len(after)}")
    n = len(before)
    if n < 2:
        raise ValueError("a standard error needs at least 2 paired examples")
    gain, se = mean_se([float(a) - float(b) for b, a in zip(before, after, strict=True)])
    return PairedDifference(
        before=math.fsum(map(float, before)) / n,
        after=math.fsum(map(float, after)) / n,
        gain=gain,
        se=se,
        n=n,
    )
