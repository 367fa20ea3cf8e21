"""The registry of objectives: a name in YAML selects a class, settings come as a dict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.objectives.base import Objective
from bgpo_lightning.settings import build_settings

#: name -> Objective subclass, filled by :func:`register` as the objective files are imported.
OBJECTIVES: dict[str, type[Objective]] = {}


def register(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator: makes an objective selectable by ``name``."""

    def add(cls: type[Objective]) -> type[Objective]:
        if name in OBJECTIVES:
            raise ValueError(f"objective {name!r} is registered twice")
        cls.name = name
        OBJECTIVES[name] = cls
        return cls

    return add


def check_objective(name: str) -> str:
    """Returns ``name`` if it is a known objective, else raises a one-line ConfigError."""
    if name not in OBJECTIVES:
        raise ConfigError(
            f"unknown objective {name!r}; choose one of: {', '.join(sorted(OBJECTIVES))}"
        )
    return name


def build_objective(name: str, settings: dict[str, Any] | None = None) -> Objective:
    """The objective ``name`` with its ``settings`` block (unknown names and keys: ConfigError)."""
    cls = OBJECTIVES[check_objective(name)]
    return cls(build_settings(cls.Settings, f"objective {name!r}", settings))
