"""torchmetrics pieces for evaluation."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class MeanWithStdError(Metric):
    """Mean of per-example scores and the standard error of that mean, reduced across ranks.

    ``compute()`` returns ``(mean, standard_error)``; the error uses the unbiased sample
    variance, ``sqrt(var / n)``.
    """

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("squares", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, values: torch.Tensor) -> None:
        values = values.detach().to(torch.float64).flatten()
        self.total += values.sum()
        self.squares += (values * values).sum()
        self.count += values.numel()

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.count.clamp_min(1)
        mean = self.total / n
        var = ((self.squares - n * mean * mean) / (n - 1).clamp_min(1)).clamp_min(0)
        return mean.float(), (var / n).sqrt().float()
