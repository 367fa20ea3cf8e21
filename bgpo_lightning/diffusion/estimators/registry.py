"""The registry of mask estimators: a name in YAML selects a class, settings come as a dict."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from bgpo_lightning.diffusion.estimators.base import MaskEstimator
from bgpo_lightning.errors import ConfigError
from bgpo_lightning.settings import build_settings

#: name -> MaskEstimator subclass, filled by :func:`register_estimator` as the files are imported.
ESTIMATORS: dict[str, type[MaskEstimator]] = {}


def register_estimator(name: str) -> Callable[[type[MaskEstimator]], type[MaskEstimator]]:
    """Class decorator: makes an estimator selectable by ``name``."""

    def add(cls: type[MaskEstimator]) -> type[MaskEstimator]:
        if name in ESTIMATORS:
            raise ValueError(f"estimator {name!r} is registered twice")
        cls.name = name
        ESTIMATORS[name] = cls
        return cls

    return add


def check_estimator(name: str) -> str:
    """Returns ``name`` if it is a known estimator, else raises a one-line ConfigError."""
    if name not in ESTIMATORS:
        raise ConfigError(
            f"unknown estimator {name!r}; choose one of: {', '.join(sorted(ESTIMATORS))}"
        )
    return name


def build_estimator(
    name: str, settings: dict[str, Any] | None = None, defaults: dict[str, Any] | None = None
) -> MaskEstimator:
    """The estimator ``name`` with its ``settings`` block (unknown names and keys: ConfigError).

    Args:
        name: a registry name.
        settings: the user's settings block.
        defaults: context the caller knows (the RL module passes the rollout's
            ``block_length``); used for the estimator's settings of those names that
            ``settings`` does not set, ignored for the others.
    """
    cls = ESTIMATORS[check_estimator(name)]
    fields = {field.name for field in dataclasses.fields(cls.Settings)}
    values = {k: v for k, v in (defaults or {}).items() if k in fields}
    values.update(settings or {})
    return cls(build_settings(cls.Settings, f"estimator {name!r}", values))
