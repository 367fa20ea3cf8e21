"""Exact ELBOs by enumerating masks, and Monte Carlo checks against them (float64)."""

from __future__ import annotations

import itertools
import math

import torch

from bgpo_lightning.diffusion.masking import MaskSamples

LENGTH = 4


def dependent_table(length: int = LENGTH) -> torch.Tensor:
    """``table[i, k]``: log p of token ``i`` when ``k`` tokens are masked (mask-dependent).

    Tokens get harder to predict as more of the context is masked, at token-specific rates,
    so the ELBO terms really depend on the mask.
    """
    i = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    k = torch.arange(length + 1, dtype=torch.float64).unsqueeze(0)
    return -(0.2 + 0.3 * i) * (1 + k) ** 1.5 - 0.5 * torch.sin(1.3 * i * k)


def restricted_elbo(table: torch.Tensor, k: int) -> float:
    """``g(k) = E_{|S| = k} (L/k) sum_{i in S} table[i, k] / L`` by enumerating the subsets."""
    length = table.shape[0]
    subsets = list(itertools.combinations(range(length), k))
    total = sum(sum(table[i, k].item() for i in subset) for subset in subsets)
    return (length / k) * total / length / len(subsets)


def exact_elbo(table: torch.Tensor) -> float:
    """The ELBO ``E_{k ~ U{1..L}} g(k)``, enumerating every non-empty mask."""
    length = table.shape[0]
    return sum(restricted_elbo(table, k) for k in range(1, length + 1)) / length


def terms(samples: MaskSamples, table: torch.Tensor) -> torch.Tensor:
    """``l_j`` per (sample, response), ``(S, N)``, with log-probs that depend on the mask.

    Args:
        samples: the masks.
        table: ``(L, L + 1)`` from :func:`dependent_table`, or ``(L,)`` log-probs that do not
            depend on the mask.
    """
    mask = samples.mask
    length = mask.shape[-1]
    if table.dim() == 1:
        log_probs = table.expand(mask.shape)
    else:  # row i, column |S| of the draw
        counts = mask.sum(dim=-1, keepdim=True).expand(mask.shape)
        log_probs = table.T[counts, torch.arange(length)]
    return samples.weight * (log_probs * mask).sum(dim=-1) / length


def estimates(samples: MaskSamples, table: torch.Tensor) -> torch.Tensor:
    """``B_hat = sum_j coef_j l_j`` per response, ``(N,)``."""
    return (samples.coef.unsqueeze(1) * terms(samples, table)).sum(dim=0)


def assert_agrees(values: torch.Tensor, target: float, sigmas: float = 4.0) -> None:
    """Asserts that the mean of i.i.d. ``values`` is within ``sigmas`` standard errors of target."""
    mean = values.mean().item()
    error = values.std().item() / math.sqrt(values.numel())
    assert abs(mean - target) < sigmas * error, f"mean {mean} vs {target} (SE {error})"


def assert_rejected(values: torch.Tensor, target: float, sigmas: float = 4.0) -> None:
    """Asserts that the mean of ``values`` is more than ``sigmas`` standard errors off target."""
    mean = values.mean().item()
    error = values.std().item() / math.sqrt(values.numel())
    assert abs(mean - target) > sigmas * error, f"mean {mean} too close to {target} (SE {error})"
