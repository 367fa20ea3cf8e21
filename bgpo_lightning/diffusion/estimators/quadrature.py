"""Quadrature rules on ``[0, 1]`` for semi-deterministic Monte Carlo (SDMC)."""

from __future__ import annotations

import numpy as np
import torch

from bgpo_lightning.errors import ConfigError

#: Gauss-Legendre node counts that SDMC accepts (GDPO publishes 3).
GAUSS_LEGENDRE_NODES = range(1, 6)


def gauss_legendre(nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre nodes and weights mapped from ``[-1, 1]`` to ``[0, 1]``.

    ``n`` nodes integrate polynomials of degree ``2n - 1`` exactly; the weights sum to 1.

    Args:
        nodes: how many nodes, 1 to 5.

    Returns:
        ``(t, w)``, two float64 tensors of length ``nodes``, ``t`` ascending.
    """
    if nodes not in GAUSS_LEGENDRE_NODES:
        raise ConfigError(f"gauss_legendre needs 1 to 5 nodes, got {nodes!r}")
    x, w = np.polynomial.legendre.leggauss(nodes)
    # t = (x + 1) / 2 halves the interval, so the weights halve too.
    return torch.from_numpy((x + 1) / 2), torch.from_numpy(w / 2)


def simpson(nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite Simpson nodes ``t = i / (nodes - 1)`` and weights ``h/3 * (1, 4, 2, ..., 4, 1)``.

    Integrates cubics exactly; the weights sum to 1.

    Args:
        nodes: an odd count >= 3 (``nodes - 1`` panels, an even number).

    Returns:
        ``(t, w)``, two float64 tensors of length ``nodes``, ``t`` ascending from 0 to 1.
    """
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 3 or nodes % 2 == 0:
        raise ConfigError(f"simpson needs an odd number of nodes >= 3, got {nodes!r}")
    h = 1.0 / (nodes - 1)
    t = torch.arange(nodes, dtype=torch.float64) * h
    w = torch.full((nodes,), 2.0, dtype=torch.float64)
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    return t, w * (h / 3)
