"""Optimizer settings shared by the RL and SFT modules."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class OptimConfig:
    """AdamW with linear warm-up to a constant learning rate (the paper: 5e-7, no decay).

    Attributes:
        lr: peak learning rate.
        betas: AdamW betas.
        weight_decay: AdamW decoupled weight decay.
        warmup_steps: optimizer steps of linear warm-up from ``lr / warmup_steps``.
        grad_clip: maximum global gradient norm; 0 or None disables clipping.
    """

    lr: float = 5e-7
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    warmup_steps: int = 0
    grad_clip: float | None = 1.0


def build_optimizer(params, config: OptimConfig) -> dict:
    """The ``configure_optimizers`` dictionary for ``params`` (trainable parameters only)."""
    params = [p for p in params if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay
    )
    warmup = max(config.warmup_steps, 0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
