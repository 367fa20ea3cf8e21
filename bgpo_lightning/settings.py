"""Plug-ins selected by name in YAML (objectives, mask estimators), each with a nested settings
block given as a plain dictionary."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from bgpo_lightning.errors import ConfigError

T = TypeVar("T")


def build_settings(cls: type, owner: str, values: dict[str, Any] | None) -> Any:
    """``cls(**values)`` for a settings dataclass; an unknown key is a one-line ConfigError.

    Args:
        cls: the settings dataclass; its ``__post_init__`` validates values.
        owner: how the error names the block's owner, e.g. ``objective 'gdpo'``.
        values: the block as parsed from YAML (None: all defaults).
    """
    values = dict(values or {})
    known = [field.name for field in dataclasses.fields(cls)]
    for key in values:
        if key not in known:
            choices = ", ".join(known) if known else "none"
            raise ConfigError(f"{owner} has no setting {key!r}; its settings: {choices}")
    return cls(**values)


class Registry(Generic[T]):
    """Classes of one kind by name. Each class has a ``Settings`` dataclass and is built as
    ``cls(settings)``; the registry sets its ``name``.

    Args:
        kind: what the classes are, for messages (``objective``, ``estimator``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        #: name -> class, filled by :meth:`register` as the plug-in files are imported.
        self.classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: makes a class selectable by ``name``."""

        def add(cls: type[T]) -> type[T]:
            if name in self.classes:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            cls.name = name
            self.classes[name] = cls
            return cls

        return add

    def check(self, name: str) -> str:
        """Returns ``name`` if it is registered, else raises a one-line ConfigError."""
        if name not in self.classes:
            choices = ", ".join(sorted(self.classes))
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {choices}")
        return name

    def build(
        self,
        name: str,
        settings: dict[str, Any] | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> T:
        """The class ``name`` built with its ``settings`` block (unknown names and keys:
        ConfigError).

        Args:
            name: a registered name.
            settings: the user's settings block.
            defaults: context the caller knows (the RL module passes the rollout's
                ``block_length``); used for the settings of those names that ``settings``
                does not set, ignored for the others.
        """
        cls = self.classes[self.check(name)]
        fields = {field.name for field in dataclasses.fields(cls.Settings)}
        values = {k: v for k, v in (defaults or {}).items() if k in fields}
        values.update(settings or {})
        return cls(build_settings(cls.Settings, f"{self.kind} {name!r}", values))
