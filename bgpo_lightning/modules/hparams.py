"""Hyperparameters as plain data, so checkpoints load with ``torch.load(weights_only=True)``.

Config dataclasses are stored as dictionaries and rebuilt on the way back in.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from bgpo_lightning.diffusion.sampler import SamplerConfig
from bgpo_lightning.modules.optim import OptimConfig
from bgpo_lightning.policy import PolicySpec, TinyModelConfig

T = TypeVar("T")


def plain(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with every dataclass turned into a (nested) dictionary."""
    return {
        key: dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        for key, value in values.items()
    }


def as_config(cls: type[T], value: T | dict | None, default: T | None = None) -> T:
    """``value`` as a ``cls``: a dict (from a checkpoint) is rebuilt, None gives ``default``."""
    if value is None:
        return default if default is not None else cls()
    if isinstance(value, dict):
        fields = dict(value)
        if cls is PolicySpec and isinstance(fields.get("tiny"), dict):
            fields["tiny"] = TinyModelConfig(**fields["tiny"])
        if cls is OptimConfig and "betas" in fields:
            fields["betas"] = tuple(fields["betas"])
        return cls(**fields)
    return value


__all__ = ["OptimConfig", "PolicySpec", "SamplerConfig", "as_config", "plain"]
